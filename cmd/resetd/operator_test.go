package main

// The operator's first week (SPEC §17) over the real command line: the
// carrier refusals, flags checked before any database file exists, user
// put and import keeping what they are not told, doctor and version.

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/resetd/resetd/internal/app"
	"github.com/resetd/resetd/internal/auth"
	"github.com/resetd/resetd/internal/mailtest"
	"github.com/resetd/resetd/internal/reset"
	"github.com/resetd/resetd/internal/store/postgres/pgtest"
)

const (
	testKey  = "7f1c0e5a9b2d4c6e8f0a1b3c5d7e9f1a2b4c6d8e0f1a3b5c7d9e1f2a4b6c8d0e"
	otherKey = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
)

// okCLI runs a command that must succeed and returns its stdout.
func okCLI(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	code, out, errOut := runCLI(t, stdin, args...)
	if code != 0 {
		t.Fatalf("resetd %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

func TestServeRefusesWithoutAnEmailCarrier(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "resetd.db")
	code, out, errOut := runCLI(t, "", "serve", "--addr", "127.0.0.1:0", "--db", "sqlite:"+path, "--secret-key", testKey)
	if code != 2 || !strings.Contains(errOut, "--smtp") || !strings.Contains(errOut, "--dev") {
		t.Fatalf("serve without --smtp: exit %d, output %q; want exit 2 naming --smtp and --dev", code, out+errOut)
	}
	if strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
		t.Errorf("the refusal should be one line, got %q", errOut)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("the refused serve created its database: %v", err)
	}
}

func TestFlagsAreCheckedBeforeTheDatabase(t *testing.T) {
	t.Parallel()
	mail := mailtest.NewServer(t)
	for _, tc := range []struct {
		name string
		args []string
		says string
	}{
		{"public URL without scheme", []string{"serve", "--dev", "--public-url", "reset.bank.example"}, "--public-url: must be an absolute http:// or https:// URL"},
		{"public URL with a query", []string{"serve", "--dev", "--public-url", "https://reset.bank.example/?x=1"}, "--public-url"},
		{"short key on serve", []string{"serve", "--dev", "--secret-key", "abc"}, "--secret-key: must be 32 bytes"},
		{"short key on an operator command", []string{"institution", "put", "acme", "--name", "Acme", "--secret-key", "abc"}, "--secret-key"},
		{"short key on user put", []string{"user", "put", "--institution", "acme", "u1", "--username", "jane", "--secret-key", "abc"}, "--secret-key"},
		{"smtp without from", []string{"serve", "--smtp", "smtp://" + mail.Addr() + "?tls=none", "--secret-key", testKey}, "--smtp: the URL needs from="},
		{"smtp with a bad scheme", []string{"serve", "--smtp", "http://" + mail.Addr(), "--secret-key", testKey}, "--smtp"},
		{"bad sms", []string{"serve", "--smtp", mail.URL("noreply@bank.example"), "--sms", "carrier-pigeon://x", "--secret-key", testKey}, "--sms"},
		{"bad proxy", []string{"serve", "--dev", "--trusted-proxy", "not-a-cidr"}, "--trusted-proxy"},
		{"unknown sqlite option", []string{"migrate", "--db", "sqlite:DBPATH?journal=off"}, "--db: unknown sqlite option"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "resetd.db")
			args := append([]string{}, tc.args...)
			hasDB := false
			for i, a := range args {
				if strings.Contains(a, "DBPATH") {
					args[i], hasDB = strings.ReplaceAll(a, "DBPATH", path), true
				}
			}
			if !hasDB {
				args = append(args, "--db", "sqlite:"+path)
			}
			args = append(args, "--addr", "127.0.0.1:0")
			if tc.args[0] != "serve" {
				args = args[:len(args)-2] // --addr is serve's
			}
			code, out, errOut := runCLI(t, "", args...)
			if code != 2 || !strings.Contains(errOut, tc.says) {
				t.Fatalf("exit %d, output %q; want exit 2 saying %q", code, out+errOut, tc.says)
			}
			if _, err := os.Stat(path); !os.IsNotExist(err) {
				t.Errorf("the database file exists after a refused flag: %v", err)
			}
		})
	}
}

// served is `resetd serve` running in this process, as main runs it.
type served struct {
	url    string
	stderr *watched
	stop   func() int
}

