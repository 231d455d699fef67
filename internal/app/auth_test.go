package app_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/resetd/resetd/internal/auth"
	"github.com/resetd/resetd/internal/store"
)

type tokenResponse struct {
	Status int
	Header http.Header
	Body   map[string]any
}

func (h *harness) tokenRequest(form url.Values, query string, basicID, basicSecret, contentType string) tokenResponse {
	h.t.Helper()
	req, _ := http.NewRequest("POST", h.url+"/a/oidc-provider/api/v0/token"+query, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", contentType)
	if basicID != "" {
		req.SetBasicAuth(basicID, basicSecret)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		h.t.Fatalf("token endpoint answered non-JSON %q", b)
	}
	return tokenResponse{resp.StatusCode, resp.Header, m}
}

func TestTokenEndpoint(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	cc := url.Values{"grant_type": {"client_credentials"}}
	form := "application/x-www-form-urlencoded"
	post := url.Values{"grant_type": {"client_credentials"}, "client_id": {h.adminID}, "client_secret": {h.adminSecret}}

	ok := h.tokenRequest(cc, "", h.adminID, h.adminSecret, form)
	if ok.Status != 200 || ok.Body["token_type"] != "Bearer" || ok.Body["expires_in"] != float64(3600) {
		t.Fatalf("basic: %d %v", ok.Status, ok.Body)
	}
	if ok.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("token response Cache-Control = %q", ok.Header.Get("Cache-Control"))
	}
	if _, has := ok.Body["refresh_token"]; has {
		t.Error("client credentials must not get a refresh token")
	}
	if got := strings.Fields(ok.Body["scope"].(string)); len(got) != len(auth.AllScopes) {
		t.Errorf("no scope asked: got %v, want all %d of the client's", got, len(auth.AllScopes))
	}
	if r := h.tokenRequest(post, "", "", "", form); r.Status != 200 {
		t.Errorf("client_secret_post: %d %v", r.Status, r.Body)
	}
	narrow := url.Values{"grant_type": {"client_credentials"}, "scope": {auth.ScopeSettingsRead}}
	if r := h.tokenRequest(narrow, "", h.adminID, h.adminSecret, form); r.Status != 200 || r.Body["scope"] != auth.ScopeSettingsRead {
		t.Errorf("narrowed scope: %d %v", r.Status, r.Body)
	}

	cases := []struct {
		name        string
		form        url.Values
		query       string
		id, secret  string
		contentType string
		status      int
		code        string
	}{
		{"both methods", post, "", h.adminID, h.adminSecret, form, 400, "invalid_request"},
		{"wrong secret", cc, "", h.adminID, "nope", form, 401, "invalid_client"},
		{"unknown client", cc, "", "rc_nobody", "nope", form, 401, "invalid_client"},
		{"no credentials", cc, "", "", "", form, 401, "invalid_client"},
		{"password grant", url.Values{"grant_type": {"password"}}, "", h.adminID, h.adminSecret, form, 400, "unsupported_grant_type"},
		{"no grant", url.Values{}, "", h.adminID, h.adminSecret, form, 400, "invalid_request"},
		{"unknown scope", url.Values{"grant_type": {"client_credentials"}, "scope": {"admin:everything"}}, "", h.adminID, h.adminSecret, form, 400, "invalid_scope"},
		{"secret in query", cc, "?client_id=" + h.adminID + "&client_secret=" + h.adminSecret, "", "", form, 400, "invalid_request"},
		{"json body", cc, "", h.adminID, h.adminSecret, "application/json", 400, "invalid_request"},
	}
	for _, c := range cases {
		r := h.tokenRequest(c.form, c.query, c.id, c.secret, c.contentType)
		if r.Status != c.status || r.Body["error"] != c.code || r.Body["error_description"] == "" {
			t.Errorf("%s: got %d %v, want %d %s", c.name, r.Status, r.Body, c.status, c.code)
		}
		if c.status == 401 && !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Basic") {
			t.Errorf("%s: 401 without WWW-Authenticate", c.name)
		}
	}
}

