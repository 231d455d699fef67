package app_test

// The OpenAPI document (GET /openapi.yaml) against the real server: every
// route the server registers is documented and every documented operation
// is registered, and real requests and responses of every operation, in
// success and in error, validate against the document.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/resetd/resetd/internal/auth"
	"github.com/resetd/resetd/internal/mailtest"
)

// openAPIDocument loads the document the server serves, pointed at the
// harness's address.
func openAPIDocument(t *testing.T, h *harness) *openapi3.T {
	t.Helper()
	r := h.do("GET", "/openapi.yaml", "", nil)
	if r.Status != http.StatusOK {
		t.Fatalf("GET /openapi.yaml: %d %s", r.Status, r.Body)
	}
	doc, err := openapi3.NewLoader().LoadFromData(r.Body)
	if err != nil {
		t.Fatalf("loading the document: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("the document does not validate: %v", err)
	}
	// The document names the server it came from (its public URL).
	if len(doc.Servers) != 1 || doc.Servers[0].URL != h.app.PublicURL() {
		t.Errorf("servers = %v, want only the public URL %s", doc.Servers, h.app.PublicURL())
	}
	doc.Servers = openapi3.Servers{{URL: h.url}}
	return doc
}

// routeOf turns a ServeMux pattern into "METHOD /path/{var}", the form the
// document's operations are listed in.
func routeOf(pattern string) string {
	method, path, ok := strings.Cut(pattern, " ")
	if !ok || !strings.HasPrefix(path, "/") {
		return "ANY-METHOD-OR-HOST " + pattern // cannot be documented as is
	}
	path = strings.ReplaceAll(path, "...}", "}")
	path = strings.TrimSuffix(path, "{$}")
	return method + " " + path
}

func TestOpenAPIRoutesMatchTheDocument(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	doc := openAPIDocument(t, h)

	registered := map[string]bool{}
	for _, p := range h.app.Server.Patterns() {
		registered[routeOf(p)] = true
	}
	if len(registered) == 0 {
		t.Fatal("Patterns() lists no route")
	}
	documented := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented[method+" "+path] = true
		}
	}
	var undocumented, unregistered []string
	for r := range registered {
		if !documented[r] {
			undocumented = append(undocumented, r)
		}
	}
	for r := range documented {
		if !registered[r] {
			unregistered = append(unregistered, r)
		}
	}
	sort.Strings(undocumented)
	sort.Strings(unregistered)
	if len(undocumented) > 0 {
		t.Errorf("routes the server registers that internal/server/openapi.yaml does not document:\n  %s", strings.Join(undocumented, "\n  "))
	}
	if len(unregistered) > 0 {
		t.Errorf("operations internal/server/openapi.yaml documents that the server does not register:\n  %s", strings.Join(unregistered, "\n  "))
	}
}

// apiCheck sends real requests and validates each request and response
// against the document, remembering which operation answered what.
type apiCheck struct {
	t      *testing.T
	doc    *openapi3.T
	h      *harness
	router routers.Router
	client *http.Client
	seen   map[string]map[int]bool // "METHOD /documented/path" → statuses
	calls  int
}