func startServe(t *testing.T, args ...string) served {
	t.Helper()
	stdout, stderr := newWatched(), newWatched()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, append([]string{"serve", "--addr", "127.0.0.1:0"}, args...), strings.NewReader(""), stdout, stderr)
	}()
	exited := -1
	stop := func() int {
		if exited == -1 {
			cancel()
			exited = <-done
		}
		return exited
	}
	t.Cleanup(func() { stop() })
	addr := stderr.waitFor(t, regexp.MustCompile(`"msg":"resetd listening".*"addr":"([^"]+)"`))
	return served{url: "http://" + addr[1], stderr: stderr, stop: stop}
}

func token(t *testing.T, base, id, secret string) string {
	t.Helper()
	req, _ := http.NewRequest("POST", base+"/a/oidc-provider/api/v0/token", strings.NewReader("grant_type=client_credentials"))
	req.SetBasicAuth(id, secret)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || tok.AccessToken == "" {
		t.Fatalf("token: %d %v", resp.StatusCode, err)
	}
	return tok.AccessToken
}

func call(t *testing.T, method, u, bearer, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, u, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+bearer)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return resp.StatusCode, m
}

func newClient(t *testing.T, db, institution string) (string, string) {
	t.Helper()
	args := []string{"client", "create", "--institution", institution, "--db", db, "--secret-key", testKey}
	for _, s := range auth.AllScopes {
		args = append(args, "--scope", s)
	}
	var c struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}
	out := okCLI(t, "", args...)
	if err := json.Unmarshal([]byte(out), &c); err != nil || c.ClientSecret == "" {
		t.Fatalf("client create printed %q", out)
	}
	return c.ClientID, c.ClientSecret
}

