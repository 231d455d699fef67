package app_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/resetd/resetd/internal/app"
	"github.com/resetd/resetd/internal/auth"
)

// TestInteropOAuth2Library: golang.org/x/oauth2's client-credentials
// client, as a bank's integrator would use it, against the TLS listener.
func TestInteropOAuth2Library(t *testing.T) {
	t.Parallel()
	f := newFAPI(t)
	for _, style := range []struct {
		name  string
		style int
	}{{"basic", 2}, {"post", 1}} {
		cfg := clientcredentials.Config{ClientID: f.adminID, ClientSecret: f.adminSecret, TokenURL: f.tokenURL(),
			Scopes: []string{auth.ScopeSettingsRead}, AuthStyle: oauth2AuthStyle(style.style)}
		ctx := context.WithValue(context.Background(), oauth2HTTPClient, f.pki.httpsClient(nil))
		resp, err := cfg.Client(ctx).Get(f.settingsURL())
		if err != nil {
			t.Fatalf("%s: %v", style.name, err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("%s: settings %d", style.name, resp.StatusCode)
		}
	}
}

// TestMetadataRFC8414: the authorization server metadata has RFC 8414's
// required fields with the right types, over https, and names the §15
// methods and algorithms.
func TestMetadataRFC8414(t *testing.T) {
	t.Parallel()
	f := newFAPI(t)
	c := f.pki.httpsClient(nil)
	req, _ := http.NewRequest("GET", f.base+"/.well-known/oauth-authorization-server", nil)
	m := f.send(c, req)
	if m.status != 200 {
		t.Fatalf("%d", m.status)
	}
	if m.header.Get("Strict-Transport-Security") != "max-age=31536000" {
		t.Errorf("HSTS on an https public URL: %q", m.header.Get("Strict-Transport-Security"))
	}
	iss, _ := m.body["issuer"].(string)
	if u, err := url.Parse(iss); err != nil || u.Scheme != "https" || u.RawQuery != "" || u.Fragment != "" || iss != f.base {
		t.Errorf("issuer %q (RFC 8414 §2: https, no query or fragment)", iss)
	}
	for _, k := range []string{"token_endpoint", "jwks_uri"} {
		if s, _ := m.body[k].(string); !strings.HasPrefix(s, "https://") {
			t.Errorf("%s = %v", k, m.body[k])
		}
	}
	lists := map[string][]string{
		"response_types_supported":                         nil,
		"grant_types_supported":                            {"client_credentials"},
		"token_endpoint_auth_methods_supported":            {"client_secret_basic", "client_secret_post", "private_key_jwt", "tls_client_auth"},
		"token_endpoint_auth_signing_alg_values_supported": {"PS256", "ES256", "EdDSA"},
		"dpop_signing_alg_values_supported":                {"PS256", "ES256", "EdDSA"},
		"scopes_supported":                                 nil,
	}
	for k, want := range lists {
		got, ok := m.body[k].([]any)
		if !ok || len(got) == 0 {
			t.Errorf("%s = %v, want a non-empty JSON array", k, m.body[k])
			continue
		}
		for _, w := range want {
			found := false
			for _, g := range got {
				found = found || g == w
			}
			if !found {
				t.Errorf("%s = %v, lacks %q", k, got, w)
			}
		}
		for _, g := range got {
			if g == "none" || g == "RS256" || g == "HS256" {
				t.Errorf("%s offers %v", k, g)
			}
		}
	}
	if m.body["tls_client_certificate_bound_access_tokens"] != true {
		t.Errorf("tls_client_certificate_bound_access_tokens = %v", m.body["tls_client_certificate_bound_access_tokens"])
	}
	// Plain HTTP is not served on the TLS port.
	if resp, err := http.Get(strings.Replace(f.base, "https://", "http://", 1) + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Error("plain HTTP answered 200 on the TLS listener")
		}
	}
}

