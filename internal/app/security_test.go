package app_test

// The security battery (issue 6): enumeration by answer, races, forged
// access tokens, secrets at rest and in logs, HTTP hardening, slowloris
// and the argon2id bound. Each test fails when its defence is removed;
// docs/SECURITY.md maps defences to tests.

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/resetd/resetd/internal/app"
	"github.com/resetd/resetd/internal/auth"
	"github.com/resetd/resetd/internal/password"
)

// answerShape is what a client can compare between two answers: the
// status, every header but those that differ per request, and the body's
// JSON keys with the type of each value.
type answerShape struct {
	Status  int
	Headers map[string]string
	Body    map[string]string
}

func shapeOf(t *testing.T, r response) answerShape {
	t.Helper()
	s := answerShape{Status: r.Status, Headers: map[string]string{}, Body: map[string]string{}}
	for k, v := range r.Header {
		switch k {
		case "Date", "Content-Length", http.CanonicalHeaderKey("TransactionId"):
			continue
		}
		s.Headers[k] = strings.Join(v, ", ")
	}
	for k, v := range r.json(t) {
		s.Body[k] = fmt.Sprintf("%T", v)
	}
	return s
}

// sameAnswers asserts every answer has the shape of the first, and, except
// for keys in vary, the same body values.
func sameAnswers(t *testing.T, what string, names []string, rs []response, vary ...string) {
	t.Helper()
	want := shapeOf(t, rs[0])
	wantBody := rs[0].json(t)
	for _, k := range vary {
		delete(wantBody, k)
	}
	for i, r := range rs[1:] {
		got := shapeOf(t, r)
		if got.Status != want.Status || !maps.Equal(got.Headers, want.Headers) || !maps.Equal(got.Body, want.Body) {
			t.Errorf("%s: %s answers %+v, %s answers %+v", what, names[0], want, names[i+1], got)
		}
		body := r.json(t)
		for _, k := range vary {
			delete(body, k)
		}
		if fmt.Sprint(body) != fmt.Sprint(wantBody) {
			t.Errorf("%s: %s body %v, %s body %v", what, names[0], wantBody, names[i+1], body)
		}
	}
}

// Self-service and OTP verify answer a known user exactly as they answer an
// unknown one: status, headers (names and values) and body.
func TestEnumerationAnswersLookAlike(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tok := h.admin()
	h.putSettings(tok, map[string]int{"publicPerIPMinute": 0})
	h.putUser(tok, "acme", "active", map[string]any{"username": "active", "email": "active@example.com"})
	h.putUser(tok, "acme", "nomail", map[string]any{"username": "nomail", "phone": "+14155550123"})
	h.putUser(tok, "acme", "off", map[string]any{"username": "off", "email": "off@example.com", "status": "disabled"})
	h.putUser(tok, "acme", "withotp", map[string]any{"username": "withotp", "email": "withotp@example.com"})
	if r := h.sendOTP(tok, "acme", "withotp", h.contactMethods(tok, "acme", "withotp")["email"]); r.Status != 202 {
		t.Fatal(r.Status)
	}

	t.Run("self-service", func(t *testing.T) {
		users := []string{"active", "nobody", "nomail", "off"}
		for _, method := range []string{"GET", "POST query", "POST form", "POST JSON"} {
			var rs []response
			for _, u := range users {
				q := url.Values{"username": {u}, "siteName": {h.url + "/reset"}}
				switch method {
				case "GET":
					rs = append(rs, selfService(h, "GET", q))
				case "POST query":
					rs = append(rs, selfService(h, "POST", q))
				case "POST form":
					rs = append(rs, h.do("POST", "/api/Authorize/SendResetPassword", "", q.Encode(), "Content-Type", "application/x-www-form-urlencoded"))
				case "POST JSON":
					rs = append(rs, h.do("POST", "/api/Authorize/SendResetPassword", "", map[string]string{"username": u, "siteName": h.url + "/reset"}))
				}
			}
			if rs[0].Status != 200 {
				t.Fatalf("%s: %d %s", method, rs[0].Status, rs[0].Body)
			}
			sameAnswers(t, "self-service "+method, users, rs)
		}
	})

	t.Run("OTP verify", func(t *testing.T) {
		cases := []struct {
			name string
			body map[string]string
		}{
			{"known with a live OTP", map[string]string{"username": "withotp", "otp": "0000000"}},
			{"known without an OTP", map[string]string{"username": "active", "otp": "0000000"}},
			{"disabled", map[string]string{"username": "off", "otp": "0000000"}},
			{"unknown", map[string]string{"username": "nobody", "otp": "0000000"}},
			{"known by id", map[string]string{"userId": "withotp", "otp": "0000000"}},
			{"unknown id", map[string]string{"userId": "ghost", "otp": "0000000"}},
			{"known, malformed code", map[string]string{"username": "withotp", "otp": "12ab"}},
			{"unknown, malformed code", map[string]string{"username": "nobody", "otp": "12ab"}},
		}
		var names []string
		var rs []response
		for _, c := range cases {
			names = append(names, c.name)
			rs = append(rs, h.verifyOTP("acme", c.body))
		}
		if rs[0].Status != 400 {
			t.Fatalf("wrong code: %d %s", rs[0].Status, rs[0].Body)
		}
		sameAnswers(t, "OTP verify", names, rs, "transactionId")
	})

	// Only the one active user with an email got anything: four self-service
	// emails and the OTP.
	h.waitMail(5)
	if n := h.mail.Count(); n != 5 {
		t.Errorf("%d emails, want 5", n)
	}
}

