package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/resetd/resetd/internal/app"
	"github.com/resetd/resetd/internal/auth"
	"github.com/resetd/resetd/internal/buildinfo"
	"github.com/resetd/resetd/internal/delivery"
	"github.com/resetd/resetd/internal/password"
	"github.com/resetd/resetd/internal/reset"
	"github.com/resetd/resetd/internal/server"
	"github.com/resetd/resetd/internal/tracing"
)

func asExit(err error, target *interface{ ExitCode() int }) bool { return errors.As(err, target) }

// exitError ends a command with a code and no further message.
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit %d", int(e)) }
func (e exitError) ExitCode() int { return int(e) }

// logger writes text to a terminal and JSON anywhere else (a file, a
// pipe, journald), at --log-level.
func (g *Globals) logger() *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(g.LogLevel)) // kong's enum checked it
	opts := &slog.HandlerOptions{Level: level}
	if isTerminal(g.stderr) {
		return slog.New(slog.NewTextHandler(g.stderr, opts))
	}
	return slog.New(slog.NewJSONHandler(g.stderr, opts))
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// open wires the app for an operator command (no queue is worked).
func (g *Globals) open(ctx context.Context) (*app.App, error) {
	a, err := app.Open(ctx, app.Config{DB: g.DB, SecretKey: g.SecretKey, Command: true, Version: version, Logger: g.warnLogger()})
	return a, g.keyFailure(err)
}

