package reset

import (
	"context"
	"errors"
	"time"

	"github.com/resetd/resetd/internal/password"
	"github.com/resetd/resetd/internal/store"
)

// Limits that are not settings (SPEC §4).
const (
	verifyFailuresMax    = 10
	verifyFailuresWindow = 15 * time.Minute
)

// VerifyPassword checks a user's password for the platform's login. Failed
// checks are capped per user (429 past the cap).
func (s *Service) VerifyPassword(ctx context.Context, a Actor, institutionID, userID, pw string) error {
	if err := checkIDs(institutionID, userID); err != nil {
		return err
	}
	if len(pw) > 1024 {
		return invalid("password", "password too long")
	}
	key := verifyFailKey(institutionID, userID)
	var u store.User
	var failures int
	err := s.store.View(ctx, func(tx store.ReadTx) (err error) {
		if _, err = s.settingsIn(ctx, tx, institutionID); err != nil {
			return err
		}
		if u, err = tx.User(ctx, institutionID, userID); err != nil {
			return mapNotFound(err)
		}
		failures, err = tx.Count(ctx, key, verifyFailuresWindow, s.now())
		return err
	})
	if err != nil {
		return err
	}
	now := s.now()
	if failures >= verifyFailuresMax {
		s.AuditFailure(ctx, a, "password.verify", institutionID, userID, "rate_limited")
		return limited("verify", verifyFailuresWindow, now)
	}
	ok := false
	if u.PasswordHash != "" && u.Status == StatusActive {
		if ok, err = s.hasher.Verify(ctx, u.PasswordHash, pw); err != nil {
			return err
		}
	}
	outcome := "match"
	if !ok {
		outcome = "mismatch"
	}
	// A verified password whose hash is imported or made with older
	// parameters is re-hashed now, while it is in hand (SPEC §13).
	var upgraded string
	if ok && !s.hasher.Current(u.PasswordHash) {
		if upgraded, err = s.upgradedHash(ctx, pw); err != nil {
			return err
		}
	}
	err = s.store.Update(ctx, func(tx store.Tx) error {
		now := s.now()
		if !ok {
			if _, err := tx.Hit(ctx, key, verifyFailuresWindow, now); err != nil {
				return err
			}
		}
		if upgraded != "" {
			if err := s.rehashTx(ctx, tx, now, a, institutionID, userID, u.PasswordHash, upgraded); err != nil {
				return err
			}
		}
		return s.audit(ctx, tx, now, a, "password.verify", institutionID, userID, outcome)
	})
	if err != nil {
		return err
	}
	if !ok {
		return ErrWrongPassword
	}
	return nil
}

// upgradedHash hashes a just-verified password with the current
// parameters. A hasher at capacity skips the upgrade (the next successful
// verify tries again) rather than fail a login that has succeeded.
func (s *Service) upgradedHash(ctx context.Context, pw string) (string, error) {
	h, err := s.hasher.Hash(ctx, pw)
	if errors.Is(err, password.ErrBusy) {
		s.logger.Warn("password rehash skipped: hashing capacity exhausted")
		return "", nil
	}
	return h, err
}

// rehashTx replaces old by upgraded where old is still stored, and audits
// it as password.rehash with the scheme it came from.
func (s *Service) rehashTx(ctx context.Context, tx store.Tx, now time.Time, a Actor, institutionID, userID, old, upgraded string) error {
	replaced, err := tx.RehashPassword(ctx, institutionID, userID, old, upgraded)
	if err != nil {
		return err
	}
	where := "history"
	if replaced {
		where = "current"
	}
	from, _ := password.Scheme(old)
	return s.audit(ctx, tx, now, a, "password.rehash", institutionID, userID, from+" "+where)
}

// rehash upgrades a hash pw has just been verified against, in its own
// transaction (the history check of a refused change).
func (s *Service) rehash(ctx context.Context, a Actor, institutionID, userID, old, pw string) error {
	if s.hasher.Current(old) {
		return nil
	}
	upgraded, err := s.upgradedHash(ctx, pw)
	if err != nil || upgraded == "" {
		return err
	}
	return s.store.Update(ctx, func(tx store.Tx) error {
		return s.rehashTx(ctx, tx, s.now(), a, institutionID, userID, old, upgraded)
	})
}
