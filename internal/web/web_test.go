package web

// Unit tests of what the integration tests (internal/app/web_test.go, a
// real server and a real browser) cannot reach: an https public URL behind
// a path prefix, and domain answers that a real run cannot be made to give
// on demand (hashing capacity exhausted, an internal failure).

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/resetd/resetd/internal/brand"
	"github.com/resetd/resetd/internal/password"
	"github.com/resetd/resetd/internal/reset"
	"github.com/resetd/resetd/internal/seal"
)

const testToken = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"

// fakeReset answers as the domain would, with the error a test chooses.
type fakeReset struct {
	changeErr    error
	changed      []string
	facts        []map[string]string // the facts of each change, in order
	requireFacts []string
	disputed     int
}

func (f *fakeReset) InspectToken(ctx context.Context, tok string) (reset.TokenInfo, error) {
	if tok != testToken {
		return reset.TokenInfo{}, reset.ErrGone
	}
	return reset.TokenInfo{InstitutionID: "acme", UserID: "u1", Username: "jane", DisplayName: "Acme Bank",
		Policy: password.Policy{MinLength: 12}, ExpiresAt: time.Unix(2_000_000_000, 0).Add(time.Hour), Facts: f.requireFacts}, nil
}

func (f *fakeReset) ChangePasswordWithFacts(ctx context.Context, a reset.Actor, tok, pw string, facts map[string]string) error {
	f.changed = append(f.changed, pw)
	f.facts = append(f.facts, facts)
	return f.changeErr
}

func (f *fakeReset) InspectDispute(ctx context.Context, tok string) (reset.DisputeInfo, error) {
	if tok != testToken || f.disputed > 0 {
		return reset.DisputeInfo{}, reset.ErrGone
	}
	return reset.DisputeInfo{DisplayName: "Acme Bank"}, nil
}

func (f *fakeReset) ConfirmDispute(ctx context.Context, a reset.Actor, tok string) (reset.DisputeInfo, error) {
	info, err := f.InspectDispute(ctx, tok)
	if err == nil {
		f.disputed++
	}
	return info, err
}

func (f *fakeReset) Settings(ctx context.Context, id string) (reset.Settings, error) {
	if id != "acme" {
		return reset.Settings{}, reset.ErrNotFound
	}
	return reset.Settings{DisplayName: "Acme Bank", OTPLength: 6, RequireFacts: f.requireFacts}, nil
}

func (f *fakeReset) PublicSettings(ctx context.Context, id string) (reset.Settings, error) {
	st, err := f.Settings(ctx, id)
	if errors.Is(err, reset.ErrNotFound) {
		return reset.Settings{DisplayName: id, OTPLength: 6}, nil
	}
	return st, err
}

func (f *fakeReset) DefaultLanguages(ctx context.Context) (reset.Languages, error) {
	return reset.Languages{}, nil
}

func (f *fakeReset) VerifyOTP(ctx context.Context, a reset.Actor, id string, in reset.OTPVerifyInput) (string, time.Time, error) {
	return "", time.Time{}, reset.ErrOTPInvalid
}

// The fake has no brand: the branded page runs against the real domain
// (internal/app).
func (f *fakeReset) Logo(ctx context.Context, id string) (brand.Logo, error) {
	return brand.Logo{}, &reset.NotFoundError{What: "logo"}
}

func (f *fakeReset) GoneBranding(ctx context.Context, tok string) (reset.Branding, error) {
	return reset.Branding{}, nil
}

type setup struct {
	fake *fakeReset
	srv  http.Handler
	logs *bytes.Buffer
	now  *time.Time
}

func newSetup(t *testing.T, publicURL string) setup {
	t.Helper()
	key, err := seal.New(seal.Generate())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(2_000_000_000, 0)
	s := setup{fake: &fakeReset{}, logs: &bytes.Buffer{}, now: &now}
	m := http.NewServeMux()
	Register(m, Config{Reset: s.fake, Key: key, PublicURL: publicURL, Now: func() time.Time { return *s.now },
		Logger: slog.New(slog.NewTextHandler(s.logs, nil))})
	s.srv = m
	return s
}

