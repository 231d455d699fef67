package app_test

// Hostile input on every route (SPEC §3: "unknown JSON fields, bodies over
// 64 KiB, wrong content types and malformed ids get 4xx, never 500"):
// every registered route is driven with broken bodies, wrong types, CRLF,
// NUL, invalid UTF-8, 10 KB strings, malformed path ids and hostile query
// strings. Every answer must be a 4xx in the route's error format, come
// back promptly, and change nothing.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/resetd/resetd/internal/store"
)

// routeKind is how a route reports errors.
type routeKind int

const (
	kindAPI    routeKind = iota // application/problem+json
	kindOAuth                   // RFC 6749 §5.2 JSON
	kindPage                    // the reset page's HTML
	kindStatic                  // answers the same whatever the input (health, metrics, documents)
)

// hostileRoute is a route with a request that is valid but for the one
// thing each case breaks.
type hostileRoute struct {
	pattern string
	kind    routeKind
	auth    bool
	path    map[string]string // path values of the valid request
	body    map[string]any    // valid JSON body; nil: none
	query   url.Values        // valid query
	form    url.Values        // valid form body (token endpoint, pages)
	// freeText names string fields that legitimately hold any text
	// (passwords, template sources): only their type is attacked.
	freeText []string
	// spaceless names fields whose values are normalised by removing all
	// whitespace (knowledge facts, SPEC §7), so CR and LF are not refused.
	spaceless []string
	// control is the status the valid request gets (checked after the
	// battery, so a broken table cannot make every case pass vacuously).
	control int
}

// hostileCase is one request of the battery.
type hostileCase struct {
	name        string
	route       *hostileRoute
	method      string
	url         string
	contentType string
	body        []byte
	noAuth      bool
}

// Raw values a JSON encoder cannot produce, put in by placeholder.
const (
	rawInvalidUTF8 = "\"PLACEHOLDER-INVALID-UTF8\""
	rawDeep        = "\"PLACEHOLDER-DEEP\""
)

var rawReplacer = strings.NewReplacer(
	rawInvalidUTF8, "\"ab\xff\xfe\xc0\xafcd\"",
	rawDeep, strings.Repeat("[", 20000)+strings.Repeat("]", 20000),
)

func marshalHostile(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return []byte(rawReplacer.Replace(string(b)))
}

// Hostile values by the type of the field they replace.
var (
	hostileStrings = []any{
		"x\r\nBcc: evil@example.com", "x\u0000y", "x\ny", strings.Repeat("n", 10<<10),
		json.RawMessage(rawInvalidUTF8), json.RawMessage(`"\ud800"`),
	}
	notAString  = []any{12345, true, []any{}, map[string]any{}, []any{"x"}, json.RawMessage("1e400")}
	notANumber  = []any{"3600", true, []any{}, map[string]any{}, json.RawMessage("1e400"), json.RawMessage("99999999999999999999999"), 3.5, -1, json.RawMessage("-9223372036854775809")}
	notABool    = []any{"true", 1, []any{}, map[string]any{}}
	notAList    = []any{"x", 1, map[string]any{}, []any{1}, []any{[]any{"x"}}}
	notAMap     = []any{"x", 1, []any{}, map[string]any{"k": 1}, map[string]any{"k": []any{}}}
	hostileIDs  = []string{"..%2F..%2Fetc", "%2e%2e", "%2E", "a%00b", "a%0D%0AX-Evil:%201", "a%20b", "%C0%AE%C0%AE", strings.Repeat("a", 200), "%F0%9F%98%80", "-x", "a%2Fb", ".hidden", "a;b", "a%25", "%FF", "a%5Cb"}
	hostileQVal = []string{"x\r\nX-Evil: 1", "x\x00y", "\xff\xfe", strings.Repeat("q", 20<<10)}
)

func (r *hostileRoute) method() string { m, _, _ := strings.Cut(r.pattern, " "); return m }

func (r *hostileRoute) urlWith(base string, path map[string]string, q string) string {
	_, p, _ := strings.Cut(r.pattern, " ")
	for k, v := range path {
		p = strings.ReplaceAll(p, "{"+k+"}", v)
	}
	if q != "" {
		p += "?" + q
	}
	return base + p
}