func TestTokenEndpointThrottlesWrongSecrets(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	cc := url.Values{"grant_type": {"client_credentials"}}
	form := "application/x-www-form-urlencoded"
	// "unknown client" above spent none of this client's budget.
	for i := range 10 {
		if r := h.tokenRequest(cc, "", h.adminID, "wrong", form); r.Status != 401 {
			t.Fatalf("attempt %d: %d", i, r.Status)
		}
	}
	r := h.tokenRequest(cc, "", h.adminID, h.adminSecret, form)
	if r.Status != 429 || r.Header.Get("Retry-After") == "" {
		t.Fatalf("after 10 failures even the right secret must wait: %d %v", r.Status, r.Body)
	}
	h.clock.Advance(16 * time.Minute)
	if r := h.tokenRequest(cc, "", h.adminID, h.adminSecret, form); r.Status != 200 {
		t.Fatalf("after the window: %d %v", r.Status, r.Body)
	}
	// The failures are audited aggregated, once their minute is written:
	// one record for the 10 wrong secrets and the throttled attempt.
	if err := h.app.Reset.AuthFailures().Flush(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	recs, err := h.app.Store.Audit(context.Background(), store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var failed []store.AuditRecord
	for _, r := range recs {
		if r.Action == "auth.token" {
			failed = append(failed, r)
		}
	}
	if len(failed) != 1 || failed[0].Count != 11 || failed[0].ClientID != h.adminID || failed[0].Outcome != "invalid_client" {
		t.Fatalf("failed authentications audited: %+v", failed)
	}
}

func TestDiscoveryDocuments(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	r := h.do("GET", "/.well-known/jwks.json", "", nil)
	var set struct {
		Keys []struct{ Kty, Crv, Kid, Alg, X, D string }
	}
	if err := json.Unmarshal(r.Body, &set); err != nil || r.Status != 200 || len(set.Keys) != 1 {
		t.Fatalf("jwks: %d %s", r.Status, r.Body)
	}
	if k := set.Keys[0]; k.Kty != "OKP" || k.Crv != "Ed25519" || k.Alg != "EdDSA" || k.D != "" {
		t.Fatalf("jwks key: %+v", k)
	}
	m := h.do("GET", "/.well-known/oauth-authorization-server", "", nil).json(t)
	if m["token_endpoint"] != h.url+"/a/oidc-provider/api/v0/token" || m["issuer"] != h.url {
		t.Fatalf("metadata: %v", m)
	}
}

func TestBearerChecks(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tok := h.admin()
	settings := P + "/institutions/acme/settings"

	none := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." +
		strings.Split(tok, ".")[1] + "."
	parts := strings.Split(tok, ".")
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"x","inst":"*","scope":"`+auth.ScopeSettingsRead+`"}`)) + "." + parts[2]

	for _, c := range []struct {
		name   string
		path   string
		bearer string
		hdr    []string
	}{
		{"missing", settings, "", nil},
		{"garbage", settings, "not-a-jwt", nil},
		{"alg none", settings, none, nil},
		{"tampered payload", settings, tampered, nil},
		{"in query string", settings + "?access_token=" + tok, "", nil},
		{"basic scheme", settings, "", []string{"Authorization", "Basic " + tok}},
	} {
		r := h.do("GET", c.path, c.bearer, nil, c.hdr...)
		if r.Status != 401 || !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s: got %d (WWW-Authenticate %q), want 401 Bearer", c.name, r.Status, r.Header.Get("WWW-Authenticate"))
		}
		if ct := r.Header.Get("Content-Type"); ct != "application/problem+json" {
			t.Errorf("%s: content type %q", c.name, ct)
		}
	}

	// Scope missing: 403 with the scope named.
	reader := h.client("acme", auth.ScopeUsersRead)
	r := h.do("GET", settings, reader, nil)
	if r.Status != 403 || !strings.Contains(r.Header.Get("WWW-Authenticate"), `error="insufficient_scope"`) ||
		!strings.Contains(r.Header.Get("WWW-Authenticate"), auth.ScopeSettingsRead) {
		t.Errorf("missing scope: %d %q", r.Status, r.Header.Get("WWW-Authenticate"))
	}
	if p := r.json(t); p["status"] != float64(403) || p["transactionId"] == "" {
		t.Errorf("403 body: %v", p)
	}

	// Another institution's path: 404, the same as a missing institution.
	other := h.do("GET", P+"/institutions/other/settings", tok, nil)
	missing := h.do("GET", P+"/institutions/nowhere/settings", h.client("*", auth.ScopeSettingsRead), nil)
	if other.Status != 404 || missing.Status != 404 {
		t.Errorf("tenant binding: other=%d missing=%d, want 404 both", other.Status, missing.Status)
	}
	// A client bound to every institution reaches both.
	all := h.client("*", auth.ScopeSettingsRead)
	for _, inst := range []string{"acme", "other"} {
		if r := h.do("GET", P+"/institutions/"+inst+"/settings", all, nil); r.Status != 200 {
			t.Errorf("'*' client on %s: %d", inst, r.Status)
		}
	}

	// Expired: an hour and a bit later the same token is refused.
	h.clock.Advance(time.Hour + time.Minute)
	if r := h.do("GET", settings, tok, nil); r.Status != 401 {
		t.Errorf("expired token: %d", r.Status)
	}
}

func TestTokenFromAnotherServerIsRefused(t *testing.T) {
	t.Parallel()
	a, b := newHarness(t), newHarness(t)
	if r := a.do("GET", P+"/institutions/acme/settings", b.admin(), nil); r.Status != 401 {
		t.Fatalf("a token signed by another server's key (and issuer) must be refused, got %d", r.Status)
	}
}
