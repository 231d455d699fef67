package reset

import (
	"context"
	"errors"
	"time"

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
		if ok, err = s.hasher.Verify(ctx, u.PasswordHash, pw); err != nil {
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