func (g *Globals) warnLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(g.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// keyFailure turns a refused secret key into exit 2 (SPEC §9), the
// message on stderr; other errors pass through.
func (g *Globals) keyFailure(err error) error {
	if errors.Is(err, app.ErrNoKey) || errors.Is(err, app.ErrKeyMismatch) {
		fmt.Fprintln(g.stderr, "resetd:", err)
		return exitError(2)
	}
	return err
}

// quietLogger logs warnings and errors of an operator command.
func (g *Globals) quietLogger() *slog.Logger {
	return g.warnLogger()
}

func (g *Globals) printJSON(v any) error {
	enc := json.NewEncoder(g.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// ServerFlags are the settings of a server: serve runs with them, doctor
// checks them.
type ServerFlags struct {
	Addr           string   `name:"addr" env:"RESETD_ADDR" default:"${default_addr}" help:"Listen address."`
	PublicURL      string   `name:"public-url" env:"RESETD_PUBLIC_URL" help:"Base of links resetd itself serves: an absolute https:// URL in production (default http://ADDR)."`
	SMTP           string   `name:"smtp" env:"RESETD_SMTP_URL" help:"smtp://user:pass@host:port?tls=none|starttls|implicit&from=addr. Required, except with --dev (messages then go to the log)."`
	SMS            string   `name:"sms" env:"RESETD_SMS_URL" help:"twilio://SID:TOKEN@host:port?from=+1555…&scheme=https|http or webhook+https://host/path?secret=…; unset: the SMS channel is unavailable (with --dev: messages go to the log)."`
	TrustedProxies []string `name:"trusted-proxy" env:"RESETD_TRUSTED_PROXIES" sep:"," help:"CIDRs whose X-Forwarded-For is believed."`
	Dev            bool     `name:"dev" help:"Development: seed a demo institution, user and client, print how to use them, and write messages without a carrier to the log."`
}

func (f ServerFlags) config(g *Globals) app.Config {
	return app.Config{Addr: f.Addr, DB: g.DB, PublicURL: f.PublicURL, SMTP: f.SMTP, SMS: f.SMS, SecretKey: g.SecretKey,
		TrustedProxies: f.TrustedProxies, Dev: f.Dev, Version: version}
}

// ServeCmd runs the server.
type ServeCmd struct {
	ServerFlags   `embed:""`
	NoMigrate     bool   `name:"no-migrate" help:"Do not apply migrations on start."`
	QueueWorkers  int    `name:"queue-workers" default:"${default_queue_workers}" help:"Concurrent deliveries."`
	TLSCert       string `name:"tls-cert" env:"RESETD_TLS_CERT" help:"PEM certificate (chain): serve HTTPS on --addr; reread on SIGHUP."`
	TLSKey        string `name:"tls-key" env:"RESETD_TLS_KEY" help:"PEM private key of --tls-cert."`
	ClientCA      string `name:"client-ca" env:"RESETD_CLIENT_CA" help:"PEM CA bundle: ask for client certificates and verify them (tls_client_auth, certificate-bound tokens)."`
	MetricsAddr   string `name:"metrics-addr" env:"RESETD_METRICS_ADDR" help:"Serve /metrics, /healthz and /readyz on this address instead of --addr (where /metrics then answers 404)."`
	Retention     `embed:""`
	Argon2Memory  uint32   `name:"argon2-memory" env:"RESETD_ARGON2_MEMORY" default:"${default_argon2_memory}" help:"argon2id memory of new password hashes, KiB (8·threads to 1048576)."`
	Argon2Time    uint32   `name:"argon2-time" env:"RESETD_ARGON2_TIME" default:"${default_argon2_time}" help:"argon2id passes of new password hashes (1 to 10)."`
	Argon2Threads uint8    `name:"argon2-threads" env:"RESETD_ARGON2_THREADS" default:"${default_argon2_threads}" help:"argon2id parallelism of new password hashes (1 to 16)."`
	WebhookAllow  []string `name:"webhook-allow" env:"RESETD_WEBHOOK_ALLOW" sep:"," help:"CIDRs inside (loopback, private, link-local…) that institutions' webhooks may reach; plain http only to these."`
	// BreachedPasswords is a k-anonymity range API (SPEC §10).
	// CPUProfile is for `resetd bench`, which runs the server as a child
	// process and profiles it there.
	CPUProfile        string `name:"cpuprofile" hidden:"" help:"Write a CPU profile of this process, from start to shutdown, to this file."`
	BreachedPasswords string `name:"breached-passwords" env:"RESETD_BREACHED_PASSWORDS" help:"Base URL of a k-anonymity range API (GET URL/range/{first 5 hex of SHA-1}, e.g. https://api.pwnedpasswords.com); new passwords found there are refused as breached. Unset: no check."`
}

// Run serves until the context ends (SIGINT/SIGTERM).
func (c *ServeCmd) Run(ctx context.Context, g *Globals) error {
	logger := g.logger()
	cfg := c.config(g)
	cfg.NoMigrate, cfg.Logger, cfg.QueueWorkers = c.NoMigrate, logger, c.QueueWorkers
	cfg.TLSCert, cfg.TLSKey, cfg.ClientCA, cfg.MetricsAddr = c.TLSCert, c.TLSKey, c.ClientCA, c.MetricsAddr
	argon2 := password.DefaultParams
	argon2.Memory, argon2.Time, argon2.Threads = c.Argon2Memory, c.Argon2Time, c.Argon2Threads
	cfg.Argon2 = &argon2
	cfg.WebhookAllow, cfg.BreachedPasswords = c.WebhookAllow, c.BreachedPasswords
	cfg.Retention = c.retention()
	// OpenTelemetry's own variables turn traces on (docs/OPERATIONS.md).
	cfg.Tracing = tracing.Options{Enabled: os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""}
	// Checked before listening: a value argon2 cannot run is a start-up
	// error with its reason, not a panic at the first login.
	if err := argon2.Validate(); err != nil {
		return err
	}
	// Every flag before anything is opened or listened on.
	if err := app.Validate(cfg); err != nil {
		return err
	}
	if c.CPUProfile != "" {
		f, err := os.Create(c.CPUProfile)
		if err != nil {
			return fmt.Errorf("cpuprofile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("cpuprofile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	// Listen first so that --addr 127.0.0.1:0 yields links with the real port.
	ln, err := net.Listen("tcp", c.Addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	defer ln.Close()
	cfg.Addr = ln.Addr().String()
	cfg.Server = true // only a server makes the first signing key (SPEC §9)
	a, err := app.Open(ctx, cfg)
	if err != nil {
		return g.keyFailure(err)
	}
	defer a.Close()
	if tuneRuntime {
		tuneGC(logger, os.LookupEnv, a.Hasher.MaxMemory()+a.LoginHasher.MaxMemory())
	}
	email, sms := a.Carriers()
	if c.Dev {
		if err := seedDemo(ctx, a, g.stdout, email); err != nil {
			return err
		}
	}
	if c.TLSCert != "" {
		reloadOnHangup(ctx, a, logger)
	}
	kind, _, _ := strings.Cut(g.DB, ":")
	logger.Info("resetd listening", "addr", cfg.Addr, "version", buildinfo.Read(version).String(), "public_url", a.PublicURL(),
		"db", kind, "dsn", redactDSN(g.DB), "email", email, "sms", sms, "dev", c.Dev, "migrate", !c.NoMigrate, "metrics_addr", a.MetricsAddr(), "tls", c.TLSCert != "")
	if sms == "none" {
		logger.Warn("the SMS channel is unavailable: no --sms is set; SMS sends answer 409 …/channel-unavailable and OTP offers email only")
	}
	if email == "log" || sms == "log" {
		logger.Warn("--dev: messages without a carrier are written to this log, links and codes included, and recorded as logged; never run --dev in production")
	}
	if !c.Dev && strings.HasPrefix(a.PublicURL(), "http://") {
		logger.Warn("the public URL is plain http; customers' links should be https (set --public-url https://…)", "public_url", a.PublicURL())
	}
	return a.Serve(ctx, ln)
}

// reloadOnHangup rereads the TLS files on each SIGHUP until ctx ends:
// certificates rotate without a restart or a dropped connection.
func reloadOnHangup(ctx context.Context, a *app.App, logger *slog.Logger) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				if err := a.ReloadTLS(); err != nil {
					logger.Error("reloading TLS files; the old ones stay in use", "err", err)
					continue
				}
				logger.Info("TLS files reloaded")
			}
		}
	}()
}

// Demo identifiers of serve --dev.
const (
	demoInstitution = "demo"
	demoUser        = "demo-user"
)

func seedDemo(ctx context.Context, a *app.App, out io.Writer, email string) error {
	if _, err := a.Reset.PutInstitution(ctx, demoInstitution, "Demo Bank", nil, nil, true); err != nil {
		return err
	}
	if _, err := a.Reset.PutUser(ctx, reset.Actor{ClientID: "cli"}, demoInstitution, demoUser, reset.UserInput{
		Username: "demo", Email: "demo@example.com", Phone: "+14155550100",
	}); err != nil {
		return err
	}
	id, secret, err := a.Auth.CreateClient(ctx, demoInstitution, "demo (serve --dev)", auth.AllScopes)
	if err != nil {
		return err
	}
	base := a.PublicURL()
	where := "no SMTP configured: the email, link included, is written to this log"
	if email != "log" {
		where = "SMTP is configured: the email goes to demo@example.com through it; outbox list shows it"
	}
	fmt.Fprintf(out, `resetd --dev: demo institution %q, demo user %q (username "demo", email demo@example.com)
client_id: %s
client_secret: %s

# 1. get an access token
TOKEN=$(curl -s -u '%s:%s' -d grant_type=client_credentials %s%s | sed 's/.*"access_token":"\([^"]*\)".*/\1/')

# 2. send a reset link to the demo user (%s)
curl -s -X POST -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' -d '{"method":"email"}' %s%s/institutions/%s/users/%s/password/reset

# 3. take the token from the link in the log, and set a new password
curl -s -i -X POST -H 'Content-Type: application/json' -d '{"token":"TOKEN_FROM_THE_LINK","newPassword":"correct horse battery staple"}' %s%s/password/change

`, demoInstitution, demoUser, id, secret, id, secret, base, server.TokenPath, where, base, server.P, demoInstitution, demoUser, base, server.P)
	return nil
}

// MigrateCmd applies migrations.
type MigrateCmd struct{}

// Run migrates.
func (c *MigrateCmd) Run(ctx context.Context, g *Globals) error {
	if err := app.Migrate(ctx, app.Config{DB: g.DB, SecretKey: g.SecretKey, Logger: g.warnLogger()}); err != nil {
		return g.keyFailure(err)
	}
	if g.JSON {
		return g.printJSON(map[string]string{"status": "migrated"})
	}
	fmt.Fprintln(g.stdout, "migrations applied")
	return nil
}

// InstitutionCmd groups institution commands.
type InstitutionCmd struct {
	Put           InstitutionPutCmd           `cmd:"" help:"Create or update an institution."`
	WebhookSecret InstitutionWebhookSecretCmd `cmd:"" name:"webhook-secret" help:"Print the key an institution's webhook receiver verifies events with."`
}

// InstitutionWebhookSecretCmd prints (or rotates) an institution's webhook
// secret. It is stored sealed under the server key, so it is the same on
// every replica and survives a rotation of RESETD_SECRET_KEY.
type InstitutionWebhookSecretCmd struct {
	ID      string        `arg:"" name:"id" help:"Institution id."`
	Rotate  bool          `name:"rotate" help:"Make a new secret (printed once here, and by later calls)."`
	KeepOld time.Duration `name:"keep-old" help:"With --rotate: keep signing every event with the old secret too for this long (at most 168h)."`
}

// Run prints the secret(s).
func (c *InstitutionWebhookSecretCmd) Run(ctx context.Context, g *Globals) error {
	if c.KeepOld != 0 && !c.Rotate {
		return errors.New("--keep-old needs --rotate")
	}
	if c.KeepOld < 0 || c.KeepOld > delivery.MaxWebhookOverlap {
		return fmt.Errorf("--keep-old must be between 0 and %s", delivery.MaxWebhookOverlap)
	}
	a, err := g.open(ctx)
	if err != nil {
		return err
	}
	defer a.Close()
	if _, err := a.Reset.Settings(ctx, c.ID); err != nil {
		return describe(err)
	}
	now := time.Now()
	if c.Rotate {
		if _, err := delivery.RotateWebhookSecret(ctx, a.Store, a.Key, c.ID, c.KeepOld, now); err != nil {
			return err
		}
		if err := a.Reset.AuditOperator(ctx, "institution.webhook_secret_rotate", c.ID); err != nil {
			return err
		}
	}
	secrets, err := delivery.WebhookSecrets(ctx, a.Store, a.Key, c.ID, now)
	if err != nil {
		return err
	}
	if g.JSON {
		out := map[string]any{"institutionId": c.ID, "webhook_secret": secrets[0]}
		if len(secrets) > 1 {
			out["previous_webhook_secret"] = secrets[1]
		}
		return g.printJSON(out)
	}
	fmt.Fprintln(g.stdout, secrets[0])
	if len(secrets) > 1 {
		fmt.Fprintf(g.stderr, "the previous secret (%s…) also signs every event until the overlap ends\n", secrets[1][:12])
	}
	return nil
}

// InstitutionPutCmd creates or updates an institution.
type InstitutionPutCmd struct {
	ID        string   `arg:"" name:"id" help:"Institution id."`
	Name      string   `name:"name" required:"" help:"Display name, shown in emails and on the page."`
	LinkBases []string `name:"link-base" help:"Allowed base of reset links (repeatable; the first is used)."`
	Senders   []string `name:"sender" help:"Allowed sender address (repeatable; the first is used)."`
	Default   bool     `name:"default" help:"Make this the institution of self-service requests without institutionId."`
}

// Run puts the institution.
func (c *InstitutionPutCmd) Run(ctx context.Context, g *Globals) error {
	a, err := g.open(ctx)
	if err != nil {
		return err
	}
	defer a.Close()
	st, err := a.Reset.PutInstitution(ctx, c.ID, c.Name, c.LinkBases, c.Senders, c.Default)
	if err != nil {
		return describe(err)
	}
	if g.JSON {
		return g.printJSON(map[string]any{"id": c.ID, "settings": st})
	}
	fmt.Fprintf(g.stdout, "institution %s saved (%s)\n", c.ID, st.DisplayName)
	return nil
}

// UserCmd groups user commands.
type UserCmd struct {
	Put          UserPutCmd          `cmd:"" help:"Create a user, or change the fields given (--replace: the whole record)."`
	Import       UserImportCmd       `cmd:"" help:"Import users from a CSV file (userId,username,email,phone[,passwordHash][,locale]); upserts in batches; an empty cell keeps the stored value unless --replace."`
	FromKeycloak UserFromKeycloakCmd `cmd:"" name:"from-keycloak" help:"Convert a Keycloak export to the CSV user import reads, password hashes included (docs/MIGRATION.md)."`
	State        UserStateCmd        `cmd:"" help:"Show why a user may be blocked: dispute lock, contact cooldowns, live links and code, budgets."`
	Unlock       UserUnlockCmd       `cmd:"" help:"Lift a user's dispute lock and clear their wrong tries."`
	Delete       UserDeleteCmd       `cmd:"" help:"Delete a user (--erase: and pseudonymise them everywhere, for a GDPR request)."`
}

// UserDeleteCmd deletes a user.
type UserDeleteCmd struct {
	Institution string `name:"institution" required:"" help:"Institution id."`
	ID          string `arg:"" name:"userid" help:"User id."`
	Erase       bool   `name:"erase" help:"Replace the user id everywhere else (audit, deliveries, tokens, counters, queued jobs) by a keyed pseudonym."`
}

// Run deletes.
func (c *UserDeleteCmd) Run(ctx context.Context, g *Globals) error {
	a, err := g.open(ctx)
	if err != nil {
		return err
	}
	defer a.Close()
	del := a.Reset.DeleteUser
	if c.Erase {
		del = a.Reset.EraseUser
	}
	if err := del(ctx, reset.Actor{ClientID: "cli"}, c.Institution, c.ID); err != nil {
		return describeUser(err)
	}
	if !g.JSON {
		fmt.Fprintln(g.stdout, "deleted", c.ID)
	}
	return nil
}

// UserStateCmd prints a user's blocks and budgets (audited).
type UserStateCmd struct {
	Institution string `name:"institution" required:"" help:"Institution id."`
	ID          string `arg:"" name:"userid" help:"User id."`
}

// Run prints the state.
func (c *UserStateCmd) Run(ctx context.Context, g *Globals) error {
	a, err := g.open(ctx)
	if err != nil {
		return err
	}
	defer a.Close()
	st, err := a.Reset.State(ctx, reset.Actor{ClientID: "cli"}, c.Institution, c.ID)
	if err != nil {
		return describeUser(err)
	}
	if g.JSON {
		return g.printJSON(st)
	}
	until := func(t time.Time, none string) string {
		if t.IsZero() {
			return none
		}
		return t.UTC().Format(time.RFC3339)
	}
	fmt.Fprintf(g.stdout, "locked until:          %s\n", until(st.LockedUntil, "not locked"))
	fmt.Fprintf(g.stdout, "email cooldown until:  %s\n", until(st.EmailCooldownUntil, "none"))
	fmt.Fprintf(g.stdout, "phone cooldown until:  %s\n", until(st.PhoneCooldownUntil, "none"))
	fmt.Fprintf(g.stdout, "live links:            %d\n", st.LiveLinks)
	fmt.Fprintf(g.stdout, "live code:             %t\n", st.LiveOTP)
	fmt.Fprintf(g.stdout, "sends this hour:       %d\n", st.SendsThisHour)
	fmt.Fprintf(g.stdout, "wrong tries in 24 h:   %d\n", st.WrongTriesToday)
	return nil
}

// UserUnlockCmd lifts a dispute lock (audited).
type UserUnlockCmd struct {
	Institution string `name:"institution" required:"" help:"Institution id."`
	ID          string `arg:"" name:"userid" help:"User id."`
}

// Run unlocks the user.
func (c *UserUnlockCmd) Run(ctx context.Context, g *Globals) error {
	a, err := g.open(ctx)
	if err != nil {
		return err
	}
	defer a.Close()
	if err := a.Reset.Unlock(ctx, reset.Actor{ClientID: "cli"}, c.Institution, c.ID); err != nil {
		return describeUser(err)
	}
	fmt.Fprintf(g.stdout, "user %s unlocked in %s\n", c.ID, c.Institution)
	return nil
}

// describeUser is describe for commands naming a user.
func describeUser(err error) error {
	if errors.Is(err, reset.ErrNotFound) {
		return errors.New("no such institution or user")
	}
	return describe(err)
}

// UserPutCmd creates a user or changes the fields given.
type UserPutCmd struct {
	Institution   string  `name:"institution" required:"" help:"Institution id."`
	ID            string  `arg:"" name:"userid" help:"User id."`
	Username      *string `name:"username" help:"Username (required for a new user)."`
	Email         *string `name:"email" help:"Email address ('' clears it)."`
	Phone         *string `name:"phone" help:"Phone number in E.164 (+14155550100; '' clears it)."`
	Locale        *string `name:"locale" help:"The user's language as a BCP 47 tag (fr, de-AT, pt-BR; '' clears it): messages and pages use it when the institution offers it."`
	PasswordStdin bool    `name:"password-stdin" help:"Read the password from one line of standard input."`
	Replace       bool    `name:"replace" help:"Replace the whole record as the API's PUT does: a field not given is cleared, the status becomes active."`
}

// Run puts the user. Without --replace only the fields given change: the
// rest stay as stored (SPEC §17).
func (c *UserPutCmd) Run(ctx context.Context, g *Globals) error {
	if c.Replace && c.Username == nil {
		return errors.New("--replace needs --username: it writes the whole record")
	}
	if c.Locale != nil {
		if _, err := reset.NormalizeLocale(*c.Locale); err != nil {
			return describe(err)
		}
	}
	var pw *string
	if c.PasswordStdin {
		line, err := bufio.NewReader(g.stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("reading password: %w", err)
		}
		line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
		pw = &line
	}
	in := reset.UserInput{Username: deref(c.Username), Email: deref(c.Email), Phone: deref(c.Phone), Locale: deref(c.Locale), Password: pw}
	if !c.Replace {
		in.Keep = reset.Keep{Username: c.Username == nil, Email: c.Email == nil, Phone: c.Phone == nil, Status: true, Locale: c.Locale == nil}
	}
	a, err := g.open(ctx)
	if err != nil {
		return err
	}
	defer a.Close()
	created, err := a.Reset.PutUser(ctx, reset.Actor{ClientID: "cli"}, c.Institution, c.ID, in)
	if err != nil {
		return describe(err)
	}
	if g.JSON {
		return g.printJSON(map[string]any{"institutionId": c.Institution, "id": c.ID, "created": created})
	}
	verb := "updated"
	if created {
		verb = "created"
	}
	fmt.Fprintf(g.stdout, "user %s %s in %s\n", c.ID, verb, c.Institution)
	return nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// describe turns domain errors into operator-readable ones.
func describe(err error) error {
	var pol *reset.PolicyError
	var inv *reset.InvalidError
	switch {
	case errors.As(err, &pol):
		var msgs []string
		for _, v := range pol.Violations {
			msgs = append(msgs, v.Message)
		}
		return fmt.Errorf("password refused: %s", strings.Join(msgs, " "))
	case errors.As(err, &inv):
		return errors.New(inv.Detail)
	case errors.Is(err, reset.ErrApprovalRequired):
		return errors.New("approval required: the institution has adminResetApproval on, so an existing user's password cannot be set directly; send a reset instead")
	case errors.Is(err, reset.ErrNotFound):
		var named *reset.NotFoundError
		if errors.As(err, &named) && named.What != "institution" {
			return errors.New("no such " + named.What)
		}
		return errors.New("no such institution (create it with: resetd institution put ID --name NAME)")
	}
	return err
}

// ClientCmd groups client commands.
type ClientCmd struct {
	Create       ClientCreateCmd       `cmd:"" help:"Create an OAuth2 client; its secret is printed once."`
	List         ClientListCmd         `cmd:"" help:"List clients."`
	Show         ClientShowCmd         `cmd:"" help:"Show one client."`
	Disable      ClientDisableCmd      `cmd:"" help:"Disable a client: invalid_client at once, its tokens refused by every replica within 10 s."`
	Enable       ClientEnableCmd       `cmd:"" help:"Enable a disabled client."`
	Delete       ClientDeleteCmd       `cmd:"" help:"Delete a client; its tokens are refused as a disabled one's."`
	RotateSecret ClientRotateSecretCmd `cmd:"" name:"rotate-secret" help:"Give a client a new secret (printed once); --keep-old lets the old one work a while."`
	SetScopes    ClientSetScopesCmd    `cmd:"" name:"set-scopes" help:"Replace a client's scopes."`
}

// ClientCreateCmd creates a client.
type ClientCreateCmd struct {
	Institution string   `name:"institution" required:"" help:"Institution id, or '*' for all."`
	Scopes      []string `name:"scope" required:"" help:"Scope (repeatable)."`
	Name        string   `name:"name" help:"A name for operators."`
	Auth        string   `name:"auth" default:"client_secret_basic" enum:"client_secret_basic,client_secret_post,private_key_jwt,tls_client_auth" help:"How the client authenticates: a secret, private_key_jwt (--jwks-file) or tls_client_auth (--tls-subject)."`
	JWKSFile    string   `name:"jwks-file" type:"existingfile" help:"The client's public JWK Set (private_key_jwt): P-256, Ed25519 or RSA >= 2048 keys."`
	TLSSubject  string   `name:"tls-subject" help:"Subject DN of the client's certificate (tls_client_auth), as openssl x509 -noout -subject -nameopt RFC2253 prints it."`
	RequireDPoP bool     `name:"require-dpop" help:"Issue this client DPoP-bound tokens only: a token request without a DPoP proof is refused."`
}

// Run creates the client.
func (c *ClientCreateCmd) Run(ctx context.Context, g *Globals) error {
	if c.Institution != auth.AllInstitutions && !reset.ValidID(c.Institution) {
		return errors.New("malformed institution id")
	}
	a, err := g.open(ctx)
	if err != nil {
		return err
	}
	defer a.Close()
	if c.Institution != auth.AllInstitutions {
		if _, err := a.Reset.Settings(ctx, c.Institution); err != nil {
			return describe(err)
		}
	}
	spec := auth.ClientSpec{InstitutionID: c.Institution, Name: c.Name, Scopes: c.Scopes, AuthMethod: c.Auth, TLSSubject: c.TLSSubject, RequireDPoP: c.RequireDPoP}
	if c.JWKSFile != "" {
		if spec.JWKS, err = os.ReadFile(c.JWKSFile); err != nil {
			return err
		}
	}
	id, secret, err := a.Auth.CreateClientSpec(ctx, spec)
	if err != nil {
		return err
	}
	out := map[string]any{"client_id": id, "token_endpoint_auth_method": c.Auth}
	if secret != "" {
		// The secret is shown here once; only its hash is stored.
		out["client_secret"] = secret
	}
	if c.RequireDPoP {
		out["dpop_bound_access_tokens"] = true
	}
	return json.NewEncoder(g.stdout).Encode(out)
}

// OutboxCmd groups outbox commands.
type OutboxCmd struct {
	List OutboxListCmd `cmd:"" help:"List recent outgoing messages."`
}

// OutboxListCmd lists deliveries.
type OutboxListCmd struct {
	Failed bool `name:"failed" help:"Only failed deliveries."`
	Limit  int  `name:"limit" default:"100" help:"At most this many."`
}

// Run lists.
func (c *OutboxListCmd) Run(ctx context.Context, g *Globals) error {
	a, err := g.open(ctx)
	if err != nil {
		return err
	}
	defer a.Close()
	ds, err := a.Reset.Outbox(ctx, c.Failed, c.Limit)
	if err != nil {
		return err
	}
	if g.JSON {
		return g.printJSON(map[string]any{"deliveries": ds})
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tINSTITUTION\tUSER\tKIND\tCHANNEL\tTO\tSTATE\tATTEMPTS\tERROR\tUPDATED")
	for _, d := range ds {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", d.ID, d.InstitutionID, d.UserID, d.Kind, d.Channel, d.Destination, d.State, d.Attempts, d.LastError, d.UpdatedAt.Format(time.RFC3339))
	}
	return tw.Flush()
}

// AuditCmd reads the audit log.
type AuditCmd struct {
	Institution string `name:"institution" help:"Only this institution (without it: every institution, and failures that named none that exists)."`
	Since       string `name:"since" help:"From this RFC 3339 time or duration ago (e.g. 24h), inclusive."`
	Until       string `name:"until" help:"Up to this RFC 3339 time or duration ago, exclusive."`
	JSONL       bool   `name:"jsonl" help:"Print one JSON record a line."`
}

// auditTime is an RFC 3339 time or a duration before now.
func auditTime(flag, v string, now time.Time) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(v); err == nil {
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("--%s must be an RFC 3339 time or a duration", flag)
	}
	return t, nil
}

// Run streams every matching audit record, oldest first, a page at a
// time: the log is never held in memory whole.
func (c *AuditCmd) Run(ctx context.Context, g *Globals) error {
	if c.JSONL && g.JSON {
		return errors.New("give --json or --jsonl, not both")
	}
	now := time.Now()
	var q reset.AuditQuery
	var err error
	if q.Since, err = auditTime("since", c.Since, now); err != nil {
		return err
	}
	if q.Until, err = auditTime("until", c.Until, now); err != nil {
		return err
	}
	a, err := g.open(ctx)
	if err != nil {
		return err
	}
	defer a.Close()
	out := bufio.NewWriter(g.stdout)
	defer out.Flush()
	enc := json.NewEncoder(out)
	switch {
	case g.JSON:
		fmt.Fprint(out, `{"records":[`)
	case !c.JSONL:
		fmt.Fprintln(out, "TIME\tACTION\tINSTITUTION\tUSER\tCLIENT\tIP\tOUTCOME\tCOUNT\tTRANSACTION")
	}
	first := true
	for {
		page, err := a.Reset.OperatorAudit(ctx, c.Institution, q)
		if err != nil {
			return describe(err)
		}
		for _, r := range page.Records {
			switch {
			case g.JSON:
				if !first {
					fmt.Fprint(out, ",")
				}
				b, err := json.Marshal(r)
				if err != nil {
					return err
				}
				out.Write(b)
			case c.JSONL:
				if err := enc.Encode(r); err != nil {
					return err
				}
			default:
				fields := []string{r.Time.Format(time.RFC3339), r.Action, r.InstitutionID, r.UserID, r.ClientID, r.IP, r.Outcome, strconv.Itoa(r.Count), r.TransactionID}
				for i, f := range fields {
					fields[i] = escapeText(f)
				}
				fmt.Fprintln(out, strings.Join(fields, "\t"))
			}
			first = false
		}
		if page.NextCursor == "" {
			break
		}
		q.Cursor = page.NextCursor
	}
	if g.JSON {
		fmt.Fprintln(out, "]}")
	}
	return out.Flush()
}

// escapeText makes a field safe for one line of text output: control
// characters (a newline that would forge a record, a tab that would shift
// the columns, an escape sequence for the terminal), line and paragraph
// separators, bidirectional overrides and bytes that are not UTF-8 are
// written as Go escapes, and a backslash as two, so every output line is
// one record and the escaping is unambiguous.
func escapeText(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\\':
			b.WriteString(`\\`)
		case unicode.IsControl(r) || r == '\u2028' || r == '\u2029' || (r >= '\u202a' && r <= '\u202e') || (r >= '\u2066' && r <= '\u2069'):
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteRune(r)
		}
		i += size
	}
	return b.String()
}

// DoctorCmd checks a server's configuration, changing nothing.
type DoctorCmd struct {
	ServerFlags  `embed:""`
	Institutions []string `name:"institution" help:"Also check this institution's link bases (repeatable; the default institution is always checked)."`
}

// Run prints every finding and exits 1 when any check failed.
func (c *DoctorCmd) Run(ctx context.Context, g *Globals) error {
	fs := app.Diagnose(ctx, c.config(g), c.Institutions)
	bad := 0
	for _, f := range fs {
		if !f.OK {
			bad++
		}
	}
	if g.JSON {
		if err := g.printJSON(map[string]any{"ok": bad == 0, "findings": fs}); err != nil {
			return err
		}
	} else {
		for _, f := range fs {
			mark := "ok     "
			if !f.OK {
				mark = "PROBLEM"
			}
			fmt.Fprintf(g.stdout, "%s  %-22s %s\n", mark, f.Check, f.Detail)
		}
		if bad == 0 {
			fmt.Fprintln(g.stdout, "no problems found")
		} else {
			fmt.Fprintf(g.stdout, "%d problem(s) found\n", bad)
		}
	}
	if bad > 0 {
		return exitError(1)
	}
	return nil
}

// VersionCmd prints the version.
type VersionCmd struct{}

// Run prints.
func (c *VersionCmd) Run(g *Globals) error {
	in := buildinfo.Read(version)
	if g.JSON {
		return g.printJSON(in)
	}
	fmt.Fprintln(g.stdout, "resetd", in.String())
	return nil
}

// redactDSN hides a database password from logs.
func redactDSN(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.User != nil {
		return u.Redacted()
	}
	return dsn
}
