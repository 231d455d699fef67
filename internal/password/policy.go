package password

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/resetd/resetd/internal/i18n"
)

// Violation codes, stable for API clients; Message is for people.
const (
	codeInvalid          = "invalid"
	codeTooShort         = "too_short"
	codeTooLong          = "too_long"
	codeCommon           = "common"
	codeContainsUsername = "contains_username"
	codeReused           = "reused"
	codeWeak             = "weak"
	codeBreached         = "breached"
)

const (
	defaultMaxLength = 128
	// minUsernameRunes: a shorter username ("al", "jo") would refuse too
	// many good passwords for no gain.
	minUsernameRunes = 3
)

// Violation is one reason a candidate password is refused.
type Violation struct {
	Code string `json:"code"` // "invalid", "too_short", "too_long", "common", "weak", "contains_username", "breached", "reused"
	// Message is a plain sentence for an end user, e.g. "Use at least 12
	// characters.": in English as Check returns it, in the user's language
	// after Localize. Code stays the same in every language.
	Message string `json:"message"`
	// n is the number the message names (a length, a history depth).
	n int
}

// NewViolation is the violation of code with the number its message
// names (the least or most length for too_short and too_long, the
// history depth for reused; 0 for the others), its message in English.
func NewViolation(code string, n int) Violation {
	return Violation{Code: code, n: n, Message: reason(english(), code, n)}
}

// Localize returns vs with each message in l's language.
func Localize(vs []Violation, l *i18n.Localizer) []Violation {
	out := make([]Violation, len(vs))
	for i, v := range vs {
		out[i] = v
		out[i].Message = reason(l, v.Code, v.n)
	}
	return out
}

func english() *i18n.Localizer { return i18n.Messages().In(i18n.Default) }

// reason is the sentence for a violation in l's language.
func reason(l *i18n.Localizer, code string, n int) string {
	switch code {
	case codeInvalid:
		return l.T("policy.invalid", nil)
	case codeTooShort:
		return l.N("policy.too_short", n, nil)
	case codeTooLong:
		return l.N("policy.too_long", n, nil)
	case codeCommon:
		return l.T("policy.common", nil)
	case codeWeak:
		return l.T("policy.weak", nil)
	case codeContainsUsername:
		return l.T("policy.contains_username", nil)
	case codeBreached:
		return l.T("policy.breached", nil)
	case codeReused:
		return l.N("policy.reused", n, nil)
	}
	return code
}

// Policy is what a new password must meet.
type Policy struct {
	MinLength int // in Unicode characters (runes), e.g. 12; <=0 means no minimum
	MaxLength int // in runes; <=0 means 128
	History   int // how many previous hashes to check; <=0 means none
	// MinStrength is the least zxcvbn score (0…4) accepted; <=0 means no
	// estimate (the shape and context rules still apply).
	MinStrength int
	// Context holds the words besides the username a password must not be
	// made of.
	Context Context
	// Breaches, when not nil, is asked about passwords every other rule
	// but the history accepts.
	Breaches BreachList
}

func (p Policy) maxLength() int {
	if p.MaxLength <= 0 {
		return defaultMaxLength
	}
	return p.MaxLength
}

// Check returns every way pw breaks p, in a fixed order (nil when pw is
// acceptable). pw is NFKC-normalised first (Normalize); the caller hashes
// Normalize(pw) too. Invalid UTF-8 is reported alone, as "invalid": lengths
// and matches over broken text would only confuse. Length counts runes
// (utf8.RuneCountInString). The username is matched case-insensitively, and
// only when it has at least 3 runes.
//
// The rules run cheapest first and stop before any that costs more: a
// password refused by the cheap rules (length, common, weak, username) is
// never sent to p.Breaches nor compared with the history, so a refused
// attempt costs no argon2id time. A breached password is not compared with
// the history either. history holds PHC strings, newest first; only the
// first p.History are checked, each with h.Verify at full argon2id cost,
// and checking stops at the first match.
//
// The error is non-nil only when the history could not be checked: ErrBusy,
// the ctx error, or a malformed history entry (a corrupt row should be seen,
// not silently skipped). Violations are then nil. A breached list that
// cannot be asked is no error: the password is let through.
func (p Policy) Check(ctx context.Context, h *Hasher, pw, username string, history []string) ([]Violation, error) {
	vs, _, err := p.Assess(ctx, h, pw, username, history)
	return vs, err
}

// Assess is Check that also returns the history entry pw matched ("" when
// none): that entry has just been verified, so a caller can replace it with a
// current hash when h.Current says it is not (SPEC §13).
func (p Policy) Assess(ctx context.Context, h *Hasher, pw, username string, history []string) (vs []Violation, matched string, err error) {
	if !utf8.ValidString(pw) {
		return []Violation{NewViolation(codeInvalid, 0)}, "", nil
	}
	pw = Normalize(pw)

	n := utf8.RuneCountInString(pw)
	if n < p.MinLength {
		vs = append(vs, NewViolation(codeTooShort, p.MinLength))
	}
	if limit := p.maxLength(); n > limit {
		vs = append(vs, NewViolation(codeTooLong, limit))
	}
	// A common password is weak too; "common" says more.
	if IsCommon(pw) {
		vs = append(vs, NewViolation(codeCommon, 0))
	} else if n <= p.maxLength() && weak(pw, username, p.Context, p.MinStrength) {
		vs = append(vs, NewViolation(codeWeak, 0))
	}
	if utf8.RuneCountInString(username) >= minUsernameRunes &&
		strings.Contains(strings.ToLower(pw), strings.ToLower(Normalize(username))) {
		vs = append(vs, NewViolation(codeContainsUsername, 0))
	}
	if len(vs) > 0 {
		return vs, "", nil
	}

	if p.Breaches != nil {
		if found, _ := p.Breaches.Contains(ctx, pw); found {
			return []Violation{NewViolation(codeBreached, 0)}, "", nil
		}
	}

	if p.History > 0 && len(history) > 0 {
		if h == nil {
			return nil, "", errors.New("password: history check needs a hasher")
		}
		for i, encoded := range history[:min(p.History, len(history))] {
			same, err := h.Verify(ctx, encoded, pw)
			if err != nil {
				return nil, "", fmt.Errorf("password: history entry %d: %w", i, err)
			}
			if same {
				return []Violation{NewViolation(codeReused, p.History)}, encoded, nil
			}
		}
	}
	return nil, "", nil
}

// Describe returns the policy in English words for a web page, e.g. "At
// least 12 characters", "At most 128 characters", "Not a commonly used
// password", "Must not contain your username", "Must differ from your
// last 4 passwords".
func (p Policy) Describe() []string { return p.DescribeIn(english()) }

// DescribeIn is Describe in l's language.
func (p Policy) DescribeIn(l *i18n.Localizer) []string {
	var ds []string
	if p.MinLength > 0 {
		ds = append(ds, l.N("policy.at_least", p.MinLength, nil))
	}
	ds = append(ds, l.N("policy.at_most", p.maxLength(), nil),
		l.T("policy.not_common", nil),
		l.T("policy.not_pattern", nil),
		l.T("policy.no_username", nil))
	if p.History > 0 {
		ds = append(ds, l.N("policy.differ", p.History, nil))
	}
	return ds
}
