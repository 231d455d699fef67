package app_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/resetd/resetd/internal/app"
	"github.com/resetd/resetd/internal/auth"
	"github.com/resetd/resetd/internal/delivery"
	"github.com/resetd/resetd/internal/mailtest"
	"github.com/resetd/resetd/internal/password"
	"github.com/resetd/resetd/internal/seal"
)

// clock is an injectable clock: tests move time instead of sleeping.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// cheapArgon2 keeps -race runs fast; production parameters are tested in
// the password package and measured by the benchmarks.
var cheapArgon2 = password.Params{Memory: 1024, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 16}

// logBuffer collects every log line the server writes, so tests can check
// that no secret ever reaches a log.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	// wrote is closed and replaced on every write (awaitLog waits on it).
	wrote chan struct{}
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.wrote != nil {
		close(l.wrote)
		l.wrote = nil
	}
	return l.buf.Write(p)
}

// awaitLog waits until the server has logged a line containing s.
func (h *harness) awaitLog(s string) {
	h.t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		h.logs.mu.Lock()
		if strings.Contains(h.logs.buf.String(), s) {
			h.logs.mu.Unlock()
			return
		}
		if h.logs.wrote == nil {
			h.logs.wrote = make(chan struct{})
		}
		wrote := h.logs.wrote
		h.logs.mu.Unlock()
		select {
		case <-wrote:
		case <-timeout:
			h.t.Fatalf("no log line with %q", s)
		}
	}
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// harness is a real resetd (SQLite file, River queue, HTTP on loopback)
// with a real SMTP server and a Twilio-shaped SMS API beside it.
type harness struct {
	t      *testing.T
	dbPath string
	// secretKey is RESETD_SECRET_KEY of this harness's server.
	secretKey string
	clock     *clock
	mail      *mailtest.Server
	sms       *mailtest.Twilio
	logs      *logBuffer
	app       *app.App
	url       string
	cancel    context.CancelFunc
	done      chan error
	// admin holds every scope on the "acme" institution.
	adminID, adminSecret string
	// configure adjusts the configuration of every start.
	configure []func(*app.Config)
}

func newHarness(t *testing.T, configure ...func(*app.Config)) *harness {
	t.Helper()
	h := &harness{
		t:         t,
		dbPath:    filepath.Join(t.TempDir(), "resetd.db"),
		secretKey: harnessKey(t),
		clock:     &clock{t: time.Now().UTC()},
		mail:      mailtest.NewServer(t),
		sms:       mailtest.NewTwilio(t, "ACtest", "sekrit"),
		logs:      &logBuffer{},
		configure: configure,
	}
	h.start()
	t.Cleanup(h.stop)
	ctx := context.Background()
	if _, err := h.app.Reset.PutInstitution(ctx, "acme", "Acme Bank", nil, []string{"security@acme.example"}, true); err != nil {
		t.Fatal(err)
	}
	if _, err := h.app.Reset.PutInstitution(ctx, "other", "Other Bank", nil, nil, false); err != nil {
		t.Fatal(err)
	}
	var err error
	h.adminID, h.adminSecret, err = h.app.Auth.CreateClient(ctx, "acme", "admin", auth.AllScopes)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *harness) start() {
	h.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		h.t.Fatal(err)
	}
	cfg := app.Config{
		Addr:   ln.Addr().String(),
		DB:     harnessDB(h.t, h.dbPath),
		SMTP:   h.mail.URL("noreply@resetd.example"),
		SMS:    h.sms.URL("+15005550006"),
		Logger: slog.New(slog.NewJSONHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:    h.clock.Now,
		Argon2: &cheapArgon2,
		// One key per harness, kept across restarts of its server.
		SecretKey: h.secretKey,
		Server:    true,
	}
	for _, c := range h.configure {
		c(&cfg)
	}
	a, err := app.Open(ctx, cfg)
	if err != nil {
		cancel()
		ln.Close()
		h.t.Fatal(err)
	}
	h.app, h.url, h.cancel, h.done = a, "http://"+ln.Addr().String(), cancel, make(chan error, 1)
	go func() { h.done <- a.Serve(ctx, ln) }()
}

func (h *harness) stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	if err := <-h.done; err != nil {
		h.t.Errorf("serve: %v", err)
	}
	if err := h.app.Close(); err != nil {
		h.t.Errorf("close: %v", err)
	}
	h.cancel = nil
}

func (h *harness) restart() {
	h.stop()
	h.start()
}

type response struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("body %q is not a JSON object: %v", r.Body, err)
	}
	return m
}