func (r *hostileRoute) validURL(base string) string {
	return r.urlWith(base, r.path, r.query.Encode())
}

// cases builds every hostile request for r.
func (r *hostileRoute) cases(t *testing.T, base string) []hostileCase {
	var out []hostileCase
	add := func(name, u, ct string, body []byte) {
		out = append(out, hostileCase{name: name, route: r, method: r.method(), url: u, contentType: ct, body: body})
	}
	valid := r.validURL(base)
	if r.body != nil {
		j := "application/json"
		for _, b := range []string{`[]`, `[{}]`, `null`, `"x"`, `0`, `true`, `{`, `{}{}`, `{"method":`, `{"a":1}`, "\xef\xbb\xbf{}", `{"__proto__":{"x":1}}`} {
			add("body "+b, valid, j, []byte(b))
		}
		extra := maps.Clone(r.body)
		extra["role"] = "admin"
		add("unknown field beside valid ones", valid, j, marshalHostile(t, extra))
		// A settings PUT may carry up to 160 KiB (room for a logo).
		over := 70 << 10
		if r.method() == "PUT" && strings.HasSuffix(r.pattern, "/settings") {
			over = 170 << 10
		}
		big := maps.Clone(r.body)
		big["padding"] = strings.Repeat("a", over)
		add("body over the limit", valid, j, marshalHostile(t, big))
		add("whitespace over the limit", valid, j, append(marshalHostile(t, r.body), bytes.Repeat([]byte(" "), over)...))
		for _, ct := range []string{"", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/jsonp", "application/json, text/plain", "application/json; charset=\"", "text/json"} {
			if ct == "application/x-www-form-urlencoded" && strings.HasSuffix(r.pattern, "SendResetPassword") {
				continue // this route takes forms too (seed 002)
			}
			add("content type "+ct, valid, ct, marshalHostile(t, r.body))
		}
		for field, v := range r.body {
			var bad []any
			switch v.(type) {
			case string:
				bad = notAString
				if !slices.Contains(r.freeText, field) {
					bad = append(bad, hostileStrings...)
				}
			case int, float64:
				bad = notANumber
			case bool:
				bad = notABool
			case []string:
				bad = append(notAList, []any{"x\r\ny"}, []any{"x\u0000"}, []any{strings.Repeat("n", 10<<10)}, []any{json.RawMessage(rawInvalidUTF8)}, []any{nil})
			case map[string]string:
				bad = notAMap
				if !slices.Contains(r.freeText, field) {
					for k := range v.(map[string]string) {
						for _, s := range hostileStrings {
							if str, ok := s.(string); ok && slices.Contains(r.spaceless, field) && strings.ContainsAny(str, "\r\n") && !strings.ContainsRune(str, 0) {
								continue
							}
							bad = append(bad, map[string]any{k: s})
						}
					}
					bad = append(bad, map[string]any{"x\r\n": "1"}, map[string]any{"unknownFact": "1"})
				}
			default:
				t.Fatalf("%s: field %s has a type the battery does not know", r.pattern, field)
			}
			bad = append(bad, json.RawMessage(rawDeep))
			for i, b := range bad {
				m := maps.Clone(r.body)
				m[field] = b
				add(fmt.Sprintf("field %s #%d %.40q", field, i, fmt.Sprint(b)), valid, j, marshalHostile(t, m))
			}
		}
	}
	for name := range r.path {
		for _, id := range hostileIDs {
			p := maps.Clone(r.path)
			p[name] = id
			ct, body := "", []byte(nil)
			if r.body != nil {
				ct, body = "application/json", marshalHostile(t, r.body)
			}
			add("path "+name+" "+id, r.urlWith(base, p, r.query.Encode()), ct, body)
		}
	}
	for name := range r.query {
		ct, body := "", []byte(nil)
		if r.body != nil {
			ct, body = "application/json", marshalHostile(t, r.body)
		}
		for _, v := range hostileQVal {
			q := maps.Clone(r.query)
			q.Set(name, v)
			add(fmt.Sprintf("query %s %.30q", name, v), r.urlWith(base, r.path, q.Encode()), ct, body)
		}
		if r.kind == kindPage {
			continue // the page takes the first value; a repeat changes nothing there
		}
		q := maps.Clone(r.query)
		q[name] = []string{q.Get(name), q.Get(name) + "2"}
		add("query "+name+" repeated", r.urlWith(base, r.path, q.Encode()), ct, body)
	}
	if r.form != nil {
		f := "application/x-www-form-urlencoded"
		for name := range r.form {
			for _, v := range hostileQVal {
				q := maps.Clone(r.form)
				q.Set(name, v)
				add(fmt.Sprintf("form %s %.30q", name, v), valid, f, []byte(q.Encode()))
			}
		}
		add("form over 64 KiB", valid, f, []byte(r.form.Encode()+"&padding="+strings.Repeat("a", 70<<10)))
		add("form bad escape", valid, f, []byte(r.form.Encode()+"&x=%zz"))
		add("form as JSON", valid, "application/json", []byte(`{"grant_type":"client_credentials"}`))
		add("form without content type", valid, "", []byte(r.form.Encode()))
	}
	return out
}

