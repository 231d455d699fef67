package reset

import "testing"

func TestAllDigits(t *testing.T) {
	t.Parallel()
	for s, want := range map[string]bool{"": false, "0": true, "0123": true, "12a4": false, "١٢": false, " 12": false} {
		if got := AllDigits(s); got != want {
			t.Errorf("AllDigits(%q) = %v, want %v", s, got, want)
		}
	}
}