// do sends a request; body may be nil, a string (sent as is) or a value
// (sent as JSON). hdr is pairs of header name and value.
func (h *harness) do(method, path, bearer string, body any, hdr ...string) response {
	h.t.Helper()
	var rd io.Reader
	ct := ""
	switch b := body.(type) {
	case nil:
	case string:
		rd, ct = strings.NewReader(b), "application/json"
	case []byte:
		rd, ct = bytes.NewReader(b), "application/json"
	default:
		j, err := json.Marshal(b)
		if err != nil {
			h.t.Fatal(err)
		}
		rd, ct = bytes.NewReader(j), "application/json"
	}
	req, err := http.NewRequest(method, h.url+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i+1] == "" {
			req.Header.Del(hdr[i])
			continue
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	return response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// tokenFor gets an access token by client credentials (HTTP Basic).
func (h *harness) tokenFor(id, secret string, scope ...string) string {
	h.t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}}
	if len(scope) > 0 {
		form.Set("scope", strings.Join(scope, " "))
	}
	req, _ := http.NewRequest("POST", h.url+"/a/oidc-provider/api/v0/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(id, secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		AccessToken string `json:"access_token"`
	}
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		h.t.Fatalf("token: %d %s", resp.StatusCode, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		h.t.Fatal(err)
	}
	return out.AccessToken
}

func (h *harness) admin() string {
	h.t.Helper()
	return h.tokenFor(h.adminID, h.adminSecret)
}

// client makes a client on institution inst with the given scopes and
// returns a token for it.
func (h *harness) client(inst string, scopes ...string) string {
	h.t.Helper()
	id, secret, err := h.app.Auth.CreateClient(context.Background(), inst, "test", scopes)
	if err != nil {
		h.t.Fatal(err)
	}
	return h.tokenFor(id, secret)
}

const P = "/a/password-reset/api/v0"

func (h *harness) putUser(tok, inst, id string, body map[string]any) {
	h.t.Helper()
	r := h.do("PUT", P+"/institutions/"+inst+"/users/"+id, tok, body)
	if r.Status != 201 && r.Status != 200 {
		h.t.Fatalf("put user %s: %d %s", id, r.Status, r.Body)
	}
}

var linkToken = regexp.MustCompile(`/reset\?token=([A-Za-z0-9_-]{43})`)

// resetLink sends a reset link by email to user and returns the token
// read from the email the SMTP server received.
func (h *harness) resetLink(tok, inst, user string) string {
	h.t.Helper()
	before := h.mail.Count()
	r := h.do("POST", P+"/institutions/"+inst+"/users/"+user+"/password/reset", tok, map[string]string{"method": "email"})
	if r.Status != 200 {
		h.t.Fatalf("send reset: %d %s", r.Status, r.Body)
	}
	// Other messages (a change notice) may arrive in between: take the
	// first new one that carries a link.
	for n := before + 1; ; n++ {
		msgs := h.waitMail(n)
		for _, m := range msgs[before:] {
			if match := linkToken.FindStringSubmatch(m.Text); match != nil {
				return match[1]
			}
		}
	}
}

func (h *harness) waitMail(n int) []mailtest.Mail {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	msgs, err := h.mail.Wait(ctx, n)
	if err != nil {
		h.t.Fatalf("waiting for %d emails (have %d): %v", n, h.mail.Count(), err)
	}
	return msgs
}

// putSettings changes acme's settings through the API (204 or the test fails).
func (h *harness) putSettings(tok string, patch any) {
	h.t.Helper()
	if r := h.do("PUT", P+"/institutions/acme/settings", tok, patch); r.Status != 204 {
		h.t.Fatalf("put settings %v: %d %s", patch, r.Status, r.Body)
	}
}

// webhookSecret is the secret an institution's receiver verifies with,
// as `resetd institution webhook-secret ID` prints it.
func (h *harness) webhookSecret(institutionID string) string {
	h.t.Helper()
	secrets, err := delivery.WebhookSecrets(context.Background(), h.app.Store, h.app.Key, institutionID, time.Now())
	if err != nil {
		h.t.Fatal(err)
	}
	return secrets[0]
}

// harnessKeys holds one secret key per test: harnesses of one test share
// a database on PostgreSQL (harnessDB), and so its key.
var harnessKeys sync.Map

func harnessKey(t *testing.T) string {
	k, loaded := harnessKeys.LoadOrStore(t, hex.EncodeToString(seal.Generate()))
	if !loaded {
		t.Cleanup(func() { harnessKeys.Delete(t) })
	}
	return k.(string)
}