// hostileTable is every route resetd serves, with a valid request for it.
func hostileTable(h *harness, contactMethodID string) []*hostileRoute {
	inst := map[string]string{"institutionId": "acme"}
	user := map[string]string{"institutionId": "acme", "userId": "victim"}
	fresh := map[string]string{"institutionId": "acme", "userId": "hostile"}
	junkToken := strings.Repeat("A", 43) // well formed, unknown: 410
	return []*hostileRoute{
		{pattern: "POST " + P + "/institutions/{institutionId}/users/{userId}/password/reset", kind: kindAPI, auth: true, path: user,
			body: map[string]any{"method": "email"}, control: 200},
		{pattern: "GET " + P + "/institutions/{institutionId}/settings", kind: kindAPI, auth: true, path: inst, control: 200},
		{pattern: "PUT " + P + "/institutions/{institutionId}/settings", kind: kindAPI, auth: true, path: inst,
			body: map[string]any{
				"expiration": 3600, "otpLength": 6, "linkBases": []string{h.url + "/reset"}, "senders": []string{"security@acme.example"},
				"displayName": "Acme Bank", "revealRecipient": false, "smsCountries": []string{"US"}, "webhookUrl": "https://hooks.acme.example/resetd",
				"templates": map[string]string{"reset_link.email.subject": "{{.DisplayName}}: reset"}, "requireFacts": []string{}, "adminResetApproval": false,
				"publicPerIPMinute": 0,
			}, freeText: []string{"templates"}, control: 204},
		{pattern: "GET " + P + "/institutions/{institutionId}/users", kind: kindAPI, auth: true, path: inst, query: url.Values{"username": {"victim"}}, control: 200},
		{pattern: "PUT " + P + "/institutions/{institutionId}/users/{userId}", kind: kindAPI, auth: true, path: fresh,
			body: map[string]any{"username": "hostile", "email": "hostile@example.com", "phone": "+14155550199", "status": "active",
				"password": "correct horse battery staple 9", "facts": map[string]string{"dateOfBirth": "1990-01-02", "postalCode": "SW1A 1AA"}},
			freeText: []string{"password"}, spaceless: []string{"facts"}, control: 201},
		{pattern: "DELETE " + P + "/institutions/{institutionId}/users/{userId}", kind: kindAPI, auth: true, path: fresh, control: 204},
		{pattern: "GET " + P + "/institutions/{institutionId}/users/{userId}/password/deliveries", kind: kindAPI, auth: true, path: user, control: 200},
		{pattern: "POST " + P + "/institutions/{institutionId}/users/{userId}/password/verify", kind: kindAPI, auth: true, path: user,
			body: map[string]any{"password": "not the password"}, freeText: []string{"password"}, control: 401},
		{pattern: "GET " + P + "/institutions/{institutionId}/audit", kind: kindAPI, auth: true, path: inst, query: url.Values{"since": {"2020-01-01T00:00:00Z"}}, control: 200},
		{pattern: "POST " + P + "/password/change", kind: kindAPI, body: map[string]any{"token": junkToken, "newPassword": goodPassword}, freeText: []string{"newPassword"}, control: 410},
		{pattern: "GET " + P + "/institutions/{institutionId}/users/{userId}/contact-methods", kind: kindAPI, auth: true, path: user, control: 200},
		{pattern: "POST " + P + "/institutions/{institutionId}/approvals/{approvalId}", kind: kindAPI, auth: true,
			path: map[string]string{"institutionId": "acme", "approvalId": "0b6c2f6e-8a4c-4f1e-9a55-5f3f0c1f2a11"}, body: map[string]any{}, control: 404},
		{pattern: "POST " + P + "/institutions/{institutionId}/users/{userId}/password/otp", kind: kindAPI, auth: true, path: user,
			body: map[string]any{"contactMethodId": contactMethodID}, control: 202},
		{pattern: "POST " + P + "/institutions/{institutionId}/password/otp/verify", kind: kindAPI, path: inst,
			body: map[string]any{"username": "victim", "otp": "123456"}, control: 400},
		{pattern: "GET /api/Authorize/SendResetPassword", kind: kindAPI,
			query: url.Values{"username": {"victim"}, "siteName": {h.url + "/reset"}, "linkReset": {"security@acme.example"}, "institutionId": {"acme"}}, control: 200},
		{pattern: "POST /api/Authorize/SendResetPassword", kind: kindAPI,
			body: map[string]any{"username": "victim", "siteName": h.url + "/reset", "linkReset": "security@acme.example", "institutionId": "acme"}, control: 200},
		{pattern: "POST /api/Authorize/ChangePassword", kind: kindAPI, body: map[string]any{"token": junkToken, "newPassword": goodPassword}, freeText: []string{"newPassword"}, control: 410},
		{pattern: "POST /a/oidc-provider/api/v0/token", kind: kindOAuth,
			form: url.Values{"grant_type": {"client_credentials"}, "client_id": {"rc_hostile"}, "client_secret": {"wrong"}, "scope": {"institution-users:read"}}, control: 401},
		{pattern: "GET /reset", kind: kindPage, query: url.Values{"token": {junkToken}}, control: 410},
		{pattern: "GET /reset/form", kind: kindPage, control: 410},
		{pattern: "POST /reset", kind: kindPage, form: url.Values{"csrf": {"x"}, "password": {goodPassword}, "confirm": {goodPassword}}, control: 410},
		{pattern: "GET /reset/code", kind: kindPage, query: url.Values{"institution": {"acme"}}, control: 200},
		{pattern: "POST /reset/code", kind: kindPage, query: url.Values{"institution": {"acme"}},
			form: url.Values{"csrf": {"x"}, "username": {"victim"}, "code": {"123456"}}, control: 403},
		{pattern: "GET /reset/dispute", kind: kindPage, query: url.Values{"token": {junkToken}}, control: 410},
		{pattern: "GET /reset/dispute/confirm", kind: kindPage, control: 410},
		{pattern: "POST /reset/dispute/confirm", kind: kindPage, form: url.Values{"csrf": {"x"}}, control: 410},
		{pattern: "GET /reset/assets/style.css", kind: kindStatic, control: 200},
		{pattern: "GET /reset/assets/brand.css", kind: kindStatic, query: url.Values{"c": {"0b3d6e"}}, control: 200},
		{pattern: "GET /reset/logo/{institutionId}", kind: kindStatic, path: inst, control: 404}, // acme has no logo here
		{pattern: "GET /.well-known/jwks.json", kind: kindStatic, control: 200},
		{pattern: "GET /.well-known/oauth-authorization-server", kind: kindStatic, control: 200},
		{pattern: "GET /healthz", kind: kindStatic, control: 200},
		{pattern: "GET /readyz", kind: kindStatic, control: 200},
		{pattern: "GET /metrics", kind: kindStatic, control: 200},
		{pattern: "GET /openapi.yaml", kind: kindStatic, control: 200},
	}
}

