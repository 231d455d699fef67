package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/resetd/resetd/internal/app"
	"github.com/resetd/resetd/internal/reset"
)

// watched is a concurrency-safe buffer that can be waited on.
type watched struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{}
}

func newWatched() *watched { return &watched{changed: make(chan struct{})} }

func (w *watched) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, err := w.buf.Write(p)
	close(w.changed)
	w.changed = make(chan struct{})
	return n, err
}

// waitFor blocks until re matches the buffer and returns the match.
func (w *watched) waitFor(t *testing.T, re *regexp.Regexp) []string {
	t.Helper()
	timeout := time.After(60 * time.Second)
	for {
		w.mu.Lock()
		m := re.FindStringSubmatch(w.buf.String())
		ch := w.changed
		w.mu.Unlock()
		if m != nil {
			return m
		}
		select {
		case <-ch:
		case <-timeout:
			t.Fatalf("timed out waiting for %s in:\n%s", re, w.String())
		}
	}
}

func (w *watched) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// TestReadmeWalkthrough does what the README tells a newcomer: start
// `serve --dev`, run the printed curl commands, read the link in the log,
// and change the password with curl.
func TestReadmeWalkthrough(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl not installed: the README walk-through needs it")
	}
	db := "sqlite:" + filepath.Join(t.TempDir(), "resetd.db")
	stdout, stderr := newWatched(), newWatched()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--dev", "--addr", "127.0.0.1:0", "--db", db}, strings.NewReader(""), stdout, stderr)
	}()
	defer func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("serve exited %d; log:\n%s", code, stderr.String())
		}
		// Stopped, its deliveries recorded: the outbox says the message was
		// written to the log, not sent. No --secret-key: the command uses
		// the trial key serve --dev stored (SPEC §9).
		if code, out, errOut := runCLIRaw(t, "", "outbox", "list", "--json", "--db", db); code != 0 || !strings.Contains(out, `"state": "logged"`) || strings.Contains(out, `"state": "sent"`) {
			t.Errorf("outbox after serve --dev: exit %d\n%s%s", code, out, errOut)
		}
	}()
	script := stdout.waitFor(t, regexp.MustCompile(`(?s)client_id: (\S+)\nclient_secret: (\S+)\n.*# 1[^\n]*\n(TOKEN=[^\n]+)\n.*# 2[^\n]*\n(curl[^\n]+)\n.*# 3[^\n]*\n(curl[^\n]+)\n`))
	steps12 := script[3] + "\n" + script[4] + "\n"
	out, err := exec.Command("bash", "-c", steps12).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "{}" {
		t.Fatalf("steps 1-2 printed by serve --dev: %v\n%s\nscript:\n%s", err, out, steps12)
	}
	link := stderr.waitFor(t, regexp.MustCompile(`/reset\?token=([A-Za-z0-9_-]{43})`))
	step3 := strings.Replace(script[5], "TOKEN_FROM_THE_LINK", link[1], 1)
	out, err = exec.Command("bash", "-c", step3).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "HTTP/1.1 204") {
		t.Fatalf("step 3: %v\n%s", err, out)
	}
	if !strings.Contains(stderr.String(), "never run --dev in production") {
		t.Errorf("serve --dev does not warn that messages go to the log:\n%s", stderr)
	}
	// The token appears only in the dev log line of the message itself.
	if n := strings.Count(stderr.String(), link[1]); n != 1 {
		t.Errorf("the token appears %d times in the log, want only in the message's dev line", n)
	}
}

// cliKey is RESETD_SECRET_KEY of the in-process CLI tests.
const cliKey = "3b8e1f0a5c7d9e2b4a6c8d0e1f3a5b7c9d2e4f6a8b0c1d3e5f7a9b2c4d6e8f0a"

// runCLI runs a command with cliKey as --secret-key (unless args give one).
func runCLI(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	if !slices.Contains(args, "--secret-key") && !slices.Contains(args, "--help") {
		args = append(args, "--secret-key", cliKey)
	}
	return runCLIRaw(t, stdin, args...)
}

