// Command resetd is the password-reset service: the server and the
// operator's commands (SPEC §1).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/alecthomas/kong"
	"github.com/willabides/kongplete"

	"github.com/resetd/resetd/internal/app"
	"github.com/resetd/resetd/internal/buildinfo"
	"github.com/resetd/resetd/internal/config"
	"github.com/resetd/resetd/internal/password"
)

// version, when set at build time with -ldflags "-X main.version=…",
// overrides the module version the Go toolchain stamps (buildinfo).
var version = ""

// Globals are the flags every command takes.
type Globals struct {
	DB        string           `name:"db" env:"RESETD_DB" default:"${default_db}" help:"Database: sqlite:PATH or postgres://…"`
	SecretKey string           `name:"secret-key" env:"RESETD_SECRET_KEY" help:"32-byte key (hex or base64) that seals stored secrets and keys OTP, fact and contact-id hashes; NEW,OLD is a keyring during a rotation. Required: only serve --dev generates one (a trial)."`
	JSON      bool             `name:"json" help:"Print machine-readable JSON."`
	LogLevel  string           `name:"log-level" env:"RESETD_LOG_LEVEL" enum:"debug,info,warn,error" default:"info" help:"Log level: debug, info, warn or error (the queue's own lines only at debug)."`
	Config    kong.ConfigFlag  `name:"config" placeholder:"FILE" help:"YAML file with the same keys as the flags (e.g. addr, db, smtp). Flags win over environment variables, which win over the file."`
	Version   kong.VersionFlag `name:"version" help:"Print the version and exit."`

	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

// CLI is the whole command line.
type CLI struct {
	Globals

	Serve       ServeCmd       `cmd:"" help:"Run the server."`
	Migrate     MigrateCmd     `cmd:"" help:"Apply schema migrations (idempotent; safe while replicas run)."`
	Institution InstitutionCmd `cmd:"" help:"Manage institutions."`
	User        UserCmd        `cmd:"" help:"Manage users."`
	Reset       ResetCmd       `cmd:"" help:"Reset many users at once (bulk forced reset)."`
	Client      ClientCmd      `cmd:"" help:"Manage OAuth2 clients."`
	Keys        KeysCmd        `cmd:"" help:"Secret keys and signing keys: status, rewrap, list, rotate, retire."`
	Outbox      OutboxCmd      `cmd:"" help:"Inspect outgoing messages."`
	Audit       AuditCmd       `cmd:"" help:"Read the audit log."`
	Purge       PurgeCmd       `cmd:"" help:"Delete now what is past retention (the server also does so every hour)."`
	Version     VersionCmd     `cmd:"" help:"Print the module version and VCS revision."`
	Doctor      DoctorCmd      `cmd:"" help:"Check a configuration without changing anything (database, key, SMTP, SMS, URLs, clock)."`
	Bench       BenchCmd       `cmd:"" help:"Benchmark every flow against a real server on loopback, beside the machine's raw limits."`
	Completion  CompletionCmd  `cmd:"" help:"Print the shell completion script: eval \"$(resetd completion bash)\" (or zsh)."`
}

// CompletionCmd prints the script that makes the shell ask resetd itself
// for completions (github.com/willabides/kongplete answers them).
type CompletionCmd struct {
	Shell string `arg:"" enum:"bash,zsh" help:"bash or zsh."`
}

// Run prints the script.
func (c *CompletionCmd) Run(g *Globals) error {
	bin, err := os.Executable()
	if err != nil {
		return err
	}
	if c.Shell == "zsh" {
		fmt.Fprintln(g.stdout, "autoload -U +X bashcompinit && bashcompinit")
	}
	fmt.Fprintf(g.stdout, "complete -o default -C %s resetd\n", shellQuote(bin))
	return nil
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is main without the process: tests call it.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var cli CLI
	cli.stdin, cli.stdout, cli.stderr = stdin, stdout, stderr
	exit := -1
	parser, err := kong.New(&cli,
		kong.Name("resetd"),
		kong.Description("resetd: self-hosted password resets for digital banking."),
		kong.UsageOnError(),
		kong.Writers(stdout, stderr),
		kong.Exit(func(code int) { exit = code; panic(exitPanic{}) }),
		kong.BindTo(ctx, (*context.Context)(nil)),
		kong.Configuration(loadConfig),
		defaults(),
	)
	if err != nil {
		fmt.Fprintln(stderr, "resetd:", err)
		return 2
	}
	// The shell asks for completions by running resetd with COMP_LINE set
	// (the script resetd completion prints).
	if os.Getenv("COMP_LINE") != "" {
		completed := false
		kongplete.Complete(parser, kongplete.WithExitFunc(func(code int) { exit, completed = code, true }))
		if completed {
			return exit
		}
	}
	code, done := parseAndRun(parser, &cli, args, &exit)
	if done {
		return code
	}
	return 0
}

// defaults gives the flags' default tags the values internal/config
// states, so --help and app.Open cannot disagree.
func defaults() kong.Vars {
	return kong.Vars{
		"default_addr":                 config.Addr,
		"default_db":                   config.DB,
		"default_queue_workers":        strconv.Itoa(config.QueueWorkers),
		"default_retention_deliveries": strconv.Itoa(int(config.RetentionDeliveries/(24*time.Hour))) + "d",
		"default_retention_audit":      strconv.Itoa(int(config.RetentionAudit/(24*time.Hour))) + "d",
		// argon2's defaults are OWASP's, stated in the package that owns them.
		"default_argon2_memory":  strconv.FormatUint(uint64(password.DefaultParams.Memory), 10),
		"default_argon2_time":    strconv.FormatUint(uint64(password.DefaultParams.Time), 10),
		"default_argon2_threads": strconv.FormatUint(uint64(password.DefaultParams.Threads), 10),
		"version":                "resetd " + buildinfo.Read(version).String(),
	}
}

type exitPanic struct{}

func parseAndRun(parser *kong.Kong, cli *CLI, args []string, exit *int) (code int, done bool) {
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(exitPanic); !ok {
				panic(r)
			}
			code, done = *exit, true
		}
	}()
	kctx, err := parser.Parse(args)
	if err != nil {
		fmt.Fprintln(cli.stderr, "resetd:", err)
		return 2, true
	}
	if err := kctx.Run(&cli.Globals); err != nil {
		var ec interface{ ExitCode() int }
		if asExit(err, &ec) {
			return ec.ExitCode(), true
		}
		// A setting that cannot work is a usage error: nothing was opened.
		var ce *app.ConfigError
		if errors.As(err, &ce) {
			fmt.Fprintln(cli.stderr, "resetd:", err)
			return 2, true
		}
		fmt.Fprintln(cli.stderr, "resetd:", err)
		return 1, true
	}
	return 0, true
}