func newAPICheck(t *testing.T, h *harness) *apiCheck {
	t.Helper()
	doc := openAPIDocument(t, h)
	closeResponseObjects(doc)
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &apiCheck{t: t, h: h, doc: doc, router: router, seen: map[string]map[int]bool{},
		client: &http.Client{Jar: jar, Timeout: 30 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// closeResponseObjects makes every object schema of a response that does
// not say otherwise refuse unknown properties, so a field the server sends
// but the document does not describe fails the test. (The published
// document stays open, so clients tolerate additions.)
func closeResponseObjects(doc *openapi3.T) {
	seen := map[*openapi3.Schema]bool{}
	var walk func(*openapi3.SchemaRef)
	walk = func(ref *openapi3.SchemaRef) {
		if ref == nil || ref.Value == nil || seen[ref.Value] {
			return
		}
		s := ref.Value
		seen[s] = true
		if s.Type.Is(openapi3.TypeObject) && s.AdditionalProperties.Has == nil && s.AdditionalProperties.Schema == nil {
			no := false
			s.AdditionalProperties.Has = &no
		}
		for _, p := range s.Properties {
			walk(p)
		}
		walk(s.Items)
		walk(s.AdditionalProperties.Schema)
		for _, group := range []openapi3.SchemaRefs{s.AllOf, s.AnyOf, s.OneOf} {
			for _, sub := range group {
				walk(sub)
			}
		}
	}
	for _, item := range doc.Paths.Map() {
		for _, op := range item.Operations() {
			for _, resp := range op.Responses.Map() {
				for _, mt := range resp.Value.Content {
					walk(mt.Schema)
				}
			}
		}
	}
}

// apiCall is one request and what it must get.
type apiCall struct {
	method, path string
	bearer       string
	// body is nil, a string (sent as is, as JSON unless a Content-Type
	// header says otherwise), url.Values (a form) or a value sent as JSON.
	body   any
	header []string // pairs of name and value
	want   int
	// refused: the document itself refuses the request (it describes the
	// rule the server enforced).
	refused bool
}

func (c *apiCheck) do(call apiCall) response {
	c.t.Helper()
	var raw []byte
	ct := ""
	switch b := call.body.(type) {
	case nil:
	case string:
		raw, ct = []byte(b), "application/json"
	case url.Values:
		raw, ct = []byte(b.Encode()), "application/x-www-form-urlencoded"
	default:
		j, err := json.Marshal(b)
		if err != nil {
			c.t.Fatal(err)
		}
		raw, ct = j, "application/json"
	}
	build := func() *http.Request {
		var body io.Reader = http.NoBody
		if raw != nil {
			body = bytes.NewReader(raw)
		}
		req, err := http.NewRequest(call.method, c.h.url+call.path, body)
		if err != nil {
			c.t.Fatal(err)
		}
		if ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		if call.bearer != "" {
			req.Header.Set("Authorization", "Bearer "+call.bearer)
		}
		for i := 0; i+1 < len(call.header); i += 2 {
			req.Header.Set(call.header[i], call.header[i+1])
		}
		return req
	}
	name := call.method + " " + call.path
	c.calls++

	resp, err := c.client.Do(build())
	if err != nil {
		c.t.Fatalf("%s: %v", name, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	out := response{Status: resp.StatusCode, Header: resp.Header, Body: body}
	if out.Status != call.want {
		c.t.Errorf("%s: status %d, want %d; body %s", name, out.Status, call.want, body)
	}

	ctx := context.Background()
	req := build()
	route, params, err := c.router.FindRoute(req)
	if err != nil {
		c.t.Errorf("%s: no operation in the document: %v", name, err)
		return out
	}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, MultiError: true}}
	switch err := openapi3filter.ValidateRequest(ctx, in); {
	case call.refused && err == nil:
		c.t.Errorf("%s: the server answered %d but the document accepts the request %s", name, out.Status, raw)
	case !call.refused && err != nil:
		c.t.Errorf("%s: the document refuses the request %s: %v", name, raw, err)
	}
	check := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: out.Status, Header: out.Header,
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true}}
	check.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(ctx, check); err != nil {
		c.t.Errorf("%s: the %d response does not match the document: %v\nbody: %s", name, out.Status, err, body)
	}
	key := route.Method + " " + route.Path
	if c.seen[key] == nil {
		c.seen[key] = map[int]bool{}
	}
	c.seen[key][out.Status] = true
	return out
}

// coverage fails for every documented success or redirect status that no
// request met, and lists the error statuses no request met.
func (c *apiCheck) coverage() {
	c.t.Helper()
	var missing, untried []string
	for path, item := range c.doc.Paths.Map() {
		for method, op := range item.Operations() {
			key := method + " " + path
			for code := range op.Responses.Map() {
				var status int
				if _, err := fmt.Sscan(code, &status); err != nil || c.seen[key][status] {
					continue
				}
				if status < 400 {
					missing = append(missing, fmt.Sprintf("%s %d", key, status))
				} else {
					untried = append(untried, fmt.Sprintf("%s %d", key, status))
				}
			}
		}
	}
	sort.Strings(missing)
	sort.Strings(untried)
	if len(missing) > 0 {
		c.t.Errorf("documented answers no request met:\n  %s", strings.Join(missing, "\n  "))
	}
	c.t.Logf("%d requests validated; %d documented error answers not exercised here (500s, 503s and rarer refusals):\n  %s",
		c.calls, len(untried), strings.Join(untried, "\n  "))
}

// refusals sends, to every documented operation, the requests that are
// refused before any handler runs: for a secured one no token (401), a
// token without its scope (403) and a token of another institution (404);
// with a JSON body, a wrong content type (415) and an oversized body (413).
// New operations are covered as soon as they are documented.
func (c *apiCheck) refusals(admin, otherInstitution string, narrow map[string]string) {
	c.t.Helper()
	for _, path := range c.doc.Paths.InMatchingOrder() {
		concrete := strings.NewReplacer("{institutionId}", "acme", "{userId}", "u1", "{approvalId}", "ap_unknown", "{bulkId}", "6a1f0c2b-8a4e-4f5d-9c9b-1a0e2d4c6b8a").Replace(path)
		for method, op := range c.doc.Paths.Value(path).Operations() {
			target := concrete
			q := url.Values{}
			for _, p := range op.Parameters {
				if p.Value.In == openapi3.ParameterInQuery && p.Value.Required {
					q.Set(p.Value.Name, fmt.Sprint(p.Value.Example))
				}
			}
			if len(q) > 0 {
				target += "?" + q.Encode()
			}
			var scope string
			if op.Security != nil {
				for _, req := range *op.Security {
					if s := req["clientCredentials"]; len(s) > 0 {
						scope = s[0]
					}
				}
			}
			var body any
			var jsonBody bool
			if op.RequestBody != nil {
				if mt := op.RequestBody.Value.Content.Get("application/json"); mt != nil {
					jsonBody = true
					body = "{}"
					if ex, err := json.Marshal(mt.Example); err == nil && mt.Example != nil {
						body = string(ex)
					}
				}
			}
			if scope != "" {
				c.do(apiCall{method: method, path: target, body: body, want: http.StatusUnauthorized})
				wrong := narrow[auth.ScopeApprove]
				if scope == auth.ScopeApprove {
					wrong = narrow[auth.ScopeUsersRead]
				}
				c.do(apiCall{method: method, path: target, bearer: wrong, body: body, want: http.StatusForbidden})
				c.do(apiCall{method: method, path: target, bearer: otherInstitution, body: body, want: http.StatusNotFound})
			}
			if jsonBody {
				c.do(apiCall{method: method, path: target, bearer: admin, body: body, header: []string{"Content-Type", "text/plain"},
					want: http.StatusUnsupportedMediaType, refused: true})
				c.do(apiCall{method: method, path: target, bearer: admin, body: `{"padding":"` + strings.Repeat("x", 161<<10) + `"}`,
					want: http.StatusRequestEntityTooLarge, refused: true})
			}
		}
	}
}

var (
	openAPILink      = regexp.MustCompile(`https?://[^\s"<>]+/reset\?token=([A-Za-z0-9_-]{43})`)
	openAPIDispute   = regexp.MustCompile(`/reset/dispute\?token=([A-Za-z0-9_-]{43})`)
	openAPICode      = regexp.MustCompile(`\b(\d{6,10})\b`)
	openAPICSRF      = regexp.MustCompile(`name="csrf" value="([^"]+)"`)
	openAPIStyleHref = regexp.MustCompile(`href="(/reset/assets/style\.css[^"]*)"`)
)

// mailAfter waits for the first email after the first before ones whose
// subject contains subject and that went to to.
func mailAfter(h *harness, before int, to, subject string) mailtest.Mail {
	h.t.Helper()
	for n := before + 1; ; n++ {
		msgs := h.waitMail(n)
		for _, m := range msgs[before:] {
			if strings.Contains(m.Subject, subject) && slices.Contains(m.To, to) {
				return m
			}
		}
	}
}

func basic(id, secret string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id)+":"+url.QueryEscape(secret)))
}

