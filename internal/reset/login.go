package reset

import (
	"context"
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
		if ok, err = s.verifyLogin(ctx, u.PasswordHash, pw); err != nil {
			return err
		}
	}
	outcome := "match"
	if !ok {
		outcome = "mismatch"
	}
	err = s.store.Update(ctx, func(tx store.Tx) error {
		now := s.now()
		if !ok {
			if _, err := tx.Hit(ctx, key, verifyFailuresWindow, now); err != nil {
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
