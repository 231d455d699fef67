package reset

import (
	"context"

	"github.com/resetd/resetd/internal/delivery"
	"github.com/resetd/resetd/internal/password"
	"github.com/resetd/resetd/internal/store"
)

func policyFor(st Settings) password.Policy {
	return password.Policy{MinLength: st.PasswordMinLength, History: st.PasswordHistory}
}

func (s *Service) checkAndHash(ctx context.Context, st Settings, pw, username string, history []string) (string, error) {
	v, err := policyFor(st).Check(ctx, s.hasher, pw, username, history)
	if err != nil {
		return "", err
	}
	if len(v) > 0 {
		return "", &PolicyError{Violations: v}
	}
	return s.hasher.Hash(ctx, pw)
}

// ChangePassword consumes a reset token and sets the new password (for
// institutions that require no knowledge facts, or tokens won by OTP).
func (s *Service) ChangePassword(ctx context.Context, a Actor, tok, newPassword string) error {
	return s.ChangePasswordWithFacts(ctx, a, tok, newPassword, nil)
}

// ChangePasswordWithFacts consumes a reset token and sets the new
// password. A policy refusal leaves the token usable; of concurrent
// redemptions exactly one wins and the others get ErrGone. When the
// institution requires knowledge facts, a link token must come with them;
// wrong facts answer like a wrong OTP and count toward the same daily cap.
func (s *Service) ChangePasswordWithFacts(ctx context.Context, a Actor, tok, newPassword string, facts map[string]string) error {
	if !wellFormedToken(tok) {
		return ErrGone
	}
	if len(newPassword) > 4*128 {
		return &PolicyError{Violations: []password.Violation{{Code: "too_long", Message: "Use at most 128 characters."}}}
	}
	hash := hashToken(tok)
	var t store.Token
	var st Settings
	var u store.User
	var history []string
	err := s.store.View(ctx, func(tx store.ReadTx) (err error) {
		if t, err = tx.LookupToken(ctx, hash, s.now()); err != nil {
			return goneIfNotFound(err)
		}
		if t.Purpose != PurposeLink && t.Purpose != PurposeOTP {
			return ErrGone
		}
		if st, err = s.settingsIn(ctx, tx, t.InstitutionID); err != nil {
			return goneIfNotFound(err)
		}
		if u, err = tx.User(ctx, t.InstitutionID, t.UserID); err != nil {
			return goneIfNotFound(err)
		}
		history, err = tx.PasswordHistory(ctx, t.InstitutionID, t.UserID, st.PasswordHistory)
		return err
	})
	if err != nil {
		return err
	}
	if len(st.RequireFacts) > 0 && t.Purpose == PurposeLink {
		if err := s.checkFactsAtChange(ctx, a, st, u, facts); err != nil {
			return err
		}
	}
	newHash, err := s.checkAndHash(ctx, st, newPassword, u.Username, history)
	if err != nil {
		return err
	}
	// "Your password was changed" goes to every contact (SPEC §7).
	var notices []delivery.Message
	if u.Email != "" {
		m, err := s.render(st, delivery.KindPasswordChanged, delivery.ChannelEmail, u.Email, delivery.TemplateData{UserName: u.Username})
		if err != nil {
			return err
		}
		notices = append(notices, m)
	}
	if u.Phone != "" && smsAllowed(st, u.Phone) == nil {
		m, err := s.render(st, delivery.KindPasswordChanged, delivery.ChannelSMS, u.Phone, delivery.TemplateData{})
		if err != nil {
			return err
		}
		notices = append(notices, m)
	}
	return s.store.Update(ctx, func(tx store.Tx) error {
		now := s.now()
		if _, err := tx.ConsumeToken(ctx, hash, now); err != nil {
			return goneIfNotFound(err)
		}
		if err := tx.SetPassword(ctx, t.InstitutionID, t.UserID, newHash, now); err != nil {
			return goneIfNotFound(err)
		}
		if err := tx.AddPasswordHistory(ctx, t.InstitutionID, t.UserID, newHash, now, MaxPasswordHistory); err != nil {
			return err
		}
		if err := tx.KillTokens(ctx, t.InstitutionID, t.UserID, now, PurposeLink, PurposeOTP); err != nil {
			return err
		}
		if err := tx.KillOTP(ctx, t.InstitutionID, t.UserID, now); err != nil {
			return err
		}
		for _, m := range notices {
			if err := s.queue(ctx, tx, now, st, t.InstitutionID, t.UserID, delivery.KindPasswordChanged, m); err != nil {
				return err
			}
		}
		if err := s.emit(ctx, tx, now, st, t.InstitutionID, t.UserID, delivery.EventPasswordChanged, nil); err != nil {
			return err
		}
		return s.audit(ctx, tx, now, a, "password.change", t.InstitutionID, t.UserID, "ok")
	})
}

// checkFactsAtChange counts a wrong fact like a wrong OTP try.
func (s *Service) checkFactsAtChange(ctx context.Context, a Actor, st Settings, u store.User, facts map[string]string) error {
	failKey := otpFailKey(u.InstitutionID, u.ID, "")
	var outcome error
	err := s.store.Update(ctx, func(tx store.Tx) error {
		now := s.now()
		if err := otpFailCap(ctx, tx, failKey, now); err != nil {
			return err
		}
		if ok, rekeyed := s.factsMatch(st, u, facts); ok {
			if rekeyed != nil {
				return tx.SetFacts(ctx, u.InstitutionID, u.ID, rekeyed)
			}
			return nil
		}
		if _, err := tx.Hit(ctx, failKey, otpFailWindow, now); err != nil {
			return err
		}
		outcome = ErrOTPInvalid
		return s.audit(ctx, tx, now, a, "password.change", u.InstitutionID, u.ID, "wrong_facts")
	})
	if err != nil {
		return err
	}
	return outcome
}
