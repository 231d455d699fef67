package reset

import (
	"context"
	"errors"
	"time"

	"github.com/resetd/resetd/internal/delivery"
	"github.com/resetd/resetd/internal/store"
)

// More token purposes and windows.
const (
	PurposeDispute   = "dispute"
	disputeLifetime  = 7 * 24 * time.Hour
	approvalLifetime = time.Hour
)

// DisputeInfo describes a live dispute link for its confirm page.
type DisputeInfo struct {
	DisplayName string
	Branding    Branding
	// Languages decide the language of the dispute pages: the user's
	// locale first.
	Languages Languages
}

// disputeInfo describes the dispute link t of st's institution.
func disputeInfo(ctx context.Context, tx store.ReadTx, t store.Token, st Settings) (DisputeInfo, error) {
	u, err := tx.User(ctx, t.InstitutionID, t.UserID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return DisputeInfo{}, err
	}
	return DisputeInfo{DisplayName: st.DisplayName, Branding: st.Branding(t.InstitutionID), Languages: languagesOf(st, u.Locale)}, nil
}

// InspectDispute checks a dispute link without spending it.
func (s *Service) InspectDispute(ctx context.Context, tok string) (DisputeInfo, error) {
	if !wellFormedToken(tok) {
		return DisputeInfo{}, ErrGone
	}
	var info DisputeInfo
	err := s.store.View(ctx, func(tx store.ReadTx) error {
		t, st, err := s.disputeToken(ctx, tx, tok, s.now())
		if err != nil {
			return err
		}
		info, err = disputeInfo(ctx, tx, t, st)
		return err
	})
	return info, err
}

// disputeToken reads a live dispute link's token and its institution's
// settings; anything else is ErrGone.
func (s *Service) disputeToken(ctx context.Context, tx store.ReadTx, tok string, now time.Time) (store.Token, Settings, error) {
	t, err := tx.LookupToken(ctx, hashToken(tok), now)
	if err != nil || t.Purpose != PurposeDispute {
		return t, Settings{}, ErrGone
	}
	st, err := s.settingsIn(ctx, tx, t.InstitutionID)
	return t, st, goneIfNotFound(err)
}

// ConfirmDispute is "this wasn't me": it kills every outstanding token and
// OTP of the user, blocks new sends for disputeLock seconds, audits and
// emits reset.disputed.
func (s *Service) ConfirmDispute(ctx context.Context, a Actor, tok string) (DisputeInfo, error) {
	if !wellFormedToken(tok) {
		return DisputeInfo{}, ErrGone
	}
	var info DisputeInfo
	err := s.store.Update(ctx, func(tx store.Tx) error {
		now := s.now()
		t, st, err := s.disputeToken(ctx, tx, tok, now)
		if err != nil {
			return err
		}
		if info, err = disputeInfo(ctx, tx, t, st); err != nil {
			return err
		}
		if err := tx.KillTokens(ctx, t.InstitutionID, t.UserID, now); err != nil {
			return err
		}
		if err := tx.KillOTP(ctx, t.InstitutionID, t.UserID, now); err != nil {
			return err
		}
		if err := tx.LockUser(ctx, t.InstitutionID, t.UserID, now.Add(time.Duration(st.DisputeLock)*time.Second)); err != nil {
			return goneIfNotFound(err)
		}
		if err := s.emit(ctx, tx, now, st, t.InstitutionID, t.UserID, delivery.EventResetDisputed, nil); err != nil {
			return err
		}
		return s.audit(ctx, tx, now, a, "reset.disputed", t.InstitutionID, t.UserID, "ok")
	})
	if err == nil {
		s.observer.Disputed()
	}
	return info, err
}
