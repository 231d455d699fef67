package reset

import (
	"reflect"
	"testing"
)

// clone must copy every slice and map of Settings: a field added later
// that clone does not know would be shared by every cached reader.
func TestSettingsCloneCopiesEveryReference(t *testing.T) {
	t.Parallel()
	st := DefaultSettings("https://resetd.example")
	v := reflect.ValueOf(&st).Elem()
	for i := range v.NumField() {
		f := v.Field(i)
		switch f.Kind() {
		case reflect.Slice:
			f.Set(reflect.MakeSlice(f.Type(), 1, 1))
		case reflect.Map:
			m := reflect.MakeMap(f.Type())
			m.SetMapIndex(reflect.Zero(f.Type().Key()), reflect.Zero(f.Type().Elem()))
			f.Set(m)
		case reflect.Pointer, reflect.Interface, reflect.Chan, reflect.Func:
			t.Fatalf("Settings.%s is a %s: teach clone to copy it", v.Type().Field(i).Name, f.Kind())
		}
	}
	c := st.clone()
	cv := reflect.ValueOf(c)
	for i := range v.NumField() {
		f, g := v.Field(i), cv.Field(i)
		if (f.Kind() == reflect.Slice || f.Kind() == reflect.Map) && f.UnsafePointer() == g.UnsafePointer() {
			t.Errorf("Settings.%s is shared between a clone and its original", v.Type().Field(i).Name)
		}
	}
}