// TestRFC7523ClientFromScratch: a client written from RFC 7523 §2.2 and
// RFC 7515 alone — no JOSE library — gets a token with an ES256 assertion.
func TestRFC7523ClientFromScratch(t *testing.T) {
	t.Parallel()
	f := newFAPI(t)
	key := newDPoPKey(t).key // any P-256 key
	x := b64raw(key.PublicKey.X.FillBytes(make([]byte, 32)))
	y := b64raw(key.PublicKey.Y.FillBytes(make([]byte, 32)))
	jwks := fmt.Sprintf(`{"keys":[{"kty":"EC","crv":"P-256","x":%q,"y":%q,"kid":"bank-1","use":"sig"}]}`, x, y)
	id, _, err := f.app.Auth.CreateClientSpec(context.Background(), auth.ClientSpec{InstitutionID: "acme", Scopes: auth.AllScopes,
		AuthMethod: auth.MethodPrivateKeyJWT, JWKS: []byte(jwks)})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().Unix()
	header := b64raw([]byte(`{"alg":"ES256","typ":"JWT","kid":"bank-1"}`))
	payload := b64raw(fmt.Appendf(nil, `{"iss":%q,"sub":%q,"aud":%q,"jti":"%d-scratch","iat":%d,"exp":%d}`, id, id, f.tokenURL(), now, now, now+60))
	input := header + "." + payload
	digest := sha256Sum([]byte(input))
	r, s, err := ecdsaSign(key, digest)
	if err != nil {
		t.Fatal(err)
	}
	sig := append(r.FillBytes(make([]byte, 32)), s.FillBytes(make([]byte, 32))...)
	assertion := input + "." + b64raw(sig)
	form := url.Values{"grant_type": {"client_credentials"}, "client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {assertion}}
	resp, err := f.pki.httpsClient(nil).PostForm(f.tokenURL(), form)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"access_token"`) {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
}

// TestMetricsOnTheManagementListener: with --metrics-addr, /metrics is
// there and not on the customer-facing listener.
func TestMetricsOnTheManagementListener(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *app.Config) { c.MetricsAddr = "127.0.0.1:0" })
	if r := h.do("GET", "/metrics", "", nil); r.Status != 404 {
		t.Errorf("/metrics on the main listener: %d", r.Status)
	}
	for _, p := range []string{"/metrics", "/healthz", "/readyz"} {
		resp, err := http.Get("http://" + h.app.MetricsAddr() + p)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || (p == "/metrics" && !strings.Contains(string(b), "resetd_")) {
			t.Errorf("%s on the management listener: %d", p, resp.StatusCode)
		}
	}
	if resp, err := http.Get("http://" + h.app.MetricsAddr() + "/a/password-reset/api/v0/institutions/acme/settings"); err == nil {
		resp.Body.Close()
		if resp.StatusCode != 404 {
			t.Errorf("the API on the management listener: %d", resp.StatusCode)
		}
	}
}

// dialFrom opens a TCP connection to addr from a given loopback address.
func dialFrom(t *testing.T, from, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// keepAlive sends one request on c and reads its answer, leaving the
// connection open and idle; it returns the status ("" when the server
// closed the connection).
func keepAlive(c net.Conn, br *bufio.Reader) string {
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		return ""
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return ""
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.Status
}

// TestIdleConnectionsDoNotLockOutNewClients: 300 idle keep-alive
// connections from one address cannot stop another address's request;
// that address is capped, and the server holds no more than its total.
func TestIdleConnectionsDoNotLockOutNewClients(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *app.Config) { c.ConnsPerIP, c.MaxConns = 200, 100 })
	addr := strings.TrimPrefix(h.url, "http://")
	served := 0
	for range 300 {
		c := dialFrom(t, "127.0.0.1", addr)
		t.Cleanup(func() { c.Close() })
		if keepAlive(c, bufio.NewReader(c)) == "200 OK" {
			served++
		}
	}
	if n := h.app.OpenConns(); n > 100 {
		t.Errorf("%d connections open, cap 100", n)
	}
	if served < 100 {
		t.Errorf("only %d of 300 connections were served", served)
	}
	other := dialFrom(t, "127.0.0.2", addr)
	defer other.Close()
	if st := keepAlive(other, bufio.NewReader(other)); st != "200 OK" {
		t.Errorf("another address behind 300 idle connections: %q", st)
	}
}

// TestConnectionsPerAddressCapped: the connection over the per-address
// cap is closed at once, while another address is served.
func TestConnectionsPerAddressCapped(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *app.Config) { c.ConnsPerIP = 20 })
	addr := strings.TrimPrefix(h.url, "http://")
	for i := range 20 {
		c := dialFrom(t, "127.0.0.1", addr)
		t.Cleanup(func() { c.Close() })
		if st := keepAlive(c, bufio.NewReader(c)); st != "200 OK" {
			t.Fatalf("connection %d: %q", i, st)
		}
	}
	over := dialFrom(t, "127.0.0.1", addr)
	defer over.Close()
	if st := keepAlive(over, bufio.NewReader(over)); st != "" {
		t.Errorf("the 21st connection from one address: %q, want it closed", st)
	}
	other := dialFrom(t, "127.0.0.3", addr)
	defer other.Close()
	if st := keepAlive(other, bufio.NewReader(other)); st != "200 OK" {
		t.Errorf("another address: %q", st)
	}
	if m := string(dialFromGet(t, "127.0.0.4", addr, "/metrics")); !strings.Contains(m, `resetd_rate_limited_total{limit="connectionsPerIP"} 1`) {
		t.Errorf("the refusal is not counted:\n%s", m)
	}
}

// dialFromGet GETs path on a fresh connection from a loopback address.
func dialFromGet(t *testing.T, from, addr, path string) []byte {
	t.Helper()
	tr := &http.Transport{DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
		return d.DialContext(ctx, network, a)
	}}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get("http://" + addr + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return b
}

// TestBrokenBodyIs400: a body that stalls past the read timeout, or ends
// before its Content-Length, answers 400, never 500, and logs no error.
func TestBrokenBodyIs400(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *app.Config) { c.ReadTimeout = time.Second })
	tok := h.admin()
	addr := strings.TrimPrefix(h.url, "http://")
	for _, path := range []string{
		"/a/password-reset/api/v0/institutions/acme/users/u1",
		"/a/oidc-provider/api/v0/token",
	} {
		for _, mode := range []string{"stalled", "truncated"} {
			t.Run(mode+path, func(t *testing.T) {
				c := dialFrom(t, "127.0.0.1", addr)
				defer c.Close()
				method, ct := "PUT", "application/json"
				if strings.HasSuffix(path, "/token") {
					method, ct = "POST", "application/x-www-form-urlencoded"
				}
				start := time.Now()
				fmt.Fprintf(c, "%s %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: %s\r\nContent-Length: 100\r\n\r\n{\"username\":", method, path, tok, ct)
				if mode == "truncated" {
					c.(*net.TCPConn).CloseWrite()
				}
				c.SetReadDeadline(time.Now().Add(10 * time.Second))
				resp, err := http.ReadResponse(bufio.NewReader(c), nil)
				if err != nil {
					t.Fatalf("no answer: %v", err)
				}
				resp.Body.Close()
				if resp.StatusCode != 400 {
					t.Errorf("%d, want 400", resp.StatusCode)
				}
				if mode == "stalled" && time.Since(start) > 5*time.Second {
					t.Errorf("answered after %v; the read timeout is 1s", time.Since(start))
				}
			})
		}
	}
	if strings.Contains(h.logs.String(), `"level":"ERROR"`) {
		t.Errorf("an ERROR was logged:\n%s", h.logs.String())
	}
}

// TestIPv6SlashSixtyFourSharesABudget: two addresses of one /64 (here
// through a trusted proxy's X-Forwarded-For, with a port) count against
// one per-IP budget; another /64 has its own.
func TestIPv6SlashSixtyFourSharesABudget(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *app.Config) { c.TrustedProxies = []string{"127.0.0.1/32"} })
	h.putSettings(h.admin(), map[string]int{"publicPerIPMinute": 1})
	ask := func(xff string) int {
		return h.do("GET", "/api/Authorize/SendResetPassword?username=nobody", "", nil, "X-Forwarded-For", xff).Status
	}
	if st := ask("[2001:db8:1:2::1]:4711"); st != 200 {
		t.Fatalf("first request: %d", st)
	}
	if st := ask("2001:db8:1:2:ffff::99"); st != 429 {
		t.Errorf("another address of the same /64: %d, want 429", st)
	}
	if st := ask("2001:db8:1:3::1"); st != 200 {
		t.Errorf("another /64: %d, want 200", st)
	}
	if st := ask("198.51.100.7:5555"); st != 200 {
		t.Errorf("an IPv4 client with a port: %d, want 200", st)
	}
	if st := ask("198.51.100.7:6666"); st != 429 {
		t.Errorf("the same IPv4 client from another port: %d, want 429", st)
	}
}

var oauth2HTTPClient = oauth2.HTTPClient

func oauth2AuthStyle(n int) oauth2.AuthStyle { return oauth2.AuthStyle(n) }

func b64raw(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func sha256Sum(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:]
}

func ecdsaSign(k *ecdsa.PrivateKey, digest []byte) (r, s *big.Int, err error) {
	return ecdsa.Sign(rand.Reader, k, digest)
}
