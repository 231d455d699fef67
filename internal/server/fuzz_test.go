package server

// Fuzz tests of the HTTP face (issue 6). Seed corpora are committed under
// testdata/fuzz/<Name>/ and run with every `go test`; CI also fuzzes each
// target for a short while:
//
//	go test -run '^$' -fuzz '^FuzzDecode$' -fuzztime 10s ./internal/server
//	go test -run '^$' -fuzz '^FuzzAPI$' -fuzztime 10s ./internal/server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/resetd/resetd/internal/auth"
	"github.com/resetd/resetd/internal/delivery"
	"github.com/resetd/resetd/internal/password"
	"github.com/resetd/resetd/internal/queue"
	"github.com/resetd/resetd/internal/request"
	"github.com/resetd/resetd/internal/reset"
	"github.com/resetd/resetd/internal/seal"
	"github.com/resetd/resetd/internal/store"
	"github.com/resetd/resetd/internal/store/sqlite"
)

// decodeTargets are the shapes the handlers decode into (mirrors of the
// handlers' own body types, plus the shared ones).
func decodeTargets() []func() any {
	return []func() any{
		func() any { return &changeBody{} },
		func() any { return &reset.SettingsPatch{} },
		func() any {
			return &struct {
				Username     string            `json:"username"`
				Email        string            `json:"email"`
				Phone        string            `json:"phone"`
				Status       string            `json:"status"`
				Password     *string           `json:"password"`
				PasswordHash *string           `json:"passwordHash"`
				Facts        map[string]string `json:"facts"`
			}{}
		},
		func() any { return &struct{}{} },
		func() any {
			return &struct {
				Method string `json:"method"`
			}{}
		},
	}
}

// FuzzDecode drives decode, the one JSON reader of every handler: it never
// panics, accepts only a single UTF-8 JSON object of known fields under
// 64 KiB with the JSON content type, and everything it refuses becomes a
// 4xx problem, never a 500.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"token":"x","newPassword":"y"}`), "application/json", uint8(0), false)
	f.Add([]byte(`{"expiration":3600,"linkBases":["https://bank.example/reset"]}`), "application/json; charset=utf-8", uint8(1), false)
	f.Add([]byte(`{"username":"a","password":null,"facts":{"dateOfBirth":"1990-01-01"}}`), "application/json", uint8(2), false)
	f.Add([]byte(``), "", uint8(3), true)
	f.Add([]byte(` {} `), "application/json", uint8(3), true)
	f.Add([]byte(`{"method":"email"} {}`), "application/json", uint8(4), false)
	f.Add([]byte(`[]`), "application/json", uint8(4), false)
	f.Add([]byte("{\"method\":\"\xff\"}"), "application/json", uint8(4), false)
	f.Add([]byte(`{"method":"email"}`), "text/plain", uint8(4), false)
	f.Add([]byte(`{"expiration":1e400}`), "application/json", uint8(1), false)
	f.Add([]byte(`{"method":"email","method":"sms"}`), "application/json", uint8(4), false)
	srv := New(Config{})
	targets := decodeTargets()
	f.Fuzz(func(t *testing.T, body []byte, contentType string, target uint8, allowEmpty bool) {
		newTarget := targets[int(target)%len(targets)]
		rec := httptest.NewRecorder()
		r := httptest.NewRequest("POST", "/fuzz", bytes.NewReader(body))
		if contentType != "" {
			r.Header.Set("Content-Type", contentType)
		}
		r = r.WithContext(request.With(r.Context(), "fuzz", ""))
		r.Body = http.MaxBytesReader(rec, r.Body, maxBody)
		v := newTarget()
		err := decode(r, v, allowEmpty)
		if err != nil {
			var inv *reset.InvalidError
			var tooBig *http.MaxBytesError
			if !errors.Is(err, errUnsupportedMedia) && !errors.As(err, &inv) && !errors.As(err, &tooBig) {
				t.Fatalf("decode returned an error the server has no status for: %T %v", err, err)
			}
			srv.bad(rec, r, err)
			if rec.Code < 400 || rec.Code >= 500 {
				t.Fatalf("decode error %v became status %d", err, rec.Code)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
				t.Fatalf("refusal with content type %q", ct)
			}
			if tooBig == nil && strings.Contains(rec.Body.String(), string(body)) && len(body) > 16 {
				t.Fatalf("the problem echoes the body back: %s", rec.Body)
			}
			return
		}
		trimmed := bytes.TrimSpace(body)
		if len(trimmed) == 0 {
			if !allowEmpty {
				t.Fatal("an empty body was accepted where one is required")
			}
			return
		}
		if len(body) > maxBody {
			t.Fatalf("a body of %d bytes was accepted", len(body))
		}
		if !strings.HasPrefix(strings.ToLower(strings.TrimSpace(contentType)), "application/json") {
			t.Fatalf("content type %q was accepted", contentType)
		}
		if trimmed[0] != '{' || !utf8.Valid(trimmed) {
			t.Fatalf("accepted a body that is not a UTF-8 JSON object: %q", trimmed)
		}
		// The standard decoder agrees, with unknown fields refused.
		dec := json.NewDecoder(bytes.NewReader(trimmed))
		dec.DisallowUnknownFields()
		if err := dec.Decode(newTarget()); err != nil {
			t.Fatalf("decode accepted what encoding/json refuses: %v", err)
		}
		if _, err := json.Marshal(v); err != nil {
			t.Fatalf("a decoded value does not marshal: %v", err)
		}
	})
}

