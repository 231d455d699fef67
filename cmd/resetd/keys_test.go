package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/resetd/resetd/internal/auth"
	"github.com/resetd/resetd/internal/mailtest"
	"github.com/resetd/resetd/internal/store/postgres/pgtest"
)

// SPEC §9 with real processes: fail closed, rotate, revoke.

func newKey() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// backend is one database the key tests run on, with a way to capture
// everything it holds.
type backend struct {
	name     string
	dsn      string
	snapshot func(t *testing.T) map[string][]byte
}

// backends are SQLite (a file in a fresh directory) and, when
// RESETD_TEST_POSTGRES is set, a fresh PostgreSQL database.
func backends(t *testing.T) []backend {
	dir := t.TempDir()
	path := filepath.Join(dir, "resetd.db")
	out := []backend{{name: "sqlite", dsn: "sqlite:" + path, snapshot: func(t *testing.T) map[string][]byte {
		t.Helper()
		files := map[string][]byte{}
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			files[e.Name()] = b
		}
		return files
	}}}
	if pgtest.Enabled() {
		dsn := pgtest.NewDatabase(t)
		out = append(out, backend{name: "postgres", dsn: dsn, snapshot: func(t *testing.T) map[string][]byte { return pgContents(t, dsn) }})
	}
	return out
}

// pgContents is every table's rows as text, and the list of tables.
func pgContents(t *testing.T, dsn string) map[string][]byte {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{"(tables)": []byte(strings.Join(tables, ","))}
	for _, tb := range tables {
		var s string
		if err := conn.QueryRow(ctx, `SELECT coalesce(string_agg(t::text, E'\n' ORDER BY t::text), '') FROM `+pgx.Identifier{tb}.Sanitize()+` t`).Scan(&s); err != nil {
			t.Fatal(err)
		}
		out[tb] = []byte(s)
	}
	return out
}

// bin runs the built binary with env (no RESETD_* from the test's own
// environment) and returns its exit code and output.
type bin struct {
	t    *testing.T
	path string
	env  []string
}

func newBin(t *testing.T, path string, env ...string) *bin {
	b := &bin{t: t, path: path}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "RESETD_") {
			b.env = append(b.env, kv)
		}
	}
	b.env = append(b.env, env...)
	return b
}

func (b *bin) run(stdin string, args ...string) (int, string, string) {
	b.t.Helper()
	cmd := exec.Command(b.path, args...)
	cmd.Env = b.env
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		b.t.Fatal(err)
	}
	return code, out.String(), errb.String()
}

func (b *bin) ok(args ...string) string {
	b.t.Helper()
	code, out, errOut := b.run("", args...)
	if code != 0 {
		b.t.Fatalf("resetd %v: exit %d\n%s%s", args, code, out, errOut)
	}
	return out
}

