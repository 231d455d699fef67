package reset

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/nyaruka/phonenumbers"
	"github.com/resetd/resetd/internal/i18n"
	"github.com/resetd/resetd/internal/password"
	"github.com/resetd/resetd/internal/store"
)

// UserInput is a user as an administrator writes it.
type UserInput struct {
	Username string
	Email    string
	Phone    string
	Status   string
	// Locale is the user's language, a BCP 47 tag ("fr", "de-AT"); ""
	// for none. A well-formed tag of a language not offered is kept: the
	// messages fall back to the institution's default.
	Locale string
	// Password, when set, replaces the current one (after the policy).
	Password *string
	// PasswordHash, when set, replaces the current password with a hash
	// brought from another system, stored as given (SPEC §13). It excludes
	// Password.
	PasswordHash *string
	// Facts, when set, replace the stored knowledge facts.
	Facts map[string]string
	// Keep leaves these fields of an existing user as stored, whatever
	// the input says: the command line's patch semantics (user put without
	// --replace, import cells left empty). A new user takes them as given.
	Keep Keep
}

// Keep names the fields a user write leaves as stored.
type Keep struct {
	Username, Email, Phone, Status, Locale bool
}

// over is in as it writes over old: every kept field of an existing user
// is old's.
func (in UserInput) over(old store.User, existed bool) UserInput {
	if !existed {
		return in
	}
	if in.Keep.Username {
		in.Username = old.Username
	}
	if in.Keep.Email {
		in.Email = old.Email
	}
	if in.Keep.Phone {
		in.Phone = old.Phone
	}
	if in.Keep.Status {
		in.Status = old.Status
	}
	if in.Keep.Locale {
		in.Locale = old.Locale
	}
	return in
}

// contactChanges counts what writing in over old changes: contacts set,
// replaced or cleared on an existing user, and the "your contact was
// changed" notices that go to the replaced ones (renderContactNotices).
func (s *Service) contactChanges(old store.User, existed bool, in UserInput) (changed, notices int) {
	if !existed {
		return 0, 0
	}
	if !sameContact(old.Email, in.Email) {
		changed++
		if old.Email != "" {
			notices++
		}
	}
	if old.Phone != in.Phone {
		changed++
		if old.Phone != "" && !s.noSMS {
			notices++
		}
	}
	return changed, notices
}

// NormalizeEmail validates an address and returns its stored form.
func NormalizeEmail(e string) (string, error) {
	if e == "" {
		return "", nil
	}
	if !validEmail(e) {
		return "", invalid("email", "not a valid email address")
	}
	at := strings.LastIndexByte(e, '@')
	return e[:at] + "@" + strings.ToLower(e[at+1:]), nil
}

// NormalizePhone validates an E.164 number (premium-rate numbers are
// refused: SMS pumping) and returns it in E.164.
func NormalizePhone(p string) (string, error) {
	if p == "" {
		return "", nil
	}
	if !strings.HasPrefix(p, "+") || len(p) > 20 || !printable(p) {
		return "", invalid("phone", "phone must be in E.164 form, e.g. +14155550100")
	}
	num, err := phonenumbers.Parse(p, "")
	if err != nil || !phonenumbers.IsValidNumber(num) {
		return "", invalid("phone", "not a valid phone number")
	}
	if phonenumbers.GetNumberType(num) == phonenumbers.PREMIUM_RATE {
		return "", invalid("phone", "premium-rate numbers are not accepted")
	}
	e164 := phonenumbers.Format(num, phonenumbers.E164)
	if len(e164) > 16 { // E.164 allows at most 15 digits; libphonenumber's metadata lets some longer through
		return "", invalid("phone", "not a valid phone number")
	}
	return e164, nil
}

// NormalizeLocale validates a user's locale as a well-formed BCP 47 tag
// (400 otherwise) and returns it in canonical case ("pt-br" → "pt-BR").
func NormalizeLocale(l string) (string, error) {
	if l == "" {
		return "", nil
	}
	c, err := i18n.Canonical(l)
	if err != nil {
		return "", unprocessable("locale", fmt.Sprintf("locale %q is not a well-formed BCP 47 language tag (e.g. fr, de-AT, pt-BR)", truncate(l, 40)))
	}
	return c, nil
}

// truncate shortens s for an error message, on a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// maxUsernameRunes bounds a username (characters).
const maxUsernameRunes = 256

func validUsername(u string) bool {
	n := utf8.RuneCountInString(u)
	return n >= 1 && n <= maxUsernameRunes && utf8.ValidString(u) && printable(u) && strings.TrimSpace(u) == u
}

// importedHash validates a hash brought from another system for its form
// and cost bounds, without computing it (an import of a million rows must not
// run a million KDFs); it is stored as given and verified at the first login.
func importedHash(h string) (string, error) {
	if err := password.CheckHash(h); err != nil {
		return "", invalid("passwordHash", strings.TrimPrefix(err.Error(), password.ErrInvalidHash.Error()+": "))
	}
	return h, nil
}

// complete refuses a write that, kept fields filled in, has no username:
// a new user needs one.
func (in UserInput) complete() (UserInput, error) {
	if in.Username == "" {
		return in, invalid("username", "a new user needs a username")
	}
	return in, nil
}

// normalize validates a user's fields and puts them in stored form; a
// kept field is not read.
func (in *UserInput) normalize() error {
	if !(in.Keep.Username && in.Username == "") && !validUsername(in.Username) {
		return invalid("username", "username must be 1 to 256 printable characters without surrounding spaces")
	}
	var err error
	if in.Email, err = NormalizeEmail(in.Email); err != nil {
		return err
	}
	if in.Phone, err = NormalizePhone(in.Phone); err != nil {
		return err
	}
	if in.Locale, err = NormalizeLocale(in.Locale); err != nil {
		return err
	}
	if in.Status == "" && !in.Keep.Status {
		in.Status = StatusActive
	}
	if !in.Keep.Status && in.Status != StatusActive && in.Status != StatusDisabled {
		return invalid("status", `status must be "active" or "disabled"`)
	}
	return nil
}
