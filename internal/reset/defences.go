package reset

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"encoding/hex"
	"regexp"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/resetd/resetd/internal/delivery"
	"github.com/resetd/resetd/internal/store"
)

// Knowledge facts a user record may hold (SPEC §7).
const (
	FactDateOfBirth  = "dateOfBirth"
	FactAccountLast4 = "accountLast4"
	FactPostalCode   = "postalCode"
)

// FactNames lists the facts resetd knows.
var FactNames = []string{FactDateOfBirth, FactAccountLast4, FactPostalCode}

// More token purposes and windows.
const (
	PurposeDispute   = "dispute"
	disputeLifetime  = 7 * 24 * time.Hour
	approvalLifetime = time.Hour
)

var factFormats = map[string]*regexp.Regexp{
	FactDateOfBirth:  regexp.MustCompile(`^\d{4}-\d{2}-\d{2}$`),
	FactAccountLast4: regexp.MustCompile(`^\d{4}$`),
	FactPostalCode:   regexp.MustCompile(`^[a-z0-9-]{2,12}$`),
}

// normalizeFact trims, lower-cases and removes inner spaces, so "SW1A 1AA"
// and "sw1a1aa" are one postal code.
func normalizeFact(v string) string {
	return strings.ToLower(strings.Join(strings.Fields(v), ""))
}

func (s *Service) factMAC(institutionID, userID, name, value string) string {
	return hex.EncodeToString(s.Key.MAC("fact", []byte(institutionID+"\x00"+userID+"\x00"+name+"\x00"+normalizeFact(value))))
}

// hashFacts validates and hashes facts given on a user PUT.
func (s *Service) hashFacts(institutionID, userID string, facts map[string]string) (map[string]string, error) {
	out := map[string]string{}
	for name, v := range facts {
		re, ok := factFormats[name]
		if !ok {
			return nil, invalid("facts", "unknown fact "+quote(name)+"; known: "+strings.Join(FactNames, ", "))
		}
		if !re.MatchString(normalizeFact(v)) {
			return nil, invalid("facts", "fact "+name+" is malformed")
		}
		out[name] = s.factMAC(institutionID, userID, name, v)
	}
	return out, nil
}

func quote(s string) string {
	if len(s) > 40 {
		s = s[:40]
	}
	return `"` + strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s) + `"`
}

// factsMatch reports whether given facts meet every fact the institution
// requires. A user without a stored fact never matches it: a fact cannot
// be skipped by not having one.
func (s *Service) factsMatch(st Settings, u store.User, given map[string]string) bool {
	ok := true
	for _, name := range st.RequireFacts {
		want := u.Facts[name]
		got := s.factMAC(u.InstitutionID, u.ID, name, given[name])
		// Compare every fact, even after a miss: no timing hint of which.
		if want == "" || given[name] == "" || !hmac.Equal([]byte(want), []byte(got)) {
			ok = false
		}
	}
	return ok
}

// sameContact compares contact values after normalisation (emails
// lower-cased, phones already E.164).
func sameContact(a, b string) bool { return strings.EqualFold(a, b) }

// sendable applies the defences that can refuse any send to a user on a
// channel: the dispute lock and the contact-change cooldown.
func (s *Service) sendable(st Settings, u store.User, channel string, now time.Time) error {
	if now.Before(u.LockedUntil) {
		return ErrLocked
	}
	changed := u.EmailChangedAt
	if channel == delivery.ChannelSMS {
		changed = u.PhoneChangedAt
	}
	if !changed.IsZero() && now.Before(changed.Add(time.Duration(st.ContactChangeCooldown)*time.Second)) {
		return ErrContactCooldown
	}
	return nil
}

// disputeLink issues a "this wasn't me" token for a message.
func (s *Service) disputeLink(ctx context.Context, tx store.Tx, u store.User, now time.Time) (string, error) {
	tok, hash := newToken()
	if err := tx.InsertToken(ctx, store.Token{Hash: hash, InstitutionID: u.InstitutionID, UserID: u.ID, Purpose: PurposeDispute, CreatedAt: now, ExpiresAt: now.Add(disputeLifetime)}); err != nil {
		return "", err
	}
	return s.PublicURL + "/reset/dispute?token=" + tok, nil
}

// emit queues a webhook event when the institution has a webhookUrl.
func (s *Service) emit(ctx context.Context, tx store.Tx, st Settings, institutionID, userID, typ string, data map[string]any) error {
	if st.WebhookURL == "" {
		return nil
	}
	return tx.Enqueue(ctx, delivery.WebhookArgs{URL: st.WebhookURL, Event: delivery.Event{
		ID: uuid.NewString(), Type: typ, Time: s.Now().UTC(), InstitutionID: institutionID, UserID: userID, Data: data,
	}}, nil)
}

