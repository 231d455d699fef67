package sqlite

import (
	"database/sql/driver"
	"testing"
)

type notModernc struct{ driver.Conn }

type noHandle struct {
	driver.Conn
	db string
}

// TestStablePlansFailsOnAnUnknownConnection: should a driver upgrade
// change its connection type, opening a connection fails rather than run
// without the guarantee.
func TestStablePlansFailsOnAnUnknownConnection(t *testing.T) {
	for name, c := range map[string]driver.Conn{
		"not a pointer":      notModernc{},
		"no uintptr handle":  &noHandle{db: "x"},
		"pointer to nothing": &notModernc{},
	} {
		if err := stablePlans(c); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
