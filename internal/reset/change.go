package reset

import (
	"context"
	"errors"
	"time"

	"github.com/resetd/resetd/internal/delivery"
	"github.com/resetd/resetd/internal/i18n"
	"github.com/resetd/resetd/internal/password"
	"github.com/resetd/resetd/internal/store"
)

func policyFor(st Settings) password.Policy {
	return password.Policy{MinLength: st.PasswordMinLength, History: st.PasswordHistory, MinStrength: st.PasswordMinStrength}
}

// owner is whose password is being set: the words it must not be made of.
type owner struct {
	institutionID, userID, username, email, locale string
}

// checkAndHash applies the institution's policy to pw, NFKC-normalised,
// and hashes the normalised form (so the login, which normalises too,
// matches whatever form the user types). The policy runs its cheap rules
// before the breached list and the list before the history, so a refusal
// costs argon2id time only when the password is refused as reused. A
// password refused as reused has just been verified against the history
// entry it matched: an entry that is not a current argon2id hash is
// upgraded on the way out (SPEC §13).
func (s *Service) checkAndHash(ctx context.Context, a Actor, st Settings, who owner, pw string, history []string) (string, error) {
	p := policyFor(st)
	p.Context = password.Context{Email: who.email, InstitutionID: who.institutionID, InstitutionName: st.DisplayName}
	p.Breaches = s.breaches
	v, matched, err := p.Assess(ctx, s.hasher, pw, who.username, history)
	if err != nil {
		return "", err
	}
	if len(v) > 0 {
		if matched != "" {
			if err := s.rehash(ctx, a, who.institutionID, who.userID, matched, password.Normalize(pw)); err != nil {
				return "", err
			}
		}
		// The reasons in the user's language; the codes stay as they are.
		return "", &PolicyError{Violations: password.Localize(v, i18n.Messages().In(st.messageLang(who.locale)))}
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

// isResetToken reports whether a token's purpose lets it change a
// password (a dispute link does not).
func isResetToken(purpose string) bool {
	return purpose == PurposeLink || purpose == PurposeSelfService || purpose == PurposeOTP
}

// isLinkToken reports whether a token came in a reset link (admin or
// self-service), whose facts are checked at the change.
func isLinkToken(purpose string) bool {
	return purpose == PurposeLink || purpose == PurposeSelfService
}

// alive applies the institution's current lifetime to a live token: a
// shortened `expiration` shortens tokens already out (SPEC §10).
func alive(st Settings, t store.Token, now time.Time) bool {
	return now.Before(t.CreatedAt.Add(time.Duration(st.Expiration) * time.Second))
}

// How a password was changed, as the "password changed" notices say it.
const (
	howLink  = delivery.HowLink
	howCode  = delivery.HowCode
	howAdmin = delivery.HowAdmin
)

// changedNotices are the "your password was changed" messages to every
// contact of a user, with the dispute link they carry (SPEC §7, §10).
type changedNotices struct {
	rendered bool
	dispute  dispute
	messages []delivery.Message
}

// renderChanged renders the notices to u's contacts for a change made now
// in the way how.
func (s *Service) renderChanged(st Settings, u store.User, how string, now time.Time) (changedNotices, error) {
	n := changedNotices{rendered: true, dispute: s.newDispute()}
	d := delivery.TemplateData{DisputeLink: n.dispute.link, When: now, How: how}
	if u.Email != "" {
		d := d
		d.UserName = u.Username
		m, err := s.render(st, u.Locale, delivery.KindPasswordChanged, delivery.ChannelEmail, u.Email, d)
		if err != nil {
			return n, err
		}
		n.messages = append(n.messages, m)
	}
	if s.smsNotice(st, u.Phone) {
		m, err := s.render(st, u.Locale, delivery.KindPasswordChanged, delivery.ChannelSMS, u.Phone, d)
		if err != nil {
			return n, err
		}
		n.messages = append(n.messages, m)
	}
	return n, nil
}

// queue stores the notices' dispute link and queues them in tx.
func (n changedNotices) queue(ctx context.Context, s *Service, tx store.Tx, now time.Time, st Settings, u store.User) error {
	if len(n.messages) == 0 {
		return nil
	}
	if err := n.dispute.store(ctx, tx, u, now); err != nil {
		return err
	}
	for _, m := range n.messages {
		if err := s.queue(ctx, tx, now, st, u.InstitutionID, u.ID, delivery.KindPasswordChanged, m); err != nil {
			return err
		}
	}
	return nil
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
// wrong facts answer like a wrong OTP and count toward that token, which
// dies after otpMaxAttempts of them (never toward the OTP cap).
func (s *Service) ChangePasswordWithFacts(ctx context.Context, a Actor, tok, newPassword string, facts map[string]string) error {
	if !wellFormedToken(tok) {
		return ErrGone
	}
	if len(newPassword) > 4*128 {
		// Refused before the token is read, so in English; the page
		// writes every reason again in its own language.
		return &PolicyError{Violations: []password.Violation{password.NewViolation("too_long", 128)}}
	}
	// A change needs the hasher: when it could not even queue, answer
	// busy before reading or writing anything, so a flood of changes
	// against a full pool costs as little as a request can.
	if s.hasher.Full() {
		return password.ErrBusy
	}
	hash := hashToken(tok)
	for try := 0; ; try++ {
		var t store.Token
		var st Settings
		var u store.User
		var snap snapshot
		var history []string
		var refused int
		err := s.store.View(ctx, func(tx store.ReadTx) (err error) {
			now := s.now()
			if t, err = tx.LookupToken(ctx, hash, now); err != nil {
				return goneIfNotFound(err)
			}
			if !isResetToken(t.Purpose) {
				return ErrGone
			}
			in, sett, err := s.institutionIn(ctx, tx, t.InstitutionID)
			if err != nil {
				return goneIfNotFound(err)
			}
			if st = sett; !alive(st, t, now) {
				return ErrGone
			}
			if u, err = tx.User(ctx, t.InstitutionID, t.UserID); err != nil {
				return goneIfNotFound(err)
			}
			snap = snapshotOf(in, u, true)
			if history, err = tx.PasswordHistory(ctx, t.InstitutionID, t.UserID, st.PasswordHistory); err != nil {
				return err
			}
			refused, err = tx.Count(ctx, changeRefusalKey(hash), changeRefusalWindow, now)
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
		if len(st.RequireFacts) > 0 && isLinkToken(t.Purpose) {
			if err := s.checkFactsAtChange(ctx, a, st, t, u, facts); err != nil {
				return err
			}
		}
		// After the facts (their wrong tries have a cap of their own), before
		// anything that hashes.
		if err := s.changeAttempt(ctx, a, st, t); err != nil {
			return err
		}
		newHash, err := s.checkAndHash(ctx, a, st, owner{t.InstitutionID, t.UserID, u.Username, u.Email, u.Locale}, newPassword, history)
		if pe := (*PolicyError)(nil); errors.As(err, &pe) {
			if err := s.changeRefused(ctx, a, t, hash); err != nil {
				return err
			}
			return pe
		}
		if err != nil {
			return err
		}
		how := howLink
		if t.Purpose == PurposeOTP {
			how = howCode
		}
		notices, err := s.renderChanged(st, u, how, s.now())
		if err != nil {
			return err
		}
		err = s.store.Update(ctx, func(tx store.Tx) error {
			now := s.now()
			in, st, err := s.institutionIn(ctx, tx, t.InstitutionID)
			if err != nil {
				return goneIfNotFound(err)
			}
			u, err := tx.User(ctx, t.InstitutionID, t.UserID)
			if err != nil {
				return goneIfNotFound(err)
			}
			if snapshotOf(in, u, true) != snap {
				return errStale
			}
			ct, err := tx.ConsumeToken(ctx, hash, now)
			if err != nil || !alive(st, ct, now) {
				return ErrGone // rolled back: a token past its lifetime stays as it was
			}
			if err := tx.SetPassword(ctx, t.InstitutionID, t.UserID, newHash, now); err != nil {
				return goneIfNotFound(err)
			}
			if err := tx.AddPasswordHistory(ctx, t.InstitutionID, t.UserID, newHash, now, MaxPasswordHistory); err != nil {
				return err
			}
			if err := s.killResets(ctx, tx, now, u); err != nil {
				return err
			}
			if err := notices.queue(ctx, s, tx, now, st, u); err != nil {
				return err
			}
			if err := s.emit(ctx, tx, now, st, t.InstitutionID, t.UserID, delivery.EventPasswordChanged, nil); err != nil {
				return err
			}
			return s.audit(ctx, tx, now, a, "password.change", t.InstitutionID, t.UserID, "ok")
		})
		if err = staleOrDone(err, try); err != errStale {
			if err == nil {
				s.observer.PasswordChanged(t.Purpose)
			}
			return err
		}
	}
}

// killResets ends every outstanding reset link, OTP-won token and OTP of
// a user (dispute links stay: they may still be needed).
func (s *Service) killResets(ctx context.Context, tx store.Tx, now time.Time, u store.User) error {
	if err := tx.KillTokens(ctx, u.InstitutionID, u.ID, now, PurposeLink, PurposeSelfService, PurposeOTP); err != nil {
		return err
	}
	return tx.KillOTP(ctx, u.InstitutionID, u.ID, now)
}

// checkFactsAtChange counts a wrong fact against the link token it came
// with: after otpMaxAttempts wrong ones the token dies. Codes guessed at
// OTP verify never block the link path, nor facts guessed here the codes.
func (s *Service) checkFactsAtChange(ctx context.Context, a Actor, st Settings, t store.Token, u store.User, facts map[string]string) error {
	if ok, rekeyed := s.factsMatch(st, u, facts); ok {
		if rekeyed == nil {
			return nil
		}
		// Right, but made under an older key of the ring: stored again
		// under the current one (keys rotate, SPEC §9).
		return s.store.Update(ctx, func(tx store.Tx) error {
			return tx.SetFacts(ctx, u.InstitutionID, u.ID, rekeyed)
		})
	}
	failKey := linkFailKey(t.Hash)
	window := time.Duration(st.Expiration) * time.Second
	err := s.store.Update(ctx, func(tx store.Tx) error {
		now := s.now()
		if _, err := tx.LookupToken(ctx, t.Hash, now); err != nil {
			return goneIfNotFound(err)
		}
		n, err := tx.Hit(ctx, failKey, window, now)
		if err != nil {
			return err
		}
		if n >= st.OTPMaxAttempts {
			if _, err := tx.ConsumeToken(ctx, t.Hash, now); err != nil {
				return goneIfNotFound(err)
			}
		}
		return s.audit(ctx, tx, now, a, "password.change", u.InstitutionID, u.ID, "wrong_facts")
	})
	if err != nil {
		return err
	}
	return ErrOTPInvalid
}
