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
	"strings"
	"text/tabwriter"
	"time"

	"github.com/resetd/resetd/internal/app"
	"github.com/resetd/resetd/internal/auth"
	"github.com/resetd/resetd/internal/delivery"
	"github.com/resetd/resetd/internal/reset"
	"github.com/resetd/resetd/internal/server"
)

func asExit(err error, target *interface{ ExitCode() int }) bool { return errors.As(err, target) }

// exitError ends a command with a code and no further message.
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit %d", int(e)) }
func (e exitError) ExitCode() int { return int(e) }

func (g *Globals) logger(dev bool) *slog.Logger {
	level := slog.LevelInfo
	if isTerminal(g.stderr) || dev {
		return slog.New(slog.NewTextHandler(g.stderr, &slog.HandlerOptions{Level: level}))
	}
	return slog.New(slog.NewJSONHandler(g.stderr, &slog.HandlerOptions{Level: level}))
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
	a, err := app.Open(ctx, app.Config{DB: g.DB, SecretKey: g.SecretKey, Logger: g.warnLogger()})
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

func (g *Globals) printJSON(v any) error {
	enc := json.NewEncoder(g.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// ServeCmd runs the server.
type ServeCmd struct {
	Addr           string   `name:"addr" env:"RESETD_ADDR" default:"${default_addr}" help:"Listen address."`
	PublicURL      string   `name:"public-url" env:"RESETD_PUBLIC_URL" help:"Base of links resetd itself serves (default http://ADDR)."`
	SMTP           string   `name:"smtp" env:"RESETD_SMTP_URL" help:"smtp://user:pass@host:port?tls=none|starttls|implicit&from=addr; unset: messages go to the log."`
	SMS            string   `name:"sms" env:"RESETD_SMS_URL" help:"twilio://SID:TOKEN@host:port?from=+1555…&scheme=https|http or webhook+https://host/path?secret=…; unset: messages go to the log."`
	TrustedProxies []string `name:"trusted-proxy" env:"RESETD_TRUSTED_PROXIES" sep:"," help:"CIDRs whose X-Forwarded-For is believed."`
	NoMigrate      bool     `name:"no-migrate" help:"Do not apply migrations on start."`
	Dev            bool     `name:"dev" help:"Seed a demo institution, user and client and print how to use them."`
	QueueWorkers   int      `name:"queue-workers" default:"${default_queue_workers}" help:"Concurrent deliveries."`
}

// Run serves until the context ends (SIGINT/SIGTERM).
func (c *ServeCmd) Run(ctx context.Context, g *Globals) error {
	logger := g.logger(c.Dev)
	// Listen first so that --addr 127.0.0.1:0 yields links with the real port.
	ln, err := net.Listen("tcp", c.Addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	defer ln.Close()
	a, err := app.Open(ctx, app.Config{
		Addr: ln.Addr().String(), DB: g.DB, PublicURL: c.PublicURL, SMTP: c.SMTP, SMS: c.SMS, SecretKey: g.SecretKey,
		TrustedProxies: c.TrustedProxies, NoMigrate: c.NoMigrate, Logger: logger, QueueWorkers: c.QueueWorkers, Dev: c.Dev, Server: true,
	})
	if err != nil {
		return g.keyFailure(err)
	}
	defer a.Close()
	if c.Dev {
		if err := seedDemo(ctx, a, g.stdout); err != nil {
			return err
		}
	}
	logger.Info("resetd listening", "addr", ln.Addr().String(), "public_url", a.PublicURL(), "db", redactDSN(g.DB), "version", version)
	return a.Serve(ctx, ln)
}

// Demo identifiers of serve --dev.
const (
	demoInstitution = "demo"
	demoUser        = "demo-user"
)

func seedDemo(ctx context.Context, a *app.App, out io.Writer) error {
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
	fmt.Fprintf(out, `resetd --dev: demo institution %q, demo user %q (username "demo", email demo@example.com)
client_id: %s
client_secret: %s

# 1. get an access token
TOKEN=$(curl -s -u '%s:%s' -d grant_type=client_credentials %s%s | sed 's/.*"access_token":"\([^"]*\)".*/\1/')

# 2. send a reset link to the demo user (no SMTP configured: the email, link included, is written to this log)
curl -s -X POST -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' -d '{"method":"email"}' %s%s/institutions/%s/users/%s/password/reset

# 3. take the token from the link in the log, and set a new password
curl -s -i -X POST -H 'Content-Type: application/json' -d '{"token":"TOKEN_FROM_THE_LINK","newPassword":"correct horse battery staple"}' %s%s/password/change

`, demoInstitution, demoUser, id, secret, id, secret, base, server.TokenPath, base, server.P, demoInstitution, demoUser, base, server.P)
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
	Put    UserPutCmd    `cmd:"" help:"Create or replace a user."`
	Import UserImportCmd `cmd:"" help:"Import users from a CSV file (userId,username,email,phone); upserts in batches."`
}

// UserPutCmd creates or replaces a user.
type UserPutCmd struct {
	Institution   string `name:"institution" required:"" help:"Institution id."`
	ID            string `arg:"" name:"userid" help:"User id."`
	Username      string `name:"username" required:"" help:"Username."`
	Email         string `name:"email" help:"Email address."`
	Phone         string `name:"phone" help:"Phone number in E.164 (+14155550100)."`
	PasswordStdin bool   `name:"password-stdin" help:"Read the password from one line of standard input."`
}

// Run puts the user.
func (c *UserPutCmd) Run(ctx context.Context, g *Globals) error {
	var pw *string
	if c.PasswordStdin {
		line, err := bufio.NewReader(g.stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("reading password: %w", err)
		}
		line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
		pw = &line
	}
	a, err := g.open(ctx)
	if err != nil {
		return err
	}
	defer a.Close()
	created, err := a.Reset.PutUser(ctx, reset.Actor{ClientID: "cli"}, c.Institution, c.ID, reset.UserInput{Username: c.Username, Email: c.Email, Phone: c.Phone, Password: pw})
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
	case errors.Is(err, reset.ErrNotFound):
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
	id, secret, err := a.Auth.CreateClient(ctx, c.Institution, c.Name, c.Scopes)
	if err != nil {
		return err
	}
	// The secret is shown here once; only its hash is stored.
	return json.NewEncoder(g.stdout).Encode(map[string]string{"client_id": id, "client_secret": secret})
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
	Institution string `name:"institution" help:"Only this institution."`
	Since       string `name:"since" help:"RFC 3339 time or a duration ago (e.g. 24h)."`
	Limit       int    `name:"limit" default:"1000" help:"At most this many (the newest)."`
}

// Run prints audit records, newest last.
func (c *AuditCmd) Run(ctx context.Context, g *Globals) error {
	var since time.Time
	if c.Since != "" {
		if d, err := time.ParseDuration(c.Since); err == nil {
			since = time.Now().Add(-d)
		} else if since, err = time.Parse(time.RFC3339, c.Since); err != nil {
			return errors.New("--since must be an RFC 3339 time or a duration")
		}
	}
	a, err := g.open(ctx)
	if err != nil {
		return err
	}
	defer a.Close()
	rs, err := a.Reset.OperatorAudit(ctx, c.Institution, since, c.Limit)
	if err != nil {
		return err
	}
	if g.JSON {
		return g.printJSON(map[string]any{"records": rs})
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tACTION\tINSTITUTION\tUSER\tCLIENT\tIP\tOUTCOME\tTRANSACTION")
	for _, r := range rs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Time.Format(time.RFC3339), r.Action, r.InstitutionID, r.UserID, r.ClientID, r.IP, r.Outcome, r.TransactionID)
	}
	return tw.Flush()
}

// VersionCmd prints the version.
type VersionCmd struct{}

// Run prints.
func (c *VersionCmd) Run(g *Globals) error {
	if g.JSON {
		return g.printJSON(map[string]string{"version": version})
	}
	fmt.Fprintln(g.stdout, "resetd", version)
	return nil
}

// redactDSN hides a database password from logs.
func redactDSN(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.User != nil {
		return u.Redacted()
	}
	return dsn
}
