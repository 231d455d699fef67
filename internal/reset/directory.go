package reset

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nyaruka/phonenumbers"
	"github.com/resetd/resetd/internal/delivery"
	"github.com/resetd/resetd/internal/password"
	"github.com/resetd/resetd/internal/store"
)

// UserInput is a user as an administrator writes it.
type UserInput struct {
	Username string
	Email    string
	Phone    string
	Status   string
	// Password, when set, replaces the current one (after the policy).
	Password *string
	// PasswordHash, when set, replaces the current password with a hash
	// brought from another system, stored as given (SPEC §13). It excludes
	// Password.
	PasswordHash *string
	// Facts, when set, replace the stored knowledge facts.
	Facts map[string]string
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

func validUsername(u string) bool {
	n := utf8.RuneCountInString(u)
	return n >= 1 && n <= 256 && utf8.ValidString(u) && printable(u) && strings.TrimSpace(u) == u
}

// PutUser creates or replaces a user; an omitted password keeps the
// current one.
func (s *Service) PutUser(ctx context.Context, a Actor, institutionID, userID string, in UserInput) (created bool, err error) {
	if err := checkIDs(institutionID, userID); err != nil {
		return false, err
	}
	if err := in.normalize(); err != nil {
		return false, err
	}
	var given string // a hash from another system, checked once
	if in.PasswordHash != nil {
		if in.Password != nil {
			return false, invalid("passwordHash", "give password or passwordHash, not both")
		}
		if given, err = importedHash(*in.PasswordHash); err != nil {
			return false, err
		}
	}
	for try := 0; ; try++ {
		// Read and render first (see prepare.go), then write.
		var inst store.Institution
		var st Settings
		var history []string
		var notices contactNotices
		if err := s.store.View(ctx, func(tx store.ReadTx) (err error) {
			if inst, st, err = s.institutionIn(ctx, tx, institutionID); err != nil {
				return err
			}
			old, err := tx.User(ctx, institutionID, userID)
			existed := err == nil
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
			if notices, err = s.renderContactNotices(st, old, existed, in); err != nil {
				return err
			}
			if in.Password != nil {
				history, err = tx.PasswordHistory(ctx, institutionID, userID, st.PasswordHistory)
			}
			return err
		}); err != nil {
			return false, err
		}
		newHash := given
		if in.Password != nil {
			if newHash, err = s.checkAndHash(ctx, a, st, institutionID, userID, *in.Password, in.Username, history); err != nil {
				return false, err
			}
		}
		err = s.store.Update(ctx, func(tx store.Tx) error {
			now := s.now()
			fresh, st, err := s.institutionIn(ctx, tx, institutionID)
			if err != nil {
				return err
			}
			if !sameSettings(inst, fresh) {
				return errStale
			}
			old, err := existingUser(ctx, tx, institutionID, userID)
			if err != nil {
				return err
			}
			created, err = s.putUserTx(ctx, tx, now, st, a, institutionID, userID, in, old, newHash, notices, true)
			return err
		})
		if err = staleOrDone(err, try); err != errStale {
			return created, err
		}
	}
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

// normalize validates a user's fields and puts them in stored form.
func (in *UserInput) normalize() error {
	if !validUsername(in.Username) {
		return invalid("username", "username must be 1 to 256 printable characters without surrounding spaces")
	}
	var err error
	if in.Email, err = NormalizeEmail(in.Email); err != nil {
		return err
	}
	if in.Phone, err = NormalizePhone(in.Phone); err != nil {
		return err
	}
	if in.Status == "" {
		in.Status = StatusActive
	}
	if in.Status != StatusActive && in.Status != StatusDisabled {
		return invalid("status", `status must be "active" or "disabled"`)
	}
	return nil
}

// existingUser returns the stored user, or nil when there is none.
func existingUser(ctx context.Context, tx store.ReadTx, institutionID, userID string) (*store.User, error) {
	u, err := tx.User(ctx, institutionID, userID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &u, nil
}

// putUserTx writes a normalised user in tx over found (nil: none), with
// every rule that goes with it: kept password and facts, the contact-change
// cooldown and its notice, killed tokens for a disabled user, the audit
// record. The caller has read found in tx (an import reads it once per row).
func (s *Service) putUserTx(ctx context.Context, tx store.Tx, now time.Time, st Settings, a Actor, institutionID, userID string, in UserInput, found *store.User, newHash string, notices contactNotices, audit bool) (bool, error) {
	email, phone, status := in.Email, in.Phone, in.Status
	u := store.User{InstitutionID: institutionID, ID: userID, Username: in.Username, Email: email, Phone: phone, Status: status, CreatedAt: now, UpdatedAt: now}
	var old store.User
	existed := found != nil
	var err error
	if existed {
		old = *found
		u.PasswordHash, u.CreatedAt, u.Facts, u.LockedUntil = old.PasswordHash, old.CreatedAt, old.Facts, old.LockedUntil
		u.EmailChangedAt, u.PhoneChangedAt = old.EmailChangedAt, old.PhoneChangedAt
	}
	if newHash != "" {
		u.PasswordHash = newHash
	}
	if in.Facts != nil {
		if u.Facts, err = s.hashFacts(institutionID, userID, in.Facts); err != nil {
			return false, err
		}
	}
	if notices.stale(old, existed) {
		return false, errStale
	}
	// A replaced contact starts the cooldown for the new value, and
	// the old value hears of it (SIM-swap and takeover defence): the
	// notices were rendered for this old user. A first set is no change.
	if existed && old.Email != "" && !sameContact(old.Email, email) {
		u.EmailChangedAt = now
	}
	if existed && old.Phone != "" && old.Phone != phone {
		u.PhoneChangedAt = now
	}
	created, err := tx.PutUser(ctx, u)
	if errors.Is(err, store.ErrConflict) {
		return false, fmt.Errorf("%w: username %q belongs to another user", ErrConflict, in.Username)
	}
	if err != nil {
		return false, err
	}
	for _, m := range notices.messages {
		if err := s.queue(ctx, tx, now, st, institutionID, userID, delivery.KindContactChanged, m); err != nil {
			return false, err
		}
	}
	if newHash != "" {
		// A new user has no history to trim (a deleted user's went with
		// them): one statement less per imported row.
		keep := MaxPasswordHistory
		if !existed {
			keep = -1
		}
		if err := tx.AddPasswordHistory(ctx, institutionID, userID, newHash, now, keep); err != nil {
			return false, err
		}
	}
	if status == StatusDisabled {
		if err := tx.KillTokens(ctx, institutionID, userID, now); err != nil {
			return false, err
		}
		if err := tx.KillOTP(ctx, institutionID, userID, now); err != nil {
			return false, err
		}
	}
	if !audit {
		return created, nil
	}
	return created, s.audit(ctx, tx, now, a, "user.put", institutionID, userID, "ok")
}

// DeleteUser removes a user; their outstanding tokens die with them.
func (s *Service) DeleteUser(ctx context.Context, a Actor, institutionID, userID string) error {
	if err := checkIDs(institutionID, userID); err != nil {
		return err
	}
	return s.store.Update(ctx, func(tx store.Tx) error {
		now := s.now()
		if _, err := s.settingsIn(ctx, tx, institutionID); err != nil {
			return err
		}
		if err := tx.KillTokens(ctx, institutionID, userID, now); err != nil {
			return err
		}
		if err := tx.KillOTP(ctx, institutionID, userID, now); err != nil {
			return err
		}
		if err := tx.DeleteUser(ctx, institutionID, userID); err != nil {
			return mapNotFound(err)
		}
		return s.audit(ctx, tx, now, a, "user.delete", institutionID, userID, "ok")
	})
}

// EraseUser deletes a user for a GDPR erasure request (SPEC §12): as
// DeleteUser, and everywhere else the user id stood (audit, deliveries,
// tokens, approvals, queued events) it is replaced by a keyed pseudonym —
// the same for every row, so the trail still reads as one person's, and
// not reversible without the server's key. The counters naming the user,
// their username or their phone are deleted; nothing else holds the
// username, contacts or facts. Afterwards the store forgets the deleted
// bytes where it can (SQLite: zeroed pages, WAL truncated).
func (s *Service) EraseUser(ctx context.Context, a Actor, institutionID, userID string) error {
	if err := checkIDs(institutionID, userID); err != nil {
		return err
	}
	p := s.pseudonym(institutionID, userID)
	err := s.store.Update(ctx, func(tx store.Tx) error {
		now := s.now()
		if _, err := s.settingsIn(ctx, tx, institutionID); err != nil {
			return err
		}
		u, err := tx.User(ctx, institutionID, userID)
		if err != nil {
			return mapNotFound(err)
		}
		name := store.UsernameKey(u.Username)
		keys := []string{
			sendKey(institutionID, userID), verifyFailKey(institutionID, userID), otpFailKey(institutionID, userID, ""),
			otpFailKey(institutionID, "", name), otpFailKey(institutionID, "", userID), selfServiceNameKey(institutionID, u.Username),
		}
		if u.Phone != "" {
			keys = append(keys, smsDestKey(u.Phone))
		}
		if err := tx.KillTokens(ctx, institutionID, userID, now); err != nil {
			return err
		}
		if err := tx.EraseUser(ctx, store.Erasure{InstitutionID: institutionID, UserID: userID, Pseudonym: p, CounterKeys: keys}); err != nil {
			return err
		}
		if err := tx.DeleteUser(ctx, institutionID, userID); err != nil {
			return mapNotFound(err)
		}
		return s.audit(ctx, tx, now, a, "user.delete", institutionID, p, "erased")
	})
	if err != nil {
		return err
	}
	return s.store.Forget(ctx)
}

// pseudonym is what an erased user's id becomes: a MAC under the server's
// key, so equal for all of one user's rows and unguessable without it.
func (s *Service) pseudonym(institutionID, userID string) string {
	return "erased-" + hex.EncodeToString(s.key.MAC("erase", []byte(institutionID+"\x00"+userID)))[:32]
}

// UserSummary is a directory entry as a lookup shows it.
type UserSummary struct {
	ID       string
	Username string
	Status   string
}

// FindUsers looks a username up (exact, case-insensitive).
func (s *Service) FindUsers(ctx context.Context, institutionID, username string) ([]UserSummary, error) {
	if err := checkIDs(institutionID); err != nil {
		return nil, err
	}
	if !validUsername(username) {
		return nil, invalid("username", "username must be 1 to 256 printable characters")
	}
	out := []UserSummary{}
	err := s.store.View(ctx, func(tx store.ReadTx) error {
		if _, err := s.settingsIn(ctx, tx, institutionID); err != nil {
			return err
		}
		u, err := tx.UserByUsername(ctx, institutionID, username)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		out = append(out, UserSummary{ID: u.ID, Username: u.Username, Status: u.Status})
		return nil
	})
	return out, err
}
