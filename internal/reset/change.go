package reset

import (
	"context"
	"errors"
	"time"

	"github.com/resetd/resetd/internal/delivery"
	"github.com/resetd/resetd/internal/password"
	"github.com/resetd/resetd/internal/store"
)

func policyFor(st Settings) password.Policy {
	return password.Policy{MinLength: st.PasswordMinLength, History: st.PasswordHistory, MinStrength: st.PasswordMinStrength}
}

// owner is whose password is being set: the words it must not be made of.
type owner struct {
	institutionID, username, email string
}

// checkAndHash applies the institution's policy to pw, NFKC-normalised,
// and hashes the normalised form (so the login, which normalises too,
// matches whatever form the user types). The policy runs its cheap rules
// before the breached list and the list before the history, so a refusal
// costs argon2id time only when the password is refused as reused.
func (s *Service) checkAndHash(ctx context.Context, st Settings, who owner, pw string, history []string) (string, error) {
	p := policyFor(st)
	p.Context = password.Context{Email: who.email, InstitutionID: who.institutionID, InstitutionName: st.DisplayName}
	p.Breaches = s.breaches
	v, err := p.Check(ctx, s.hasher, pw, who.username, history)
	if err != nil {
		return "", err
	}
	if len(v) > 0 {
		return "", &PolicyError{Violations: v}
	}
	return s.hasher.Hash(ctx, password.Normalize(pw))
}

// changeRefusalsMax is how many changes a token may have refused before
// it dies (SPEC §10): each refusal may cost argon2id verifications of the
// history, so one link cannot buy unbounded hashing.
const changeRefusalsMax = 10

// changeAttempt counts one change attempt against the source IP
// (publicPerIPMinute), before any hashing.
func (s *Service) changeAttempt(ctx context.Context, a Actor, st Settings, t store.Token) error {
	if st.PublicPerIPMinute <= 0 {
		return nil // no limit: no write
	}
	return s.store.Update(ctx, func(tx store.Tx) error {
		return s.limit(ctx, tx, s.now(), "publicPerIPMinute", ipKey(t.InstitutionID, a.IP), st.PublicPerIPMinute, time.Minute)
	})
}

// changeRefused counts a policy refusal against the token and ends the
// token at its changeRefusalsMax-th, so the reset page too shows it used
// up. Only refusals count: a 503 (hashing at capacity) cost no hashing and
// leaves the token as it was. Attempts running concurrently with the last
// refusal may still be checked, so a token costs at most
// changeRefusalsMax plus the hasher's bound of history checks.
func (s *Service) changeRefused(ctx context.Context, a Actor, t store.Token, hash []byte) error {
	return s.store.Update(ctx, func(tx store.Tx) error {
		now := s.now()
		n, err := tx.Hit(ctx, changeRefusalKey(hash), changeRefusalWindow, now)
		if err != nil || n < changeRefusalsMax {
			return err
		}
		if _, err := tx.ConsumeToken(ctx, hash, now); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return nil // a concurrent attempt ended it first
			}
			return err
		}
		return s.audit(ctx, tx, now, a, "password.change", t.InstitutionID, t.UserID, "refused_too_often")
	})
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
	// A change needs the hasher: when it could not even queue, answer
	// busy before reading or writing anything, so a flood of changes
	// against a full pool costs as little as a request can.
	if s.hasher.Full() {
		return password.ErrBusy
	}
	hash := hashToken(tok)
	var t store.Token
	var st Settings
	var u store.User
	var history []string
	var refused int
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
		if history, err = tx.PasswordHistory(ctx, t.InstitutionID, t.UserID, st.PasswordHistory); err != nil {
			return err
		}
		refused, err = tx.Count(ctx, changeRefusalKey(hash), changeRefusalWindow, s.now())
		return err
	})
	if err != nil {
		return err
	}
	// changeRefused ends the token at its last refusal; this catches the
	// attempts that raced it.
	if refused >= changeRefusalsMax {
		return ErrGone
	}
	if len(st.RequireFacts) > 0 && t.Purpose == PurposeLink {
		if err := s.checkFactsAtChange(ctx, a, st, u, facts); err != nil {
			return err
		}
	}
	// After the facts (their wrong tries have a cap of their own), before
	// anything that hashes.
	if err := s.changeAttempt(ctx, a, st, t); err != nil {
		return err
	}
	newHash, err := s.checkAndHash(ctx, st, owner{t.InstitutionID, u.Username, u.Email}, newPassword, history)
	if pe := (*PolicyError)(nil); errors.As(err, &pe) {
		if err := s.changeRefused(ctx, a, t, hash); err != nil {
			return err
		}
		return pe
	}
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
		if s.factsMatch(st, u, facts) {
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