// Of N concurrent verifications of one correct OTP exactly one wins.
func TestConcurrentOTPRedemptionHasOneWinner(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tok := h.admin()
	h.putSettings(tok, map[string]int{"publicPerIPMinute": 0})
	h.putUser(tok, "acme", "u", map[string]any{"username": "u", "email": "u@example.com"})
	if r := h.sendOTP(tok, "acme", "u", h.contactMethods(tok, "acme", "u")["email"]); r.Status != 202 {
		t.Fatal(r.Status)
	}
	code := sixDigits.FindStringSubmatch(h.waitMail(1)[0].Text)[1]
	// Ten: every loser is a failed try, and the eleventh would meet the
	// daily cap (429) instead of the plain refusal.
	const n = 10
	rs := make([]response, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			rs[i] = h.verifyOTP("acme", map[string]string{"username": "u", "otp": code})
		}()
	}
	close(start)
	wg.Wait()
	var winner string
	statuses := map[int]int{}
	for _, r := range rs {
		statuses[r.Status]++
		if r.Status == 200 {
			winner = r.json(t)["token"].(string)
		}
	}
	if statuses[200] != 1 || statuses[400] != n-1 {
		t.Fatalf("statuses %v: want one 200 and %d 400", statuses, n-1)
	}
	if r := h.do("POST", P+"/password/change", "", map[string]string{"token": winner, "newPassword": goodPassword}); r.Status != 204 {
		t.Fatalf("the winner's token: %d %s", r.Status, r.Body)
	}
}

// Twenty concurrent sends of every kind to one user with sendsPerUserHour
// 5: exactly five go out.
func TestConcurrentSendsNeverExceedTheCap(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tok := h.admin()
	h.putUser(tok, "acme", "u", map[string]any{"username": "u", "email": "u@example.com"})
	cm := h.contactMethods(tok, "acme", "u")["email"]
	const n = 20
	rs := make([]response, n)
	kinds := make([]string, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			switch i % 3 {
			case 0:
				kinds[i] = "link"
				rs[i] = h.do("POST", P+"/institutions/acme/users/u/password/reset", tok, map[string]string{"method": "email"})
			case 1:
				kinds[i] = "otp"
				rs[i] = h.sendOTP(tok, "acme", "u", cm)
			default:
				kinds[i] = "self-service"
				rs[i] = selfService(h, "GET", url.Values{"username": {"u"}})
			}
		}()
	}
	close(start)
	wg.Wait()
	accepted := 0
	for i, r := range rs {
		switch {
		case kinds[i] == "self-service" && r.Status == 200:
			// Silent either way: counted by what was queued, below.
		case (r.Status == 200 || r.Status == 202) && kinds[i] != "self-service":
			accepted++
		case r.Status == 429 && kinds[i] != "self-service":
			if r.Header.Get("Retry-After") == "" {
				t.Errorf("429 without Retry-After")
			}
		default:
			t.Errorf("%s: %d %s", kinds[i], r.Status, r.Body)
		}
	}
	d := h.do("GET", P+"/institutions/acme/users/u/password/deliveries", tok, nil)
	var ds struct{ Deliveries []struct{ Kind string } }
	if err := json.Unmarshal(d.Body, &ds); err != nil {
		t.Fatal(err)
	}
	// The admin API's sends share sendsPerUserHour (5); self-service has a
	// budget of its own (publicPerUsernameHour, 10), so its 6 all went out
	// and did not spend the bank's (SPEC §10).
	if len(ds.Deliveries) != 5+6 || accepted != 5 {
		t.Fatalf("%d messages queued (%d accepted by the admin API) for one user with sendsPerUserHour 5", len(ds.Deliveries), accepted)
	}
	h.waitMail(5 + 6)
}

