// Package app wires resetd together from its configuration: the store, the
// secret key, the auth and reset services, the delivery workers and the
// HTTP server. The CLI and the integration tests use it alike, so tests
// run the same wiring as production.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/riverqueue/river"

	"github.com/resetd/resetd/internal/auth"
	"github.com/resetd/resetd/internal/config"
	"github.com/resetd/resetd/internal/delivery"
	"github.com/resetd/resetd/internal/metrics"
	"github.com/resetd/resetd/internal/password"
	"github.com/resetd/resetd/internal/queue"
	"github.com/resetd/resetd/internal/request"
	"github.com/resetd/resetd/internal/reset"
	"github.com/resetd/resetd/internal/seal"
	"github.com/resetd/resetd/internal/server"
	"github.com/resetd/resetd/internal/store"
	"github.com/resetd/resetd/internal/store/postgres"
	"github.com/resetd/resetd/internal/store/sqlite"
	"github.com/resetd/resetd/internal/web"
)

// Config is everything SPEC §1 lets an operator set, plus test hooks. An
// unset Addr, DB, PublicURL or QueueWorkers takes internal/config's default.
type Config struct {
	Addr           string
	DB             string
	PublicURL      string
	SMTP           string
	SMS            string
	SecretKey      string
	TrustedProxies []string
	NoMigrate      bool
	// Dev allows generating a trial secret key (serve --dev only).
	Dev bool
	// Server marks the process that will Serve: it alone may make the
	// first signing key, in Open, so the key exists when Open returns.
	Server bool

	Logger *slog.Logger
	// Now is the clock; nil is time.Now. Tests inject one.
	Now func() time.Time
	// HTTPClient carries SMS API calls; nil is a client with a timeout.
	HTTPClient *http.Client
	// QueueWorkers bounds concurrent deliveries; 0 is config.QueueWorkers.
	QueueWorkers int
	// Argon2 overrides the password-hash parameters (tests use cheap ones).
	Argon2 *password.Params
	// HashSlots bounds concurrent argon2id computations; 0 is one per CPU.
	HashSlots int
}

// App is a wired resetd.
type App struct {
	cfg     Config
	Store   store.Store
	Key     *seal.Key
	Auth    *auth.Service
	Reset   *reset.Service
	Server  *server.Server
	Metrics *metrics.Metrics
	// Hasher is the bounded argon2id hasher the domain uses (tests watch
	// its slots).
	Hasher *password.Hasher
	email  delivery.Sender
	queue  lifecycle
}

// lifecycle is the part of the queue (internal/queue) that Serve runs.
type lifecycle interface {
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
}

// Open builds an App: opens and (unless NoMigrate) migrates the store and
// loads the secret key. The queue is not worked until Serve.
func Open(ctx context.Context, cfg Config) (*App, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	// Every part logs through this one: a line logged during a request
	// carries its transaction id.
	cfg.Logger = request.Logger(cfg.Logger)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Addr == "" {
		cfg.Addr = config.Addr
	}
	cfg.PublicURL = config.PublicURL(cfg.PublicURL, cfg.Addr)
	if cfg.QueueWorkers == 0 {
		cfg.QueueWorkers = config.QueueWorkers
	}
	proxies, err := parseProxies(cfg.TrustedProxies)
	if err != nil {
		return nil, err
	}
	a := &App{cfg: cfg, Metrics: metrics.New()}

	// Senders first: a bad URL should fail before anything is opened.
	var sms delivery.Sender = delivery.LogSender{Logger: cfg.Logger}
	a.email = delivery.LogSender{Logger: cfg.Logger}
	defaultFrom := "noreply@localhost"
	if cfg.SMTP != "" {
		s, err := delivery.NewSMTPSender(cfg.SMTP)
		if err != nil {
			return nil, err
		}
		a.email = s
		if s.From() != "" {
			defaultFrom = s.From()
		}
	}
	if cfg.SMS != "" {
		if sms, err = delivery.NewSMSSender(cfg.SMS, cfg.HTTPClient); err != nil {
			return nil, err
		}
	}

	// The key before the store: a command refused for its key changes
	// nothing (SPEC §9).
	info, err := peekKeys(ctx, cfg.DB)
	if err != nil {
		return nil, err
	}
	plan, err := planKey(cfg, info)
	if err != nil {
		return nil, err
	}
	workers := river.NewWorkers()
	st, q, err := openStore(ctx, cfg, workers)
	if err != nil {
		return nil, err
	}
	a.Store, a.queue = st, q
	if a.Key, err = recordKey(ctx, st, plan); err != nil {
		st.Close()
		return nil, err
	}
	sendWorker := &delivery.Worker{
		Key: a.Key, Email: a.email, SMS: sms, Recorder: st, Logger: cfg.Logger, Now: cfg.Now,
		Observe: a.Metrics.ObserveMessage,
	}
	river.AddWorker(workers, sendWorker)
	river.AddWorker(workers, &delivery.WebhookWorker{Key: a.Key, Secrets: st, Client: cfg.HTTPClient, Now: cfg.Now, Logger: cfg.Logger})
	if a.Auth, err = auth.New(ctx, st, a.Key, cfg.PublicURL, cfg.Now); err != nil {
		st.Close()
		return nil, err
	}
	if cfg.Server {
		if err := a.Auth.EnsureSigningKey(ctx); err != nil {
			st.Close()
			return nil, err
		}
	}
	params := password.DefaultParams
	if cfg.Argon2 != nil {
		params = *cfg.Argon2
	}
	hasher := password.NewHasher(params, cfg.HashSlots, 0)
	a.Hasher = hasher
	a.Metrics.WatchHasher(hasher)
	a.Metrics.WatchQueue(st, cfg.Now)
	a.Reset = reset.New(reset.Config{
		Store: st, Hasher: hasher, Key: a.Key, Templates: delivery.DefaultTemplates(),
		PublicURL: cfg.PublicURL, DefaultFrom: defaultFrom, Now: cfg.Now, Logger: cfg.Logger, Observer: a.Metrics,
	})
	a.Server = server.New(server.Config{Reset: a.Reset, Auth: a.Auth, Ready: st.Ping, Metrics: a.Metrics, Logger: cfg.Logger, TrustedProxies: proxies})
	web.Register(a.Server, web.Config{Reset: a.Reset, Key: a.Key, PublicURL: cfg.PublicURL, Now: cfg.Now, Logger: cfg.Logger}) // the reset page (SPEC §6)
	return a, nil
}

