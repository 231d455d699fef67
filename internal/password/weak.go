package password

import (
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/trustelem/zxcvbn"
	"golang.org/x/text/unicode/norm"
)

// Normalize returns pw in Unicode NFKC form (NIST SP 800-63B §5.1.1.2):
// the same password typed on two keyboards ("ｐａｓｓ" and "pass", a
// precomposed "é" and "e"+U+0301) is one password, for the policy and for
// the hash. Invalid UTF-8 is returned unchanged, for Check to refuse.
func Normalize(pw string) string {
	if !utf8.ValidString(pw) {
		return pw
	}
	return norm.NFKC.String(pw)
}

// Context is what a password must not be made of besides the username:
// the email's local part, the institution's id and display name.
type Context struct {
	Email           string
	InstitutionID   string
	InstitutionName string
}

// genericWords are context words for every user of a password-reset
// service at a bank.
var genericWords = []string{"password", "bank"}

const (
	// minContextRunes: shorter words ("ab", "de") would match by chance.
	minContextRunes = 3
	// minPartRunes: a word taken from inside a longer context value
	// ("demo" of "Demo Bank") must be longer still, for the same reason.
	minPartRunes = 4
	// estimateRunes bounds the strength estimate's input: zxcvbn's
	// matching grows fast with length (~30 ms at 64 runes, ~190 ms at
	// 125 on this machine's cores), and 48 runes that are easy to guess
	// are not rescued by what follows.
	estimateRunes = 48
)

// words returns the lower-cased context words, longest first: each value,
// the value without its spaces and punctuation ("demobank"), and its
// parts of at least minPartRunes ("demo", "bank").
func (c Context) words(username string) []string {
	local, _, _ := strings.Cut(c.Email, "@")
	var ws []string
	add := func(w string, minRunes int) {
		if utf8.RuneCountInString(w) >= minRunes && !slices.Contains(ws, w) {
			ws = append(ws, w)
		}
	}
	for _, v := range append([]string{username, local, c.InstitutionID, c.InstitutionName}, genericWords...) {
		v = strings.ToLower(Normalize(v))
		add(v, minContextRunes)
		parts := strings.FieldsFunc(v, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
		add(strings.Join(parts, ""), minContextRunes)
		for _, p := range parts {
			add(p, minPartRunes)
		}
	}
	slices.SortStableFunc(ws, func(a, b string) int { return len(b) - len(a) })
	return ws
}

// weak reports whether pw (normalised) is guessable by its shape or its
// context rather than its length: only whitespace, repetitive or
// sequential, a keyboard walk, mostly context words (or context words
// plus a pattern), or below minStrength on zxcvbn's 0…4 scale (0: no
// estimate).
func weak(pw, username string, c Context, minStrength int) bool {
	lower := []rune(strings.ToLower(pw))
	if patterned(lower) {
		return true
	}
	ws := c.words(username)
	covered := make([]bool, len(lower))
	n := 0
	for _, w := range ws {
		wr := []rune(w)
		for i := 0; i+len(wr) <= len(lower); i++ {
			if slices.Equal(lower[i:i+len(wr)], wr) {
				for j := i; j < i+len(wr); j++ {
					if !covered[j] {
						covered[j] = true
						n++
					}
				}
			}
		}
	}
	if n > 0 {
		if 2*n >= len(lower) {
			return true
		}
		var rest []rune
		for i, r := range lower {
			if !covered[i] {
				rest = append(rest, r)
			}
		}
		if patterned(rest) {
			return true
		}
	}
	if minStrength > 0 {
		est := []rune(pw)
		if len(est) > estimateRunes {
			est = est[:estimateRunes]
		}
		if zxcvbn.PasswordStrength(string(est), ws).Score < minStrength {
			return true
		}
	}
	return false
}

// keyboard is the US keyboard read row by row: neighbours in it are a
// keyboard walk ("qwerty", "asdf", and "…op" on to "as…" as typed).
const keyboard = "`1234567890-=qwertyuiop[]\\asdfghjkl;'zxcvbnm,./"

// shifted maps the shifted symbols onto their keys.
var shifted = strings.NewReplacer(
	"~", "`", "!", "1", "@", "2", "#", "3", "$", "4", "%", "5", "^", "6", "&", "7", "*", "8", "(", "9", ")", "0", "_", "-", "+", "=",
	"{", "[", "}", "]", "|", "\\", ":", ";", "\"", "'", "<", ",", ">", ".", "?", "/")

// patterned reports whether rs (lower-cased) is only whitespace, one short
// unit repeated, at most two distinct characters, or a run in which
// almost every step goes to the same character, the next or previous
// letter or digit (9 wraps to 0), or the neighbouring key: one jump is
// allowed per six steps, so "1234abcd" and "qwertyuiopas" are patterns
// while no English phrase is.
func patterned(rs []rune) bool {
	if len(rs) == 0 {
		return true
	}
	if strings.TrimFunc(string(rs), unicode.IsSpace) == "" {
		return true
	}
	distinct := map[rune]bool{}
	for _, r := range rs {
		distinct[r] = true
	}
	if len(distinct) <= 2 {
		return true
	}
	for p := 1; p <= len(rs)/2; p++ {
		if periodic(rs, p) {
			return true
		}
	}
	jumps := 0
	for i := 1; i < len(rs); i++ {
		if !step(rs[i-1], rs[i]) {
			jumps++
		}
	}
	return jumps <= (len(rs)-1)/6
}

func periodic(rs []rune, p int) bool {
	for i := p; i < len(rs); i++ {
		if rs[i] != rs[i-p] {
			return false
		}
	}
	return true
}

func step(a, b rune) bool {
	if a == b {
		return true
	}
	alnum := func(r rune) bool { return r < utf8.RuneSelf && (unicode.IsLetter(r) || unicode.IsDigit(r)) }
	if alnum(a) && alnum(b) && unicode.IsDigit(a) == unicode.IsDigit(b) && (a-b == 1 || b-a == 1) {
		return true
	}
	if (a == '9' && b == '0') || (a == '0' && b == '9') {
		return true
	}
	ka := strings.Index(keyboard, shifted.Replace(string(a)))
	kb := strings.Index(keyboard, shifted.Replace(string(b)))
	return ka >= 0 && kb >= 0 && (ka-kb == 1 || kb-ka == 1)
}
