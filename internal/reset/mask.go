package reset

import (
	"strings"
	"unicode/utf8"
)

const bullets = "•••"

// MaskEmail shows the first letter of the local part and of the domain and
// the top-level domain: "jane@example.com" → "j•••@e•••.com".
func MaskEmail(addr string) string {
	at := strings.LastIndexByte(addr, '@')
	if at <= 0 || at == len(addr)-1 {
		return bullets
	}
	local, domain := addr[:at], addr[at+1:]
	tld := ""
	if dot := strings.LastIndexByte(domain, '.'); dot > 0 {
		tld, domain = domain[dot:], domain[:dot]
	}
	return firstRune(local) + bullets + "@" + firstRune(domain) + bullets + tld
}

// MaskPhone keeps only the last digits: "+15551234567" → "•••••4567"
// (two digits for numbers too short to hide behind four).
func MaskPhone(e164 string) string {
	digits := strings.TrimPrefix(e164, "+")
	keep := 4
	if len(digits) < 10 {
		keep = 2
	}
	if len(digits) <= keep {
		return bullets
	}
	return "•••••" + digits[len(digits)-keep:]
}

func firstRune(s string) string {
	r, _ := utf8.DecodeRuneInString(s)
	if r == utf8.RuneError {
		return ""
	}
	return string(r)
}