// fuzzServer is a server over a real SQLite store with one institution,
// one user and an access token holding every scope.
type fuzzServer struct {
	h     http.Handler
	token string
}

func newFuzzServer(f *testing.F) *fuzzServer {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(f.TempDir(), "fuzz.db"), sqlite.Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { st.Close() })
	if err := st.Migrate(ctx); err != nil {
		f.Fatal(err)
	}
	if _, err := queue.Attach(st, queue.Options{Poll: true}); err != nil {
		f.Fatal(err)
	}
	key, err := seal.New(seal.Generate())
	if err != nil {
		f.Fatal(err)
	}
	const base = "http://127.0.0.1:8080"
	as, err := auth.New(ctx, st, key, base, time.Now)
	if err != nil {
		f.Fatal(err)
	}
	if err := as.EnsureSigningKey(ctx); err != nil {
		f.Fatal(err)
	}
	rs := reset.New(reset.Config{
		Store: st, Key: key, Templates: delivery.DefaultTemplates(), PublicURL: base, DefaultFrom: "noreply@bank.example",
		Hasher: password.NewHasher(password.Params{Memory: 1024, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 16}, 0, 0),
	})
	if _, err := rs.PutInstitution(ctx, "acme", "Acme Bank", nil, []string{"security@acme.example"}, true); err != nil {
		f.Fatal(err)
	}
	zero := 0
	if _, err := rs.UpdateSettings(ctx, reset.Actor{}, "acme", reset.SettingsPatch{PublicPerIPMinute: &zero, PublicPerUsernameHour: &zero, SendsPerUserHour: &zero}); err != nil {
		f.Fatal(err)
	}
	pw := "correct horse battery staple"
	if _, err := rs.PutUser(ctx, reset.Actor{}, "acme", "u1", reset.UserInput{Username: "jane", Email: "jane@example.com", Phone: "+14155550123", Password: &pw}); err != nil {
		f.Fatal(err)
	}
	id, secret, err := as.CreateClient(ctx, "acme", "fuzz", auth.AllScopes)
	if err != nil {
		f.Fatal(err)
	}
	c, err := as.Authenticate(ctx, id, secret)
	if err != nil {
		f.Fatal(err)
	}
	tok, _, err := as.Issue(c, nil)
	if err != nil {
		f.Fatal(err)
	}
	return &fuzzServer{h: New(Config{Reset: rs, Auth: as, Ready: st.Ping}), token: tok}
}

// fuzzRoutes are the API routes FuzzAPI drives, with {i} and {u} for the
// fuzzed path values.
var fuzzRoutes = []string{
	"POST " + P + "/institutions/{i}/users/{u}/password/reset",
	"GET " + P + "/institutions/{i}/settings",
	"PUT " + P + "/institutions/{i}/settings",
	"GET " + P + "/institutions/{i}/users",
	"PUT " + P + "/institutions/{i}/users/{u}",
	"DELETE " + P + "/institutions/{i}/users/{u}",
	"GET " + P + "/institutions/{i}/users/{u}/password/deliveries",
	"POST " + P + "/institutions/{i}/users/{u}/password/verify",
	"GET " + P + "/institutions/{i}/audit",
	"POST " + P + "/password/change",
	"GET " + P + "/institutions/{i}/users/{u}/contact-methods",
	"POST " + P + "/institutions/{i}/approvals/{u}",
	"POST " + P + "/institutions/{i}/users/{u}/password/otp",
	"POST " + P + "/institutions/{i}/password/otp/verify",
	"GET /api/Authorize/SendResetPassword",
	"POST /api/Authorize/SendResetPassword",
	"POST /api/Authorize/ChangePassword",
	"POST " + TokenPath,
}