// DeliveryFailed emits delivery.failed for a message that will never be
// delivered (the send worker calls it).
func (s *Service) DeliveryFailed(ctx context.Context, args delivery.SendArgs, m delivery.Message) {
	if args.InstitutionID == "" {
		return
	}
	err := s.Store.Update(ctx, func(tx store.Tx) error {
		st, err := s.settingsIn(ctx, tx, args.InstitutionID)
		if err != nil {
			return err
		}
		return s.emit(ctx, tx, st, args.InstitutionID, args.UserID, delivery.EventDeliveryFailed, map[string]any{
			"deliveryId": args.DeliveryID, "channel": m.Channel, "kind": m.Kind,
		})
	})
	if err != nil {
		s.Logger.ErrorContext(ctx, "emitting delivery.failed", "delivery_id", args.DeliveryID, "err", err)
	}
}

// DisputeInfo describes a live dispute link for its confirm page.
type DisputeInfo struct {
	DisplayName string
}

// InspectDispute checks a dispute link without spending it.
func (s *Service) InspectDispute(ctx context.Context, tok string) (DisputeInfo, error) {
	if !wellFormedToken(tok) {
		return DisputeInfo{}, ErrGone
	}
	var info DisputeInfo
	err := s.Store.View(ctx, func(tx store.Tx) error {
		_, st, err := s.disputeToken(ctx, tx, tok, s.Now())
		info.DisplayName = st.DisplayName
		return err
	})
	return info, err
}

// disputeToken reads a live dispute link's token and its institution's
// settings; anything else is ErrGone.
func (s *Service) disputeToken(ctx context.Context, tx store.Tx, tok string, now time.Time) (store.Token, Settings, error) {
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
	err := s.Store.Update(ctx, func(tx store.Tx) error {
		now := s.Now()
		t, st, err := s.disputeToken(ctx, tx, tok, now)
		if err != nil {
			return err
		}
		info.DisplayName = st.DisplayName
		if err := tx.KillTokens(ctx, t.InstitutionID, t.UserID, now); err != nil {
			return err
		}
		if err := tx.KillOTP(ctx, t.InstitutionID, t.UserID, now); err != nil {
			return err
		}
		if err := tx.LockUser(ctx, t.InstitutionID, t.UserID, now.Add(time.Duration(st.DisputeLock)*time.Second)); err != nil {
			return goneIfNotFound(err)
		}
		if err := s.emit(ctx, tx, st, t.InstitutionID, t.UserID, delivery.EventResetDisputed, nil); err != nil {
			return err
		}
		return s.audit(ctx, tx, a, "reset.disputed", t.InstitutionID, t.UserID, "ok")
	})
	return info, err
}

// ApprovalRequest is an admin reset waiting for a second client.
type ApprovalRequest struct {
	ID        string
	ExpiresAt time.Time
}

func newApprovalID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return "ap_" + hex.EncodeToString(b)
}

// Approve releases a reset link that waits for approval. The approver
// must be another client; an approval is used once and expires after an
// hour (then it is not found).
func (s *Service) Approve(ctx context.Context, a Actor, institutionID, approvalID string) error {
	method, err := s.approve(ctx, a, institutionID, approvalID)
	if err == nil {
		s.Observer.ResetIssued(method, "admin")
	}
	return err
}

func (s *Service) approve(ctx context.Context, a Actor, institutionID, approvalID string) (method string, err error) {
	if err := checkIDs(institutionID); err != nil {
		return "", err
	}
	if !ValidID(approvalID) {
		return "", ErrNotFound
	}
	return method, s.Store.Update(ctx, func(tx store.Tx) error {
		st, err := s.settingsIn(ctx, tx, institutionID)
		if err != nil {
			return err
		}
		ap, err := tx.LockApproval(ctx, institutionID, approvalID)
		if err != nil {
			return mapNotFound(err)
		}
		now := s.Now()
		switch {
		case !now.Before(ap.ExpiresAt):
			return ErrNotFound
		case !ap.ApprovedAt.IsZero():
			return ErrAlreadyApproved
		case ap.RequestedBy == a.ClientID:
			return ErrSelfApproval
		}
		if err := tx.MarkApproved(ctx, institutionID, approvalID, a.ClientID, now); err != nil {
			return err
		}
		u, err := tx.User(ctx, institutionID, ap.UserID)
		if err != nil {
			return mapNotFound(err)
		}
		method = ap.Method
		if err := s.sendLink(ctx, tx, st, u, ap.Method, a); err != nil {
			return err
		}
		return s.audit(ctx, tx, a, "reset.approve", institutionID, ap.UserID, "ok")
	})
}
