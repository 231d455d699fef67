// Package reset is the domain: institutions and their settings, the user
// directory, reset-link tokens and password changes, with their rules
// (tenant isolation, single use, expiry, rate limits, audit). It decides;
// the store remembers and delivery carries.
package reset

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/nyaruka/phonenumbers"

	"github.com/resetd/resetd/internal/delivery"
	"github.com/resetd/resetd/internal/password"
	"github.com/resetd/resetd/internal/seal"
	"github.com/resetd/resetd/internal/store"
)

// Token purposes.
const (
	PurposeLink = "link"
)

// User statuses.
const (
	StatusActive   = "active"
	StatusDisabled = "disabled"
)

// Limits that are not settings (SPEC §4).
const (
	verifyFailuresMax    = 10
	verifyFailuresWindow = 15 * time.Minute
)

// Config wires a Service.
type Config struct {
	Store     store.Store
	Hasher    *password.Hasher
	Key       *seal.Key
	Templates *delivery.Templates
	// PublicURL is the base of links resetd itself serves (the reset page).
	PublicURL string
	// DefaultFrom is the email sender when an institution names none.
	DefaultFrom string
	Now         func() time.Time
	Logger      *slog.Logger
	// Observer hears of issued resets and OTP outcomes (metrics); may be nil.
	Observer Observer
}

// Observer is told what the flows did, after their transaction committed.
type Observer interface {
	ResetIssued(channel, flow string)
	OTPVerified(outcome string)
}

type noObserver struct{}

func (noObserver) ResetIssued(string, string) {}
func (noObserver) OTPVerified(string)         {}

// Service runs the flows.
type Service struct {
	Config
	// overrides caches parsed per-institution templates by their source.
	overrides sync.Map // string → *delivery.Templates
	// selfServicePad holds self-service answers until a floor (timing).
	selfServicePad latencyFloor
}

// templatesFor returns the institution's templates, parsing overrides once.
func (s *Service) templatesFor(st Settings) (*delivery.Templates, error) {
	if len(st.Templates) == 0 {
		return s.Templates, nil
	}
	key, err := jsonMarshal(st.Templates) // map keys marshal sorted: a stable key
	if err != nil {
		return nil, err
	}
	if t, ok := s.overrides.Load(string(key)); ok {
		return t.(*delivery.Templates), nil
	}
	t, err := s.Templates.WithOverrides(st.Templates)
	if err != nil {
		return nil, err
	}
	s.overrides.Store(string(key), t)
	return t, nil
}

// New returns a Service.
func New(c Config) *Service {
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Observer == nil {
		c.Observer = noObserver{}
	}
	c.PublicURL = strings.TrimRight(c.PublicURL, "/")
	return &Service{Config: c}
}

// Actor is who asked: the client, its IP and the request's transaction id.
type Actor struct {
	ClientID      string
	IP            string
	TransactionID string
}

func (s *Service) audit(ctx context.Context, tx store.Tx, a Actor, action, institutionID, userID, outcome string) error {
	return tx.InsertAudit(ctx, store.AuditRecord{
		Time: s.Now(), Action: action, InstitutionID: institutionID, UserID: userID,
		ClientID: a.ClientID, IP: a.IP, TransactionID: a.TransactionID, Outcome: outcome,
	})
}

// AuditFailure records a refused request (failed authentication, a rate
// limit) in its own transaction.
func (s *Service) AuditFailure(ctx context.Context, a Actor, action, institutionID, userID, outcome string) {
	err := s.Store.Update(ctx, func(tx store.Tx) error {
		return s.audit(ctx, tx, a, action, institutionID, userID, outcome)
	})
	if err != nil {
		s.Logger.ErrorContext(ctx, "writing audit record", "action", action, "err", err)
	}
}