// Every command, given no key (or a key the database does not know), on a
// database with data, exits 2 naming the problem, and the database is
// byte-for-byte as it was.
func TestCommandsWithoutTheKeyChangeNothing(t *testing.T) {
	t.Parallel()
	path := buildResetd(t)
	for _, be := range backends(t) {
		t.Run(be.name, func(t *testing.T) {
			key := newKey()
			good := newBin(t, path, "RESETD_DB="+be.dsn, "RESETD_SECRET_KEY="+key)
			good.ok("institution", "put", "acme", "--name", "Acme Bank")
			good.ok("user", "put", "--institution", "acme", "u1", "--username", "jane", "--email", "jane@example.com")
			var client map[string]string
			if err := json.Unmarshal([]byte(good.ok("client", "create", "--institution", "acme", "--scope", auth.ScopeUsersRead, "--json")), &client); err != nil {
				t.Fatal(err)
			}
			good.ok("institution", "webhook-secret", "acme")
			csv := filepath.Join(t.TempDir(), "u.csv")
			os.WriteFile(csv, []byte("userId,username,email,phone\nu2,bob,bob@example.com,\n"), 0o600)
			before := be.snapshot(t)

			id := client["client_id"]
			commands := [][]string{
				// With a carrier: every flag is checked before the key (i20), so
				// only the key can refuse this serve.
				{"serve", "--addr", "127.0.0.1:0", "--smtp", "smtp://127.0.0.1:25?from=noreply@bank.example"},
				{"migrate"},
				{"institution", "put", "acme", "--name", "Evil"},
				{"institution", "webhook-secret", "acme"},
				{"institution", "webhook-secret", "acme", "--rotate"},
				{"user", "put", "--institution", "acme", "u1", "--username", "jane", "--email", "evil@example.com"},
				{"user", "import", "--institution", "acme", csv},
				{"client", "create", "--institution", "*", "--scope", auth.ScopeResetWrite},
				{"client", "list"},
				{"client", "show", id},
				{"client", "disable", id},
				{"client", "enable", id},
				{"client", "delete", id},
				{"client", "rotate-secret", id},
				{"client", "set-scopes", id, "--scope", auth.ScopeResetWrite},
				{"outbox", "list"},
				{"audit"},
				{"keys", "status"},
				{"keys", "rewrap"},
				{"keys", "list"},
				{"keys", "rotate"},
				{"keys", "retire", "nope"},
			}
			noKey := newBin(t, path, "RESETD_DB="+be.dsn)
			wrong := newBin(t, path, "RESETD_DB="+be.dsn, "RESETD_SECRET_KEY="+newKey())
			wrongRing := newBin(t, path, "RESETD_DB="+be.dsn, "RESETD_SECRET_KEY="+newKey()+","+newKey())
			for _, args := range commands {
				for _, c := range []struct {
					name string
					b    *bin
					want string
				}{
					{"no key", noKey, "RESETD_SECRET_KEY"},
					{"unknown key", wrong, "the secret key does not match this database"},
					{"unknown keyring", wrongRing, "the secret key does not match this database"},
				} {
					code, out, errOut := c.b.run("", args...)
					if code != 2 || !strings.Contains(errOut, c.want) {
						t.Errorf("%s: resetd %v: exit %d, stderr %q (stdout %q); want 2 and %q", c.name, args, code, errOut, out, c.want)
					}
					if after := be.snapshot(t); !maps.EqualFunc(before, after, bytes.Equal) {
						t.Fatalf("%s: resetd %v changed the database (%s)", c.name, args, changed(before, after))
					}
				}
			}
			// The right key, alone or as the old key of a ring, still works.
			good.ok("client", "show", id)
			newBin(t, path, "RESETD_DB="+be.dsn, "RESETD_SECRET_KEY="+newKey()+","+key).ok("client", "show", id)
		})
	}
}

