// Package app wires resetd together from its configuration: the store, the
// secret key, the auth and reset services, the delivery workers and the
// HTTP server. The CLI and the integration tests use it alike, so tests
// run the same wiring as production.
package app

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/resetd/resetd/internal/auth"
	"github.com/resetd/resetd/internal/buildinfo"
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
	"github.com/resetd/resetd/internal/tracing"
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
	// TLSCert and TLSKey are PEM files: serve HTTPS (SPEC §15); ClientCA
	// a PEM bundle: ask for client certificates and verify them.
	TLSCert, TLSKey, ClientCA string
	// MetricsAddr serves /metrics, /healthz and /readyz apart from the
	// main listener, which then answers 404 for /metrics.
	MetricsAddr string

	// ConnsPerIP and MaxConns lower the connection caps of SPEC §15
	// (256 per source, 10,000 in all); 0 is the default.
	ConnsPerIP, MaxConns int
	// ReadTimeout bounds reading one request, body included; 0 is 15 s.
	ReadTimeout time.Duration
	// Dev is serve --dev: without a carrier, messages are written to the
	// log (recorded as "logged") instead of refusing to start (no SMTP) or
	// making the channel unavailable (no SMS); and without a secret key a
	// trial one is generated and stored in the database (SPEC §9).
	Dev bool
	// Command is an operator command: it may queue messages but never
	// sends them, so it needs no carrier; the server that works the queue
	// judges its own.
	Command bool
	// Server marks the process that will Serve: it alone may make the
	// first signing key, in Open, so the key exists when Open returns.
	Server bool
	// Version is a link-time version override (see buildinfo.Read).
	Version string

	Logger *slog.Logger
	// Now is the clock; nil is time.Now. Tests inject one.
	Now func() time.Time
	// HTTPClient carries SMS API calls; nil is a client with a timeout.
	HTTPClient *http.Client
	// WebhookAllow are CIDRs (or addresses) webhooks may reach although
	// they are inside: loopback, private, link-local… (--webhook-allow).
	WebhookAllow []string
	// WebhookRootCAs verify webhook receivers; nil is the system's roots
	// (tests trust the CA they made).
	WebhookRootCAs *x509.CertPool
	// QueueWorkers bounds concurrent deliveries; 0 is config.QueueWorkers.
	QueueWorkers int
	// Argon2 overrides the password-hash parameters (tests use cheap ones).
	Argon2 *password.Params
	// HashSlots bounds concurrent argon2id computations for new passwords
	// and their history; 0 is one per CPU.
	HashSlots int
	// LoginHashSlots bounds concurrent argon2id verifications for the
	// platform's login (passwords:verify), a pool of its own so the change
	// endpoints cannot starve it; 0 is one per CPU.
	LoginHashSlots int
	// BreachedPasswords is the base URL of a k-anonymity range API
	// (GET URL/range/{5 hex}); empty: no breached-password check.
	BreachedPasswords string
	// Retention of deliveries and audit; a zero field is its default
	// (config.RetentionDeliveries, config.RetentionAudit).
	Retention reset.Retention
	// Purged hears the counts of each periodic purge (tests wait on it).
	Purged func(reset.PurgeCounts)
	// Tracing turns OpenTelemetry traces on (internal/tracing).
	Tracing tracing.Options
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
	// LoginHasher is passwords:verify's own bounded hasher.
	LoginHasher *password.Hasher
	email       delivery.Sender
	sms         delivery.Sender
	queue       lifecycle
	tls         *tlsFiles
	// metricsLn is the --metrics-addr listener, opened by Open so a bad
	// address fails at start.
	metricsLn net.Listener
	// conns is the main listener's limiter while Serve runs.
	conns   atomic.Pointer[limitListener]
	tracing *tracing.Tracing
}

// ConfigError is a setting that cannot work, found before anything was
// opened: the command line exits 2 with it.
type ConfigError struct {
	Setting string // the flag, e.g. "--public-url"
	Problem string // what is wrong and how to fix it
}

func (e *ConfigError) Error() string { return e.Setting + ": " + e.Problem }

// carriers are the senders a configuration names, built before anything
// is opened.
type carriers struct {
	email, sms  delivery.Sender
	defaultFrom string
}