// FuzzAPI sends fuzzed path values, query strings, content types and
// bodies to every API route of a real server (SQLite store, real
// services, a valid token): no answer is a 5xx, every refusal of a
// password-reset API route is a problem document, and self-service never
// reveals more than seed 002's masked email.
func FuzzAPI(f *testing.F) {
	f.Add(uint8(14), "acme", "u1", "username=jane&siteName=http://127.0.0.1:8080/reset", "", []byte(nil))
	f.Add(uint8(15), "acme", "u1", "", "application/json", []byte(`{"username":"nobody","linkReset":"security@acme.example"}`))
	f.Add(uint8(15), "acme", "u1", "", "application/x-www-form-urlencoded", []byte(`username=jane&username=x`))
	f.Add(uint8(13), "acme", "u1", "", "application/json", []byte(`{"username":"jane","otp":"123456"}`))
	f.Add(uint8(9), "acme", "u1", "", "application/json", []byte(`{"token":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","newPassword":"x"}`))
	f.Add(uint8(2), "acme", "u1", "", "application/json", []byte(`{"expiration":300,"linkBases":["https://bank.example/r"],"displayName":"<b>x</b>"}`))
	f.Add(uint8(4), "acme", "u2", "", "application/json", []byte(`{"username":"bob","email":"bob@example.com","phone":"+442071838750"}`))
	f.Add(uint8(3), "acme", "u1", "username=jane&username=jane", "", []byte(nil))
	f.Add(uint8(8), "acme", "u1", "since=2020-01-01T00:00:00Z&since=x", "", []byte(nil))
	f.Add(uint8(0), "..%2F", "%00", "", "application/json", []byte(`{"method":"sms"}`))
	f.Add(uint8(17), "", "", "client_id=x", "application/x-www-form-urlencoded", []byte(`grant_type=client_credentials&client_id=a&client_secret=b`))
	srv := newFuzzServer(f)
	f.Fuzz(func(t *testing.T, route uint8, inst, user, query, contentType string, body []byte) {
		pattern := fuzzRoutes[int(route)%len(fuzzRoutes)]
		method, path, _ := strings.Cut(pattern, " ")
		path = strings.NewReplacer("{i}", inst, "{u}", user).Replace(path)
		target := path
		if query != "" {
			target += "?" + query
		}
		r, err := http.NewRequest(method, "http://resetd.test"+target, bytes.NewReader(body))
		if err != nil {
			return // not a request a client could send
		}
		r.RemoteAddr = "192.0.2.1:1234"
		if contentType != "" {
			r.Header.Set("Content-Type", contentType)
		}
		if strings.Contains(pattern, "/institutions/{i}/users/{u}") || strings.HasSuffix(pattern, "/settings") || strings.HasSuffix(pattern, "/users") ||
			strings.HasSuffix(pattern, "/audit") || strings.Contains(pattern, "/approvals/") {
			r.Header.Set("Authorization", "Bearer "+srv.token)
		}
		w := httptest.NewRecorder()
		srv.h.ServeHTTP(w, r)
		if w.Code >= 500 {
			t.Fatalf("%s %q: %d %s", method, target, w.Code, w.Body)
		}
		if w.Header().Get("X-Content-Type-Options") != "nosniff" {
			t.Fatalf("%s %q: no nosniff", method, target)
		}
		if w.Code >= 400 && strings.HasPrefix(r.URL.Path, P) && w.Header().Get("Content-Type") != "application/problem+json" {
			t.Fatalf("%s %q: %d refusal as %q", method, target, w.Code, w.Header().Get("Content-Type"))
		}
		if strings.HasSuffix(pattern, "SendResetPassword") && w.Code == 200 {
			// Fuzzed settings PUTs may turn revealRecipient on: then a
			// known user's address shows masked, never in full.
			var e map[string]string
			if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || len(e) != 4 || (e["to"] != "***" && !strings.Contains(e["to"], "•••")) ||
				!strings.Contains(e["body"], "token={generatedToken}") || realToken.MatchString(e["body"]) || strings.Contains(w.Body.String(), "jane@example.com") {
				t.Fatalf("self-service answer %s", w.Body)
			}
		}
	})
}

// realToken is a reset token as links carry it.
var realToken = regexp.MustCompile(`token=[A-Za-z0-9_-]{43}`)

var _ store.Transactor = (*sqlite.Store)(nil)
