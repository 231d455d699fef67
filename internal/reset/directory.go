package reset

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/resetd/resetd/internal/delivery"
	"github.com/resetd/resetd/internal/store"
)

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
		var changed changedNotices
		var merged UserInput
		if err := s.store.View(ctx, func(tx store.ReadTx) (err error) {
			now := s.now()
			if inst, st, err = s.institutionIn(ctx, tx, institutionID); err != nil {
				return err
			}
			p, err := s.priorOf(ctx, tx, now, st, institutionID, userID)
			if err != nil {
				return err
			}
			if merged, err = in.over(p.u, p.existed).complete(); err != nil {
				return err
			}
			if p.existed && (in.Password != nil || in.PasswordHash != nil) {
				// An administrator setting an existing user's password is a
				// reset that bypasses the flows: under maker-checker it is
				// refused; otherwise every contact hears of it.
				if st.AdminResetApproval {
					return ErrApprovalRequired
				}
				if changed, err = s.renderChanged(st, store.User{Username: merged.Username, Email: merged.Email, Phone: merged.Phone, Locale: merged.Locale}, howAdmin, now); err != nil {
					return err
				}
			}
			if notices, err = s.renderContactNotices(st, p, merged); err != nil {
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
			if newHash, err = s.checkAndHash(ctx, a, st, owner{institutionID, userID, merged.Username, merged.Email, merged.Locale}, *in.Password, history); err != nil {
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
			created, err = s.putUserTx(ctx, tx, now, st, a, institutionID, userID, in, newHash, notices, changed, true, nil)
			return err
		})
		if err = staleOrDone(err, try); err != errStale {
			return created, err
		}
	}
}

// putUserTx writes a normalised user in tx, with every rule that goes
// with it: kept password and facts, the contact-change cooldown and its
// notice, killed links and codes when a contact changes or the user is
// disabled, an admin-set password's notices and event, the audit record.
//
// known, when not nil, is the prior user as the caller read it in tx (an
// import reads it once per row); nil reads it here.
func (s *Service) putUserTx(ctx context.Context, tx store.Tx, now time.Time, st Settings, a Actor, institutionID, userID string, in UserInput, newHash string, notices contactNotices, changed changedNotices, audit bool, known *prior) (bool, error) {
	var p prior
	var err error
	if known != nil {
		p = *known
	} else if p, err = s.priorOf(ctx, tx, now, st, institutionID, userID); err != nil {
		return false, err
	}
	old, existed := p.u, p.existed
	// Kept fields come from the user as this transaction reads it, so a
	// concurrent write to them is not lost.
	if in, err = in.over(old, existed).complete(); err != nil {
		return false, err
	}
	if in.Status == "" {
		in.Status = StatusActive // a new user whose status was "kept"
	}
	email, phone, status := in.Email, in.Phone, in.Status
	u := store.User{InstitutionID: institutionID, ID: userID, Username: in.Username, Email: email, Phone: phone, Status: status, Locale: in.Locale, CreatedAt: now, UpdatedAt: now}
	if existed {
		u.PasswordHash, u.CreatedAt, u.Facts, u.LockedUntil = old.PasswordHash, old.CreatedAt, old.Facts, old.LockedUntil
		u.EmailChangedAt, u.PhoneChangedAt = old.EmailChangedAt, old.PhoneChangedAt
	}
	// A password set on an existing user by an administrator is a reset
	// that bypasses the flows (SPEC §10); a hash brought in by an import
	// (audit is per batch there) is a migration from the old system.
	adminSet := existed && newHash != "" && audit
	if adminSet && st.AdminResetApproval {
		return false, ErrApprovalRequired
	}
	if newHash != "" {
		u.PasswordHash = newHash
	}
	if in.Facts != nil {
		if u.Facts, err = s.hashFacts(institutionID, userID, in.Facts, now); err != nil {
			return false, err
		}
	}
	if notices.stale(p) || (adminSet && !changed.rendered) {
		return false, errStale
	}
	// A replaced or removed contact starts the cooldown for the new value,
	// and the old value hears of it (SIM-swap and takeover defence): the
	// notices were rendered for this prior user. A first set is no change;
	// re-creating an id deleted within the cooldown is compared with the
	// contacts it had.
	emailChanged := p.had() && old.Email != "" && !sameContact(old.Email, email)
	phoneChanged := p.had() && old.Phone != "" && old.Phone != phone
	if emailChanged {
		u.EmailChangedAt = now
	}
	if phoneChanged {
		u.PhoneChangedAt = now
	}
	created, err := tx.PutUser(ctx, u)
	if errors.Is(err, store.ErrConflict) {
		return false, fmt.Errorf("%w: username %q belongs to another user", ErrConflict, in.Username)
	}
	if err != nil {
		return false, err
	}
	if !existed && p.tombstone {
		if err := tx.DeleteTombstone(ctx, institutionID, userID); err != nil {
			return false, err
		}
	}
	for _, m := range notices.messages {
		if err := s.queue(ctx, tx, now, st, institutionID, userID, delivery.KindContactChanged, m); err != nil {
			return false, err
		}
	}
	if newHash != "" {
		if err := tx.AddPasswordHistory(ctx, institutionID, userID, newHash, now, MaxPasswordHistory); err != nil {
			return false, err
		}
	}
	// Links and codes already sent to an old contact die with it, as do
	// those of a disabled user and those a new password makes moot.
	if existed && (emailChanged || phoneChanged || adminSet) {
		if err := s.killResets(ctx, tx, now, u); err != nil {
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
	if adminSet {
		if err := changed.queue(ctx, s, tx, now, st, u); err != nil {
			return false, err
		}
		if err := s.emit(ctx, tx, now, st, institutionID, userID, delivery.EventPasswordChanged, map[string]any{"by": "admin"}); err != nil {
			return false, err
		}
		if err := s.audit(ctx, tx, now, a, "password.admin_set", institutionID, userID, "ok"); err != nil {
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
		st, err := s.settingsIn(ctx, tx, institutionID)
		if err != nil {
			return err
		}
		u, err := tx.User(ctx, institutionID, userID)
		if err != nil {
			return mapNotFound(err)
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
		if err := s.keepTombstone(ctx, tx, now, st, u); err != nil {
			return err
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
			sendKey(institutionID, userID), verifyFailKey(institutionID, userID), otpFailKey(institutionID, userID),
			otpShadowKey(institutionID, name+"\x00"+userID), otpShadowKey(institutionID, name+"\x00"), otpShadowKey(institutionID, "\x00"+userID),
			selfServiceNameKey(institutionID, u.Username),
		}
		if u.Phone != "" {
			keys = append(keys, smsDestKey(u.Phone), smsInstitutionDestKey(institutionID, u.Phone))
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
	Locale   string // BCP 47, "" when unknown
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
		out = append(out, UserSummary{ID: u.ID, Username: u.Username, Status: u.Status, Locale: u.Locale})
		return nil
	})
	return out, err
}