func (s setup) do(t *testing.T, method, target string, form url.Values, cookies ...*http.Cookie) *httptest.ResponseRecorder {
	t.Helper()
	var r *http.Request
	if form != nil {
		r = httptest.NewRequest(method, target, strings.NewReader(form.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else {
		r = httptest.NewRequest(method, target, nil)
	}
	for _, c := range cookies {
		r.AddCookie(c)
	}
	w := httptest.NewRecorder()
	s.srv.ServeHTTP(w, r)
	return w
}

// open follows a link and returns the session cookie and the form's CSRF.
func (s setup) open(t *testing.T) (*http.Cookie, string) {
	t.Helper()
	w := s.do(t, "GET", "/reset?token="+testToken, nil)
	if w.Code != http.StatusSeeOther {
		t.Fatalf("open: %d", w.Code)
	}
	c := w.Result().Cookies()[0]
	w = s.do(t, "GET", "/reset/form", nil, c)
	if w.Code != 200 {
		t.Fatalf("form: %d %s", w.Code, w.Body)
	}
	i := strings.Index(w.Body.String(), `name="csrf" value="`)
	csrf := w.Body.String()[i+len(`name="csrf" value="`):]
	return c, csrf[:strings.IndexByte(csrf, '"')]
}

func TestHTTPSBehindAPrefix(t *testing.T) {
	t.Parallel()
	s := newSetup(t, "https://bank.example/resetd/")
	w := s.do(t, "GET", "/reset?token="+testToken, nil)
	if loc := w.Header().Get("Location"); loc != "/resetd/reset/form" {
		t.Errorf("redirect to %q", loc)
	}
	c := w.Result().Cookies()[0]
	if !c.Secure || !c.HttpOnly || c.Path != "/resetd/reset" || c.SameSite != http.SameSiteLaxMode {
		t.Errorf("cookie under https: %+v", c)
	}
	// The session lasts 15 minutes though the token has an hour left.
	if c.MaxAge != 15*60 {
		t.Errorf("cookie max-age %d, want 900", c.MaxAge)
	}
	body := s.do(t, "GET", "/reset/form", nil, c).Body.String()
	for _, want := range []string{`action="/resetd/reset"`, `href="/resetd/reset/assets/style.css?v=`} {
		if !strings.Contains(body, want) {
			t.Errorf("form lacks %q", want)
		}
	}
}

func TestSessionCookie(t *testing.T) {
	t.Parallel()
	s := newSetup(t, "http://127.0.0.1:8080")
	c, csrf := s.open(t)
	if c.Secure {
		t.Error("Secure cookie on an http public URL: browsers would drop it")
	}
	for name, v := range map[string]string{
		"flipped": c.Value[:10] + string(c.Value[10]^1) + c.Value[11:],
		"short":   c.Value[:20],
		"junk":    "not base64!",
	} {
		bad := *c
		bad.Value = v
		if w := s.do(t, "GET", "/reset/form", nil, &bad); w.Code != http.StatusGone {
			t.Errorf("%s cookie: %d", name, w.Code)
		}
	}
	// Another server's key cannot open it, nor forge the CSRF value.
	other := newSetup(t, "http://127.0.0.1:8080")
	if w := other.do(t, "GET", "/reset/form", nil, c); w.Code != http.StatusGone {
		t.Errorf("cookie under another key: %d", w.Code)
	}
	_, otherCSRF := other.open(t)
	if otherCSRF == csrf {
		t.Error("CSRF value does not depend on the key")
	}
	if w := s.do(t, "POST", "/reset", url.Values{"csrf": {otherCSRF}, "password": {"x"}, "confirm": {"x"}}, c); w.Code != http.StatusForbidden {
		t.Errorf("CSRF from another key: %d", w.Code)
	}
	// Past its 15 minutes the session is gone, and the page deletes it.
	*s.now = s.now.Add(15 * time.Minute)
	w := s.do(t, "GET", "/reset/form", nil, c)
	if w.Code != http.StatusGone {
		t.Fatalf("after 15 minutes: %d", w.Code)
	}
	if cs := w.Result().Cookies(); len(cs) != 1 || cs[0].MaxAge >= 0 {
		t.Errorf("ended session not deleted: %v", cs)
	}
	if len(s.fake.changed) != 0 {
		t.Errorf("ChangePassword called on refused posts: %d times", len(s.fake.changed))
	}
}

func TestDomainErrorsBecomePages(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name       string
		err        error
		status     int
		text       string
		retryAfter string
	}{
		{"busy", reset.ErrBusy, http.StatusServiceUnavailable, "Please try again in a moment", "2"},
		{"limited", &reset.LimitError{Limit: "x", RetryAfter: 90 * time.Second}, http.StatusTooManyRequests, "Too many attempts", "90"},
		{"gone", reset.ErrGone, http.StatusGone, "This link has expired or was already used", ""},
		{"internal", errors.New("disk on fire"), http.StatusInternalServerError, "Something went wrong", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s := newSetup(t, "http://127.0.0.1:8080")
			s.fake.changeErr = c.err
			cookie, csrf := s.open(t)
			const pw = "a fine long passphrase"
			w := s.do(t, "POST", "/reset", url.Values{"csrf": {csrf}, "password": {pw}, "confirm": {pw}}, cookie)
			if w.Code != c.status || !strings.Contains(w.Body.String(), c.text) {
				t.Fatalf("%d, want %d with %q:\n%s", w.Code, c.status, c.text, w.Body)
			}
			if got := w.Header().Get("Retry-After"); got != c.retryAfter {
				t.Errorf("Retry-After %q, want %q", got, c.retryAfter)
			}
			if got := w.Header().Get("Content-Security-Policy"); !strings.Contains(got, "frame-ancestors 'none'") {
				t.Errorf("CSP %q", got)
			}
			if strings.Contains(w.Body.String(), pw) {
				t.Error("the page echoes the password")
			}
			if strings.Contains(s.logs.String(), pw) || strings.Contains(s.logs.String(), testToken) {
				t.Errorf("a secret reached the log: %s", s.logs)
			}
			if c.name == "internal" && !strings.Contains(s.logs.String(), "disk on fire") {
				t.Errorf("the cause is not logged: %s", s.logs)
			}
		})
	}
}

func TestPolicyRefusalListsEveryReason(t *testing.T) {
	t.Parallel()
	s := newSetup(t, "http://127.0.0.1:8080")
	s.fake.changeErr = &reset.PolicyError{Violations: []password.Violation{
		password.NewViolation("too_short", 12),
		password.NewViolation("common", 0),
	}}
	cookie, csrf := s.open(t)
	w := s.do(t, "POST", "/reset", url.Values{"csrf": {csrf}, "password": {"password"}, "confirm": {"password"}}, cookie)
	body := w.Body.String()
	if w.Code != http.StatusUnprocessableEntity || !strings.Contains(body, "Use at least 12 characters.") || !strings.Contains(body, "too common") {
		t.Fatalf("%d:\n%s", w.Code, body)
	}
	if strings.Count(body, "autofocus") != 1 || !strings.Contains(body, `aria-invalid="true" autofocus`) {
		t.Errorf("focus is not on exactly the first field in error:\n%s", body)
	}
}
