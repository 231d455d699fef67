package password

import (
	_ "embed"
	"strings"
	"sync"
)

// commonPasswords is zxcvbn's password list (Dropbox, MIT license; see the
// file's header): lower-cased words, most frequent first, one per line, after
// a leading block of '#' comment lines.
//
//go:embed common-passwords.txt
var commonPasswords string

// commonSet is the list as a set, built on first use so that a binary that
// never checks a policy never pays for the map (~47k entries).
var commonSet = sync.OnceValue(func() map[string]struct{} {
	set := make(map[string]struct{}, 48_000)
	header := true
	for line := range strings.Lines(commonPasswords) {
		line = strings.TrimRight(line, "\r\n")
		// Only the leading block is comments: "#name?" is a real entry.
		if header && strings.HasPrefix(line, "#") {
			continue
		}
		header = false
		if line == "" {
			continue
		}
		set[line] = struct{}{}
	}
	return set
})

// IsCommon reports whether pw, lower-cased, is on the shipped list of common
// passwords. The match is exact after lower-casing: nothing is stripped or
// substituted, so "PassWord" matches "password" but "pa55word" needs its own
// entry.
func IsCommon(pw string) bool {
	_, ok := commonSet()[strings.ToLower(pw)]
	return ok
}

// CommonCount returns how many entries the shipped list holds.
func CommonCount() int { return len(commonSet()) }