// forger signs access tokens with the server's own signing key, read the
// way an insider with the database and the secret key could: every claim
// check can then be tested on its own, with a signature that verifies.
type forger struct {
	kid  string
	priv ed25519.PrivateKey
	h    *harness
}

func newForger(t *testing.T, h *harness) *forger {
	t.Helper()
	keys, err := h.app.Store.SigningKeys(context.Background())
	if err != nil || len(keys) == 0 {
		t.Fatalf("signing keys: %v", err)
	}
	seed, err := h.app.Key.Open(keys[0].Private, "signing-key:"+keys[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	return &forger{kid: keys[0].ID, priv: ed25519.NewKeyFromSeed(seed), h: h}
}

type forgedClaims struct {
	jwt.Claims
	Scope string `json:"scope,omitempty"`
	Inst  string `json:"inst,omitempty"`
}

// good is what the server itself would issue for the admin client.
func (f *forger) good() forgedClaims {
	now := f.h.clock.Now()
	return forgedClaims{
		Claims: jwt.Claims{
			Issuer: f.h.url, Subject: f.h.adminID, Audience: jwt.Audience{f.h.url + "/a/password-reset"},
			IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(time.Hour)), ID: "forged",
		},
		Scope: auth.ScopeSettingsRead, Inst: "acme",
	}
}

func sign(t *testing.T, alg jose.SignatureAlgorithm, key any, kid string, c forgedClaims) string {
	t.Helper()
	return signTyped(t, alg, key, kid, "at+jwt", c)
}

func signTyped(t *testing.T, alg jose.SignatureAlgorithm, key any, kid, typ string, c forgedClaims) string {
	t.Helper()
	opts := &jose.SignerOptions{}
	if typ != "" {
		opts = opts.WithType(jose.ContentType(typ))
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: jose.JSONWebKey{Key: key, KeyID: kid}}, opts)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Signed(s).Claims(c).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// Every claim check of the access-token verifier, each alone, with a
// signature by the server's own key; and signatures that must not verify.
func TestForgedAccessTokens(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	f := newForger(t, h)
	settings := P + "/institutions/acme/settings"
	if r := h.do("GET", settings, sign(t, jose.EdDSA, f.priv, f.kid, f.good()), nil); r.Status != 200 {
		t.Fatalf("a token like the server's own must pass (or the cases below prove nothing): %d %s", r.Status, r.Body)
	}
	// At the limit: exactly an hour plus the leeway still passes.
	atLimit := f.good()
	atLimit.Expiry = jwt.NewNumericDate(h.clock.Now().Add(time.Hour + time.Minute))
	if r := h.do("GET", settings, sign(t, jose.EdDSA, f.priv, f.kid, atLimit), nil); r.Status != 200 {
		t.Fatalf("a token of exactly 3600 s + 60 s leeway: %d", r.Status)
	}
	now := h.clock.Now()
	_, otherKey, _ := ed25519.GenerateKey(rand.Reader)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pub := f.priv.Public().(ed25519.PublicKey)
	with := func(change func(*forgedClaims)) forgedClaims {
		c := f.good()
		change(&c)
		return c
	}
	for _, c := range []struct {
		name  string
		token string
	}{
		{"wrong audience", sign(t, jose.EdDSA, f.priv, f.kid, with(func(c *forgedClaims) { c.Audience = jwt.Audience{"https://other.example/a/password-reset"} }))},
		{"no audience", sign(t, jose.EdDSA, f.priv, f.kid, with(func(c *forgedClaims) { c.Audience = nil }))},
		{"wrong issuer", sign(t, jose.EdDSA, f.priv, f.kid, with(func(c *forgedClaims) { c.Issuer = "https://evil.example" }))},
		{"no issuer", sign(t, jose.EdDSA, f.priv, f.kid, with(func(c *forgedClaims) { c.Issuer = "" }))},
		{"expired", sign(t, jose.EdDSA, f.priv, f.kid, with(func(c *forgedClaims) { c.Expiry = jwt.NewNumericDate(now.Add(-time.Minute)) }))},
		{"no expiry", sign(t, jose.EdDSA, f.priv, f.kid, with(func(c *forgedClaims) { c.Expiry = nil }))},
		{"not yet valid", sign(t, jose.EdDSA, f.priv, f.kid, with(func(c *forgedClaims) { c.NotBefore = jwt.NewNumericDate(now.Add(5 * time.Minute)) }))},
		{"no subject", sign(t, jose.EdDSA, f.priv, f.kid, with(func(c *forgedClaims) { c.Subject = "" }))},
		{"no institution", sign(t, jose.EdDSA, f.priv, f.kid, with(func(c *forgedClaims) { c.Inst = "" }))},
		{"right kid, another key", sign(t, jose.EdDSA, otherKey, f.kid, f.good())},
		{"unknown kid", sign(t, jose.EdDSA, otherKey, "not-a-kid", f.good())},
		{"HS256 keyed with the public key", sign(t, jose.HS256, []byte(pub), f.kid, f.good())},
		{"ES256", sign(t, jose.ES256, ecKey, f.kid, f.good())},
		// SPEC §9: RFC 9068 typ, iat present, a lifetime of at most an hour.
		{"typ JWT", signTyped(t, jose.EdDSA, f.priv, f.kid, "JWT", f.good())},
		{"no typ", signTyped(t, jose.EdDSA, f.priv, f.kid, "", f.good())},
		{"no iat", sign(t, jose.EdDSA, f.priv, f.kid, with(func(c *forgedClaims) { c.IssuedAt = nil }))},
		{"exp - iat over 3600 s (+60 s leeway)", sign(t, jose.EdDSA, f.priv, f.kid, with(func(c *forgedClaims) { c.Expiry = jwt.NewNumericDate(now.Add(time.Hour + 61*time.Second)) }))},
		{"exp in 2100", sign(t, jose.EdDSA, f.priv, f.kid, with(func(c *forgedClaims) { c.Expiry = jwt.NewNumericDate(time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)) }))},
		{"iat backdated to stretch the lifetime", sign(t, jose.EdDSA, f.priv, f.kid, with(func(c *forgedClaims) {
			c.IssuedAt = jwt.NewNumericDate(now.Add(-2 * time.Hour))
			c.Expiry = jwt.NewNumericDate(now.Add(30 * time.Minute))
		}))},
	} {
		r := h.do("GET", settings, c.token, nil)
		if r.Status != 401 || !strings.Contains(r.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
			t.Errorf("%s: %d (WWW-Authenticate %q), want 401 invalid_token", c.name, r.Status, r.Header.Get("WWW-Authenticate"))
		}
	}
	// A valid token is refused outside the Authorization header, even with
	// one in the header too.
	good := sign(t, jose.EdDSA, f.priv, f.kid, f.good())
	if r := h.do("GET", settings+"?access_token="+good, good, nil); r.Status != 401 {
		t.Errorf("token in the query string beside the header: %d", r.Status)
	}
	if r := h.do("GET", settings, "", nil, "Authorization", "Bearer "+good+" "+good); r.Status != 401 {
		t.Errorf("two tokens in one header: %d", r.Status)
	}
}

