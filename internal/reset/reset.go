// Package reset is the domain of resetd: institutions and their settings,
// the user directory, and every way a password is reset or checked — the
// admin reset link (link.go), the one-time passcode (otp.go), self-service
// "forgot password" (selfservice.go), the change that redeems a token
// (change.go) and the platform's login check (login.go) — with the bank
// defences around them: rate caps (caps.go), the dispute lock and contact
// cooldown (guards.go, dispute.go), knowledge facts (facts.go) and
// maker-checker approvals (approval.go). It owns the rules: tenant
// isolation, single use, expiry, limits, what is audited (records.go) and
// which messages and events go out (outbox.go). It decides; the store
// remembers and delivery carries. Each flow runs in one store transaction
// that also holds its audit record and its delivery jobs.
package reset

import (
	"context"
	"errors"
	"log/slog"
	"regexp"
	"time"

	"github.com/resetd/resetd/internal/config"
	"github.com/resetd/resetd/internal/delivery"
	"github.com/resetd/resetd/internal/password"
	"github.com/resetd/resetd/internal/seal"
	"github.com/resetd/resetd/internal/store"
)

// Token purposes.
const (
	// PurposeLink marks a reset link the admin API issued.
	PurposeLink = "link"
	// PurposeSelfService marks a reset link self-service issued: a newer
	// self-service link kills it, and it never kills an admin one.
	PurposeSelfService = "selfservice"
)

// User statuses.
const (
	StatusActive   = "active"
	StatusDisabled = "disabled"
)

// Store is what the domain needs of persistence: transactions, and the
// listings and the purge that reach beyond one transaction's worth of rows.
type Store interface {
	// Update runs fn in a write transaction; an error from fn rolls back.
	Update(ctx context.Context, fn func(store.Tx) error) error
	// View runs fn against a consistent read-only view.
	View(ctx context.Context, fn func(store.ReadTx) error) error
	// SerialWrites reports whether write transactions run one at a time.
	SerialWrites() bool
	// InstitutionUser reads both in one statement, outside a transaction.
	InstitutionUser(ctx context.Context, institutionID, userID string) (store.Institution, store.User, error)
	Audit(ctx context.Context, f store.AuditFilter) ([]store.AuditRecord, error)
	Deliveries(ctx context.Context, institutionID, userID string, limit int) ([]store.Delivery, error)
	AllDeliveries(ctx context.Context, failedOnly bool, limit int) ([]store.Delivery, error)
	Purge(ctx context.Context, kind store.PurgeKind, cutoff time.Time, limit int, dryRun bool) (int, error)
	Forget(ctx context.Context) error
	// BulkReader reads bulk forced resets outside a write transaction.
	store.BulkReader
}

// Config is what New needs. It is read once: a running Service keeps its
// own copy, so nothing outside the package can swap a dependency of a
// live service.
type Config struct {
	Store  Store
	Hasher *password.Hasher
	// LoginHasher verifies passwords for the platform's login
	// (VerifyPassword); nil is Hasher. A Hasher of its own keeps login
	// checks answering while the change endpoints use every slot of
	// Hasher (SPEC §10).
	LoginHasher *password.Hasher
	// Breaches, when not nil, is the breached-password list new
	// passwords are checked against (--breached-passwords).
	Breaches  password.BreachList
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
	// NoSMS says the server has no SMS carrier: SMS sends are refused
	// (ErrChannelUnavailable), OTP offers only email and no SMS notice is
	// queued.
	NoSMS bool
	// Webhooks checks a webhookUrl's addresses when it is set; nil is the
	// policy with nothing allowed inside.
	Webhooks URLChecker
}

// URLChecker refuses a webhook URL whose scheme or addresses break the
// webhook policy (delivery.WebhookPolicy).
type URLChecker interface {
	CheckURL(ctx context.Context, raw string) error
}

// Observer is told what the flows did, after their transaction committed.
type Observer interface {
	ResetIssued(channel, flow string)
	OTPVerified(outcome string)
	// PasswordChanged: a reset token was redeemed; via is the token's
	// purpose (link or otp).
	PasswordChanged(via string)
	// Disputed: a user confirmed "this wasn't me".
	Disputed()
}

type noObserver struct{}

func (noObserver) ResetIssued(string, string) {}
func (noObserver) OTPVerified(string)         {}
func (noObserver) PasswordChanged(string)     {}
func (noObserver) Disputed()                  {}

// Service runs the flows. Its dependencies are unexported and fixed at New.
type Service struct {
	store       Store
	hasher      *password.Hasher
	loginHasher *password.Hasher
	breaches    password.BreachList
	key         *seal.Key
	templates   *delivery.Templates
	publicURL   string
	defaultFrom string
	now         func() time.Time
	logger      *slog.Logger
	observer    Observer
	noSMS       bool
	webhooks    URLChecker
	// overrides caches parsed per-institution templates by their source.
	overrides *overrideCache
	// settings caches decoded settings by their stored document.
	settings *settingsCache
	// selfServicePad holds self-service answers until a floor (timing).
	selfServicePad latencyFloor
	// failures counts failed authentication (failures.go).
	failures *AuthFailures
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
	if c.Webhooks == nil {
		c.Webhooks = &delivery.WebhookPolicy{}
	}
	if c.LoginHasher == nil {
		c.LoginHasher = c.Hasher
	}
	s := &Service{
		store: c.Store, hasher: c.Hasher, loginHasher: c.LoginHasher, breaches: c.Breaches, key: c.Key, templates: c.Templates,
		publicURL: config.BaseURL(c.PublicURL), defaultFrom: c.DefaultFrom,
		now: c.Now, logger: c.Logger, observer: c.Observer, webhooks: c.Webhooks, noSMS: c.NoSMS,
		overrides: newOverrideCache(overrideCacheBytes),
		settings:  &settingsCache{},
	}
	s.failures = newAuthFailures(s)
	return s
}

// Actor is who asked: the client, its IP and the request's transaction id.
type Actor struct {
	ClientID      string
	IP            string
	TransactionID string
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

// smsNotice reports whether a notice by SMS can go to phone.
func (s *Service) smsNotice(st Settings, phone string) bool {
	return phone != "" && !s.noSMS && smsAllowed(st, phone) == nil
}

func mapNotFound(err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return ErrNotFound
	}
	return err
}

func goneIfNotFound(err error) error {
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, ErrNotFound) {
		return ErrGone
	}
	return err
}

func (s *Service) settingsIn(ctx context.Context, tx store.ReadTx, institutionID string) (Settings, error) {
	in, err := tx.Institution(ctx, institutionID)
	if err != nil {
		return Settings{}, notFound("institution", err)
	}
	return s.decode(in)
}

// userIn reads an institution's settings and one of its users: the
// institution or the user missing is ErrNotFound.
func (s *Service) userIn(ctx context.Context, tx store.ReadTx, institutionID, userID string) (Settings, store.User, error) {
	st, err := s.settingsIn(ctx, tx, institutionID)
	if err != nil {
		return st, store.User{}, err
	}
	u, err := tx.User(ctx, institutionID, userID)
	return st, u, notFound("user", err)
}

func (s *Service) decode(in store.Institution) (Settings, error) {
	key := settingsKey(in.ID, in.Settings)
	if st, ok := s.settings.get(key); ok {
		return st, nil
	}
	st, err := decodeSettings(in.Settings, s.publicURL)
	if err != nil {
		return st, err
	}
	if st.DisplayName == "" {
		st.DisplayName = in.ID
	}
	s.settings.put(key, st)
	return st, nil
}

func isNotFound(err error) bool { return errors.Is(err, store.ErrNotFound) }