// Validate checks every setting without opening anything: Open calls it
// first, and the command line calls it before it listens.
func Validate(cfg Config) error {
	c, err := check(cfg)
	if cl, ok := c.email.(interface{ Close() error }); ok {
		cl.Close()
	}
	return err
}

func check(cfg Config) (carriers, error) {
	var c carriers
	if cfg.PublicURL != "" {
		if err := config.CheckBaseURL(cfg.PublicURL); err != nil {
			return c, &ConfigError{"--public-url", err.Error()}
		}
	}
	if cfg.SecretKey != "" {
		if _, err := seal.Parse(cfg.SecretKey); err != nil {
			return c, &ConfigError{"--secret-key", "must be 32 bytes written as 64 hex characters or base64, or a comma-separated keyring NEW,OLD with the current key first (make one with: openssl rand -hex 32): " + err.Error()}
		}
	}
	if err := checkDB(cfg.DB); err != nil {
		return c, err
	}
	if _, err := parseProxies(cfg.TrustedProxies); err != nil {
		return c, &ConfigError{"--trusted-proxy", err.Error()}
	}
	// Retention: zero is the default (Open fills it in); a negative one
	// would purge what is yet to come.
	if cfg.Retention.Deliveries < 0 {
		return c, &ConfigError{"--retention-deliveries", "must be a positive duration, e.g. 90d"}
	}
	if cfg.Retention.Audit < 0 {
		return c, &ConfigError{"--retention-audit", "must be a positive duration, e.g. 400d"}
	}
	switch {
	case cfg.SMTP != "":
		s, err := delivery.NewSMTPSender(cfg.SMTP)
		if err != nil {
			return c, &ConfigError{"--smtp", err.Error()}
		}
		if s.From() == "" {
			s.Close()
			return c, &ConfigError{"--smtp", "the URL needs from=ADDRESS, the sender of institutions that name none (e.g. smtp://relay.bank.example:587?from=noreply@bank.example)"}
		}
		c.email, c.defaultFrom = s, s.From()
	case cfg.Dev:
		c.email = delivery.LogSender{Logger: cfg.Logger}
	case !cfg.Command:
		return c, &ConfigError{"--smtp", "no email carrier is configured: set --smtp (RESETD_SMTP_URL), e.g. smtp://user:pass@relay.bank.example:587?from=noreply@bank.example, or run serve --dev to write messages to the log"}
	}
	switch {
	case cfg.SMS != "":
		s, err := delivery.NewSMSSender(cfg.SMS, cfg.HTTPClient)
		if err != nil {
			if cl, ok := c.email.(interface{ Close() error }); ok {
				cl.Close()
			}
			return c, &ConfigError{"--sms", err.Error()}
		}
		c.sms = s
	case cfg.Dev:
		c.sms = delivery.LogSender{Logger: cfg.Logger}
	}
	if c.defaultFrom == "" {
		c.defaultFrom = "noreply@localhost"
	}
	return c, nil
}

func checkDB(dsn string) error {
	if dsn == "" {
		dsn = config.DB
	}
	switch {
	case strings.HasPrefix(dsn, "sqlite:"):
		path, opts, _ := strings.Cut(strings.TrimPrefix(dsn, "sqlite:"), "?")
		if path == "" {
			return &ConfigError{"--db", "sqlite: needs a file path, e.g. sqlite:/var/lib/resetd/resetd.db"}
		}
		for _, kv := range strings.Split(opts, "&") {
			if k, _, _ := strings.Cut(kv, "="); k != "synchronous" && kv != "" {
				return &ConfigError{"--db", fmt.Sprintf("unknown sqlite option %q (known: synchronous)", kv)}
			}
		}
		return nil
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		return nil
	}
	return &ConfigError{"--db", "must be sqlite:PATH or postgres://…"}
}

// lifecycle is the part of the queue (internal/queue) that Serve runs.
type lifecycle interface {
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
}

