package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/resetd/resetd/internal/auth"
	"github.com/resetd/resetd/internal/mailtest"
	"github.com/resetd/resetd/internal/store/postgres/pgtest"
)

// replica is one `resetd serve` process.
type replica struct {
	name string
	cmd  *exec.Cmd
	url  string
	log  *watched
	done chan struct{} // closed when the process has exited
}

// cluster is N real resetd processes on one PostgreSQL database, with a
// real SMTP server beside them.
type cluster struct {
	t      *testing.T
	bin    string
	env    []string
	mail   *mailtest.Server
	client struct{ id, secret string }
	// serveArgs replaces the serve command line of start when set.
	serveArgs []string
}

// buildResetd compiles the binary under test once per test.
func buildResetd(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "resetd")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// cli runs an operator command to completion and returns its stdout.
func (c *cluster) cli(args ...string) string {
	c.t.Helper()
	cmd := exec.Command(c.bin, args...)
	cmd.Env = c.env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		c.t.Fatalf("resetd %v: %v\n%s%s", args, err, out.String(), errb.String())
	}
	return out.String()
}

// listening matches the JSON log line and the text one (serve --dev).
var listening = regexp.MustCompile(`resetd listening"[, ]"?addr"?[:=]"?([0-9.:]+)`)

// start runs `resetd serve` on a free loopback port and waits until it
// answers /readyz.
func (c *cluster) start(name, smtpURL string) *replica {
	c.t.Helper()
	args := []string{"serve", "--addr", "127.0.0.1:0", "--smtp", smtpURL}
	if c.serveArgs != nil {
		args = c.serveArgs
	}
	cmd := exec.Command(c.bin, args...)
	cmd.Env = c.env
	r := &replica{name: name, cmd: cmd, log: newWatched(), done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = io.Discard, r.log
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	go func() { _ = cmd.Wait(); close(r.done) }()
	c.t.Cleanup(func() {
		r.stop(c.t)
		if c.t.Failed() {
			c.t.Logf("log of replica %s:\n%s", r.name, r.log.String())
		}
	})
	r.url = "http://" + r.log.waitFor(c.t, listening)[1]
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for {
		if resp, err := http.Get(r.url + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return r
			}
		}
		select {
		case <-ctx.Done():
			c.t.Fatalf("replica %s never ready:\n%s", name, r.log.String())
		case <-r.done:
			c.t.Fatalf("replica %s exited:\n%s", name, r.log.String())
		case <-time.After(20 * time.Millisecond): // polling a readiness endpoint
		}
	}
}

// stop ends the process gracefully (SIGTERM), as an orchestrator would.
func (r *replica) stop(t *testing.T) {
	select {
	case <-r.done:
		return
	default:
	}
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.done:
	case <-time.After(30 * time.Second):
		t.Errorf("replica %s ignored SIGTERM", r.name)
		_ = r.cmd.Process.Kill()
		<-r.done
	}
}

// kill ends the process at once (SIGKILL): no shutdown, no cleanup.
func (r *replica) kill() {
	_ = r.cmd.Process.Kill()
	<-r.done
}

type reply struct {
	status int
	body   string
}

func (r *replica) do(t *testing.T, method, path, bearer string, body any) reply {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, r.url+path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s on %s: %v", method, path, r.name, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{resp.StatusCode, string(b)}
}