var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$`)

// ValidID reports whether s can be an institution or user id.
func ValidID(s string) bool { return idPattern.MatchString(s) }

func checkIDs(institutionID string, userID ...string) error {
	if !ValidID(institutionID) {
		return invalid("institutionId", "malformed institution id")
	}
	for _, u := range userID {
		if !ValidID(u) {
			return invalid("userId", "malformed user id")
		}
	}
	return nil
}

func mapNotFound(err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return ErrNotFound
	}
	return err
}

func (s *Service) settingsIn(ctx context.Context, tx store.Tx, institutionID string) (Settings, error) {
	in, err := tx.Institution(ctx, institutionID)
	if err != nil {
		return Settings{}, mapNotFound(err)
	}
	return s.decode(in)
}

// userIn reads an institution's settings and one of its users: the
// institution or the user missing is ErrNotFound.
func (s *Service) userIn(ctx context.Context, tx store.Tx, institutionID, userID string) (Settings, store.User, error) {
	st, err := s.settingsIn(ctx, tx, institutionID)
	if err != nil {
		return st, store.User{}, err
	}
	u, err := tx.User(ctx, institutionID, userID)
	return st, u, mapNotFound(err)
}

func (s *Service) decode(in store.Institution) (Settings, error) {
	st, err := decodeSettings(in.Settings, s.PublicURL)
	if err != nil {
		return st, err
	}
	if st.DisplayName == "" {
		st.DisplayName = in.ID
	}
	return st, nil
}

// PutInstitution creates or updates an institution (the operator's CLI).
// Empty arguments keep what is stored.
func (s *Service) PutInstitution(ctx context.Context, id, displayName string, linkBases, senders []string, isDefault bool) (Settings, error) {
	if !ValidID(id) {
		return Settings{}, invalid("institutionId", "malformed institution id")
	}
	var out Settings
	err := s.Store.Update(ctx, func(tx store.Tx) error {
		now := s.Now()
		in, err := tx.LockInstitution(ctx, id)
		switch {
		case errors.Is(err, store.ErrNotFound):
			in = store.Institution{ID: id, CreatedAt: now}
		case err != nil:
			return err
		}
		st, err := decodeSettings(in.Settings, s.PublicURL)
		if err != nil {
			return err
		}
		var p SettingsPatch
		if displayName != "" {
			p.DisplayName = &displayName
		}
		if len(linkBases) > 0 {
			p.LinkBases = &linkBases
		}
		if len(senders) > 0 {
			p.Senders = &senders
		}
		st = p.Apply(st)
		if err := st.Validate(); err != nil {
			return err
		}
		in.Settings, err = jsonMarshal(st)
		if err != nil {
			return err
		}
		in.IsDefault = isDefault || in.IsDefault
		in.UpdatedAt = now
		out = st
		return tx.PutInstitution(ctx, in)
	})
	return out, err
}

// Settings returns an institution's settings.
func (s *Service) Settings(ctx context.Context, institutionID string) (Settings, error) {
	if err := checkIDs(institutionID); err != nil {
		return Settings{}, err
	}
	var st Settings
	err := s.Store.View(ctx, func(tx store.Tx) (err error) {
		st, err = s.settingsIn(ctx, tx, institutionID)
		return err
	})
	return st, err
}

// UpdateSettings applies a partial update atomically: concurrent updates
// of different fields never lose one another's change.
func (s *Service) UpdateSettings(ctx context.Context, a Actor, institutionID string, p SettingsPatch) (Settings, error) {
	if err := checkIDs(institutionID); err != nil {
		return Settings{}, err
	}
	var out Settings
	err := s.Store.Update(ctx, func(tx store.Tx) error {
		in, err := tx.LockInstitution(ctx, institutionID)
		if err != nil {
			return mapNotFound(err)
		}
		st, err := decodeSettings(in.Settings, s.PublicURL)
		if err != nil {
			return err
		}
		st = p.Apply(st)
		if err := st.Validate(); err != nil {
			return err
		}
		if p.Templates != nil {
			// A template that does not parse is refused now, not at send time.
			if _, err := s.templatesFor(st); err != nil {
				return invalid("templates", err.Error())
			}
		}
		raw, err := jsonMarshal(st)
		if err != nil {
			return err
		}
		if err := tx.SetSettings(ctx, institutionID, raw, s.Now()); err != nil {
			return err
		}
		out = st
		return s.audit(ctx, tx, a, "settings.update", institutionID, "", "ok")
	})
	return out, err
}

// UserInput is a user as an administrator writes it.
type UserInput struct {
	Username string
	Email    string
	Phone    string
	Status   string
	// Password, when set, replaces the current one (after the policy).
	Password *string
	// Facts, when set, replace the stored knowledge facts.
	Facts map[string]string
}

// NormalizeEmail validates an address and returns its stored form.
func NormalizeEmail(e string) (string, error) {
	if e == "" {
		return "", nil
	}
	if !validEmail(e) {
		return "", invalid("email", "not a valid email address")
	}
	at := strings.LastIndexByte(e, '@')
	return e[:at] + "@" + strings.ToLower(e[at+1:]), nil
}

// NormalizePhone validates an E.164 number (premium-rate numbers are
// refused: SMS pumping) and returns it in E.164.
func NormalizePhone(p string) (string, error) {
	if p == "" {
		return "", nil
	}
	if !strings.HasPrefix(p, "+") || len(p) > 20 || !printable(p) {
		return "", invalid("phone", "phone must be in E.164 form, e.g. +14155550100")
	}
	num, err := phonenumbers.Parse(p, "")
	if err != nil || !phonenumbers.IsValidNumber(num) {
		return "", invalid("phone", "not a valid phone number")
	}
	if phonenumbers.GetNumberType(num) == phonenumbers.PREMIUM_RATE {
		return "", invalid("phone", "premium-rate numbers are not accepted")
	}
	e164 := phonenumbers.Format(num, phonenumbers.E164)
	if len(e164) > 16 { // E.164 allows at most 15 digits; libphonenumber's metadata lets some longer through
		return "", invalid("phone", "not a valid phone number")
	}
	return e164, nil
}

func validUsername(u string) bool {
	n := utf8.RuneCountInString(u)
	return n >= 1 && n <= 256 && utf8.ValidString(u) && printable(u) && strings.TrimSpace(u) == u
}

// PutUser creates or replaces a user; an omitted password keeps the
// current one.
func (s *Service) PutUser(ctx context.Context, a Actor, institutionID, userID string, in UserInput) (created bool, err error) {
	if err := checkIDs(institutionID, userID); err != nil {
		return false, err
	}
	if err := in.normalize(); err != nil {
		return false, err
	}
	var newHash string
	if in.Password != nil {
		var st Settings
		var history []string
		if err := s.Store.View(ctx, func(tx store.Tx) (err error) {
			if st, err = s.settingsIn(ctx, tx, institutionID); err != nil {
				return err
			}
			history, err = tx.PasswordHistory(ctx, institutionID, userID, st.PasswordHistory)
			return err
		}); err != nil {
			return false, err
		}
		if newHash, err = s.checkAndHash(ctx, st, *in.Password, in.Username, history); err != nil {
			return false, err
		}
	}
	err = s.Store.Update(ctx, func(tx store.Tx) error {
		st, err := s.settingsIn(ctx, tx, institutionID)
		if err != nil {
			return err
		}
		created, err = s.putUserTx(ctx, tx, st, a, institutionID, userID, in, newHash, true)
		return err
	})
	return created, err
}

// normalize validates a user's fields and puts them in stored form.
func (in *UserInput) normalize() error {
	if !validUsername(in.Username) {
		return invalid("username", "username must be 1 to 256 printable characters without surrounding spaces")
	}
	var err error
	if in.Email, err = NormalizeEmail(in.Email); err != nil {
		return err
	}
	if in.Phone, err = NormalizePhone(in.Phone); err != nil {
		return err
	}
	if in.Status == "" {
		in.Status = StatusActive
	}
	if in.Status != StatusActive && in.Status != StatusDisabled {
		return invalid("status", `status must be "active" or "disabled"`)
	}
	return nil
}

// putUserTx writes a normalised user in tx, with every rule that goes
// with it: kept password and facts, the contact-change cooldown and its
// notice, killed tokens for a disabled user, the audit record.
func (s *Service) putUserTx(ctx context.Context, tx store.Tx, st Settings, a Actor, institutionID, userID string, in UserInput, newHash string, audit bool) (bool, error) {
	now := s.Now()
	email, phone, status := in.Email, in.Phone, in.Status
	u := store.User{InstitutionID: institutionID, ID: userID, Username: in.Username, Email: email, Phone: phone, Status: status, CreatedAt: now, UpdatedAt: now}
	old, err := tx.User(ctx, institutionID, userID)
	existed := err == nil
	switch {
	case existed:
		u.PasswordHash, u.CreatedAt, u.Facts, u.LockedUntil = old.PasswordHash, old.CreatedAt, old.Facts, old.LockedUntil
		u.EmailChangedAt, u.PhoneChangedAt = old.EmailChangedAt, old.PhoneChangedAt
	case !errors.Is(err, store.ErrNotFound):
		return false, err
	}
	if newHash != "" {
		u.PasswordHash = newHash
	}
	if in.Facts != nil {
		if u.Facts, err = s.hashFacts(institutionID, userID, in.Facts); err != nil {
			return false, err
		}
	}
	// A replaced contact starts the cooldown for the new value, and
	// the old value hears of it (SIM-swap and takeover defence). A
	// first set is not a change.
	var notices []delivery.Message
	if existed {
		if old.Email != "" && !sameContact(old.Email, email) {
			u.EmailChangedAt = now
			m, err := s.render(st, delivery.KindContactChanged, delivery.ChannelEmail, old.Email, delivery.TemplateData{UserName: old.Username, Changed: "email address"})
			if err != nil {
				return false, err
			}
			notices = append(notices, m)
		}
		if old.Phone != "" && old.Phone != phone {
			u.PhoneChangedAt = now
			m, err := s.render(st, delivery.KindContactChanged, delivery.ChannelSMS, old.Phone, delivery.TemplateData{Changed: "phone number"})
			if err != nil {
				return false, err
			}
			notices = append(notices, m)
		}
	}
	created, err := tx.PutUser(ctx, u)
	if errors.Is(err, store.ErrConflict) {
		return false, fmt.Errorf("%w: username %q belongs to another user", ErrConflict, in.Username)
	}
	if err != nil {
		return false, err
	}
	for _, m := range notices {
		if err := s.queue(ctx, tx, institutionID, userID, delivery.KindContactChanged, m); err != nil {
			return false, err
		}
	}
	if newHash != "" {
		if err := tx.AddPasswordHistory(ctx, institutionID, userID, newHash, now, MaxPasswordHistory); err != nil {
			return false, err
		}
	}
	if status == StatusDisabled {
		if err := tx.KillTokens(ctx, institutionID, userID, now); err != nil {
			return false, err
		}
		if err := tx.KillOTP(ctx, institutionID, userID, now); err != nil {
			return false, err
		}
	}
	if !audit {
		return created, nil
	}
	return created, s.audit(ctx, tx, a, "user.put", institutionID, userID, "ok")
}

// DeleteUser removes a user; their outstanding tokens die with them.
func (s *Service) DeleteUser(ctx context.Context, a Actor, institutionID, userID string) error {
	if err := checkIDs(institutionID, userID); err != nil {
		return err
	}
	return s.Store.Update(ctx, func(tx store.Tx) error {
		if _, err := s.settingsIn(ctx, tx, institutionID); err != nil {
			return err
		}
		if err := tx.KillTokens(ctx, institutionID, userID, s.Now()); err != nil {
			return err
		}
		if err := tx.KillOTP(ctx, institutionID, userID, s.Now()); err != nil {
			return err
		}
		if err := tx.DeleteUser(ctx, institutionID, userID); err != nil {
			return mapNotFound(err)
		}
		return s.audit(ctx, tx, a, "user.delete", institutionID, userID, "ok")
	})
}

// FindUsers looks a username up (exact, case-insensitive).
func (s *Service) FindUsers(ctx context.Context, institutionID, username string) ([]store.User, error) {
	if err := checkIDs(institutionID); err != nil {
		return nil, err
	}
	if !validUsername(username) {
		return nil, invalid("username", "username must be 1 to 256 printable characters")
	}
	out := []store.User{}
	err := s.Store.View(ctx, func(tx store.Tx) error {
		if _, err := s.settingsIn(ctx, tx, institutionID); err != nil {
			return err
		}
		u, err := tx.UserByUsername(ctx, institutionID, username)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		out = append(out, u)
		return nil
	})
	return out, err
}

// newToken returns a 256-bit URL-safe token and the hash that is stored.
func newToken() (string, []byte) {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	tok := base64.RawURLEncoding.EncodeToString(b)
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

func (s *Service) limit(ctx context.Context, tx store.Tx, name, key string, max int, window time.Duration) error {
	if max <= 0 {
		return nil
	}
	now := s.Now()
	n, err := tx.Hit(ctx, key, window, now)
	if err != nil {
		return err
	}
	if n > max {
		return limited(name, window, now)
	}
	return nil
}

// sender picks the From address of an institution's email.
func (s *Service) sender(st Settings) string {
	if len(st.Senders) > 0 {
		return st.Senders[0]
	}
	return s.DefaultFrom
}

// queue commits a rendered message's delivery row and send job in tx.
func (s *Service) queue(ctx context.Context, tx store.Tx, institutionID, userID, kind string, m delivery.Message) error {
	dest := MaskEmail(m.To)
	if m.Channel == delivery.ChannelSMS {
		dest = MaskPhone(m.To)
	}
	id, err := tx.InsertDelivery(ctx, store.Delivery{
		InstitutionID: institutionID, UserID: userID, Kind: kind, Channel: m.Channel,
		Destination: dest, State: store.DeliveryQueued, CreatedAt: s.Now(),
	})
	if err != nil {
		return err
	}
	args, err := delivery.Seal(s.Key, id, m)
	if err != nil {
		return err
	}
	args.InstitutionID, args.UserID = institutionID, userID
	return tx.Enqueue(ctx, args, nil)
}

func (s *Service) render(st Settings, kind, channel, to string, d delivery.TemplateData) (delivery.Message, error) {
	d.DisplayName = st.DisplayName
	tmpl, err := s.templatesFor(st)
	if err != nil {
		return delivery.Message{}, err
	}
	r, err := tmpl.Render(kind, channel, d)
	if err != nil {
		return delivery.Message{}, fmt.Errorf("reset: render %s/%s: %w", kind, channel, err)
	}
	m := delivery.Message{Channel: channel, Kind: kind, To: to, Subject: r.Subject, Text: r.Text, HTML: r.HTML}
	if channel == delivery.ChannelEmail {
		m.From = s.sender(st)
	}
	return m, nil
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
	err := s.Store.Update(ctx, func(tx store.Tx) error {
		st, u, err := s.userIn(ctx, tx, institutionID, userID)
		if err != nil {
			return err
		}
		if !st.AdminResetApproval {
			return s.sendLink(ctx, tx, st, u, method, a)
		}
		if _, err := s.linkTarget(st, u, method, s.Now()); err != nil {
			return err
		}
		now := s.Now()
		pending = ApprovalRequest{ID: newApprovalID(), ExpiresAt: now.Add(approvalLifetime)}
		if err := tx.InsertApproval(ctx, store.Approval{ID: pending.ID, InstitutionID: institutionID, UserID: userID, Method: method,
			RequestedBy: a.ClientID, CreatedAt: now, ExpiresAt: pending.ExpiresAt}); err != nil {
			return err
		}
		return s.audit(ctx, tx, a, "reset.request_approval", institutionID, userID, "pending")
	})
	if err == nil && pending.ID == "" {
		s.Observer.ResetIssued(method, "admin")
	}
	return pending, err
}

// linkTarget checks that a user can get a message on channel now and
// returns the destination.
func (s *Service) linkTarget(st Settings, u store.User, channel string, now time.Time) (string, error) {
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

// sendLink issues the token and queues the message in tx.
func (s *Service) sendLink(ctx context.Context, tx store.Tx, st Settings, u store.User, method string, a Actor) error {
	now := s.Now()
	to, err := s.linkTarget(st, u, method, now)
	if err != nil {
		return err
	}
	if err := s.limit(ctx, tx, "sendsPerUserHour", "send:"+u.InstitutionID+":"+u.ID, st.SendsPerUserHour, time.Hour); err != nil {
		return err
	}
	if method == delivery.ChannelSMS {
		if err := s.smsLimit(ctx, tx, to); err != nil {
			return err
		}
	}
	tok, hash := newToken()
	dispute, err := s.disputeLink(ctx, tx, u, now)
	if err != nil {
		return err
	}
	m, err := s.render(st, delivery.KindResetLink, method, to, delivery.TemplateData{
		UserName: u.Username, Link: st.LinkBases[0] + "?token=" + tok, ExpiresIn: time.Duration(st.Expiration) * time.Second, DisputeLink: dispute,
	})
	if err != nil {
		return err
	}
	if err := tx.KillTokens(ctx, u.InstitutionID, u.ID, now, PurposeLink); err != nil {
		return err
	}
	if err := tx.InsertToken(ctx, store.Token{Hash: hash, InstitutionID: u.InstitutionID, UserID: u.ID, Purpose: PurposeLink,
		CreatedAt: now, ExpiresAt: now.Add(time.Duration(st.Expiration) * time.Second)}); err != nil {
		return err
	}
	if err := s.queue(ctx, tx, u.InstitutionID, u.ID, delivery.KindResetLink, m); err != nil {
		return err
	}
	if err := s.emit(ctx, tx, st, u.InstitutionID, u.ID, delivery.EventResetRequested, map[string]any{"flow": "admin", "channel": method}); err != nil {
		return err
	}
	return s.audit(ctx, tx, a, "reset.send."+method, u.InstitutionID, u.ID, "ok")
}

// VerifyPassword checks a user's password for the platform's login. Failed
// checks are capped per user (429 past the cap).
func (s *Service) VerifyPassword(ctx context.Context, a Actor, institutionID, userID, pw string) error {
	if err := checkIDs(institutionID, userID); err != nil {
		return err
	}
	if len(pw) > 1024 {
		return invalid("password", "password too long")
	}
	key := "verifyfail:" + institutionID + ":" + userID
	var u store.User
	var failures int
	err := s.Store.View(ctx, func(tx store.Tx) (err error) {
		if _, err = s.settingsIn(ctx, tx, institutionID); err != nil {
			return err
		}
		if u, err = tx.User(ctx, institutionID, userID); err != nil {
			return mapNotFound(err)
		}
		failures, err = tx.Count(ctx, key, verifyFailuresWindow, s.Now())
		return err
	})
	if err != nil {
		return err
	}
	now := s.Now()
	if failures >= verifyFailuresMax {
		s.AuditFailure(ctx, a, "password.verify", institutionID, userID, "rate_limited")
		return limited("verify", verifyFailuresWindow, now)
	}
	ok := false
	if u.PasswordHash != "" && u.Status == StatusActive {
		if ok, err = s.Hasher.Verify(ctx, u.PasswordHash, pw); err != nil {
			return err
		}
	}
	outcome := "match"
	if !ok {
		outcome = "mismatch"
	}
	err = s.Store.Update(ctx, func(tx store.Tx) error {
		if !ok {
			if _, err := tx.Hit(ctx, key, verifyFailuresWindow, now); err != nil {
				return err
			}
		}
		return s.audit(ctx, tx, a, "password.verify", institutionID, userID, outcome)
	})
	if err != nil {
		return err
	}
	if !ok {
		return ErrWrongPassword
	}
	return nil
}

func policyFor(st Settings) password.Policy {
	return password.Policy{MinLength: st.PasswordMinLength, History: st.PasswordHistory}
}

func (s *Service) checkAndHash(ctx context.Context, st Settings, pw, username string, history []string) (string, error) {
	v, err := policyFor(st).Check(ctx, s.Hasher, pw, username, history)
	if err != nil {
		return "", err
	}
	if len(v) > 0 {
		return "", &PolicyError{Violations: v}
	}
	return s.Hasher.Hash(ctx, pw)
}

// TokenInfo describes a live reset token without consuming it.
type TokenInfo struct {
	InstitutionID string
	UserID        string
	Username      string
	DisplayName   string
	Policy        password.Policy
	ExpiresAt     time.Time
}

// InspectToken checks a reset token without consuming it (opening a link
// must not spend it: mail scanners prefetch links).
func (s *Service) InspectToken(ctx context.Context, tok string) (TokenInfo, error) {
	if !wellFormedToken(tok) {
		return TokenInfo{}, ErrGone
	}
	var info TokenInfo
	err := s.Store.View(ctx, func(tx store.Tx) error {
		t, err := tx.LookupToken(ctx, hashToken(tok), s.Now())
		if err != nil {
			return goneIfNotFound(err)
		}
		if t.Purpose != PurposeLink && t.Purpose != PurposeOTP {
			return ErrGone // a dispute link is no reset link
		}
		st, err := s.settingsIn(ctx, tx, t.InstitutionID)
		if err != nil {
			return goneIfNotFound(err)
		}
		u, err := tx.User(ctx, t.InstitutionID, t.UserID)
		if err != nil {
			return goneIfNotFound(err)
		}
		info = TokenInfo{InstitutionID: t.InstitutionID, UserID: t.UserID, Username: u.Username, DisplayName: st.DisplayName, Policy: policyFor(st), ExpiresAt: t.ExpiresAt}
		return nil
	})
	return info, err
}

func goneIfNotFound(err error) error {
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, ErrNotFound) {
		return ErrGone
	}
	return err
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
	err := s.Store.View(ctx, func(tx store.Tx) (err error) {
		if t, err = tx.LookupToken(ctx, hash, s.Now()); err != nil {
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
	return s.Store.Update(ctx, func(tx store.Tx) error {
		now := s.Now()
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
			if err := s.queue(ctx, tx, t.InstitutionID, t.UserID, delivery.KindPasswordChanged, m); err != nil {
				return err
			}
		}
		if err := s.emit(ctx, tx, st, t.InstitutionID, t.UserID, delivery.EventPasswordChanged, nil); err != nil {
			return err
		}
		return s.audit(ctx, tx, a, "password.change", t.InstitutionID, t.UserID, "ok")
	})
}

// checkFactsAtChange counts a wrong fact like a wrong OTP try.
func (s *Service) checkFactsAtChange(ctx context.Context, a Actor, st Settings, u store.User, facts map[string]string) error {
	failKey := otpFailKey(u.InstitutionID, u.ID, "")
	var outcome error
	err := s.Store.Update(ctx, func(tx store.Tx) error {
		now := s.Now()
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
		return s.audit(ctx, tx, a, "password.change", u.InstitutionID, u.ID, "wrong_facts")
	})
	if err != nil {
		return err
	}
	return outcome
}

// Audit returns an institution's audit records since a time, newest last.
func (s *Service) Audit(ctx context.Context, institutionID string, since time.Time) ([]store.AuditRecord, error) {
	if err := checkIDs(institutionID); err != nil {
		return nil, err
	}
	if err := s.Store.View(ctx, func(tx store.Tx) error {
		_, err := s.settingsIn(ctx, tx, institutionID)
		return err
	}); err != nil {
		return nil, err
	}
	return s.Store.Audit(ctx, store.AuditFilter{InstitutionID: institutionID, Since: since, Limit: 1000})
}

// Deliveries returns a user's latest messages, newest first.
func (s *Service) Deliveries(ctx context.Context, institutionID, userID string) ([]store.Delivery, error) {
	if err := checkIDs(institutionID, userID); err != nil {
		return nil, err
	}
	if err := s.Store.View(ctx, func(tx store.Tx) error {
		if _, err := s.settingsIn(ctx, tx, institutionID); err != nil {
			return err
		}
		_, err := tx.User(ctx, institutionID, userID)
		return mapNotFound(err)
	}); err != nil {
		return nil, err
	}
	return s.Store.Deliveries(ctx, institutionID, userID, 50)
}
