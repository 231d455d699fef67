package reset

// AllDigits reports whether s is one or more ASCII digits: "" is not a
// number, so it is false for "" (an empty code or fact is never valid).
func AllDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}