func (c *cluster) token(r *replica) string {
	c.t.Helper()
	req, _ := http.NewRequest("POST", r.url+"/a/oidc-provider/api/v0/token", strings.NewReader("grant_type=client_credentials"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(c.client.id, c.client.secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 {
		c.t.Fatalf("token from %s: %d %v", r.name, resp.StatusCode, err)
	}
	return out.AccessToken
}

const apiPrefix = "/a/password-reset/api/v0/institutions/acme/users/"

func sendReset(t *testing.T, r *replica, tok, user string) reply {
	t.Helper()
	return r.do(t, "POST", apiPrefix+user+"/password/reset", tok, map[string]string{"method": "email"})
}

// mailsTo counts the messages the SMTP server accepted for addr.
func (c *cluster) mailsTo(addr string) int {
	n := 0
	for _, m := range c.mail.Messages() {
		for _, to := range m.To {
			if to == addr {
				n++
			}
		}
	}
	return n
}

func (c *cluster) waitMail(n int, within time.Duration) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	if _, err := c.mail.Wait(ctx, n); err != nil {
		c.t.Fatalf("waiting for %d emails (have %d): %v", n, c.mail.Count(), err)
	}
}

// waitDeliveries polls a user's deliveries (an HTTP resource; there is no
// event to await) until ok says they are as wanted, and returns them.
func waitDeliveries(t *testing.T, r *replica, tok, user, what string, within time.Duration, ok func([]map[string]any) bool) []map[string]any {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		res := r.do(t, "GET", apiPrefix+user+"/password/deliveries", tok, nil)
		var out struct {
			Deliveries []map[string]any `json:"deliveries"`
		}
		_ = json.Unmarshal([]byte(res.body), &out)
		if res.status == 200 && ok(out.Deliveries) {
			return out.Deliveries
		}
		if time.Now().After(deadline) {
			t.Fatalf("deliveries of %s never %s: %d %s", user, what, res.status, res.body)
		}
		<-time.After(50 * time.Millisecond) // polling an HTTP resource
	}
}

// waitSent waits until the user has exactly want deliveries, all sent.
func waitSent(t *testing.T, r *replica, tok, user string, want int, within time.Duration) []map[string]any {
	t.Helper()
	return waitDeliveries(t, r, tok, user, fmt.Sprintf("%d, all sent", want), within, func(ds []map[string]any) bool {
		sent := 0
		for _, d := range ds {
			if d["state"] == "sent" {
				sent++
			}
		}
		return len(ds) == want && sent == want
	})
}

var resetToken = regexp.MustCompile(`[?&]token=([A-Za-z0-9_-]{43})`)

// TestReplicas runs two `resetd serve` processes on one PostgreSQL
// database and checks SPEC §5: anything issued on one is honoured on the
// other, every message goes out exactly once whichever replica works the
// queue, limits are shared, and a replica killed outright loses nothing.
func TestReplicas(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	t.Parallel()
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	c := &cluster{t: t, bin: buildResetd(t), mail: mailtest.NewServer(t)}
	// Replicas behind one load balancer share the database, the secret key
	// and the public URL (the tokens' issuer and the links' base).
	c.env = append(os.Environ(), "RESETD_DB="+dsn, "RESETD_SECRET_KEY="+hex.EncodeToString(key), "RESETD_PUBLIC_URL=http://127.0.0.1:8080")
	from := "noreply@resetd.example"

	// Two replicas migrating at once is safe (advisory lock).
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() { c.cli("migrate") })
	}
	wg.Wait()

	c.cli("institution", "put", "acme", "--name", "Acme Bank", "--sender", "security@acme.example", "--default")
	users := []string{"jane", "lim", "crash", "stuck"}
	const spread = 10
	for i := range spread {
		users = append(users, fmt.Sprintf("s%02d", i))
	}
	for _, u := range users {
		c.cli("user", "put", "--institution", "acme", u, "--username", u, "--email", u+"@example.com")
	}
	var client map[string]string
	out := c.cli("client", "create", "--institution", "acme", "--json", "--scope", auth.ScopeResetWrite,
		"--scope", auth.ScopeUsersRead, "--scope", auth.ScopeSettingsRead)
	if err := json.Unmarshal([]byte(out), &client); err != nil {
		t.Fatalf("client create: %v: %s", err, out)
	}
	c.client.id, c.client.secret = client["client_id"], client["client_secret"]

	a := c.start("A", c.mail.URL(from))
	b := c.start("B", c.mail.URL(from))

	// An access token issued by A is accepted by B, and the other way round.
	tokA, tokB := c.token(a), c.token(b)
	for _, x := range []struct {
		r   *replica
		tok string
	}{{b, tokA}, {a, tokB}} {
		if res := x.r.do(t, "GET", "/a/password-reset/api/v0/institutions/acme/settings", x.tok, nil); res.status != 200 {
			t.Fatalf("token from the other replica refused by %s: %d %s", x.r.name, res.status, res.body)
		}
	}

	// A reset link sent through A is redeemed on B, once.
	if res := sendReset(t, a, tokA, "jane"); res.status != 200 {
		t.Fatalf("send on A: %d %s", res.status, res.body)
	}
	c.waitMail(1, 30*time.Second)
	m := resetToken.FindStringSubmatch(c.mail.Messages()[0].Text)
	if m == nil {
		t.Fatalf("no link in %q", c.mail.Messages()[0].Text)
	}
	change := map[string]string{"token": m[1], "newPassword": "correct horse battery staple"}
	if res := b.do(t, "POST", "/a/password-reset/api/v0/password/change", "", change); res.status != 204 {
		t.Fatalf("redeem on B: %d %s", res.status, res.body)
	}
	if res := a.do(t, "POST", "/a/password-reset/api/v0/password/change", "", change); res.status != 410 {
		t.Fatalf("second redemption on A: %d %s, want 410", res.status, res.body)
	}
	c.waitMail(2, 30*time.Second) // "your password was changed"
	waitSent(t, b, tokB, "jane", 2, 30*time.Second)

	// N sends spread over both replicas: exactly N emails, one per user.
	before := c.mail.Count()
	wg = sync.WaitGroup{}
	for i := range spread {
		r, tok := a, tokA
		if i%2 == 1 {
			r, tok = b, tokB
		}
		user := fmt.Sprintf("s%02d", i)
		wg.Go(func() {
			if res := sendReset(t, r, tok, user); res.status != 200 {
				t.Errorf("send to %s on %s: %d %s", user, r.name, res.status, res.body)
			}
		})
	}
	wg.Wait()
	c.waitMail(before+spread, 30*time.Second)
	for i := range spread {
		user := fmt.Sprintf("s%02d", i)
		waitSent(t, a, tokA, user, 1, 30*time.Second)
		if n := c.mailsTo(user + "@example.com"); n != 1 {
			t.Errorf("%s got %d emails, want 1", user, n)
		}
	}
	if n := c.mail.Count() - before; n != spread {
		t.Errorf("%d sends over two replicas gave %d emails", spread, n)
	}

	// The per-user limit (5 sends an hour) holds across replicas: of 12
	// concurrent sends to one user, split over A and B, exactly 5 pass.
	const tries = 12
	var mu sync.Mutex
	codes := map[int]int{}
	wg = sync.WaitGroup{}
	for i := range tries {
		r, tok := a, tokA
		if i%2 == 1 {
			r, tok = b, tokB
		}
		wg.Go(func() {
			res := sendReset(t, r, tok, "lim")
			mu.Lock()
			codes[res.status]++
			mu.Unlock()
		})
	}
	wg.Wait()
	if codes[200] != 5 || codes[429] != tries-5 {
		t.Errorf("%d concurrent sends to one user over two replicas: %v; want 5×200 and %d×429", tries, codes, tries-5)
	}
	waitSent(t, b, tokB, "lim", 5, 30*time.Second)
	if n := c.mailsTo("lim@example.com"); n != 5 {
		t.Errorf("limited user got %d emails, want 5", n)
	}

	// SMTP down; A accepts a send and is killed at once. Nothing is lost:
	// B tries while SMTP is still down, and when SMTP is back, B delivers
	// it, once. (If A had already begun the attempt, B first has to
	// rescue the job: docs/DEPLOYMENT.md, "at least once".)
	c.mail.Stop()
	if res := sendReset(t, a, tokA, "crash"); res.status != 200 {
		t.Fatalf("send on A: %d %s", res.status, res.body)
	}
	a.kill()
	killed := time.Now()
	waitDeliveries(t, b, tokB, "crash", "tried while SMTP is down", 3*time.Minute, func(ds []map[string]any) bool {
		return len(ds) == 1 && ds[0]["state"] == "queued" && ds[0]["lastError"] == "unavailable"
	})
	c.mail.Start()
	d := waitSent(t, b, tokB, "crash", 1, 3*time.Minute)
	if n := c.mailsTo("crash@example.com"); n != 1 {
		t.Errorf("killed replica's message delivered %d times, want 1 (delivery %v)", n, d[0])
	}
	t.Logf("message accepted by a replica killed at once (SMTP down) delivered by the survivor %v later", time.Since(killed).Round(time.Second))

	// The harder case: a replica killed in the middle of a send (its SMTP
	// relay accepted the connection and never answered). The job is left
	// "running"; a replica started after the kill rescues it once no live
	// attempt can still be running, and delivers it, once, within 30
	// seconds of the kill.
	b.stop(t)
	hole := newBlackHole(t)
	cr := c.start("C", "smtp://"+hole.addr+"?tls=none&from="+url.QueryEscape(from))
	tokC := c.token(cr)
	if res := sendReset(t, cr, tokC, "stuck"); res.status != 200 {
		t.Fatalf("send on C: %d %s", res.status, res.body)
	}
	select {
	case <-hole.accepted:
	case <-time.After(30 * time.Second):
		t.Fatal("C never tried to send")
	}
	cr.kill()
	killed = time.Now()
	survivor := c.start("D", c.mail.URL(from))
	d = waitSent(t, survivor, c.token(survivor), "stuck", 1, 30*time.Second-time.Since(killed))
	if n := c.mailsTo("stuck@example.com"); n != 1 {
		t.Errorf("message of a replica killed mid-send delivered %d times, want 1 (delivery %v)", n, d[0])
	}
	t.Logf("message of a replica killed mid-send rescued and delivered %v later", time.Since(killed).Round(100*time.Millisecond))
	if d[0]["attempts"] != float64(2) {
		t.Errorf("delivery after a rescue: %v, want 2 attempts (the killed one and the good one)", d[0])
	}
}

// blackHole is an SMTP relay that accepts connections and never answers,
// so a sender hangs in the middle of a send.
type blackHole struct {
	addr     string
	accepted chan struct{}
}

func newBlackHole(t *testing.T) *blackHole {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &blackHole{addr: ln.Addr().String(), accepted: make(chan struct{}, 16)}
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, conn)
			mu.Unlock()
			select {
			case h.accepted <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return h
}