// Open builds an App: opens and (unless NoMigrate) migrates the store and
// loads the secret key. The queue is not worked until Serve.
func Open(ctx context.Context, cfg Config) (*App, error) {
	params := password.DefaultParams
	if cfg.Argon2 != nil {
		params = *cfg.Argon2
	}
	// NewHasher panics on parameters argon2 cannot run; here they are a
	// configuration error with its reason.
	if err := params.Validate(); err != nil {
		return nil, fmt.Errorf("app: %w", err)
	}
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
	if cfg.PublicURL == "" && cfg.TLSCert != "" {
		cfg.PublicURL = "https://" + cfg.Addr
	}
	if cfg.QueueWorkers == 0 {
		cfg.QueueWorkers = config.QueueWorkers
	}
	if cfg.BreachedPasswords != "" {
		if u, err := url.Parse(cfg.BreachedPasswords); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			return nil, fmt.Errorf("app: --breached-passwords must be an http(s) URL without query or fragment, not %q", cfg.BreachedPasswords)
		}
	}
	if cfg.Retention.Deliveries == 0 {
		cfg.Retention.Deliveries = config.RetentionDeliveries
	}
	if cfg.Retention.Audit == 0 {
		cfg.Retention.Audit = config.RetentionAudit
	}
	// Every setting first: a bad one fails before anything is opened.
	c, err := check(cfg)
	if err != nil {
		return nil, err
	}
	cfg.PublicURL = config.PublicURL(cfg.PublicURL, cfg.Addr)
	proxies, _ := parseProxies(cfg.TrustedProxies) // checked above
	a := &App{cfg: cfg, Metrics: metrics.NewFor(buildinfo.Read(cfg.Version)), email: c.email, sms: c.sms}
	defaultFrom, sms := c.defaultFrom, c.sms
	allow, err := delivery.ParseAllow(cfg.WebhookAllow)
	if err != nil {
		return nil, err
	}
	webhooks := &delivery.WebhookPolicy{Allow: allow, RootCAs: cfg.WebhookRootCAs}
	if a.tls, err = newTLSFiles(cfg.TLSCert, cfg.TLSKey, cfg.ClientCA); err != nil {
		return nil, err
	}

	// The key before the store: a command refused for its key changes
	// nothing (SPEC §9).
	info, err := peekKeys(ctx, cfg.DB)
	if err != nil {
		a.Close()
		return nil, err
	}
	plan, err := planKey(cfg, info)
	if err != nil {
		a.Close()
		return nil, err
	}
	if a.tracing, err = tracing.New(ctx, cfg.Tracing); err != nil {
		a.Close()
		return nil, err
	}
	workers := river.NewWorkers()
	st, q, err := openStore(ctx, cfg, workers, a.tracing.QueueMiddleware())
	if err != nil {
		a.Close()
		return nil, err
	}
	a.Store, a.queue = st, q
	// The domain's transactions and the workers' writes get spans.
	traced := a.tracing.Store(st)
	if a.Key, err = recordKey(ctx, st, plan); err != nil {
		a.Close()
		return nil, err
	}
	sendWorker := &delivery.Worker{
		Key: a.Key, Email: a.email, SMS: sms, Recorder: traced, Logger: cfg.Logger, Now: cfg.Now,
		Observe: a.Metrics.ObserveMessage,
	}
	river.AddWorker(workers, sendWorker)
	river.AddWorker(workers, &delivery.BatchWorker{Send: sendWorker})
	river.AddWorker(workers, &delivery.BulkWorker{Send: sendWorker, Deliveries: st})
	river.AddWorker(workers, &delivery.WebhookWorker{Key: a.Key, Secrets: st, Client: webhooks.Client(10 * time.Second), Now: cfg.Now, Logger: cfg.Logger})
	if a.Auth, err = auth.New(ctx, traced, a.Key, cfg.PublicURL, cfg.Now); err != nil {
		a.Close()
		return nil, err
	}
	if cfg.Server {
		if err := a.Auth.EnsureSigningKey(ctx); err != nil {
			a.Close()
			return nil, err
		}
	}
	// The login's verifications have slots of their own and the first
	// claim on the cores (SPEC §10).
	loginHasher, hasher := password.NewHasherPair(params, cfg.LoginHashSlots, cfg.HashSlots, 0)
	a.Hasher, a.LoginHasher = hasher, loginHasher
	a.Metrics.WatchHasher("change", hasher)
	a.Metrics.WatchHasher("login", a.LoginHasher)
	var breaches password.BreachList
	if cfg.BreachedPasswords != "" {
		breaches = password.NewRangeAPI(cfg.BreachedPasswords, nil, a.Metrics.BreachListUnreachable)
	}
	a.Metrics.WatchQueue(st, cfg.Now)
	a.Metrics.WatchPasswordSchemes(st, hasher.CurrentPrefix(), cfg.Now)
	if p, ok := st.Transactor.(interface{ PoolStats() []store.PoolStat }); ok {
		a.Metrics.WatchPools(func() []metrics.PoolStat {
			var out []metrics.PoolStat
			for _, s := range p.PoolStats() {
				out = append(out, metrics.PoolStat(s))
			}
			return out
		})
	}
	a.Reset = reset.New(reset.Config{
		Store: traced, Hasher: hasher, LoginHasher: a.LoginHasher, Breaches: breaches, Key: a.Key, Templates: delivery.DefaultTemplates(),
		PublicURL: cfg.PublicURL, DefaultFrom: defaultFrom, Now: cfg.Now, Logger: cfg.Logger, Observer: a.Metrics,
		NoSMS:    sms == nil && !cfg.Command,
		Webhooks: webhooks,
	})
	river.AddWorker(workers, &purgeWorker{reset: a.Reset, retention: cfg.Retention, done: cfg.Purged})
	river.AddWorker(workers, &bulkWorker{reset: a.Reset, logger: cfg.Logger})
	a.Server = server.New(server.Config{Reset: a.Reset, Auth: a.Auth, Ready: st.Ping, Metrics: a.Metrics, Logger: cfg.Logger, TrustedProxies: proxies,
		MTLS: cfg.ClientCA != "", HSTS: strings.HasPrefix(cfg.PublicURL, "https://"), MetricsElsewhere: cfg.MetricsAddr != "", PublicURL: cfg.PublicURL})
	if cfg.MetricsAddr != "" {
		if a.metricsLn, err = net.Listen("tcp", cfg.MetricsAddr); err != nil {
			st.Close()
			return nil, fmt.Errorf("app: --metrics-addr: %w", err)
		}
	}
	web.Register(a.Server, web.Config{Reset: a.Reset, Key: a.Key, PublicURL: cfg.PublicURL, Now: cfg.Now, Logger: cfg.Logger}) // the reset page (SPEC §6)
	return a, nil
}