// openStore opens (and unless told not to migrates) the backend cfg.DB
// names, and attaches the queue that works workers (nil: insert only).
func openStore(ctx context.Context, cfg Config, workers *river.Workers) (store.Store, lifecycle, error) {
	q := queue.Options{Workers: workers, MaxWorkers: cfg.QueueWorkers, RetryPolicy: delivery.RetryPolicy{}, MaxAttempts: delivery.MaxAttempts, Logger: cfg.Logger}
	dsn := cfg.DB
	if dsn == "" {
		dsn = config.DB
	}
	switch {
	case strings.HasPrefix(dsn, "sqlite:"):
		path, opts, _ := strings.Cut(strings.TrimPrefix(dsn, "sqlite:"), "?")
		o := sqlite.Options{Logger: cfg.Logger}
		for _, kv := range strings.Split(opts, "&") {
			if k, v, _ := strings.Cut(kv, "="); k == "synchronous" {
				o.Synchronous = v
			} else if kv != "" {
				return nil, nil, fmt.Errorf("app: unknown sqlite option %q", kv)
			}
		}
		s, err := sqlite.Open(ctx, path, o)
		if err := migrated(ctx, s, err, cfg.NoMigrate); err != nil {
			return nil, nil, err
		}
		q.Poll = true // SQLite has no LISTEN/NOTIFY
		return attached(s, s, q)
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		// pgx's pool_* parameters in the URL size the pool (docs/DEPLOYMENT.md).
		s, err := postgres.Open(ctx, dsn, postgres.Options{Logger: cfg.Logger})
		if err := migrated(ctx, s, err, cfg.NoMigrate); err != nil {
			return nil, nil, err
		}
		return attached(s, s, q)
	default:
		return nil, nil, fmt.Errorf("app: --db must be sqlite:PATH or postgres://…, not %q", dsn)
	}
}

// migrated applies a just-opened backend's migrations unless told not to;
// on an error the backend is closed.
func migrated(ctx context.Context, s interface {
	Migrate(context.Context) error
	Close() error
}, openErr error, noMigrate bool) error {
	if openErr != nil {
		return openErr
	}
	if !noMigrate {
		if err := s.Migrate(ctx); err != nil {
			s.Close()
			return err
		}
	}
	return nil
}

// attached builds the one queue of the process on the backend's driver
// (st and b are the same backend, seen as a store and as a queue carrier).
func attached[TTx any](st store.Store, b queue.Backend[TTx], o queue.Options) (store.Store, lifecycle, error) {
	q, err := queue.Attach(b, o)
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	return st, q, nil
}

// Migrate checks the key as every command does, then opens the store,
// applies migrations and closes it.
func Migrate(ctx context.Context, cfg Config) error {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	info, err := peekKeys(ctx, cfg.DB)
	if err != nil {
		return err
	}
	plan, err := planKey(cfg, info)
	if err != nil {
		return err
	}
	s, _, err := openStore(ctx, cfg, nil)
	if err != nil {
		return err
	}
	if _, err := recordKey(ctx, s, plan); err != nil {
		s.Close()
		return err
	}
	return s.Close()
}

func parseProxies(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, item := range list {
		for _, s := range strings.Split(item, ",") {
			s = strings.TrimSpace(s)
			if s == "" {
				continue
			}
			p, err := netip.ParsePrefix(s)
			if err != nil {
				a, aerr := netip.ParseAddr(s)
				if aerr != nil {
					return nil, fmt.Errorf("app: trusted proxy %q is not a CIDR", s)
				}
				p = netip.PrefixFrom(a, a.BitLen())
			}
			out = append(out, p.Masked())
		}
	}
	return out, nil
}

// PublicURL is the base of links resetd serves.
func (a *App) PublicURL() string { return a.cfg.PublicURL }

// Serve works the delivery queue and serves HTTP on ln until ctx ends,
// then shuts down in order: stop accepting, finish in-flight requests,
// finish running deliveries (bounded).
func (a *App) Serve(ctx context.Context, ln net.Listener) error {
	// Only a server makes the first signing key (SPEC §9).
	if err := a.Auth.EnsureSigningKey(ctx); err != nil {
		return err
	}
	if err := a.queue.Start(ctx); err != nil {
		return err
	}
	hs := &http.Server{
		Handler:           a.Server,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    32 << 10,
		ErrorLog:          slog.NewLogLogger(a.cfg.Logger.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}
	shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 20*time.Second)
	defer cancel()
	err := hs.Shutdown(shutdown)
	if qerr := a.queue.Stop(shutdown); qerr != nil {
		err = errors.Join(err, qerr)
	}
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return serveErr
	}
	return err
}

// Close releases the store and the senders.
func (a *App) Close() error {
	var err error
	if c, ok := a.email.(interface{ Close() error }); ok {
		err = c.Close()
	}
	return errors.Join(err, a.Store.Close())
}
