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
	var capped error
	err := s.store.View(ctx, func(tx store.ReadTx) (err error) {
		if _, err = s.settingsIn(ctx, tx, institutionID); err != nil {
			return err
		}
		if u, err = tx.User(ctx, institutionID, userID); err != nil {
			return mapNotFound(err)
		}
		capped = capReached(ctx, tx, s.now(), "verify", key, verifyFailuresMax, verifyFailuresWindow)
		var lim *LimitError
		if errors.As(capped, &lim) {
			return nil
		}
		return capped
	})
	if err != nil {
		return err
	}
	if capped != nil {
		s.AuditFailure(ctx, a, "password.verify", institutionID, userID, "rate_limited")
		return capped
	}
	ok := false
	if u.PasswordHash != "" && u.Status == StatusActive {
		if ok, err = s.verifyLogin(ctx, u.PasswordHash, pw); err != nil {
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
		if upgraded, err = s.upgradedHash(ctx, password.Normalize(pw)); err != nil {
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

// verifyLogin checks pw against a stored hash on the login's own hashing
// slots. Passwords are hashed NFKC-normalised (checkAndHash), so the
// normalised form is tried first; a hash set before normalisation (or
// imported) may be of the form as typed, tried second only when the two
// differ, so a password that is already normalised (nearly all) costs one
// verification.
func (s *Service) verifyLogin(ctx context.Context, encoded, pw string) (bool, error) {
	nfkc := password.Normalize(pw)
	ok, err := s.loginHasher.Verify(ctx, encoded, nfkc)
	if err != nil || ok || nfkc == pw {
		return ok, err
	}
	return s.loginHasher.Verify(ctx, encoded, pw)
}