// openStore opens (and unless told not to migrates) the backend cfg.DB
// names, and attaches the queue that works workers (nil: insert only).
func openStore(ctx context.Context, cfg Config, workers *river.Workers, mw []rivertype.Middleware) (store.Store, lifecycle, error) {
	q := queue.Options{
		Workers: workers, MaxWorkers: cfg.QueueWorkers, RetryPolicy: delivery.RetryPolicy{}, MaxAttempts: delivery.MaxAttempts, Logger: queueLogger(ctx, cfg.Logger),
		// Webhook events on a queue of their own (SPEC §11).
		// Bulk forced resets on queues of their own: a bulk never stands
		// between an ordinary message and its worker.
		Queues: map[string]int{delivery.QueueWebhook: delivery.WebhookWorkers, delivery.QueueBulk: delivery.BulkWorkers, delivery.QueueBulkSend: delivery.BulkSendWorkers},
		// Events and a bulk's steps may wait a second after a quiet spell;
		// a bulk's paced sends may not (they keep its rate).
		Quiet:      []string{delivery.QueueWebhook, delivery.QueueBulk},
		Middleware: mw,
		// A message cut off by a crash goes out again within seconds; so
		// does a bulk's step (a slice of seconds, inside the attempt timeout).
		QuickRescue: []string{delivery.SendArgs{}.Kind(), delivery.SendBatchArgs{}.Kind(), delivery.WebhookArgs{}.Kind(), delivery.BulkSendArgs{}.Kind(), delivery.BulkRunArgs{}.Kind()},
	}
	if workers != nil {
		q.Periodic = []queue.Periodic{{Every: reset.PurgeEvery, Job: purgeJob}}
	}
	dsn := cfg.DB
	if dsn == "" {
		dsn = config.DB
	}
	if err := checkDB(dsn); err != nil {
		return store.Store{}, nil, err
	}
	switch {
	case strings.HasPrefix(dsn, "sqlite:"):
		path, opts, _ := strings.Cut(strings.TrimPrefix(dsn, "sqlite:"), "?")
		o := sqlite.Options{Logger: queueLogger(ctx, cfg.Logger)}
		for _, kv := range strings.Split(opts, "&") {
			if k, v, _ := strings.Cut(kv, "="); k == "synchronous" {
				o.Synchronous = v
			} else if kv != "" {
				return store.Store{}, nil, fmt.Errorf("app: unknown sqlite option %q", kv)
			}
		}
		s, err := sqlite.Open(ctx, path, o)
		if err := migrated(ctx, s, err, cfg.NoMigrate); err != nil {
			return store.Store{}, nil, err
		}
		q.Poll = true // SQLite has no LISTEN/NOTIFY
		return attached(store.Of(s, s, s, s), s, q)
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		// pgx's pool_* parameters in the URL size the pool (docs/DEPLOYMENT.md).
		s, err := postgres.Open(ctx, dsn, postgres.Options{Logger: queueLogger(ctx, cfg.Logger)})
		if err := migrated(ctx, s, err, cfg.NoMigrate); err != nil {
			return store.Store{}, nil, err
		}
		return attached(store.Of(s, s, s, s), s, q)
	default:
		return store.Store{}, nil, fmt.Errorf("app: --db must be sqlite:PATH or postgres://…, not %q", dsn)
	}
}