// runCLIRaw runs a command exactly as given.
func runCLIRaw(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

func TestOperatorCommands(t *testing.T) {
	t.Parallel()
	db := "sqlite:" + filepath.Join(t.TempDir(), "ops.db")
	ok := func(stdin string, args ...string) string {
		t.Helper()
		code, out, errOut := runCLI(t, stdin, append(args, "--db", db)...)
		if code != 0 {
			t.Fatalf("resetd %v: exit %d\n%s%s", args, code, out, errOut)
		}
		return out
	}
	ok("", "migrate")
	ok("", "migrate") // idempotent
	ok("", "institution", "put", "acme", "--name", "Acme Bank", "--link-base", "https://bank.example/reset", "--sender", "help@bank.example", "--default")
	ok("a long enough passphrase\n", "user", "put", "--institution", "acme", "u1", "--username", "jane", "--email", "jane@example.com", "--password-stdin")

	var created struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}
	out := ok("", "client", "create", "--institution", "acme", "--scope", "passwords:verify", "--name", "login", "--json")
	if err := json.Unmarshal([]byte(out), &created); err != nil || created.ClientSecret == "" {
		t.Fatalf("client create printed %q", out)
	}

	// What the CLI stored works through the real wiring: the secret
	// authenticates, and the password from stdin (without its newline) verifies.
	ctx := context.Background()
	a, err := app.Open(ctx, app.Config{DB: db, SecretKey: cliKey, Command: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Auth.Authenticate(ctx, created.ClientID, created.ClientSecret); err != nil {
		t.Errorf("created client does not authenticate: %v", err)
	}
	if err := a.Reset.VerifyPassword(ctx, reset.Actor{ClientID: "test"}, "acme", "u1", "a long enough passphrase"); err != nil {
		t.Errorf("password from --password-stdin: %v", err)
	}
	st, _ := a.Reset.Settings(ctx, "acme")
	if st.DisplayName != "Acme Bank" || st.LinkBases[0] != "https://bank.example/reset" || st.Senders[0] != "help@bank.example" {
		t.Errorf("institution put stored %+v", st)
	}
	a.Close()

	var audit struct {
		Records []struct{ Action, InstitutionID, UserID string }
	}
	if err := json.Unmarshal([]byte(ok("", "audit", "--institution", "acme", "--json")), &audit); err != nil {
		t.Fatal(err)
	}
	if len(audit.Records) < 2 || audit.Records[len(audit.Records)-1].Action != "password.verify" {
		t.Errorf("audit: %+v", audit.Records)
	}
	if out := ok("", "outbox", "list"); !strings.HasPrefix(out, "ID") {
		t.Errorf("outbox list: %q", out)
	}
	if out := ok("", "version"); !strings.HasPrefix(out, "resetd ") {
		t.Errorf("version: %q", out)
	}

	for _, c := range []struct {
		name  string
		stdin string
		args  []string
		code  int
		says  string
	}{
		{"weak password", "123456\n", []string{"user", "put", "--institution", "acme", "u2", "--username", "x", "--password-stdin"}, 1, "password refused"},
		{"unknown institution", "", []string{"user", "put", "--institution", "nope", "u2", "--username", "x"}, 1, "no such institution"},
		{"bad email", "", []string{"user", "put", "--institution", "acme", "u2", "--username", "x", "--email", "nope"}, 1, "email"},
		{"unknown scope", "", []string{"client", "create", "--institution", "acme", "--scope", "root"}, 1, "scope"},
		{"http link base", "", []string{"institution", "put", "evil", "--name", "E", "--link-base", "http://evil.example/r"}, 1, "https"},
		{"unknown command", "", []string{"frobnicate"}, 2, "unexpected argument"},
		{"bad db", "", []string{"migrate", "--db", "mysql://x"}, 2, "sqlite:PATH"},
	} {
		code, out, errOut := runCLI(t, c.stdin, append(c.args, "--db", db)...)
		if c.name == "bad db" {
			code, out, errOut = runCLI(t, c.stdin, c.args...)
		}
		if code != c.code || !strings.Contains(out+errOut, c.says) {
			t.Errorf("%s: exit %d, output %q, want exit %d mentioning %q", c.name, code, out+errOut, c.code, c.says)
		}
	}
	if code, out, _ := runCLI(t, "", "--help"); code != 0 || !strings.Contains(out, "serve") || !strings.Contains(out, "client") {
		t.Errorf("--help: exit %d\n%s", code, out)
	}
}

func TestUserImport(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db := "sqlite:" + filepath.Join(dir, "import.db")
	if code, out, errOut := runCLI(t, "", "institution", "put", "acme", "--name", "Acme", "--db", db); code != 0 {
		t.Fatalf("institution put: %s%s", out, errOut)
	}
	csvText := "userId,username,email,phone\n" +
		"u1,alice,alice@example.com,+14155550101\n" +
		"u2,bob,not-an-email,\n" + // line 3: bad email
		"u3,carol,,+19005550100\n" + // line 4: premium rate
		"u4,ALICE,a2@example.com,\n" + // line 5: username taken on line 2
		"bad id,dave,,\n" + // line 6: malformed id
		"u7,\"erin\",erin@example.com,\n" +
		"u8,\"unterminated,x,\n" // line 8: CSV error
	path := filepath.Join(dir, "users.csv")
	if err := os.WriteFile(path, []byte(csvText), 0o600); err != nil {
		t.Fatal(err)
	}
	// A dry run validates and writes nothing.
	code, out, errOut := runCLI(t, "", "user", "import", "--institution", "acme", path, "--dry-run", "--db", db)
	if code != 1 || !strings.Contains(out, "2 valid") {
		t.Fatalf("dry run: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = runCLI(t, "", "user", "import", "--institution", "acme", path, "--json", "--db", db, "--batch", "2")
	var res struct {
		Rows, Imported int
		Rejected       []struct {
			Line   int
			Reason string
		}
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != 1 {
		t.Fatalf("import: exit %d %v\n%s%s", code, err, out, errOut)
	}
	lines := map[int]string{}
	for _, r := range res.Rejected {
		lines[r.Line] = r.Reason
	}
	if res.Imported != 2 || len(lines) != 5 || lines[3] == "" || lines[4] == "" || lines[5] == "" || lines[6] == "" || lines[8] == "" {
		t.Fatalf("imported %d, rejected %v", res.Imported, lines)
	}
	if !strings.Contains(errOut, "line 3 rejected: email") || !strings.Contains(errOut, "import:") {
		t.Errorf("stderr lacks the per-line reasons or progress:\n%s", errOut)
	}
	ctx := context.Background()
	a, err := app.Open(ctx, app.Config{DB: db, SecretKey: cliKey, Command: true})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	for name, want := range map[string]int{"alice": 1, "erin": 1, "bob": 0, "dave": 0} {
		if got, _ := a.Reset.FindUsers(ctx, "acme", name); len(got) != want {
			t.Errorf("%s: %d users, want %d", name, len(got), want)
		}
	}
	// Re-importing a clean file exits 0 and keeps the users (upsert).
	clean := filepath.Join(dir, "clean.csv")
	os.WriteFile(clean, []byte("userId,username,email,phone\nu1,alice,alice@example.com,+14155550101\n"), 0o600)
	if code, out, errOut := runCLI(t, "", "user", "import", "--institution", "acme", clean, "--db", db); code != 0 || !strings.Contains(out, "1 imported, 0 rejected") {
		t.Fatalf("clean import: exit %d %s%s", code, out, errOut)
	}
}

func TestConfigFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db := "sqlite:" + filepath.Join(dir, "conf.db")
	conf := filepath.Join(dir, "resetd.yaml")
	os.WriteFile(conf, []byte("db: "+db+"\n"), 0o600)
	if code, out, errOut := runCLI(t, "", "--config", conf, "institution", "put", "acme", "--name", "Acme"); code != 0 {
		t.Fatalf("with --config: exit %d %s%s", code, out, errOut)
	}
	if _, err := os.Stat(filepath.Join(dir, "conf.db")); err != nil {
		t.Fatalf("the file's db was not used: %v", err)
	}
	os.WriteFile(conf, []byte("db: "+db+"\nsmtp-url: smtp://x\n"), 0o600)
	if code, _, errOut := runCLI(t, "", "--config", conf, "migrate"); code == 0 || !strings.Contains(errOut, "unknown keys smtp-url") {
		t.Errorf("a typo in the config file must be refused: exit %d %s", code, errOut)
	}
}

// SPEC §10 from the CLI: `user put --password-stdin` on an existing user
// under maker-checker exits 1 with the reason and changes nothing;
// `user state` and `user unlock` serve support.
func TestUserSupportCommands(t *testing.T) {
	t.Parallel()
	db := "sqlite:" + filepath.Join(t.TempDir(), "support.db")
	ok := func(stdin string, args ...string) string {
		t.Helper()
		code, out, errOut := runCLI(t, stdin, append(args, "--db", db)...)
		if code != 0 {
			t.Fatalf("resetd %v: exit %d\n%s%s", args, code, out, errOut)
		}
		return out
	}
	ok("", "migrate")
	ok("", "institution", "put", "acme", "--name", "Acme Bank", "--link-base", "https://bank.example/reset", "--default")
	ok("a long enough passphrase\n", "user", "put", "--institution", "acme", "u1", "--username", "jane", "--email", "jane@example.com", "--password-stdin")
	ctx := context.Background()
	a, err := app.Open(ctx, app.Config{DB: db, SecretKey: cliKey, Command: true})
	if err != nil {
		t.Fatal(err)
	}
	on := true
	if _, err := a.Reset.UpdateSettings(ctx, reset.Actor{ClientID: "test"}, "acme", reset.SettingsPatch{AdminResetApproval: &on}); err != nil {
		t.Fatal(err)
	}
	a.Close()

	code, out, errOut := runCLI(t, "another long passphrase\n", "user", "put", "--institution", "acme", "u1", "--username", "jane", "--email", "jane@example.com", "--password-stdin", "--db", db)
	if code != 1 || !strings.Contains(out+errOut, "approval required") {
		t.Errorf("user put --password-stdin under approval: exit %d, %q", code, out+errOut)
	}
	// A new user with a password is provisioning: allowed.
	ok("a third long passphrase\n", "user", "put", "--institution", "acme", "u2", "--username", "sam", "--password-stdin")

	var st map[string]any
	if err := json.Unmarshal([]byte(ok("", "user", "state", "--institution", "acme", "u1", "--json")), &st); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"lockedUntil", "emailCooldownUntil", "phoneCooldownUntil", "liveLinks", "liveOTP", "sendsThisHour", "wrongTriesToday"} {
		if _, has := st[k]; !has {
			t.Errorf("state --json lacks %s: %v", k, st)
		}
	}
	if len(st) != 7 {
		t.Errorf("state --json has %d fields: %v", len(st), st)
	}
	if out := ok("", "user", "state", "--institution", "acme", "u1"); !strings.Contains(out, "not locked") {
		t.Errorf("user state: %q", out)
	}
	if out := ok("", "user", "unlock", "--institution", "acme", "u1"); !strings.Contains(out, "unlocked") {
		t.Errorf("user unlock: %q", out)
	}
	if code, out, errOut := runCLI(t, "", "user", "state", "--institution", "acme", "ghost", "--db", db); code != 1 || !strings.Contains(out+errOut, "no such") {
		t.Errorf("state of an unknown user: exit %d %q", code, out+errOut)
	}

	a, err = app.Open(ctx, app.Config{DB: db, SecretKey: cliKey, Command: true})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if err := a.Reset.VerifyPassword(ctx, reset.Actor{ClientID: "test"}, "acme", "u1", "a long enough passphrase"); err != nil {
		t.Errorf("the refused put changed the password: %v", err)
	}
	audit := ok("", "audit", "--institution", "acme", "--json")
	for _, action := range []string{"support.state", "support.unlock"} {
		if !strings.Contains(audit, `"`+action+`"`) {
			t.Errorf("audit lacks %s", action)
		}
	}
}
