package reset

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"time"

	"github.com/resetd/resetd/internal/delivery"
	"github.com/resetd/resetd/internal/password"
	"github.com/resetd/resetd/internal/secret"
	"github.com/resetd/resetd/internal/store"
)

// newToken returns a 256-bit URL-safe token and the hash that is stored.
func newToken() (string, []byte) {
	tok := secret.Token(32)
	return tok, hashToken(tok)
}

func hashToken(tok string) []byte {
	h := sha256.Sum256([]byte(tok))
	return h[:]
}

// wellFormedToken spares the database tokens that cannot exist.
func wellFormedToken(tok string) bool {
	if len(tok) != 43 {
		return false
	}
	_, err := base64.RawURLEncoding.DecodeString(tok)
	return err == nil
}

// SendResetLink issues a reset-link token to a user and queues its
// delivery by email or SMS, all in one transaction. With the institution's
// adminResetApproval on, it sends nothing and returns the approval that a
// second client must give (SPEC §7 maker-checker).
func (s *Service) SendResetLink(ctx context.Context, a Actor, institutionID, userID, method string) (ApprovalRequest, error) {
	if err := checkIDs(institutionID, userID); err != nil {
		return ApprovalRequest{}, err
	}
	if method != delivery.ChannelEmail && method != delivery.ChannelSMS {
		return ApprovalRequest{}, invalid("method", `method must be "email" or "sms"`)
	}
	var pending ApprovalRequest
	var link preparedLink
	err := s.renderedFor(ctx, institutionID, userID,
		func(st Settings, u store.User) (err error) {
			if st.AdminResetApproval {
				return nil // nothing is sent until a second client approves
			}
			link, err = s.prepareLink(st, u, method, s.now())
			return err
		},
		func(tx store.Tx, now time.Time, st Settings, u store.User) error {
			if !st.AdminResetApproval {
				if link.method == "" {
					return errStale // rendered while approval was on
				}
				return s.sendLink(ctx, tx, now, st, u, link, a)
			}
			if _, err := s.linkTarget(st, u, method, now); err != nil {
				return err
			}
			pending = ApprovalRequest{ID: newApprovalID(), ExpiresAt: now.Add(approvalLifetime)}
			if err := tx.InsertApproval(ctx, store.Approval{ID: pending.ID, InstitutionID: institutionID, UserID: userID, Method: method,
				RequestedBy: a.ClientID, CreatedAt: now, ExpiresAt: pending.ExpiresAt}); err != nil {
				return err
			}
			return s.audit(ctx, tx, now, a, "reset.request_approval", institutionID, userID, "pending")
		})
	if err == nil && pending.ID == "" {
		s.observer.ResetIssued(method, "admin")
	}
	return pending, err
}

// linkTarget checks that a user can get a message on channel now and
// returns the destination.
func (s *Service) linkTarget(st Settings, u store.User, channel string, now time.Time) (string, error) {
	if channel == delivery.ChannelSMS && s.noSMS {
		return "", ErrChannelUnavailable
	}
	if u.Status != StatusActive {
		return "", ErrUserDisabled
	}
	to := u.Email
	if channel == delivery.ChannelSMS {
		to = u.Phone
	}
	if to == "" {
		return "", fmt.Errorf("%w: user has no %s contact", ErrNoContact, channel)
	}
	if channel == delivery.ChannelSMS {
		if err := smsAllowed(st, to); err != nil {
			return "", err
		}
	}
	return to, s.sendable(st, u, channel, now)
}

// preparedLink is a reset link rendered before its write transaction.
type preparedLink struct {
	method  string
	hash    []byte
	dispute dispute
	message delivery.Message
}

// prepareLink refuses early what sendLink would refuse for the user as
// read, makes the link's tokens and renders its message.
func (s *Service) prepareLink(st Settings, u store.User, method string, now time.Time) (preparedLink, error) {
	to, err := s.linkTarget(st, u, method, now)
	if err != nil {
		return preparedLink{}, err
	}
	tok, hash := newToken()
	p := preparedLink{method: method, hash: hash, dispute: s.newDispute()}
	p.message, err = s.render(st, u.Locale, delivery.KindResetLink, method, to, delivery.TemplateData{
		UserName: u.Username, Link: st.LinkBases[0] + "?token=" + tok, ExpiresIn: time.Duration(st.Expiration) * time.Second, DisputeLink: p.dispute.link,
	})
	return p, err
}