func changed(a, b map[string][]byte) string {
	var names []string
	for k := range a {
		if !bytes.Equal(a[k], b[k]) {
			names = append(names, k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			names = append(names, k+" (new)")
		}
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

// Only serve --dev makes a key; after it, other commands use the stored
// trial key with a warning; a command never makes a signing key.
func TestTrialKey(t *testing.T) {
	t.Parallel()
	path := buildResetd(t)
	dir := t.TempDir()
	db := "sqlite:" + filepath.Join(dir, "trial.db")
	b := newBin(t, path, "RESETD_DB="+db)
	// Nothing yet: no command (not even migrate) creates the file.
	if code, _, errOut := b.run("", "migrate"); code != 2 || !strings.Contains(errOut, "RESETD_SECRET_KEY") {
		t.Fatalf("migrate without a key on a fresh machine: exit %d %s", code, errOut)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("a refused command left files: %v", entries)
	}
	// serve --dev makes and keeps a trial key.
	c := &cluster{t: t, bin: path, env: append(slices.Clone(b.env), "RESETD_PUBLIC_URL=http://127.0.0.1:8080"), mail: mailtest.NewServer(t)}
	r := c.startArgs("dev", "serve", "--dev", "--addr", "127.0.0.1:0")
	// While it runs (its recent writes may be only in the WAL), another
	// command finds the trial key.
	if code, out, errOut := b.run("", "client", "list", "--json"); code != 0 || !strings.Contains(out, "serve --dev") || !strings.Contains(errOut, "trial setup") {
		t.Fatalf("client list beside a running serve --dev: exit %d %s %s", code, out, errOut)
	}
	r.stop(t)
	code, out, errOut := b.run("", "keys", "list", "--json")
	if code != 0 || !strings.Contains(errOut, "trial setup") {
		t.Fatalf("keys list after serve --dev: exit %d, stderr %q", code, errOut)
	}
	var keys struct{ Keys []auth.KeyInfo }
	if err := json.Unmarshal([]byte(out), &keys); err != nil || len(keys.Keys) != 1 || keys.Keys[0].State != auth.KeyActive {
		t.Fatalf("keys list: %v %s", err, out)
	}
	// A fresh database given a key: commands run, and none makes a signing key.
	db2 := "sqlite:" + filepath.Join(dir, "prod.db")
	p := newBin(t, path, "RESETD_DB="+db2, "RESETD_SECRET_KEY="+newKey())
	p.ok("institution", "put", "acme", "--name", "Acme")
	p.ok("client", "create", "--institution", "acme", "--scope", auth.ScopeUsersRead)
	if out := p.ok("keys", "list", "--json"); !strings.Contains(out, `"keys": []`) {
		t.Fatalf("a CLI command made a signing key: %s", out)
	}
}

// startArgs runs the binary with args (a serve command) and waits until it
// answers /readyz.
func (c *cluster) startArgs(name string, args ...string) *replica {
	c.t.Helper()
	saved := c.serveArgs
	c.serveArgs = args
	defer func() { c.serveArgs = saved }()
	return c.start(name, "")
}

// A rotation NEW,OLD with messages queued while SMTP is down, a fact, an
// OTP and a contact-method id in flight loses nothing; after rewrap and a
// facts verify, nothing depends on OLD.
func TestSecretKeyRotationLosesNothing(t *testing.T) {
	t.Parallel()
	path := buildResetd(t)
	for _, be := range backends(t) {
		t.Run(be.name, func(t *testing.T) {
			oldKey, newKeyHex := newKey(), newKey()
			mail := mailtest.NewServer(t)
			from := "noreply@resetd.example"
			env := []string{"RESETD_DB=" + be.dsn, "RESETD_PUBLIC_URL=http://127.0.0.1:8080"}
			c := &cluster{t: t, bin: path, mail: mail}
			c.env = append(newBin(t, path).env, append(env, "RESETD_SECRET_KEY="+oldKey)...)
			old := newBin(t, path, append(env, "RESETD_SECRET_KEY="+oldKey)...)
			old.ok("institution", "put", "acme", "--name", "Acme Bank", "--sender", "security@acme.example", "--default")
			var client map[string]string
			if err := json.Unmarshal([]byte(old.ok("client", "create", "--institution", "acme", "--json", "--scope", auth.ScopeUsersRead, "--scope", auth.ScopeUsersWrite,
				"--scope", auth.ScopeUsersManage, "--scope", auth.ScopeSettingsWrite, "--scope", auth.ScopeResetWrite)), &client); err != nil {
				t.Fatal(err)
			}
			c.client.id, c.client.secret = client["client_id"], client["client_secret"]
			webhookBefore := strings.TrimSpace(old.ok("institution", "webhook-secret", "acme"))

			// Under OLD: a user with a fact, its contact id listed, an OTP
			// and a reset link sent while SMTP is down.
			mail.Stop()
			a := c.start("old", mail.URL(from))
			tok := c.token(a)
			if r := a.do(t, "PUT", "/a/password-reset/api/v0/institutions/acme/settings", tok, map[string]any{"requireFacts": []string{"postalCode"}}); r.status/100 != 2 {
				t.Fatalf("settings: %d %s", r.status, r.body)
			}
			if r := a.do(t, "PUT", apiPrefix+"u1", tok, map[string]any{"username": "jane", "email": "jane@example.com", "facts": map[string]string{"postalCode": "SW1A 1AA"}}); r.status/100 != 2 {
				t.Fatalf("put user: %d %s", r.status, r.body)
			}
			r := a.do(t, "GET", apiPrefix+"u1/contact-methods", tok, nil)
			var cms struct{ ContactMethods []struct{ ID string } }
			if json.Unmarshal([]byte(r.body), &cms); r.status != 200 || len(cms.ContactMethods) != 1 {
				t.Fatalf("contact methods: %d %s", r.status, r.body)
			}
			oldContactID := cms.ContactMethods[0].ID
			if r := a.do(t, "POST", apiPrefix+"u1/password/otp", tok, map[string]string{"contactMethodId": oldContactID}); r.status != 202 {
				t.Fatalf("send otp: %d %s", r.status, r.body)
			}
			if r := sendReset(t, a, tok, "u1"); r.status/100 != 2 {
				t.Fatalf("send link: %d %s", r.status, r.body)
			}
			// Both sends were tried and failed (SMTP down): they wait in the queue.
			a.log.waitFor(t, regexp.MustCompile(`(?s)delivery attempt failed.*delivery attempt failed`))
			a.stop(t)

			// The operator rotates: NEW,OLD. Status shows what is on OLD.
			ring := newBin(t, path, append(env, "RESETD_SECRET_KEY="+newKeyHex+","+oldKey)...)
			st := keysStatus(t, ring)
			if len(st.Keys) != 2 || !st.Keys[0].Current || st.Keys[1].Records["queued_messages"] != 2 || st.Keys[1].Records["otps"] != 1 ||
				st.Keys[1].Records["facts"] != 1 || st.Keys[1].Records["signing_keys"] != 1 || st.Keys[1].Records["webhook_secrets"] != 1 {
				t.Fatalf("status before rewrap: %+v", st)
			}
			ring.ok("keys", "rewrap")
			if got := strings.TrimSpace(ring.ok("institution", "webhook-secret", "acme")); got != webhookBefore {
				t.Errorf("webhook secret changed across the rotation: %s → %s", webhookBefore, got)
			}

			// Serve under NEW,OLD with SMTP back: the queued mail goes out.
			mail.Start()
			c.env = append(newBin(t, path).env, append(env, "RESETD_SECRET_KEY="+newKeyHex+","+oldKey)...)
			b := c.start("ring", mail.URL(from))
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			msgs, err := mail.Wait(ctx, 2)
			if err != nil {
				t.Fatalf("queued messages after the rotation: %v (got %d)", err, mail.Count())
			}
			code := ""
			for _, m := range msgs {
				if mm := regexp.MustCompile(`\b(\d{6})\b`).FindStringSubmatch(m.Text); mm != nil && strings.Contains(strings.ToLower(m.Subject+m.Text), "code") {
					code = mm[1]
				}
			}
			if code == "" {
				t.Fatalf("no OTP among the delivered messages: %+v", msgs)
			}
			// The OTP (keyed under OLD) and the fact (keyed under OLD) verify.
			if r := b.do(t, "POST", "/a/password-reset/api/v0/institutions/acme/password/otp/verify", "", map[string]any{"username": "jane", "otp": code, "facts": map[string]string{"postalCode": "sw1a1aa"}}); r.status != 200 {
				t.Fatalf("otp verify after the rotation: %d %s", r.status, r.body)
			}
			// The contact id listed under OLD still resolves.
			tok = c.token(b)
			if r := b.do(t, "POST", apiPrefix+"u1/password/otp", tok, map[string]string{"contactMethodId": oldContactID}); r.status != 202 {
				t.Fatalf("send otp with the contact id listed before the rotation: %d %s", r.status, r.body)
			}
			b.stop(t)

			st = keysStatus(t, ring)
			for kind, n := range st.Keys[1].Records {
				if n != 0 {
					t.Errorf("after rewrap and a facts verify, %d %s still depend on OLD: %+v", n, kind, st)
				}
			}
			// OLD can now go: NEW alone runs, and the token of a client
			// made under OLD still works.
			c.env = append(newBin(t, path).env, append(env, "RESETD_SECRET_KEY="+newKeyHex)...)
			n := c.start("new", mail.URL(from))
			if r := n.do(t, "GET", apiPrefix+"u1/contact-methods", c.token(n), nil); r.status != 200 {
				t.Fatalf("after dropping OLD: %d %s", r.status, r.body)
			}
		})
	}
}

type keysStatusOut struct {
	Keys []struct {
		KeyID   string
		Current bool
		Records map[string]int
	}
	Other map[string]int
}

func keysStatus(t *testing.T, b *bin) keysStatusOut {
	t.Helper()
	var st keysStatusOut
	out := b.ok("keys", "status", "--json")
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("keys status: %v\n%s", err, out)
	}
	return st
}

// pollStatus asks r until want comes back or 10 s pass (SPEC §9), and
// says how long it took.
func pollStatus(t *testing.T, what string, want int, ask func() int) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(10 * time.Second)
	for {
		got := ask()
		if got == want {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still %d after 10 s, want %d", what, got, want)
		}
		time.Sleep(50 * time.Millisecond) // polling the HTTP answer, as a client would
	}
}

// A token signed by a retired key, or of a disabled or deleted client, is
// refused by the other replica within 10 s, without a restart.
func TestRevocationReachesEveryReplica(t *testing.T) {
	if !pgtest.Enabled() {
		t.Skip("needs PostgreSQL (" + pgtest.Env + "): replicas share one database")
	}
	dsn := pgtest.NewDatabase(t)
	t.Parallel()
	c := &cluster{t: t, bin: buildResetd(t), mail: mailtest.NewServer(t)}
	c.env = append(newBin(t, "").env, "RESETD_DB="+dsn, "RESETD_SECRET_KEY="+newKey(), "RESETD_PUBLIC_URL=http://127.0.0.1:8080")
	cli := &bin{t: t, path: c.bin, env: c.env}
	cli.ok("institution", "put", "acme", "--name", "Acme Bank")
	newClient := func() (string, string) {
		var m map[string]string
		if err := json.Unmarshal([]byte(cli.ok("client", "create", "--institution", "acme", "--json", "--scope", auth.ScopeSettingsRead)), &m); err != nil {
			t.Fatal(err)
		}
		return m["client_id"], m["client_secret"]
	}
	from := "noreply@resetd.example"
	a := c.start("A", c.mail.URL(from))
	b := c.start("B", c.mail.URL(from))
	settings := "/a/password-reset/api/v0/institutions/acme/settings"
	tokenFor := func(r *replica, id, secret string) string {
		c.client.id, c.client.secret = id, secret
		return c.token(r)
	}
	askB := func(tok string) func() int {
		return func() int { return b.do(t, "GET", settings, tok, nil).status }
	}
	// refusedByB polls B for a token that must end up refused. B answers a
	// refused token 401 until this address has failed authentication 20
	// times in a minute (SPEC §12's per-IP limit), then 429; a token B
	// accepts still gets 200 then, so a 429 is a refusal too.
	refusedByB := func(tok string) func() int {
		return func() int {
			if s := askB(tok)(); s != http.StatusTooManyRequests {
				return s
			}
			return http.StatusUnauthorized
		}
	}

	// Retired key: rotate, then retire the old one.
	id1, s1 := newClient()
	oldTok := tokenFor(a, id1, s1)
	if got := askB(oldTok)(); got != 200 {
		t.Fatalf("token of A on B: %d", got)
	}
	var keys struct{ Keys []auth.KeyInfo }
	json.Unmarshal([]byte(cli.ok("keys", "list", "--json")), &keys)
	oldKID := keys.Keys[0].KID
	if code, _, errOut := cli.run("", "keys", "retire", oldKID); code != 1 || !strings.Contains(errOut, "active") {
		t.Errorf("retiring the active key: exit %d %s, want 1", code, errOut)
	}
	cli.ok("keys", "rotate")
	// Both replicas move to the new key; the old key's token still works until retired.
	newTok := ""
	pollStatus(t, "A signs with the new key", 1, func() int {
		newTok = tokenFor(a, id1, s1)
		return strings.Count(jwtHeader(t, newTok), `"kid":"`+oldKID+`"`) ^ 1
	})
	if got := askB(oldTok)(); got != 200 {
		t.Fatalf("token of the older (verifying) key on B: %d", got)
	}
	cli.ok("keys", "retire", oldKID)
	took := pollStatus(t, "B refuses a token of the retired key", 401, refusedByB(oldTok))
	t.Logf("retirement reached B in %s", took)
	if got := askB(newTok)(); got != 200 {
		t.Fatalf("token of the new key on B after retiring the old: %d", got)
	}
	if jwks := b.do(t, "GET", "/.well-known/jwks.json", "", nil); strings.Contains(jwks.body, oldKID) {
		t.Errorf("the retired key is still in B's JWKS: %s", jwks.body)
	}

	// Disabled client, then enabled again; deleted client.
	id2, s2 := newClient()
	tok2 := tokenFor(a, id2, s2)
	if got := askB(tok2)(); got != 200 {
		t.Fatalf("new client's token on B: %d", got)
	}
	cli.ok("client", "disable", id2)
	took = pollStatus(t, "B refuses a disabled client's token", 401, refusedByB(tok2))
	t.Logf("disable reached B in %s", took)
	c.client.id, c.client.secret = id2, s2
	if r := tokenStatus(t, b, id2, s2); r != 401 {
		t.Errorf("token endpoint for a disabled client: %d, want 401 invalid_client", r)
	}
	cli.ok("client", "enable", id2)
	pollStatus(t, "B accepts the re-enabled client's token", 200, askB(tok2))
	cli.ok("client", "delete", id2)
	took = pollStatus(t, "B refuses a deleted client's token", 401, refusedByB(tok2))
	t.Logf("delete reached B in %s", took)
	if r := tokenStatus(t, a, id2, s2); r != 401 {
		t.Errorf("token endpoint for a deleted client: %d", r)
	}
	// The audit log has every change.
	audit := cli.ok("audit", "--json")
	for _, action := range []string{"client.create", "client.disable", "client.enable", "client.delete", "keys.rotate", "keys.retire"} {
		if !strings.Contains(audit, `"`+action+`"`) {
			t.Errorf("audit lacks %s", action)
		}
	}
}

func jwtHeader(t *testing.T, tok string) string {
	t.Helper()
	h, _, _ := strings.Cut(tok, ".")
	b, err := decodeSegment(h)
	if err != nil {
		t.Fatalf("token header: %v", err)
	}
	return string(b)
}

func tokenStatus(t *testing.T, r *replica, id, secret string) int {
	t.Helper()
	return tokenStatusFrom(t, r.url, "", id, secret)
}

func decodeSegment(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }

// tokenStatusFrom asks base's token endpoint for a token with the client's
// credentials, from the loopback address local ("" for any).
func tokenStatusFrom(t *testing.T, base, local, id, secret string) int {
	t.Helper()
	d := &net.Dialer{Timeout: 5 * time.Second}
	if local != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(local)}
	}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}}
	req, _ := http.NewRequest("POST", base+"/a/oidc-provider/api/v0/token", strings.NewReader("grant_type=client_credentials"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(id, secret)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("token request from %s: %v", local, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// Ten wrong secrets from one address lock that address out, not the
// client: the right secret from another address is answered as usual.
func TestWrongSecretsAreThrottledPerAddress(t *testing.T) {
	t.Parallel()
	path := buildResetd(t)
	db := "sqlite:" + filepath.Join(t.TempDir(), "throttle.db")
	c := &cluster{t: t, bin: path, mail: mailtest.NewServer(t)}
	c.env = append(newBin(t, path).env, "RESETD_DB="+db, "RESETD_SECRET_KEY="+newKey())
	cli := &bin{t: t, path: path, env: c.env}
	cli.ok("institution", "put", "acme", "--name", "Acme")
	var m map[string]string
	if err := json.Unmarshal([]byte(cli.ok("client", "create", "--institution", "acme", "--json", "--scope", auth.ScopeUsersRead)), &m); err != nil {
		t.Fatal(err)
	}
	id, secret := m["client_id"], m["client_secret"]
	r := c.start("A", c.mail.URL("noreply@resetd.example"))
	for i := range 10 {
		if got := tokenStatusFrom(t, r.url, "127.0.0.2", id, fmt.Sprintf("wrong-%d", i)); got != 401 {
			t.Fatalf("wrong secret %d from 127.0.0.2: %d, want 401", i+1, got)
		}
	}
	if got := tokenStatusFrom(t, r.url, "127.0.0.2", id, secret); got != 429 {
		t.Errorf("the right secret from the throttled address: %d, want 429", got)
	}
	if got := tokenStatusFrom(t, r.url, "127.0.0.3", id, secret); got != 200 {
		t.Errorf("the right secret from another address: %d, want 200 (a client id is not a secret: no lock-out from afar)", got)
	}
}

// Client management on the command line: list, show, rotate-secret with
// an overlap, set-scopes; each change is audited.
func TestClientCommands(t *testing.T) {
	t.Parallel()
	path := buildResetd(t)
	db := "sqlite:" + filepath.Join(t.TempDir(), "clients.db")
	c := &cluster{t: t, bin: path, mail: mailtest.NewServer(t)}
	c.env = append(newBin(t, path).env, "RESETD_DB="+db, "RESETD_SECRET_KEY="+newKey())
	cli := &bin{t: t, path: path, env: c.env}
	cli.ok("institution", "put", "acme", "--name", "Acme")
	var m map[string]string
	if err := json.Unmarshal([]byte(cli.ok("client", "create", "--institution", "acme", "--json", "--name", "login", "--scope", auth.ScopeUsersRead)), &m); err != nil {
		t.Fatal(err)
	}
	id, oldSecret := m["client_id"], m["client_secret"]
	var list struct{ Clients []auth.ClientInfo }
	out := cli.ok("client", "list", "--json")
	if err := json.Unmarshal([]byte(out), &list); err != nil || len(list.Clients) != 1 || list.Clients[0].ID != id || list.Clients[0].State != auth.ClientActive || list.Clients[0].Name != "login" {
		t.Fatalf("client list: %v %s", err, out)
	}
	if strings.Contains(out, oldSecret) || strings.Contains(cli.ok("client", "show", id, "--json"), oldSecret) {
		t.Fatal("list or show printed the secret")
	}
	if code, _, errOut := cli.run("", "client", "show", "rc_nope"); code != 1 || !strings.Contains(errOut, "no such client") {
		t.Errorf("show unknown: exit %d %s", code, errOut)
	}
	if code, _, _ := cli.run("", "client", "rotate-secret", id, "--keep-old", "169h"); code == 0 {
		t.Error("--keep-old over 168h accepted")
	}
	var rot map[string]string
	json.Unmarshal([]byte(cli.ok("client", "rotate-secret", id, "--keep-old", "1h")), &rot)
	newSecret := rot["client_secret"]
	if newSecret == "" || newSecret == oldSecret || rot["old_secret_until"] == "" {
		t.Fatalf("rotate-secret printed %v", rot)
	}
	cli.ok("client", "set-scopes", id, "--scope", auth.ScopeUsersRead, "--scope", auth.ScopeSettingsRead)
	if code, _, _ := cli.run("", "client", "set-scopes", id, "--scope", "admin:everything"); code == 0 {
		t.Error("an unknown scope accepted")
	}
	r := c.start("A", c.mail.URL("noreply@resetd.example"))
	for name, s := range map[string]string{"new": newSecret, "old (overlap)": oldSecret} {
		if got := tokenStatusFrom(t, r.url, "", id, s); got != 200 {
			t.Errorf("%s secret: %d", name, got)
		}
	}
	c.client.id, c.client.secret = id, newSecret
	if res := r.do(t, "GET", "/a/password-reset/api/v0/institutions/acme/settings", c.token(r), nil); res.status != 200 {
		t.Errorf("a scope added by set-scopes: %d", res.status)
	}
	// Rotating again without --keep-old ends the old secret at once.
	json.Unmarshal([]byte(cli.ok("client", "rotate-secret", id)), &rot)
	if got := tokenStatusFrom(t, r.url, "", id, newSecret); got != 401 {
		t.Errorf("the replaced secret without --keep-old: %d, want 401", got)
	}
	if got := tokenStatusFrom(t, r.url, "", id, rot["client_secret"]); got != 200 {
		t.Errorf("the newest secret: %d", got)
	}
	audit := cli.ok("audit", "--json")
	for _, action := range []string{"client.create", "client.rotate_secret", "client.set_scopes"} {
		if !strings.Contains(audit, `"`+action+`"`) {
			t.Errorf("audit lacks %s", action)
		}
	}
}