// hostileClient never follows redirects, and gives up on a hang.
var hostileClient = &http.Client{
	Timeout:       10 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	Transport:     &http.Transport{MaxIdleConnsPerHost: 16},
}

func (h *harness) send(c hostileCase, bearer string) (response, time.Duration, error) {
	req, err := http.NewRequest(c.method, c.url, bytes.NewReader(c.body))
	if err != nil {
		return response{}, 0, err
	}
	if c.body == nil {
		req.Body = nil
	}
	if c.contentType != "" {
		req.Header.Set("Content-Type", c.contentType)
	}
	if c.route.auth && !c.noAuth {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	start := time.Now()
	resp, err := hostileClient.Do(req)
	if err != nil {
		return response{}, time.Since(start), err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return response{Status: resp.StatusCode, Header: resp.Header, Body: b}, time.Since(start), err
}

// checkHostileAnswer holds an answer to a route's error format.
func checkHostileAnswer(t *testing.T, c hostileCase, r response) {
	t.Helper()
	what := c.route.pattern + ": " + c.name
	if c.route.kind == kindStatic {
		if r.Status >= 500 {
			t.Errorf("%s: %d", what, r.Status)
		}
		return
	}
	if r.Status < 400 || r.Status >= 500 {
		t.Errorf("%s: status %d, want 4xx; body %.200s", what, r.Status, r.Body)
		return
	}
	if r.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("%s: no nosniff", what)
	}
	if r.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("%s: Cache-Control %q", what, r.Header.Get("Cache-Control"))
	}
	ct := r.Header.Get("Content-Type")
	switch c.route.kind {
	case kindAPI:
		var p struct {
			Status        int
			Title, Detail string
			TransactionID string `json:"transactionId"`
		}
		if ct != "application/problem+json" || json.Unmarshal(r.Body, &p) != nil || p.Status != r.Status || p.Title == "" || p.TransactionID == "" {
			t.Errorf("%s: %d %q is not a problem document: %.200s", what, r.Status, ct, r.Body)
		}
	case kindOAuth:
		var e struct{ Error string }
		if ct != "application/json" || json.Unmarshal(r.Body, &e) != nil || e.Error == "" {
			t.Errorf("%s: %d %q is not an RFC 6749 error: %.200s", what, r.Status, ct, r.Body)
		}
	case kindPage:
		if !strings.HasPrefix(ct, "text/html") {
			t.Errorf("%s: %d %q is not a page", what, r.Status, ct)
		}
		checkHTMLHeaders(t, what, r.Header)
	}
}