// Secrets never reach the logs, the database files or the metrics: a busy
// run through every flow, wrong secrets included, then a search of it all
// for every secret that passed through.
func TestNoSecretInLogsDatabaseOrMetrics(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tok := h.admin()
	// Ten digits: a six-digit code could turn up by chance in hex or in a
	// latency in nanoseconds.
	h.putSettings(tok, map[string]any{"otpLength": 10, "sendsPerUserHour": 0, "publicPerIPMinute": 0})
	secrets := map[string]string{"admin client secret": h.adminSecret, "access token": tok, "SMS API token": "sekrit"}
	ctx := context.Background()
	id2, secret2, err := h.app.Auth.CreateClient(ctx, "acme", "second", []string{auth.ScopeUsersRead})
	if err != nil {
		t.Fatal(err)
	}
	secrets["second client secret"] = secret2
	wrongSecret := "Wr0ng-" + strings.Repeat("s", 30)
	secrets["wrong client secret"] = wrongSecret
	form := url.Values{"grant_type": {"client_credentials"}}
	if r := h.tokenRequest(form, "", id2, wrongSecret, "application/x-www-form-urlencoded"); r.Status != 401 {
		t.Fatalf("wrong secret: %d", r.Status)
	}
	form.Set("client_id", id2)
	form.Set("client_secret", secret2)
	if r := h.tokenRequest(form, "", "", "", "application/x-www-form-urlencoded"); r.Status != 200 {
		t.Fatalf("client_secret_post: %d", r.Status)
	} else {
		secrets["second access token"] = r.Body["access_token"].(string)
	}

	initial := "initial Passphrase 1"
	secrets["initial password"] = initial
	h.putUser(tok, "acme", "u", map[string]any{"username": "jane", "email": "jane@example.com", "phone": "+14155550123", "password": initial,
		"facts": map[string]string{"dateOfBirth": "1971-11-23", "postalCode": "ZZ9 9ZZ"}})
	secrets["fact dateOfBirth"] = "1971-11-23"
	secrets["fact postalCode"] = "ZZ9 9ZZ"
	secrets["fact postalCode, normalised"] = "zz99zz"
	wrongPassword := "wrong Passphrase 2"
	secrets["wrong password"] = wrongPassword
	for pw, want := range map[string]int{initial: 204, wrongPassword: 401} {
		if r := h.do("POST", P+"/institutions/acme/users/u/password/verify", tok, map[string]string{"password": pw}); r.Status != want {
			t.Fatalf("verify: %d", r.Status)
		}
	}

	// A link by email: open the page with it, a refused change, a change.
	link := h.resetLink(tok, "acme", "u")
	secrets["link token"] = link
	if d := disputeToken.FindStringSubmatch(h.mail.Messages()[h.mail.Count()-1].Text); d != nil {
		secrets["dispute token"] = d[1]
	}
	if resp, err := http.Get(h.url + "/reset?token=" + link); err == nil {
		resp.Body.Close()
	}
	weak := "password1234"
	if r := h.do("POST", P+"/password/change", "", map[string]string{"token": link, "newPassword": weak}); r.Status != 422 {
		t.Fatalf("weak: %d", r.Status)
	}
	first := "first new Passphrase 3"
	secrets["first new password"] = first
	if r := h.do("POST", P+"/password/change", "", map[string]string{"token": link, "newPassword": first}); r.Status != 204 {
		t.Fatalf("change: %d %s", r.Status, r.Body)
	}

	// OTPs by email and SMS, a wrong code, the right one, a change.
	cms := h.contactMethods(tok, "acme", "u")
	if r := h.sendOTP(tok, "acme", "u", cms["sms"]); r.Status != 202 {
		t.Fatalf("sms otp: %d %s", r.Status, r.Body)
	}
	// The change above sent its notice by SMS too: take the SMS with a code.
	for n := 1; secrets["SMS code"] == ""; n++ {
		for _, m := range h.waitSMS(n) {
			if c := sixDigits.FindStringSubmatch(m); c != nil && len(c[1]) == 10 {
				secrets["SMS code"] = c[1]
			}
		}
	}
	mails := h.mail.Count()
	if r := h.sendOTP(tok, "acme", "u", cms["email"]); r.Status != 202 {
		t.Fatalf("email otp: %d", r.Status)
	}
	emailCode := h.mailAfter(mails, func(text string) string {
		if c := sixDigits.FindStringSubmatch(text); c != nil && len(c[1]) == 10 {
			return c[1]
		}
		return ""
	})
	secrets["email code"] = emailCode
	if r := h.verifyOTP("acme", map[string]string{"username": "jane", "otp": "0000000000"}); r.Status != 400 {
		t.Fatalf("wrong code: %d", r.Status)
	}
	v := h.verifyOTP("acme", map[string]string{"username": "jane", "otp": emailCode})
	if v.Status != 200 {
		t.Fatalf("verify: %d %s", v.Status, v.Body)
	}
	otpToken := v.json(t)["token"].(string)
	secrets["OTP's reset token"] = otpToken
	second := "second new Passphrase 4"
	secrets["second new password"] = second
	if r := h.do("POST", "/api/Authorize/ChangePassword", "", map[string]string{"token": otpToken, "newPassword": second}); r.Status != 200 {
		t.Fatalf("compat change: %d %s", r.Status, r.Body)
	}

	// Self-service, then a change with its token.
	mails = h.mail.Count()
	if r := selfService(h, "GET", url.Values{"username": {"jane"}}); r.Status != 200 {
		t.Fatal(r.Status)
	}
	selfToken := h.mailAfter(mails, func(text string) string {
		if l := linkToken.FindStringSubmatch(text); l != nil {
			return l[1]
		}
		return ""
	})
	secrets["self-service token"] = selfToken
	third := "third new Passphrase 5"
	secrets["third new password"] = third
	if r := h.do("POST", P+"/password/change", "", map[string]string{"token": selfToken, "newPassword": third}); r.Status != 204 {
		t.Fatalf("change: %d", r.Status)
	}
	// Every message went out, so the queue's rows are final.
	ctxWait, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		d := h.do("GET", P+"/institutions/acme/users/u/password/deliveries", tok, nil)
		if !strings.Contains(string(d.Body), `"state":"queued"`) {
			break
		}
		select {
		case <-ctxWait.Done():
			t.Fatalf("deliveries still queued: %s", d.Body)
		case <-time.After(20 * time.Millisecond): // polling an HTTP resource; there is no event to await
		}
	}
	metrics := h.do("GET", "/metrics", "", nil)
	audit := h.do("GET", P+"/institutions/acme/audit", tok, nil)
	h.stop()

	places := databaseContents(t, h.dbPath)
	places["log"] = []byte(h.logs.String())
	places["metrics"] = metrics.Body
	places["audit API"] = audit.Body
	if len(places["log"]) == 0 {
		t.Fatal("no log captured")
	}
	for where, b := range places {
		for name, s := range secrets {
			if strings.Contains(string(b), s) {
				t.Errorf("%s found in clear in %s", name, where)
			}
		}
	}
}