// queueLogger is the logger of River (the queue and its migrations): River
// reports migrations, producer counts and cleaner runs at INFO, which is
// noise to an operator, so only its warnings pass unless the log level
// is debug.
func queueLogger(ctx context.Context, l *slog.Logger) *slog.Logger {
	if l.Enabled(ctx, slog.LevelDebug) {
		return l
	}
	return slog.New(minLevel{l.Handler(), slog.LevelWarn})
}

// minLevel passes records at or above level to a handler.
type minLevel struct {
	slog.Handler
	level slog.Level
}

func (h minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.level && h.Handler.Enabled(ctx, l)
}
func (h minLevel) WithAttrs(as []slog.Attr) slog.Handler {
	return minLevel{h.Handler.WithAttrs(as), h.level}
}
func (h minLevel) WithGroup(name string) slog.Handler {
	return minLevel{h.Handler.WithGroup(name), h.level}
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
		return store.Store{}, nil, err
	}
	return st, q, nil
}

// Migrate checks the key as every command does, then opens the store,
// applies migrations and closes it.
func Migrate(ctx context.Context, cfg Config) error {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	// The settings first, as Open checks them: nothing is opened for a bad one.
	cfg.Command = true
	if err := Validate(cfg); err != nil {
		return err
	}
	info, err := peekKeys(ctx, cfg.DB)
	if err != nil {
		return err
	}
	plan, err := planKey(cfg, info)
	if err != nil {
		return err
	}
	s, _, err := openStore(ctx, cfg, nil, nil)
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

// Purge runs the purge now with the configured retention (resetd purge).
func (a *App) Purge(ctx context.Context, dryRun bool) (reset.PurgeCounts, error) {
	return a.Reset.Purge(ctx, a.cfg.Retention, dryRun)
}

// PublicURL is the base of links resetd serves.
func (a *App) PublicURL() string { return a.cfg.PublicURL }

// MetricsAddr is the address of the --metrics-addr listener, "" without.
func (a *App) MetricsAddr() string {
	if a.metricsLn == nil {
		return ""
	}
	return a.metricsLn.Addr().String()
}

// ReloadTLS rereads the TLS certificate, key and client CA (SIGHUP): new
// handshakes use them, open connections go on. On an error the files in
// use stay.
func (a *App) ReloadTLS() error {
	if a.tls == nil {
		return errors.New("app: no TLS configured")
	}
	return a.tls.load()
}

// OpenConns is the number of connections the main listener holds (0
// outside Serve).
func (a *App) OpenConns() int {
	if l := a.conns.Load(); l != nil {
		return l.count()
	}
	return 0
}

// Serve works the delivery queue and serves HTTP (HTTPS with TLS
// configured) on ln until ctx ends, then shuts down in order: stop
// accepting, finish in-flight requests, finish running deliveries
// (bounded).
func (a *App) Serve(ctx context.Context, ln net.Listener) error {
	if a.cfg.Command {
		return errors.New("app: an operator command's App has no carriers and cannot serve")
	}
	// Only a server makes the first signing key (SPEC §9).
	if err := a.Auth.EnsureSigningKey(ctx); err != nil {
		return err
	}
	// The queue outlives ctx: River cancels the jobs of a client whose
	// start context ends, which would cut a send off mid-SMTP (delivered,
	// yet recorded as failed and sent again). Stop below stops it softly,
	// letting running sends finish and record.
	if err := a.queue.Start(context.WithoutCancel(ctx)); err != nil {
		return err
	}
	readTimeout := cmp.Or(a.cfg.ReadTimeout, 15*time.Second)
	limited := newLimitListener(ln, cmp.Or(a.cfg.ConnsPerIP, connsPerIP), cmp.Or(a.cfg.MaxConns, connsTotal), a.Metrics.RateLimited)
	a.conns.Store(limited)
	var serving net.Listener = limited
	hs := &http.Server{
		Handler:           a.tracing.Handler(a.Server, a.Server.Route),
		ReadHeaderTimeout: min(5*time.Second, readTimeout),
		ReadTimeout:       readTimeout,
		WriteTimeout:      30 * time.Second,
		// Short: a parked keep-alive connection holds a slot (SPEC §15).
		IdleTimeout:    30 * time.Second,
		MaxHeaderBytes: 32 << 10,
		ConnState:      limited.connState,
		ErrorLog:       slog.NewLogLogger(a.cfg.Logger.Handler(), slog.LevelWarn),
	}
	if a.tls != nil {
		hs.TLSConfig = a.tls.config()
		serving = tls.NewListener(limited, hs.TLSConfig)
	}
	servers := []*http.Server{hs}
	errc := make(chan error, 2)
	go func() { errc <- hs.Serve(serving) }()
	if a.metricsLn != nil {
		ms := &http.Server{Handler: a.Server.Management(), ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 15 * time.Second,
			WriteTimeout: 30 * time.Second, IdleTimeout: 30 * time.Second, ErrorLog: hs.ErrorLog}
		servers = append(servers, ms)
		go func() { errc <- ms.Serve(a.metricsLn) }()
	}
	// Failed authentications are audited aggregated, after their minute
	// (reset.AuthFailures); the last are written once no request is left.
	failCtx, stopFails := context.WithCancel(context.WithoutCancel(ctx))
	defer stopFails()
	failsDone := make(chan error, 1)
	go func() { failsDone <- a.Reset.AuthFailures().Run(failCtx) }()
	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}
	a.cfg.Logger.Info("shutting down: no new connections; finishing requests and running deliveries (at most 20s)")
	begun := time.Now()
	shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 20*time.Second)
	defer cancel()
	var err error
	for _, s := range servers {
		err = errors.Join(err, s.Shutdown(shutdown))
	}
	stopFails()
	if ferr := <-failsDone; ferr != nil {
		err = errors.Join(err, ferr)
	}
	if qerr := a.queue.Stop(shutdown); qerr != nil {
		err = errors.Join(err, qerr)
	}
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		a.cfg.Logger.Error("stopped: the listener failed", "err", serveErr)
		return serveErr
	}
	if err != nil {
		a.cfg.Logger.Warn("stopped before every request or delivery finished", "err", err, "took", time.Since(begun).Round(time.Millisecond).String())
	} else {
		a.cfg.Logger.Info("stopped cleanly", "took", time.Since(begun).Round(time.Millisecond).String())
	}
	return err
}

// Close releases the store and the senders.
func (a *App) Close() error {
	var err error
	if c, ok := a.email.(interface{ Close() error }); ok {
		err = c.Close()
	}
	// Spans of the last requests and jobs are exported before the end.
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = errors.Join(err, a.tracing.Shutdown(shutdown))
	if a.metricsLn != nil {
		a.metricsLn.Close() // already closed when Serve ran
	}
	if a.Store.Transactor != nil {
		err = errors.Join(err, a.Store.Close())
	}
	return err
}

// Carriers says what carries each channel: "smtp", "twilio", "webhook",
// "log" (serve --dev) or "none" (the channel is unavailable). It names no
// host and no credential, so it can be logged.
func (a *App) Carriers() (email, sms string) {
	return carrierName(a.email, a.cfg.SMTP), carrierName(a.sms, a.cfg.SMS)
}

func carrierName(s delivery.Sender, rawURL string) string {
	switch s.(type) {
	case nil:
		return "none"
	case delivery.LogSender:
		return "log"
	}
	scheme, _, _ := strings.Cut(rawURL, "://")
	scheme, _, _ = strings.Cut(scheme, "+") // webhook+https
	return scheme
}
