package reset

import (
	"context"
	"encoding/json"
	"time"

	"github.com/resetd/resetd/internal/store"
)

// UserState is what support sees of why a customer may be blocked
// (SPEC §10): zero times mean "not locked" or "no cooldown".
type UserState struct {
	LockedUntil        time.Time
	EmailCooldownUntil time.Time
	PhoneCooldownUntil time.Time
	LiveLinks          int
	LiveOTP            bool
	SendsThisHour      int
	WrongTriesToday    int
}

// MarshalJSON is the support view as the API and `resetd user state
// --json` print it: times in RFC 3339 (UTC), null when there is no lock
// or cooldown.
func (st UserState) MarshalJSON() ([]byte, error) {
	at := func(t time.Time) *string {
		if t.IsZero() {
			return nil
		}
		v := t.UTC().Format(time.RFC3339)
		return &v
	}
	return json.Marshal(struct {
		LockedUntil        *string `json:"lockedUntil"`
		EmailCooldownUntil *string `json:"emailCooldownUntil"`
		PhoneCooldownUntil *string `json:"phoneCooldownUntil"`
		LiveLinks          int     `json:"liveLinks"`
		LiveOTP            bool    `json:"liveOTP"`
		SendsThisHour      int     `json:"sendsThisHour"`
		WrongTriesToday    int     `json:"wrongTriesToday"`
	}{at(st.LockedUntil), at(st.EmailCooldownUntil), at(st.PhoneCooldownUntil), st.LiveLinks, st.LiveOTP, st.SendsThisHour, st.WrongTriesToday})
}

// State reads a user's blocks and budgets for support; the read is
// audited (support.state).
func (s *Service) State(ctx context.Context, a Actor, institutionID, userID string) (UserState, error) {
	if err := checkIDs(institutionID, userID); err != nil {
		return UserState{}, err
	}
	var out UserState
	err := s.store.Update(ctx, func(tx store.Tx) error {
		now := s.now()
		st, u, err := s.userIn(ctx, tx, institutionID, userID)
		if err != nil {
			return err
		}
		if now.Before(u.LockedUntil) {
			out.LockedUntil = u.LockedUntil
		}
		cooldown := time.Duration(st.ContactChangeCooldown) * time.Second
		if until := u.EmailChangedAt.Add(cooldown); !u.EmailChangedAt.IsZero() && now.Before(until) {
			out.EmailCooldownUntil = until
		}
		if until := u.PhoneChangedAt.Add(cooldown); !u.PhoneChangedAt.IsZero() && now.Before(until) {
			out.PhoneCooldownUntil = until
		}
		if out.LiveLinks, err = tx.LiveTokens(ctx, institutionID, userID, now, PurposeLink, PurposeSelfService); err != nil {
			return err
		}
		o, err := tx.LockOTP(ctx, institutionID, userID)
		switch {
		case err == nil:
			out.LiveOTP = o.UsedAt.IsZero() && now.Before(o.ExpiresAt) && o.Attempts < o.MaxAttempts
		case !isNotFound(err):
			return err
		}
		if out.SendsThisHour, err = tx.Count(ctx, sendKey(institutionID, userID), time.Hour, now); err != nil {
			return err
		}
		if out.WrongTriesToday, err = tx.Count(ctx, otpFailKey(institutionID, userID), otpFailWindow, now); err != nil {
			return err
		}
		return s.audit(ctx, tx, now, a, "support.state", institutionID, userID, "ok")
	})
	return out, err
}

// Unlock lifts a user's dispute lock and clears their wrong tries (codes
// and login checks); audited as support.unlock.
func (s *Service) Unlock(ctx context.Context, a Actor, institutionID, userID string) error {
	if err := checkIDs(institutionID, userID); err != nil {
		return err
	}
	return s.store.Update(ctx, func(tx store.Tx) error {
		now := s.now()
		if _, _, err := s.userIn(ctx, tx, institutionID, userID); err != nil {
			return err
		}
		if err := tx.LockUser(ctx, institutionID, userID, time.Time{}); err != nil {
			return mapNotFound(err)
		}
		for _, key := range []string{otpFailKey(institutionID, userID), verifyFailKey(institutionID, userID)} {
			if err := tx.ClearCounter(ctx, key); err != nil {
				return err
			}
		}
		return s.audit(ctx, tx, now, a, "support.unlock", institutionID, userID, "ok")
	})
}