// mailAfter waits for an email, after the first from, in whose text find
// finds something, and returns that: other messages (change notices) may
// arrive in between.
func (h *harness) mailAfter(from int, find func(text string) string) string {
	h.t.Helper()
	for n := from + 1; ; n++ {
		for _, m := range h.waitMail(n)[from:] {
			if v := find(m.Text); v != "" {
				return v
			}
		}
	}
}

// Every answer carries nosniff; every answer that carries or concerns a
// secret is no-store; every HTML page carries the page headers of SPEC §6.
func TestHTTPHardeningHeaders(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tok := h.admin()
	h.putUser(tok, "acme", "u", map[string]any{"username": "u", "email": "u@example.com"})
	link := h.resetLink(tok, "acme", "u")
	if r := h.sendOTP(tok, "acme", "u", h.contactMethods(tok, "acme", "u")["email"]); r.Status != 202 {
		t.Fatal(r.Status)
	}
	code := sixDigits.FindStringSubmatch(h.waitMail(2)[1].Text)[1]

	form := "application/x-www-form-urlencoded"
	secretBearing := map[string]response{}
	tr := h.tokenRequest(url.Values{"grant_type": {"client_credentials"}}, "", h.adminID, h.adminSecret, form)
	secretBearing["token 200"] = response{Status: tr.Status, Header: tr.Header}
	tr = h.tokenRequest(url.Values{"grant_type": {"client_credentials"}}, "", h.adminID, "wrong", form)
	secretBearing["token 401"] = response{Status: tr.Status, Header: tr.Header}
	secretBearing["OTP verify 400"] = h.verifyOTP("acme", map[string]string{"username": "u", "otp": "0000000"})
	v := h.verifyOTP("acme", map[string]string{"username": "u", "otp": code})
	secretBearing["OTP verify 200"] = v
	secretBearing["change 422"] = h.do("POST", P+"/password/change", "", map[string]string{"token": link, "newPassword": "short"})
	secretBearing["change 204"] = h.do("POST", P+"/password/change", "", map[string]string{"token": link, "newPassword": goodPassword})
	secretBearing["change 410"] = h.do("POST", P+"/password/change", "", map[string]string{"token": link, "newPassword": goodPassword})
	secretBearing["compat change 200"] = h.do("POST", "/api/Authorize/ChangePassword", "", map[string]string{"token": v.json(t)["token"].(string), "newPassword": goodPassword + " 2"})
	secretBearing["self-service 200"] = selfService(h, "GET", url.Values{"username": {"u"}})
	secretBearing["contact methods 200"] = h.do("GET", P+"/institutions/acme/users/u/contact-methods", tok, nil)
	secretBearing["settings 200"] = h.do("GET", P+"/institutions/acme/settings", tok, nil)
	secretBearing["unauthorized 401"] = h.do("GET", P+"/institutions/acme/settings", "", nil)
	for name, r := range secretBearing {
		if r.Status >= 500 {
			t.Errorf("%s: %d", name, r.Status)
		}
		if cc := r.Header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("%s: Cache-Control %q, want no-store", name, cc)
		}
		if r.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: no X-Content-Type-Options: nosniff", name)
		}
	}

	// Every registered GET route, with junk where a value goes: nosniff
	// everywhere, the page headers on every HTML answer.
	html := 0
	for _, p := range h.app.Server.Patterns() {
		method, path, _ := strings.Cut(p, " ")
		if method != "GET" {
			continue
		}
		path = strings.NewReplacer("{institutionId}", "acme", "{userId}", "u", "{approvalId}", "junk").Replace(path)
		for _, q := range []string{"", "?token=junk", "?institution=acme", "?institution=junk"} {
			r := h.do("GET", path+q, "", nil)
			what := "GET " + path + q
			if r.Status >= 500 {
				t.Errorf("%s: %d", what, r.Status)
			}
			if r.Header.Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("%s: no X-Content-Type-Options: nosniff", what)
			}
			if strings.HasPrefix(r.Header.Get("Content-Type"), "text/html") {
				html++
				checkHTMLHeaders(t, what, r.Header)
			}
		}
	}
	// The page's POSTs, without a session or a CSRF value.
	for _, path := range []string{"/reset", "/reset/code", "/reset/dispute/confirm"} {
		r := h.do("POST", path, "", "password=x&confirm=x", "Content-Type", form)
		if r.Status >= 500 || r.Status < 400 {
			t.Errorf("POST %s without a session: %d", path, r.Status)
		}
		if strings.HasPrefix(r.Header.Get("Content-Type"), "text/html") {
			html++
			checkHTMLHeaders(t, "POST "+path, r.Header)
		}
	}
	if html < 4 {
		t.Errorf("only %d HTML answers seen: is the reset page registered?", html)
	}
}