// sendLink applies the send's rules to the user as read in tx, then
// stores the prepared link's tokens and queues its message.
func (s *Service) sendLink(ctx context.Context, tx store.Tx, now time.Time, st Settings, u store.User, p preparedLink, a Actor) error {
	to, err := s.linkTarget(st, u, p.method, now)
	if err != nil {
		return err
	}
	if err := s.limit(ctx, tx, now, "sendsPerUserHour", sendKey(u.InstitutionID, u.ID), st.SendsPerUserHour, time.Hour); err != nil {
		return err
	}
	if p.method == delivery.ChannelSMS {
		if err := s.smsLimit(ctx, tx, now, u.InstitutionID, to); err != nil {
			return err
		}
	}
	// Older links die as the new link and its dispute token are written:
	// one statement.
	if err := tx.ReplaceTokens(ctx, u.InstitutionID, u.ID, now, []string{PurposeLink, PurposeSelfService},
		store.Token{Hash: p.hash, InstitutionID: u.InstitutionID, UserID: u.ID, Purpose: PurposeLink,
			CreatedAt: now, ExpiresAt: now.Add(time.Duration(st.Expiration) * time.Second)}, p.dispute.token(u, now)); err != nil {
		return err
	}
	if err := s.queue(ctx, tx, now, st, u.InstitutionID, u.ID, delivery.KindResetLink, p.message); err != nil {
		return err
	}
	if err := s.emit(ctx, tx, now, st, u.InstitutionID, u.ID, delivery.EventResetRequested, map[string]any{"flow": "admin", "channel": p.method}); err != nil {
		return err
	}
	return s.audit(ctx, tx, now, a, "reset.send."+p.method, u.InstitutionID, u.ID, "ok")
}

// TokenInfo describes a live reset token without consuming it.
type TokenInfo struct {
	InstitutionID string
	UserID        string
	Username      string
	DisplayName   string
	Policy        password.Policy
	ExpiresAt     time.Time
	// Facts names the knowledge facts the change must come with, as the
	// institution requires them now (link tokens only: a token won by an
	// OTP was checked for facts at the code).
	Facts []string
	// Branding is the institution's, for the page.
	Branding Branding
	// Languages decide the language of the token's pages: the user's
	// locale first.
	Languages Languages
}

// InspectToken checks a reset token without consuming it (opening a link
// must not spend it: mail scanners prefetch links).
func (s *Service) InspectToken(ctx context.Context, tok string) (TokenInfo, error) {
	if !wellFormedToken(tok) {
		return TokenInfo{}, ErrGone
	}
	var info TokenInfo
	err := s.store.View(ctx, func(tx store.ReadTx) error {
		now := s.now()
		t, err := tx.LookupToken(ctx, hashToken(tok), now)
		if err != nil {
			return goneIfNotFound(err)
		}
		if !isResetToken(t.Purpose) {
			return ErrGone // a dispute link is no reset link
		}
		st, err := s.settingsIn(ctx, tx, t.InstitutionID)
		if err != nil {
			return goneIfNotFound(err)
		}
		if !alive(st, t, now) {
			return ErrGone
		}
		u, err := tx.User(ctx, t.InstitutionID, t.UserID)
		if err != nil {
			return goneIfNotFound(err)
		}
		info = TokenInfo{InstitutionID: t.InstitutionID, UserID: t.UserID, Username: u.Username, DisplayName: st.DisplayName, Policy: policyFor(st), ExpiresAt: t.ExpiresAt, Branding: st.Branding(t.InstitutionID), Languages: languagesOf(st, u.Locale)}
		if end := t.CreatedAt.Add(time.Duration(st.Expiration) * time.Second); end.Before(info.ExpiresAt) {
			info.ExpiresAt = end // the institution's current lifetime, if shorter
		}
		if isLinkToken(t.Purpose) && len(st.RequireFacts) > 0 {
			info.Facts = st.RequireFacts
		}
		return nil
	})
	return info, err
}