func TestOpenAPIResponsesMatchTheDocument(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	c := newAPICheck(t, h)
	ctx := context.Background()
	tok := h.admin()
	const (
		pw    = "an old passphrase 1"
		inst  = P + "/institutions/acme"
		u1    = inst + "/users/u1"
		xid   = "3f2b8c1e-5d4a-4e6f-9a7b-1c2d3e4f5a6b"
		jane  = "jane@example.com"
		other = P + "/institutions/other"
	)
	do := c.do

	// Operations and discovery.
	for _, p := range []string{"/healthz", "/readyz", "/metrics", "/openapi.yaml", "/favicon.ico", "/.well-known/jwks.json", "/.well-known/oauth-authorization-server"} {
		do(apiCall{method: "GET", path: p, want: 200})
	}
	if r := do(apiCall{method: "GET", path: "/healthz", header: []string{"TransactionId", xid}, want: 200}); r.Header.Get("TransactionId") != xid {
		t.Errorf("TransactionId not echoed: %q", r.Header.Get("TransactionId"))
	}
	do(apiCall{method: "GET", path: "/healthz", header: []string{"TransactionId", "not-a-uuid"}, want: 400, refused: true})

	// The token endpoint.
	cc := url.Values{"grant_type": {"client_credentials"}}
	do(apiCall{method: "POST", path: "/a/oidc-provider/api/v0/token", body: cc, header: []string{"Authorization", basic(h.adminID, h.adminSecret)}, want: 200})
	do(apiCall{method: "POST", path: "/a/oidc-provider/api/v0/token", want: 200, body: url.Values{"grant_type": {"client_credentials"},
		"client_id": {h.adminID}, "client_secret": {h.adminSecret}, "scope": {auth.ScopeUsersRead}}})
	do(apiCall{method: "POST", path: "/a/oidc-provider/api/v0/token", body: url.Values{"grant_type": {"password"}}, header: []string{"Authorization", basic(h.adminID, h.adminSecret)}, want: 400, refused: true})
	do(apiCall{method: "POST", path: "/a/oidc-provider/api/v0/token", body: url.Values{"grant_type": {"client_credentials"}, "scope": {"everything"}}, header: []string{"Authorization", basic(h.adminID, h.adminSecret)}, want: 400})
	do(apiCall{method: "POST", path: "/a/oidc-provider/api/v0/token", body: `{"grant_type":"client_credentials"}`, header: []string{"Authorization", basic(h.adminID, h.adminSecret)}, want: 400, refused: true})
	do(apiCall{method: "POST", path: "/a/oidc-provider/api/v0/token", body: url.Values{"grant_type": {"client_credentials"}, "client_id": {h.adminID}, "client_secret": {h.adminSecret}},
		header: []string{"Authorization", basic(h.adminID, h.adminSecret)}, want: 400})
	throttled, _, err := h.app.Auth.CreateClient(ctx, "acme", "throttled", []string{auth.ScopeUsersRead})
	if err != nil {
		t.Fatal(err)
	}
	for range 10 {
		do(apiCall{method: "POST", path: "/a/oidc-provider/api/v0/token", body: cc, header: []string{"Authorization", basic(throttled, "wrong")}, want: 401})
	}
	do(apiCall{method: "POST", path: "/a/oidc-provider/api/v0/token", body: cc, header: []string{"Authorization", basic(throttled, "wrong")}, want: 429})

	// Bearer checks.
	star, starSecret, err := h.app.Auth.CreateClient(ctx, "*", "star", []string{auth.ScopeSettingsRead})
	if err != nil {
		t.Fatal(err)
	}
	starTok := h.tokenFor(star, starSecret)
	do(apiCall{method: "GET", path: inst + "/settings", want: 401})
	do(apiCall{method: "GET", path: inst + "/settings", bearer: "not.a.token", want: 401})
	do(apiCall{method: "GET", path: inst + "/settings", bearer: h.client("acme", auth.ScopeUsersRead), want: 403})
	do(apiCall{method: "GET", path: other + "/settings", bearer: tok, want: 404})
	do(apiCall{method: "GET", path: P + "/institutions/-bad/settings", bearer: starTok, want: 400, refused: true})
	do(apiCall{method: "GET", path: P + "/institutions/nowhere/settings", bearer: starTok, want: 404})
	c.refusals(tok, h.client("other", auth.AllScopes...), map[string]string{
		auth.ScopeApprove:   h.client("acme", auth.ScopeApprove),
		auth.ScopeUsersRead: h.client("acme", auth.ScopeUsersRead),
	})

	// Settings. Limits off for acme: this test makes many requests in one
	// (injected) minute.
	do(apiCall{method: "GET", path: inst + "/settings", bearer: tok, want: 200})
	do(apiCall{method: "PUT", path: inst + "/settings", bearer: tok, want: 204,
		body: map[string]any{"sendsPerUserHour": 0, "publicPerIPMinute": 0, "publicPerUsernameHour": 0, "displayName": "Acme Bank"}})
	do(apiCall{method: "PUT", path: inst + "/settings", bearer: tok, body: `{"expiry":3600}`, want: 400, refused: true})
	do(apiCall{method: "PUT", path: inst + "/settings", bearer: tok, body: `{"expiration":10}`, want: 400, refused: true})
	do(apiCall{method: "PUT", path: inst + "/settings", bearer: tok, body: `{"webhookUrl":"ftp://bank.example/hook"}`, want: 400})
	do(apiCall{method: "PUT", path: inst + "/settings", bearer: tok, body: `{"expiration":3600}`, header: []string{"Content-Type", "text/plain"}, want: 415, refused: true})
	do(apiCall{method: "PUT", path: inst + "/settings", bearer: tok, body: `{"brandColor":"#ffff00"}`, want: 400})
	// Branding, and what the page loads of it.
	logoSVG := `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 4 4"><rect width="4" height="4" fill="#fff"/></svg>`
	do(apiCall{method: "PUT", path: inst + "/settings", bearer: tok, want: 204, body: map[string]any{"brandColor": "#0b3d6e",
		"logo": base64.StdEncoding.EncodeToString([]byte(logoSVG)), "signInUrl": "https://bank.example/login"}})
	do(apiCall{method: "GET", path: "/reset/assets/brand.css?c=0b3d6e", want: 200})
	do(apiCall{method: "GET", path: "/reset/assets/brand.css?c=ffff00", want: 404})
	logoETag := do(apiCall{method: "GET", path: "/reset/logo/acme", want: 200}).Header.Get("ETag")
	do(apiCall{method: "GET", path: "/reset/logo/acme", header: []string{"If-None-Match", logoETag}, want: 304})
	do(apiCall{method: "GET", path: "/reset/logo/other", want: 404})
	do(apiCall{method: "PUT", path: inst + "/settings", bearer: tok, body: map[string]any{"templates": map[string]string{"x": strings.Repeat("x", 170<<10)}}, want: 413})

	// The directory.
	do(apiCall{method: "PUT", path: u1, bearer: tok, want: 201, body: map[string]any{"username": "jane.doe", "email": jane, "phone": "+14155550123", "password": pw}})
	do(apiCall{method: "PUT", path: u1, bearer: tok, want: 200, body: map[string]any{"username": "jane.doe", "email": jane, "phone": "+14155550123",
		"facts": map[string]string{"dateOfBirth": "1984-02-29"}}})
	do(apiCall{method: "PUT", path: inst + "/users/u2", bearer: tok, body: map[string]any{"username": "jane.doe"}, want: 409})
	do(apiCall{method: "PUT", path: inst + "/users/u2", bearer: tok, body: map[string]any{"username": "sam", "password": "short"}, want: 422})
	do(apiCall{method: "PUT", path: inst + "/users/u2", bearer: tok, body: map[string]any{"username": "sam", "phone": "12345"}, want: 400})
	do(apiCall{method: "PUT", path: inst + "/users/u2", bearer: tok, body: map[string]any{"username": "sam", "facts": map[string]string{"shoeSize": "44"}}, want: 400, refused: true})
	do(apiCall{method: "PUT", path: inst + "/users/u2", bearer: tok, body: map[string]any{"username": "sam", "email": "sam@example.com"}, want: 201})
	do(apiCall{method: "GET", path: inst + "/users?username=jane.doe", bearer: tok, want: 200})
	do(apiCall{method: "GET", path: inst + "/users?username=nobody", bearer: tok, want: 200})
	do(apiCall{method: "GET", path: inst + "/users", bearer: tok, want: 400, refused: true})
	do(apiCall{method: "GET", path: inst + "/users/ghost/contact-methods", bearer: tok, want: 404})
	do(apiCall{method: "POST", path: u1 + "/password/verify", bearer: tok, body: map[string]string{"password": pw}, want: 204})
	do(apiCall{method: "POST", path: u1 + "/password/verify", bearer: tok, body: map[string]string{"password": "not it"}, want: 401})
	do(apiCall{method: "POST", path: u1 + "/password/verify", bearer: tok, body: map[string]string{"pass": pw}, want: 400, refused: true})

	// Reset links, and spending them.
	before := h.mail.Count()
	do(apiCall{method: "POST", path: u1 + "/password/reset", bearer: tok, body: map[string]string{"method": "email"}, want: 200})
	m := mailAfter(h, before, jane, "Reset your")
	link := openAPILink.FindStringSubmatch(m.Text)[1]
	dispute := openAPIDispute.FindStringSubmatch(m.Text)
	do(apiCall{method: "POST", path: u1 + "/password/reset", bearer: tok, body: map[string]string{"method": "fax"}, want: 400, refused: true})
	do(apiCall{method: "POST", path: u1 + "/password/reset", bearer: tok, body: `{"method":"email"}`, header: []string{"Content-Type", "text/plain"}, want: 415, refused: true})
	do(apiCall{method: "POST", path: inst + "/users/ghost/password/reset", bearer: tok, body: map[string]string{"method": "email"}, want: 404})
	do(apiCall{method: "POST", path: inst + "/users/u2/password/reset", bearer: tok, body: map[string]string{"method": "sms"}, want: 409})
	do(apiCall{method: "GET", path: u1 + "/password/deliveries", bearer: tok, want: 200})
	do(apiCall{method: "POST", path: P + "/password/change", body: map[string]string{"token": link, "newPassword": "short"}, want: 422})
	do(apiCall{method: "POST", path: P + "/password/change", body: map[string]string{"token": link, "newPassword": goodPassword}, want: 204})
	do(apiCall{method: "POST", path: P + "/password/change", body: map[string]string{"token": link, "newPassword": goodPassword}, want: 410})
	do(apiCall{method: "POST", path: P + "/password/change", body: map[string]string{"token": link, "password": goodPassword}, want: 400, refused: true})

	before = h.mail.Count()
	do(apiCall{method: "POST", path: u1 + "/password/reset", bearer: tok, body: map[string]string{"method": "email"}, want: 200})
	link = openAPILink.FindStringSubmatch(mailAfter(h, before, jane, "Reset your").Text)[1]
	do(apiCall{method: "POST", path: "/api/Authorize/ChangePassword", body: map[string]string{"token": link, "newPassword": "short"}, want: 422})
	do(apiCall{method: "POST", path: "/api/Authorize/ChangePassword", body: map[string]string{"token": link, "newPassword": goodPassword + " 2"}, want: 200})
	do(apiCall{method: "POST", path: "/api/Authorize/ChangePassword", body: map[string]string{"token": link, "newPassword": goodPassword + " 2"}, want: 410})

	// One-time passcodes.
	cms := do(apiCall{method: "GET", path: u1 + "/contact-methods", bearer: tok, want: 200})
	var list struct{ ContactMethods []struct{ ID, Type string } }
	if err := json.Unmarshal(cms.Body, &list); err != nil {
		t.Fatal(err)
	}
	cm := map[string]string{}
	for _, x := range list.ContactMethods {
		cm[x.Type] = x.ID
	}
	before = h.mail.Count()
	do(apiCall{method: "POST", path: u1 + "/password/otp", bearer: tok, body: map[string]string{"contactMethodId": cm["email"]}, want: 202})
	code := openAPICode.FindStringSubmatch(mailAfter(h, before, jane, "verification code").Text)[1]
	do(apiCall{method: "POST", path: u1 + "/password/otp", bearer: tok, body: map[string]string{"contactMethodId": "email-nope"}, want: 404})
	do(apiCall{method: "POST", path: u1 + "/password/otp", bearer: tok, body: map[string]string{}, want: 400, refused: true})
	verify := inst + "/password/otp/verify"
	wrong := "000000"
	if code == wrong {
		wrong = "111111"
	}
	do(apiCall{method: "POST", path: verify, body: map[string]string{"username": "jane.doe", "otp": wrong}, want: 400})
	do(apiCall{method: "POST", path: verify, body: map[string]string{"username": "jane.doe", "userId": "u1", "otp": code}, want: 400, refused: true})
	// An unknown institution is answered as a known one with a wrong code.
	do(apiCall{method: "POST", path: P + "/institutions/nowhere/password/otp/verify", body: map[string]string{"userId": "u1", "otp": code}, want: 400})
	v := do(apiCall{method: "POST", path: verify, body: map[string]string{"userId": "u1", "otp": code}, want: 200})
	var won struct{ Token string }
	if err := json.Unmarshal(v.Body, &won); err != nil || won.Token == "" {
		t.Fatalf("verify: %s", v.Body)
	}
	do(apiCall{method: "POST", path: P + "/password/change", body: map[string]string{"token": won.Token, "newPassword": goodPassword + " 3"}, want: 204})
	// Tries where no institution is known count per IP, 20 a minute.
	for range 19 {
		do(apiCall{method: "POST", path: P + "/institutions/nowhere/password/otp/verify", body: map[string]string{"username": "nobody", "otp": "123456"}, want: 400})
	}
	do(apiCall{method: "POST", path: P + "/institutions/nowhere/password/otp/verify", body: map[string]string{"username": "nobody", "otp": "123456"}, want: 429})
	h.clock.Advance(time.Minute) // the per-IP window slides past those tries

	// Self-service (acme is the default institution), for sam: a link
	// that reached jane now could be mistaken for the next one below.
	do(apiCall{method: "GET", path: "/api/Authorize/SendResetPassword?username=sam", want: 200})
	do(apiCall{method: "GET", path: "/api/Authorize/SendResetPassword?username=nobody&institutionId=acme", want: 200})
	do(apiCall{method: "GET", path: "/api/Authorize/SendResetPassword", want: 400, refused: true})
	do(apiCall{method: "GET", path: "/api/Authorize/SendResetPassword?username=sam&siteName=https://evil.example/reset", want: 400})
	do(apiCall{method: "GET", path: "/api/Authorize/SendResetPassword?username=sam&institutionId=nowhere", want: 200})
	do(apiCall{method: "POST", path: "/api/Authorize/SendResetPassword", body: map[string]string{"username": "sam"}, want: 200})
	do(apiCall{method: "POST", path: "/api/Authorize/SendResetPassword", body: url.Values{"username": {"sam"}}, want: 200})
	do(apiCall{method: "POST", path: "/api/Authorize/SendResetPassword?username=sam", want: 200})
	do(apiCall{method: "POST", path: "/api/Authorize/SendResetPassword", body: map[string]string{"user": "sam"}, want: 400, refused: true})
	do(apiCall{method: "POST", path: "/api/Authorize/SendResetPassword", body: "username=sam", header: []string{"Content-Type", "text/plain"}, want: 415, refused: true})

	// The reset page, as a browser without JavaScript meets it.
	before = h.mail.Count()
	do(apiCall{method: "POST", path: u1 + "/password/reset", bearer: tok, body: map[string]string{"method": "email"}, want: 200})
	link = openAPILink.FindStringSubmatch(mailAfter(h, before, jane, "Reset your").Text)[1]
	do(apiCall{method: "GET", path: "/reset?token=" + link, want: 303})
	form := do(apiCall{method: "GET", path: "/reset/form", want: 200})
	csrf := openAPICSRF.FindStringSubmatch(string(form.Body))[1]
	if href := openAPIStyleHref.FindStringSubmatch(string(form.Body)); href != nil {
		do(apiCall{method: "GET", path: strings.ReplaceAll(href[1], "&amp;", "&"), want: 200})
	} else {
		do(apiCall{method: "GET", path: "/reset/assets/style.css", want: 200})
	}
	do(apiCall{method: "POST", path: "/reset", body: url.Values{"password": {goodPassword + " 4"}, "confirm": {goodPassword + " 4"}}, want: 403})
	do(apiCall{method: "POST", path: "/reset", body: url.Values{"password": {"short"}, "confirm": {"short"}, "csrf": {csrf}}, want: 422})
	do(apiCall{method: "POST", path: "/reset", body: url.Values{"password": {goodPassword + " 4"}, "confirm": {goodPassword + " 4"}, "csrf": {csrf}}, want: 200})
	do(apiCall{method: "GET", path: "/reset/form", want: 410})
	do(apiCall{method: "GET", path: "/reset?token=" + link, want: 410})

	before = h.mail.Count()
	do(apiCall{method: "POST", path: u1 + "/password/otp", bearer: tok, body: map[string]string{"contactMethodId": cm["email"]}, want: 202})
	code = openAPICode.FindStringSubmatch(mailAfter(h, before, jane, "verification code").Text)[1]
	page := do(apiCall{method: "GET", path: "/reset/code?institution=acme", want: 200})
	csrf = openAPICSRF.FindStringSubmatch(string(page.Body))[1]
	do(apiCall{method: "GET", path: "/reset/code?institution=nowhere", want: 200})    // unknown institutions look like known ones
	do(apiCall{method: "GET", path: "/reset/code?institution=no%20where", want: 404}) // a malformed id cannot exist
	codeForm := func(code, csrf string) url.Values {
		return url.Values{"institution": {"acme"}, "username": {"jane.doe"}, "code": {code}, "csrf": {csrf}}
	}
	do(apiCall{method: "POST", path: "/reset/code", body: codeForm(code, ""), want: 403})
	do(apiCall{method: "POST", path: "/reset/code", body: codeForm("", csrf), want: 422})
	do(apiCall{method: "POST", path: "/reset/code", body: codeForm(code, csrf), want: 303})

	// Maker-checker on an institution that asks for it.
	if _, err := h.app.Reset.PutInstitution(ctx, "mc", "Checked Bank", nil, nil, false); err != nil {
		t.Fatal(err)
	}
	maker := h.client("mc", auth.AllScopes...)
	checker := h.client("mc", auth.ScopeApprove)
	mc := P + "/institutions/mc"
	do(apiCall{method: "PUT", path: mc + "/settings", bearer: maker, body: map[string]any{"adminResetApproval": true, "sendsPerUserHour": 0}, want: 204})
	do(apiCall{method: "PUT", path: mc + "/users/u", bearer: maker, body: map[string]any{"username": "u", "email": "u@example.com"}, want: 201})
	pending := func() string {
		t.Helper()
		r := do(apiCall{method: "POST", path: mc + "/users/u/password/reset", bearer: maker, body: map[string]string{"method": "email"}, want: 202})
		var p struct{ ApprovalID string }
		if err := json.Unmarshal(r.Body, &p); err != nil || p.ApprovalID == "" {
			t.Fatalf("pending approval: %s", r.Body)
		}
		return p.ApprovalID
	}
	first, second := pending(), pending()
	do(apiCall{method: "POST", path: mc + "/approvals/" + first, bearer: maker, want: 403})
	do(apiCall{method: "POST", path: mc + "/approvals/" + first, bearer: h.client("mc", auth.ScopeResetWrite), want: 403})
	do(apiCall{method: "POST", path: mc + "/approvals/" + first, bearer: checker, want: 200})
	do(apiCall{method: "POST", path: mc + "/approvals/" + first, bearer: checker, want: 409})
	do(apiCall{method: "POST", path: mc + "/approvals/" + second, bearer: checker, body: map[string]string{}, want: 200})
	do(apiCall{method: "POST", path: mc + "/approvals/ap_unknown", bearer: checker, want: 404})
	do(apiCall{method: "POST", path: mc + "/approvals/" + second, bearer: checker, body: map[string]string{"note": "ok"}, want: 400, refused: true})

	// Rate limits on an institution with tight ones.
	if _, err := h.app.Reset.PutInstitution(ctx, "tight", "Tight Bank", nil, nil, false); err != nil {
		t.Fatal(err)
	}
	tight := h.client("tight", auth.AllScopes...)
	ti := P + "/institutions/tight"
	do(apiCall{method: "PUT", path: ti + "/settings", bearer: tight, body: map[string]any{"sendsPerUserHour": 1, "publicPerIPMinute": 1}, want: 204})
	do(apiCall{method: "PUT", path: ti + "/users/u", bearer: tight, body: map[string]any{"username": "u", "email": "u@example.com", "password": pw}, want: 201})
	do(apiCall{method: "POST", path: ti + "/users/u/password/reset", bearer: tight, body: map[string]string{"method": "email"}, want: 200})
	if r := do(apiCall{method: "POST", path: ti + "/users/u/password/reset", bearer: tight, body: map[string]string{"method": "email"}, want: 429}); r.Header.Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}
	do(apiCall{method: "POST", path: ti + "/users/u/password/otp", bearer: tight, want: 429,
		body: map[string]string{"contactMethodId": cmID(t, do, ti+"/users/u", tight)}})
	do(apiCall{method: "GET", path: "/api/Authorize/SendResetPassword?username=u&institutionId=tight", want: 200})
	do(apiCall{method: "GET", path: "/api/Authorize/SendResetPassword?username=u&institutionId=tight", want: 429})
	for range 10 {
		do(apiCall{method: "POST", path: ti + "/users/u/password/verify", bearer: tight, body: map[string]string{"password": "not it"}, want: 401})
	}
	do(apiCall{method: "POST", path: ti + "/users/u/password/verify", bearer: tight, body: map[string]string{"password": pw}, want: 429})

	// Defences: a changed contact waits out its cooldown; a "this wasn't
	// me" report locks sends.
	do(apiCall{method: "PUT", path: inst + "/users/u2", bearer: tok, body: map[string]any{"username": "sam", "email": "sam.new@example.com"}, want: 200})
	do(apiCall{method: "POST", path: inst + "/users/u2/password/reset", bearer: tok, body: map[string]string{"method": "email"}, want: 409})
	if dispute == nil {
		t.Fatal("the reset email carries no dispute link")
	}
	do(apiCall{method: "GET", path: "/reset/dispute?token=" + dispute[1], want: 303})
	confirm := do(apiCall{method: "GET", path: "/reset/dispute/confirm", want: 200})
	csrf = openAPICSRF.FindStringSubmatch(string(confirm.Body))[1]
	do(apiCall{method: "POST", path: "/reset/dispute/confirm", body: url.Values{"csrf": {"forged"}}, want: 403})
	do(apiCall{method: "POST", path: "/reset/dispute/confirm", body: url.Values{"csrf": {csrf}}, want: 200})
	do(apiCall{method: "POST", path: "/reset/dispute/confirm", body: url.Values{"csrf": {csrf}}, want: 410})
	do(apiCall{method: "GET", path: "/reset/dispute?token=" + dispute[1], want: 410})
	do(apiCall{method: "POST", path: u1 + "/password/reset", bearer: tok, body: map[string]string{"method": "email"}, want: 423})
	do(apiCall{method: "POST", path: u1 + "/password/otp", bearer: tok, body: map[string]string{"contactMethodId": cm["email"]}, want: 423})

	// Support: why a user is blocked, and lifting the lock.
	do(apiCall{method: "GET", path: u1 + "/state", bearer: tok, want: 200})
	do(apiCall{method: "GET", path: inst + "/users/ghost/state", bearer: tok, want: 404})
	do(apiCall{method: "POST", path: u1 + "/unlock", bearer: tok, want: 204})
	do(apiCall{method: "POST", path: u1 + "/unlock", bearer: tok, body: map[string]string{"x": "y"}, want: 400, refused: true})

	// Maker-checker covers admin-set passwords and OTP sends; GET
	// self-service can be turned off.
	do(apiCall{method: "PUT", path: inst + "/settings", bearer: tok, body: map[string]any{"adminResetApproval": true, "selfServiceGet": false}, want: 204})
	do(apiCall{method: "PUT", path: u1, bearer: tok, body: map[string]any{"username": "jane.doe", "email": jane, "password": goodPassword + " 9"}, want: 403})
	do(apiCall{method: "POST", path: u1 + "/password/otp", bearer: tok, body: map[string]string{"contactMethodId": cm["email"]}, want: 202})
	do(apiCall{method: "GET", path: "/api/Authorize/SendResetPassword?username=sam", want: 405})
	do(apiCall{method: "PUT", path: inst + "/settings", bearer: tok, body: map[string]any{"adminResetApproval": false, "selfServiceGet": true}, want: 204})

	// A bulk forced reset: started, retried, refused, read, cancelled.
	bulk := inst + "/password/reset-bulk"
	// At 1/s the bulk below runs for a second at least: still running at its 409.
	do(apiCall{method: "PUT", path: inst + "/settings", bearer: tok, body: map[string]any{"bulkRatePerSecond": 1}, want: 204})
	bk := do(apiCall{method: "POST", path: bulk, bearer: tok, body: map[string]any{"method": "email", "userIds": []string{"u1", "ghost"}}, header: []string{"Idempotency-Key", "k1"}, want: 202})
	bulkID, _ := bk.json(t)["bulkId"].(string)
	do(apiCall{method: "POST", path: bulk, bearer: tok, body: map[string]any{"method": "email", "userIds": []string{"u1", "ghost"}}, header: []string{"Idempotency-Key", "k1"}, want: 202})
	do(apiCall{method: "POST", path: bulk, bearer: tok, body: map[string]any{"method": "email", "all": true}, header: []string{"Idempotency-Key", "k1"}, want: 422})
	do(apiCall{method: "POST", path: bulk, bearer: tok, body: map[string]any{"method": "email", "all": true}, want: 409})
	do(apiCall{method: "POST", path: bulk, bearer: tok, body: map[string]any{"method": "email"}, want: 400})
	do(apiCall{method: "POST", path: bulk, bearer: tok, body: map[string]any{"method": "email", "all": true, "userIds": []string{"u1"}}, want: 400})
	do(apiCall{method: "GET", path: bulk + "/" + bulkID, bearer: tok, want: 200})
	do(apiCall{method: "GET", path: bulk + "/not-a-bulk", bearer: tok, want: 404})
	do(apiCall{method: "DELETE", path: bulk + "/" + bulkID, bearer: tok, want: 200})
	do(apiCall{method: "DELETE", path: bulk + "/" + bulkID, bearer: tok, want: 200})

	// Audit, and deleting a user.
	do(apiCall{method: "GET", path: inst + "/audit", bearer: tok, want: 200})
	do(apiCall{method: "GET", path: inst + "/audit?since=2020-01-01T00:00:00Z", bearer: tok, want: 200})
	do(apiCall{method: "GET", path: inst + "/audit?since=yesterday", bearer: tok, want: 400, refused: true})
	do(apiCall{method: "DELETE", path: inst + "/users/u2", bearer: tok, want: 204})
	do(apiCall{method: "DELETE", path: inst + "/users/u2", bearer: tok, want: 404})

	c.coverage()
}

// cmID returns the id of a user's email contact method.
func cmID(t *testing.T, do func(apiCall) response, user, tok string) string {
	t.Helper()
	r := do(apiCall{method: "GET", path: user + "/contact-methods", bearer: tok, want: 200})
	var list struct{ ContactMethods []struct{ ID, Type string } }
	if err := json.Unmarshal(r.Body, &list); err != nil {
		t.Fatal(err)
	}
	for _, c := range list.ContactMethods {
		if c.Type == "email" {
			return c.ID
		}
	}
	t.Fatalf("no email contact method: %s", r.Body)
	return ""
}