// snapshot is what hostile requests must not change.
type snapshot struct{ settings, victim, contacts, deliveries string }

func (h *harness) snapshot(tok string) snapshot {
	h.t.Helper()
	get := func(path string) string {
		r := h.do("GET", P+"/institutions/acme"+path, tok, nil)
		if r.Status != 200 {
			h.t.Fatalf("GET %s: %d", path, r.Status)
		}
		return string(r.Body)
	}
	return snapshot{
		settings:   get("/settings"),
		victim:     get("/users?username=victim"),
		contacts:   get("/users/victim/contact-methods"),
		deliveries: get("/users/victim/password/deliveries"),
	}
}

func TestHostileInputOnEveryRoute(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tok := h.admin()
	// No rate limit hides a validation: every case reaches its check.
	h.putSettings(tok, map[string]int{"publicPerIPMinute": 0, "publicPerUsernameHour": 0, "sendsPerUserHour": 0})
	h.putUser(tok, "acme", "victim", map[string]any{"username": "victim", "email": "victim@example.com", "phone": "+14155550123", "password": goodPassword})
	cm := h.contactMethods(tok, "acme", "victim")["email"]
	table := hostileTable(h, cm)

	// Every registered route is in the table; one that is not still gets
	// the generic cases (bodies, path ids), and is named in the log.
	known := map[string]bool{}
	for _, r := range table {
		known[r.pattern] = true
	}
	for _, p := range h.app.Server.Patterns() {
		if known[p] {
			continue
		}
		t.Logf("route %s has no entry in the hostile table: generic cases only", p)
		r := &hostileRoute{pattern: p, kind: kindAPI, auth: strings.Contains(p, "/institutions/"), path: map[string]string{}}
		_, path, _ := strings.Cut(p, " ")
		for _, seg := range strings.Split(path, "/") {
			if strings.HasPrefix(seg, "{") {
				r.path[strings.Trim(seg, "{}")] = "acme"
			}
		}
		if m := r.method(); m == "POST" || m == "PUT" {
			r.body = map[string]any{}
		}
		if !strings.HasPrefix(path, P) {
			r.kind = kindStatic // its error format is unknown here: only "never 5xx"
		}
		table = append(table, r)
		known[p] = true
	}
	if !known["GET /reset"] {
		t.Log("the reset page is not registered: its routes get no hostile cases")
	}

	before := h.snapshot(tok)
	auditBefore := len(h.auditRecords())
	var cases []hostileCase
	for _, r := range table {
		cases = append(cases, r.cases(t, h.url)...)
		if r.auth {
			c := hostileCase{name: "no token", route: r, method: r.method(), url: r.validURL(h.url), noAuth: true}
			if r.body != nil {
				c.contentType, c.body = "application/json", marshalHostile(t, r.body)
			}
			cases = append(cases, c)
		}
	}
	// Headers past the server's 32 KiB bound: net/http itself answers 431
	// (plain text: resetd's handlers never see the request).
	huge := hostileCase{name: "40 KB query", route: &hostileRoute{pattern: "GET /api/Authorize/SendResetPassword", kind: kindStatic}, method: "GET",
		url: h.url + "/api/Authorize/SendResetPassword?username=" + strings.Repeat("u", 40<<10)}

	var mu sync.Mutex
	var slowest time.Duration
	work := make(chan hostileCase)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range work {
				r, took, err := h.send(c, tok)
				if err != nil {
					t.Errorf("%s: %s: %v (a hang or a dropped connection)", c.route.pattern, c.name, err)
					continue
				}
				checkHostileAnswer(t, c, r)
				mu.Lock()
				slowest = max(slowest, took)
				mu.Unlock()
			}
		}()
	}
	for _, c := range cases {
		work <- c
	}
	close(work)
	wg.Wait()
	if r, _, err := h.send(huge, tok); err != nil || r.Status != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("40 KB query: %v %d", err, r.Status)
	}
	t.Logf("%d hostile requests over %d routes; slowest answer %v", len(cases)+1, len(table), slowest.Round(time.Millisecond))

	// Nothing changed: settings, the victim and their contacts, no message,
	// and no audit record of anything done.
	if after := h.snapshot(tok); after != before {
		t.Errorf("hostile requests changed state:\nbefore %+v\nafter  %+v", before, after)
	}
	if n, s := h.mail.Count(), h.sms.Count(); n != 0 || s != 0 {
		t.Errorf("hostile requests sent %d emails and %d SMS", n, s)
	}
	refusals := map[string]bool{"invalid": true, "mismatch": true, "invalid_client": true, "invalid_token": true, "throttled": true, "rate_limited": true, "wrong_facts": true}
	outcomes := map[string]int{}
	for _, a := range h.auditRecords()[auditBefore:] {
		outcomes[a.Action+" "+a.Outcome]++
		if !refusals[a.Outcome] {
			t.Errorf("hostile requests did something: audit %s %s (user %q)", a.Action, a.Outcome, a.UserID)
		}
	}
	t.Logf("audit records written by the battery (refusals only): %v", slices.Sorted(maps.Keys(outcomes)))
	if r := h.do("POST", P+"/institutions/acme/users/victim/password/verify", tok, map[string]string{"password": goodPassword}); r.Status != 204 && r.Status != 429 {
		t.Errorf("the victim's password after the battery: %d", r.Status)
	}

	// The valid requests the cases were made from do work, so the cases
	// failed for what they broke.
	for _, r := range table {
		if r.control == 0 {
			continue
		}
		c := hostileCase{name: "control", route: r, method: r.method(), url: r.validURL(h.url)}
		if r.body != nil {
			c.contentType, c.body = "application/json", marshalHostile(t, r.body)
		}
		if r.form != nil {
			c.contentType, c.body = "application/x-www-form-urlencoded", []byte(r.form.Encode())
		}
		got, _, err := h.send(c, tok)
		if r.kind == kindOAuth && got.Status == http.StatusTooManyRequests {
			// The cases spent this client id's failure budget: the throttle
			// answering still shows the request reached authentication.
			got.Status = r.control
		}
		if err != nil || got.Status != r.control {
			t.Errorf("control %s: %v %d, want %d: %.200s", r.pattern, err, got.Status, r.control, got.Body)
		}
	}
}

// auditRecords is every audit record of every institution, oldest first.
func (h *harness) auditRecords() []store.AuditRecord {
	h.t.Helper()
	rs, err := h.app.Store.Audit(context.Background(), store.AuditFilter{Limit: 1 << 20})
	if err != nil {
		h.t.Fatal(err)
	}
	return rs
}