func checkHTMLHeaders(t *testing.T, what string, h http.Header) {
	t.Helper()
	csp := h.Get("Content-Security-Policy")
	for _, d := range []string{"default-src 'none'", "frame-ancestors 'none'", "form-action 'self'", "base-uri 'none'"} {
		if !strings.Contains(csp, d) {
			t.Errorf("%s: Content-Security-Policy %q lacks %s", what, csp, d)
		}
	}
	if strings.Contains(csp, "script-src") && !strings.Contains(csp, "script-src 'none'") {
		t.Errorf("%s: the CSP allows scripts: %q", what, csp)
	}
	for k, v := range map[string]string{"Referrer-Policy": "no-referrer", "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY"} {
		if got := h.Get(k); got != v {
			t.Errorf("%s: %s = %q, want %q", what, k, got, v)
		}
	}
}

// A client that sends its headers one byte a second is cut off by the
// server's ReadHeaderTimeout (5 s), well before ReadTimeout (15 s) would.
func TestSlowlorisIsCutOff(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	conn, err := net.Dial("tcp", strings.TrimPrefix(h.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	closed := make(chan error, 1)
	go func() {
		// Whatever the server does (close, or a 408), the read ends.
		_, err := io.Copy(io.Discard, conn)
		closed <- err
	}()
	request := "GET /healthz HTTP/1.1\r\nHost: resetd\r\nX-Slow: " + strings.Repeat("a", 60) + "\r\n\r\n"
	start := time.Now()
	tick := time.NewTicker(time.Second) // the attack's own pace, not a wait for an event
	defer tick.Stop()
	sent := 0
	for {
		select {
		case <-closed:
			took := time.Since(start)
			if took > 10*time.Second || sent >= len(request) {
				t.Fatalf("cut off after %v and %d bytes: the header timeout did not fire", took, sent)
			}
			t.Logf("cut off after %v, %d of %d header bytes sent", took.Round(time.Millisecond), sent, len(request))
			return
		case <-tick.C:
			if time.Since(start) > 12*time.Second {
				t.Fatal("a client trickling headers is still connected after 12 s")
			}
			if _, err := conn.Write([]byte{request[sent]}); err == nil {
				sent++
			}
		}
	}
}

// Concurrent requests that each need an argon2id computation (production
// parameters, 19 MiB each) beyond what the Hasher admits get 503 with
// Retry-After, never 500, and no more computations run at once than the
// bound: memory is bounded by slots × 19 MiB, whatever the load.
func TestArgon2BoundUnderLoad(t *testing.T) {
	t.Parallel()
	// A bound of two slots (and the Hasher's queue of eight waiters per
	// slot), whatever the machine.
	const slots = 2
	h := newHarness(t, func(c *app.Config) { c.Argon2 = &password.DefaultParams; c.HashSlots = slots })
	hasher := h.app.Hasher
	tok := h.admin()
	h.putUser(tok, "acme", "v", map[string]any{"username": "verifier", "password": goodPassword})

	// Connections opened up front, so the requests arrive together.
	const n = 60
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n, MaxConnsPerHost: n}, Timeout: 30 * time.Second}
	var warm sync.WaitGroup
	for range n {
		warm.Add(1)
		go func() {
			defer warm.Done()
			if resp, err := client.Get(h.url + "/healthz"); err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
	}
	warm.Wait()

	var maxInFlight, maxWaiting atomic.Int64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(200 * time.Microsecond) // sampling a gauge, not awaiting an event
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if v := int64(hasher.InFlight()); v > maxInFlight.Load() {
					maxInFlight.Store(v)
				}
				if v := int64(hasher.Waiting()); v > maxWaiting.Load() {
					maxWaiting.Store(v)
				}
			}
		}
	}()
	type result struct {
		status     int
		retryAfter string
		kind       string
	}
	results := make([]result, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var req *http.Request
			kind := "put"
			if i%4 == 3 {
				kind = "verify"
				req, _ = http.NewRequest("POST", h.url+P+"/institutions/acme/users/v/password/verify", strings.NewReader(`{"password":"`+goodPassword+`"}`))
			} else {
				body := fmt.Sprintf(`{"username":"load%d","password":"a long load-test passphrase %d"}`, i, i)
				req, _ = http.NewRequest("PUT", fmt.Sprintf("%s%s/institutions/acme/users/load%d", h.url, P, i), strings.NewReader(body))
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+tok)
			<-start
			resp, err := client.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			results[i] = result{resp.StatusCode, resp.Header.Get("Retry-After"), kind}
		}()
	}
	close(start)
	wg.Wait()
	close(stop)
	<-sampled

	statuses := map[int]int{}
	for i, r := range results {
		statuses[r.status]++
		switch {
		case r.status == 503:
			if r.retryAfter == "" {
				t.Errorf("request %d: 503 without Retry-After", i)
			}
		case r.kind == "put" && r.status == 201, r.kind == "verify" && r.status == 204:
		default:
			t.Errorf("request %d (%s): %d", i, r.kind, r.status)
		}
	}
	t.Logf("statuses %v; at most %d argon2id computations at once, %d waiting", statuses, maxInFlight.Load(), maxWaiting.Load())
	if statuses[503] == 0 {
		t.Errorf("no request was turned away: %d requests needing argon2id at once should overflow %d slots and their queue", n, slots)
	}
	if maxInFlight.Load() > slots || maxWaiting.Load() > slots*8 {
		t.Errorf("%d computations ran at once and %d waited: the bound is %d and %d", maxInFlight.Load(), maxWaiting.Load(), slots, slots*8)
	}
	// A refused PUT stored nothing.
	for i, r := range results {
		if r.kind != "put" {
			continue
		}
		found := h.do("GET", fmt.Sprintf("%s/institutions/acme/users?username=load%d", P, i), tok, nil)
		if stored := !strings.Contains(string(found.Body), `"users":[]`); stored != (r.status == 201) {
			t.Errorf("user load%d: answered %d, stored %v", i, r.status, stored)
		}
	}
}