// Without --sms the SMS channel is unavailable; email goes through SMTP
// with the institution's name, and nothing secret reaches the log.
func TestServeWithoutSMS(t *testing.T) {
	t.Parallel()
	mail := mailtest.NewServer(t)
	db := "sqlite:" + filepath.Join(t.TempDir(), "resetd.db")
	okCLI(t, "", "migrate", "--db", db, "--secret-key", testKey)
	okCLI(t, "", "institution", "put", "acme", "--name", "Acme Bank", "--sender", "security@acme.example", "--link-base", "https://bank.example/reset", "--default", "--db", db, "--secret-key", testKey)
	okCLI(t, "", "user", "put", "--institution", "acme", "u1", "--username", "jane", "--email", "jane@customer.example", "--phone", "+14155550100", "--db", db, "--secret-key", testKey)
	id, secret := newClient(t, db, "acme")

	srv := startServe(t, "--db", db, "--secret-key", testKey, "--smtp", mail.URL("noreply@resetd.example"), "--public-url", "https://reset.bank.example")
	start := srv.stderr.waitFor(t, regexp.MustCompile(`"msg":"resetd listening"[^\n]*`))[0]
	for _, want := range []string{`"email":"smtp"`, `"sms":"none"`, `"db":"sqlite"`, `"public_url":"https://reset.bank.example"`} {
		if !strings.Contains(start, want) {
			t.Errorf("start-up line lacks %s: %s", want, start)
		}
	}
	srv.stderr.waitFor(t, regexp.MustCompile(`the SMS channel is unavailable`))
	tok := token(t, srv.url, id, secret)
	user := srv.url + apiP + "/institutions/acme/users/u1"

	status, body := call(t, "POST", user+"/password/reset", tok, `{"method":"sms"}`)
	if typ, _ := body["type"].(string); status != http.StatusConflict || !strings.HasSuffix(typ, "/channel-unavailable") {
		t.Fatalf("SMS send without --sms: %d %v, want 409 …/channel-unavailable", status, body)
	}
	status, body = call(t, "GET", user+"/contact-methods", tok, "")
	if cms, _ := body["contactMethods"].([]any); status != 200 || len(cms) != 1 || !strings.Contains(cms[0].(map[string]any)["type"].(string), "email") {
		t.Fatalf("contact methods without --sms: %d %v, want email only", status, body)
	}

	if status, body = call(t, "POST", user+"/password/reset", tok, `{"method":"email"}`); status != 200 {
		t.Fatalf("email send: %d %v", status, body)
	}
	got, err := mail.Wait(t.Context(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if from := got[0].Header.Get("From"); from != `"Acme Bank" <security@acme.example>` {
		t.Errorf("From = %q, want the institution's name and sender", from)
	}
	if a := got[0].Header.Get("Auto-Submitted"); a != "auto-generated" {
		t.Errorf("Auto-Submitted = %q", a)
	}
	link := regexp.MustCompile(`token=([A-Za-z0-9_-]{43})`).FindStringSubmatch(got[0].Text)
	if link == nil {
		t.Fatalf("no link in %q", got[0].Text)
	}
	// An orderly stop waits for running deliveries; then the outbox says
	// sent for what the carrier took.
	if code := srv.stop(); code != 0 {
		t.Fatalf("serve exited %d:\n%s", code, srv.stderr)
	}
	var ob struct {
		Deliveries []struct{ Kind, Channel, State string }
	}
	if err := json.Unmarshal([]byte(okCLI(t, "", "outbox", "list", "--json", "--db", db, "--secret-key", testKey)), &ob); err != nil {
		t.Fatal(err)
	}
	if len(ob.Deliveries) != 1 || ob.Deliveries[0].State != "sent" || ob.Deliveries[0].Channel != "email" {
		t.Errorf("outbox: %+v, want the one email sent\n%s", ob.Deliveries, srv.stderr)
	}
	logs := srv.stderr.String()
	for _, secret := range []string{link[1], "jane@customer.example", "+14155550100", testKey, secret} {
		if strings.Contains(logs, secret) {
			t.Errorf("the log holds %q:\n%s", secret, logs)
		}
	}
	if !strings.Contains(logs, `"msg":"stopped cleanly"`) {
		t.Errorf("no orderly shutdown line:\n%s", logs)
	}
	if regexp.MustCompile(`"level":"INFO"[^\n]*[Rr]iver`).MatchString(logs) {
		t.Errorf("River's INFO lines reach the log at --log-level info:\n%s", logs)
	}
}

// apiP is the API prefix (server.P), spelled here so the test reads
// like the README's curl lines.
const apiP = "/a/password-reset/api/v0"

// contacts lists a user's contact method types as an operator command's
// wiring sees them.
func contacts(t *testing.T, db, institution, user string) map[string]string {
	t.Helper()
	a, err := app.Open(context.Background(), app.Config{DB: db, SecretKey: testKey, Command: true})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	cms, err := a.Reset.ContactMethods(context.Background(), institution, user)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, c := range cms {
		out[c.Type] = c.Destination
	}
	return out
}

func notices(t *testing.T, db string) []string {
	t.Helper()
	var ob struct {
		Deliveries []struct{ Kind, Channel, Destination string }
	}
	out := okCLI(t, "", "outbox", "list", "--json", "--db", db, "--secret-key", testKey)
	if err := json.Unmarshal([]byte(out), &ob); err != nil {
		t.Fatalf("outbox list --json: %v\n%s", err, out)
	}
	if strings.Contains(out, `"InstitutionID"`) {
		t.Errorf("outbox list --json uses Go field names: %s", out)
	}
	var ns []string
	for _, d := range ob.Deliveries {
		if d.Kind == "contact_changed" {
			ns = append(ns, d.Channel+" "+d.Destination)
		}
	}
	return ns
}

// The README's operator sequence: contacts, then a password on its own.
func TestUserPutChangesOnlyTheFieldsGiven(t *testing.T) {
	t.Parallel()
	_, db, k := acmeDB(t)
	okCLI(t, "", append([]string{"user", "put", "--institution", "acme", "u1", "--username", "jane", "--email", "jane@example.com", "--phone", "+14155550100"}, k...)...)
	okCLI(t, "correct horse battery staple\n", append([]string{"user", "put", "--institution", "acme", "u1", "--password-stdin"}, k...)...)

	if c := contacts(t, db, "acme", "u1"); c["email"] == "" || c["sms"] == "" {
		t.Fatalf("a password-only put wiped contacts: %v", c)
	}
	if ns := notices(t, db); len(ns) != 0 {
		t.Fatalf("a password-only put sent contact-change notices: %v", ns)
	}
	a, err := app.Open(context.Background(), app.Config{DB: db, SecretKey: testKey, Command: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Reset.VerifyPassword(context.Background(), reset.Actor{ClientID: "test"}, "acme", "u1", "correct horse battery staple"); err != nil {
		t.Errorf("the password was not set: %v", err)
	}
	if got, _ := a.Reset.FindUsers(context.Background(), "acme", "jane"); len(got) != 1 || got[0].Status != "active" {
		t.Errorf("username or status changed: %+v", got)
	}
	a.Close()

	// An explicitly empty flag clears that field, and only it.
	okCLI(t, "", append([]string{"user", "put", "--institution", "acme", "u1", "--email", ""}, k...)...)
	if c := contacts(t, db, "acme", "u1"); c["email"] != "" || c["sms"] == "" {
		t.Fatalf("--email '' should clear the email only: %v", c)
	}
	if ns := notices(t, db); len(ns) != 1 || !strings.HasPrefix(ns[0], "email ") {
		t.Fatalf("clearing the email should notify the old address once: %v", ns)
	}
	// --replace is the API's PUT: what is not given is gone.
	okCLI(t, "", append([]string{"user", "put", "--institution", "acme", "u1", "--replace", "--username", "jane", "--email", "jane@new.example"}, k...)...)
	if c := contacts(t, db, "acme", "u1"); c["email"] == "" || c["sms"] != "" {
		t.Fatalf("--replace should keep only what it was given: %v", c)
	}
	if ns := notices(t, db); len(ns) != 2 {
		t.Fatalf("--replace dropped the phone: its old number should hear of it: %v", ns)
	}
	for _, tc := range []struct {
		name string
		args []string
		says string
	}{
		{"new user without username", []string{"user", "put", "--institution", "acme", "u2", "--email", "x@example.com"}, "needs a username"},
		{"replace without username", []string{"user", "put", "--institution", "acme", "u1", "--replace", "--email", "x@example.com"}, "--replace needs --username"},
	} {
		code, out, errOut := runCLI(t, "", append(tc.args, k...)...)
		if code != 1 || !strings.Contains(errOut, tc.says) {
			t.Errorf("%s: exit %d %q, want exit 1 saying %q", tc.name, code, out+errOut, tc.says)
		}
	}
}

func TestUserImportMergesUnlessReplace(t *testing.T) {
	t.Parallel()
	dir, db, k := acmeDB(t)
	write := func(name, text string) string { return writeFile(t, dir, name, text) }
	full := write("full.csv", "userId,username,email,phone\n"+
		"u1,alice,alice@example.com,+14155550101\n"+
		"u2,bob,bob@example.com,+14155550102\n")
	okCLI(t, "", append([]string{"user", "import", "--institution", "acme", full}, k...)...)

	// The same users with the phone column empty: nothing is removed.
	noPhones := write("nophones.csv", "userId,username,email,phone\n"+
		"u1,alice,alice@example.com,\n"+
		"u2,bob,bob@example.com,\n")
	var res struct {
		Imported, ContactsChanged, NoticesQueued int
		Rejected                                 []struct {
			Line   int
			Reason string
		}
	}
	out := okCLI(t, "", append([]string{"user", "import", "--institution", "acme", noPhones, "--json"}, k...)...)
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err)
	}
	if res.Imported != 2 || res.ContactsChanged != 0 || res.NoticesQueued != 0 || res.Rejected == nil {
		t.Errorf("re-import with empty phones: %+v (%s)", res, out)
	}
	if c := contacts(t, db, "acme", "u1"); c["sms"] == "" {
		t.Fatalf("an empty cell removed the phone: %v", c)
	}
	// --dry-run --replace says what --replace would do, and does nothing.
	out = okCLI(t, "", append([]string{"user", "import", "--institution", "acme", noPhones, "--replace", "--dry-run"}, k...)...)
	if !strings.Contains(out, "would change 2 contacts and queue 2 notices") {
		t.Errorf("dry run summary: %q", out)
	}
	if c := contacts(t, db, "acme", "u1"); c["sms"] == "" {
		t.Fatalf("a dry run removed the phone: %v", c)
	}
	out = okCLI(t, "", append([]string{"user", "import", "--institution", "acme", noPhones, "--replace"}, k...)...)
	if !strings.Contains(out, "2 imported, 0 rejected; 2 contacts changed, 2 notices queued") {
		t.Errorf("--replace summary: %q", out)
	}
	if c := contacts(t, db, "acme", "u1"); c["sms"] != "" {
		t.Fatalf("--replace with an empty cell should clear the phone: %v", c)
	}
	if ns := notices(t, db); len(ns) != 2 {
		t.Errorf("notices after --replace: %v", ns)
	}

	// A truncated row is refused by line number; the others import.
	truncated := write("truncated.csv", "userId,username,email,phone\n"+
		"u3,carol,carol@example.com,\n"+
		"u4,dave\n"+
		"u5,erin,erin@example.com,,extra\n")
	code, out, errOut := runCLI(t, "", append([]string{"user", "import", "--institution", "acme", truncated, "--json"}, k...)...)
	res.Rejected = nil
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != 1 {
		t.Fatalf("truncated import: exit %d %v\n%s%s", code, err, out, errOut)
	}
	lines := map[int]string{}
	for _, r := range res.Rejected {
		lines[r.Line] = r.Reason
	}
	if res.Imported != 1 || len(lines) != 2 || !strings.Contains(lines[3], "2 fields") || !strings.Contains(lines[4], "5 fields") {
		t.Errorf("truncated rows: imported %d, rejected %v", res.Imported, lines)
	}
	if !strings.Contains(errOut, "line 3 rejected: 2 fields, the header has 4") {
		t.Errorf("stderr does not name the truncated line: %s", errOut)
	}
	// A clean import prints an empty list, not null.
	out = okCLI(t, "", append([]string{"user", "import", "--institution", "acme", full, "--json"}, k...)...)
	if !strings.Contains(out, `"rejected": []`) {
		t.Errorf("rejected should be [] when none: %s", out)
	}
}

func TestDoctor(t *testing.T) {
	t.Parallel()
	mail := mailtest.NewServer(t)
	dir := t.TempDir()
	db := "sqlite:" + filepath.Join(dir, "resetd.db")
	good := []string{"doctor", "--db", db, "--secret-key", testKey, "--smtp", mail.URL("noreply@bank.example"), "--public-url", "https://reset.bank.example"}

	// Nothing there yet: the doctor says so and creates nothing.
	code, out, _ := runCLI(t, "", good...)
	if code != 1 || !strings.Contains(out, "PROBLEM  database") || !strings.Contains(out, "resetd migrate") {
		t.Errorf("doctor on a missing database: exit %d\n%s", code, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "resetd.db")); !os.IsNotExist(err) {
		t.Fatalf("doctor created the database: %v", err)
	}
	okCLI(t, "", "institution", "put", "acme", "--name", "Acme", "--link-base", "https://bank.example/reset", "--default", "--db", db, "--secret-key", testKey)

	out = okCLI(t, "", good...)
	if !strings.Contains(out, "no problems found") || strings.Contains(out, "PROBLEM") {
		t.Errorf("healthy configuration:\n%s", out)
	}
	if n := mail.Count(); n != 0 {
		t.Errorf("doctor sent %d messages", n)
	}

	// A stopped SMTP server, the wrong key and a plain-http public URL:
	// each is named, and the exit is non-zero.
	mail.Stop()
	bad := []string{"doctor", "--db", db, "--secret-key", otherKey, "--smtp", mail.URL("noreply@bank.example"), "--public-url", "http://reset.bank.example", "--json"}
	code, out, errOut := runCLI(t, "", bad...)
	var rep struct {
		OK       bool
		Findings []struct {
			Check  string
			OK     bool
			Detail string
		}
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != 1 || rep.OK {
		t.Fatalf("doctor with problems: exit %d %v\n%s%s", code, err, out, errOut)
	}
	failed := map[string]string{}
	for _, f := range rep.Findings {
		if !f.OK {
			failed[f.Check] = f.Detail
		}
	}
	if !strings.Contains(failed["smtp"], mail.Addr()) {
		t.Errorf("smtp finding: %q", failed["smtp"])
	}
	if !strings.Contains(failed["key-matches-database"], "does not match") {
		t.Errorf("key finding: %q", failed["key-matches-database"])
	}
	if !strings.Contains(failed["public-url"], "https") {
		t.Errorf("public-url finding: %q", failed["public-url"])
	}
	if len(failed) != 3 {
		t.Errorf("want exactly the three problems, got %v", failed)
	}
	if strings.Contains(out, otherKey) || strings.Contains(out, testKey) {
		t.Errorf("doctor echoed a key:\n%s", out)
	}
}

func TestVersion(t *testing.T) {
	t.Parallel()
	bin := filepath.Join(t.TempDir(), "resetd")
	build := exec.Command("go", "build", "-ldflags", "-X main.version=v1.2.3-test", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	meta, err := exec.Command("go", "version", "-m", bin).Output()
	if err != nil {
		t.Fatal(err)
	}
	revision := ""
	if m := regexp.MustCompile(`vcs\.revision=([0-9a-f]+)`).FindSubmatch(meta); m != nil {
		revision = string(m[1])
	}
	for _, args := range [][]string{{"--version"}, {"version"}} {
		out, err := exec.Command(bin, args...).Output()
		if err != nil {
			t.Fatalf("resetd %v: %v", args, err)
		}
		line := string(out)
		if !strings.HasPrefix(line, "resetd v1.2.3-test") || !strings.Contains(line, runtime.Version()) {
			t.Errorf("resetd %v = %q", args, line)
		}
		if revision != "" && !strings.Contains(line, revision[:12]) {
			t.Errorf("resetd %v = %q lacks the VCS revision %s", args, line, revision)
		}
	}
	out, err := exec.Command(bin, "version", "--json").Output()
	if err != nil {
		t.Fatal(err)
	}
	var v struct{ Version, Revision, GoVersion string }
	if err := json.Unmarshal(out, &v); err != nil || v.Version != "v1.2.3-test" || v.Revision != revision || v.GoVersion != runtime.Version() {
		t.Errorf("version --json = %s (%v)", out, err)
	}
}

// On PostgreSQL the doctor tells an empty database from a migrated one,
// and migrates nothing itself.
func TestDoctorPostgres(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	t.Parallel()
	mail := mailtest.NewServer(t)
	args := []string{"doctor", "--db", dsn, "--secret-key", testKey, "--smtp", mail.URL("noreply@bank.example"), "--public-url", "https://reset.bank.example"}
	for range 2 { // the second run proves the first changed nothing
		code, out, _ := runCLI(t, "", args...)
		if code != 1 || !strings.Contains(out, "PROBLEM  database") || !strings.Contains(out, "migrations are pending: run resetd migrate") {
			t.Fatalf("doctor on an empty database: exit %d\n%s", code, out)
		}
	}
	okCLI(t, "", "migrate", "--db", dsn, "--secret-key", testKey)
	if out := okCLI(t, "", args...); !strings.Contains(out, "no problems found") {
		t.Errorf("doctor on a migrated database:\n%s", out)
	}
}

// TestReadmeOperatorCommands runs the README's operator block as printed,
// with a freshly built resetd on PATH, in an empty directory.
func TestReadmeOperatorCommands(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed: the README's block makes its key with it")
	}
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	block := regexp.MustCompile("(?s)## Operator commands\n.*?```sh\n(.*?)```").FindSubmatch(readme)
	if block == nil {
		t.Fatal("README.md has no sh block under ## Operator commands")
	}
	bin := buildResetd(t)
	dir := t.TempDir()
	// The block as printed, then a look at what it did, in the same shell
	// (its key is random and lives only there).
	script := string(block[1]) + "\nresetd outbox list --json > outbox.json\n"
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", script)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + filepath.Dir(bin) + string(os.PathListSeparator) + os.Getenv("PATH"), "HOME=" + dir}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the README's operator commands failed: %v\n%s", err, out)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "outbox.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ob struct {
		Deliveries []struct{ Kind, Channel, Destination string }
	}
	if err := json.Unmarshal(raw, &ob); err != nil {
		t.Fatal(err)
	}
	// The password-only put kept the contacts (no contact notice) and, as
	// an administrator's reset of an existing user, told every contact
	// that the password changed (SPEC §10); the email-only put told the
	// old address, and only it.
	kinds := map[string]int{}
	for _, d := range ob.Deliveries {
		kinds[d.Kind+"/"+d.Channel]++
	}
	want := map[string]int{"contact_changed/email": 1, "password_changed/email": 1, "password_changed/sms": 1}
	if len(kinds) != len(want) || kinds["contact_changed/email"] != 1 || kinds["password_changed/email"] != 1 || kinds["password_changed/sms"] != 1 {
		t.Errorf("after the README's block the outbox holds %+v, want %v", ob.Deliveries, want)
	}
	for _, s := range auth.AllScopes {
		if !strings.Contains(string(readme), "`"+s+"`") {
			t.Errorf("README.md does not list the scope %s", s)
		}
	}
}

// acmeDB makes, through the CLI, a SQLite database holding the
// institution acme, and returns its directory, its --db value and the
// flags that open it.
func acmeDB(t *testing.T) (dir, db string, k []string) {
	t.Helper()
	dir = t.TempDir()
	db = "sqlite:" + filepath.Join(dir, "resetd.db")
	k = []string{"--db", db, "--secret-key", testKey}
	okCLI(t, "", append([]string{"institution", "put", "acme", "--name", "Acme Bank"}, k...)...)
	return dir, db, k
}

// writeFile writes text to the file name in dir and returns its path.
func writeFile(t *testing.T, dir, name, text string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
