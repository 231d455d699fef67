package password

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Violation codes, stable for API clients; Message is for people.
const (
	codeInvalid          = "invalid"
	codeTooShort         = "too_short"
	codeTooLong          = "too_long"
	codeCommon           = "common"
	codeContainsUsername = "contains_username"
	codeReused           = "reused"
)

const (
	defaultMaxLength = 128
	// minUsernameRunes: a shorter username ("al", "jo") would refuse too
	// many good passwords for no gain.
	minUsernameRunes = 3
)

// Violation is one reason a candidate password is refused.
type Violation struct {
	Code    string `json:"code"`    // "invalid", "too_short", "too_long", "common", "contains_username", "reused"
	Message string `json:"message"` // a plain English sentence for an end user, e.g. "Use at least 12 characters."
}

// Policy is what a new password must meet.
type Policy struct {
	MinLength int // in Unicode characters (runes), e.g. 12; <=0 means no minimum
	MaxLength int // in runes; <=0 means 128
	History   int // how many previous hashes to check; <=0 means none
}

func (p Policy) maxLength() int {
	if p.MaxLength <= 0 {
		return defaultMaxLength
	}
	return p.MaxLength
}

// Check returns every way pw breaks p, in a fixed order (nil when pw is
// acceptable). Invalid UTF-8 is reported alone, as "invalid": lengths and
// matches over broken text would only confuse. Length counts runes
// (utf8.RuneCountInString). The username is matched case-insensitively, and
// only when it has at least 3 runes. history holds PHC strings, newest first;
// only the first p.History are checked, each with h.Verify at full argon2id
// cost, and checking stops at the first match.
//
// The error is non-nil only when the history could not be checked: ErrBusy,
// the ctx error, or a malformed history entry (a corrupt row should be seen,
// not silently skipped). Violations are then nil.
func (p Policy) Check(ctx context.Context, h *Hasher, pw, username string, history []string) ([]Violation, error) {
	vs, _, err := p.Assess(ctx, h, pw, username, history)
	return vs, err
}

// Assess is Check that also returns the history entry pw matched ("" when
// none): that entry has just been verified, so a caller can replace it with a
// current hash when h.Current says it is not (SPEC §13).
func (p Policy) Assess(ctx context.Context, h *Hasher, pw, username string, history []string) (vs []Violation, matched string, err error) {
	if !utf8.ValidString(pw) {
		return []Violation{{Code: codeInvalid, Message: "The password contains invalid characters."}}, "", nil
	}

	n := utf8.RuneCountInString(pw)
	if n < p.MinLength {
		vs = append(vs, Violation{Code: codeTooShort, Message: fmt.Sprintf("Use at least %s.", characters(p.MinLength))})
	}
	if limit := p.maxLength(); n > limit {
		vs = append(vs, Violation{Code: codeTooLong, Message: fmt.Sprintf("Use at most %s.", characters(limit))})
	}
	if IsCommon(pw) {
		vs = append(vs, Violation{Code: codeCommon, Message: "This password is too common. Choose one that is harder to guess."})
	}
	if utf8.RuneCountInString(username) >= minUsernameRunes &&
		strings.Contains(strings.ToLower(pw), strings.ToLower(username)) {
		vs = append(vs, Violation{Code: codeContainsUsername, Message: "The password must not contain your username."})
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
				vs = append(vs, Violation{Code: codeReused, Message: reusedMessage(p.History)})
				matched = encoded
				break
			}
		}
	}
	return vs, matched, nil
}

// Describe returns the policy in words for a web page, e.g. "At least 12
// characters", "At most 128 characters", "Not a commonly used password",
// "Must not contain your username", "Must differ from your last 4 passwords".
func (p Policy) Describe() []string {
	var ds []string
	if p.MinLength > 0 {
		ds = append(ds, "At least "+characters(p.MinLength))
	}
	ds = append(ds, "At most "+characters(p.maxLength()),
		"Not a commonly used password",
		"Must not contain your username")
	switch {
	case p.History == 1:
		ds = append(ds, "Must differ from your last password")
	case p.History > 1:
		ds = append(ds, fmt.Sprintf("Must differ from your last %d passwords", p.History))
	}
	return ds
}

func reusedMessage(history int) string {
	if history == 1 {
		return "Choose a password different from your last one."
	}
	return fmt.Sprintf("Choose a password different from your last %d.", history)
}

func characters(n int) string {
	if n == 1 {
		return "1 character"
	}
	return fmt.Sprintf("%d characters", n)
}
