package app_test

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/resetd/resetd/internal/app"
	"github.com/resetd/resetd/internal/password"
)

// violationCodes reads the codes of a 422 password-policy problem.
func violationCodes(t *testing.T, r response) []string {
	t.Helper()
	if r.Status != http.StatusUnprocessableEntity {
		t.Fatalf("status %d, want 422; body %s", r.Status, r.Body)
	}
	var p struct {
		Type       string `json:"type"`
		Violations []struct {
			Code string `json:"code"`
		} `json:"violations"`
	}
	if err := json.Unmarshal(r.Body, &p); err != nil || !strings.HasSuffix(p.Type, "/password-policy") {
		t.Fatalf("not a password-policy problem: %s", r.Body)
	}
	var cs []string
	for _, v := range p.Violations {
		cs = append(cs, v.Code)
	}
	return cs
}

// policySetup is acme renamed "Demo Bank", with a user whose email's
// local part is a context word too, and sends enough for a link per case.
func policySetup(t *testing.T, configure ...func(*app.Config)) (*harness, string) {
	t.Helper()
	h := newHarness(t, configure...)
	admin := h.admin()
	h.putSettings(admin, map[string]any{"displayName": "Demo Bank", "sendsPerUserHour": 1000})
	h.putUser(admin, "acme", "u", map[string]any{"username": "jsmith", "email": "jane.smith@example.com", "password": "an old passphrase 1"})
	return h, admin
}

// The attack: a customer (or an attacker with the link) picks one of the
// passwords NIST SP 800-63B §5.1.1.2 says to refuse. Each is refused as
// "weak" on both change endpoints and on the admin users PUT next door,
// and the old password still works.
func TestWeakPasswordsRefusedOverHTTP(t *testing.T) {
	t.Parallel()
	h, admin := policySetup(t)
	weak := []string{
		strings.Repeat(" ", 13),
		"aaaaaaaaaaaa",
		"123456789012",
		"abcdefghijkl",
		"qwertyuiopas",
		"passwordpassword",
		"Password1234!",
		"Demo Bank Demo Bank",
		"demobank1234",
		"acme-acme-2024", // the institution's id
		"JaneSmith1234",  // the email's local part
		"monkeyfootball", // a shape no rule names; the strength estimate (3) refuses it
	}
	paths := []string{P + "/password/change", "/api/Authorize/ChangePassword"}
	for i, pw := range weak {
		t.Run(pw, func(t *testing.T) {
			// One link per password: a token allows 10 refusals.
			token := h.resetLink(admin, "acme", "u")
			r := h.do("POST", paths[i%2], "", map[string]string{"token": token, "newPassword": pw})
			if got := violationCodes(t, r); !slices.Contains(got, "weak") {
				t.Errorf("%s %q: codes %q, want weak", paths[i%2], pw, got)
			}
			put := h.do("PUT", P+"/institutions/acme/users/u", admin, map[string]any{"username": "jsmith", "email": "jane.smith@example.com", "password": pw})
			if got := violationCodes(t, put); !slices.Contains(got, "weak") {
				t.Errorf("users PUT %q: codes %q, want weak", pw, got)
			}
		})
	}
	if st := h.do("POST", P+"/institutions/acme/users/u/password/verify", admin, map[string]string{"password": "an old passphrase 1"}).Status; st != 204 {
		t.Errorf("old password after the refusals: %d, want 204", st)
	}
	// The same bank's other tenant is not "Demo Bank": its name is no
	// context word there.
	other := h.client("other", "institution-users:manage")
	if r := h.do("PUT", P+"/institutions/other/users/x", other, map[string]any{"username": "x", "password": "demobank violet harbour"}); r.Status != 201 {
		t.Errorf("other tenant, its own words only: %d %s", r.Status, r.Body)
	}
}

// passwordMinStrength: 3 by default, 0…4 only, and it decides what the
// estimate refuses; NFKC normalisation makes a fullwidth password the
// ASCII one at login.
func TestPasswordMinStrengthAndNFKC(t *testing.T) {
	t.Parallel()
	h, admin := policySetup(t)
	var st map[string]any
	if err := json.Unmarshal(h.do("GET", P+"/institutions/acme/settings", admin, nil).Body, &st); err != nil {
		t.Fatal(err)
	}
	if st["passwordMinStrength"] != float64(3) {
		t.Errorf("passwordMinStrength = %v, want the default 3", st["passwordMinStrength"])
	}
	for _, bad := range []string{`{"passwordMinStrength":5}`, `{"passwordMinStrength":-1}`, `{"passwordMinStrength":"3"}`, `{"passwordMinStrength":2.5}`} {
		r := h.do("PUT", P+"/institutions/acme/settings", admin, bad)
		if r.Status != 400 || !strings.Contains(string(r.Body), "passwordMinStrength") {
			t.Errorf("PUT %s: %d %s, want 400 naming passwordMinStrength", bad, r.Status, r.Body)
		}
	}
	token := h.resetLink(admin, "acme", "u")
	change := func(pw string) response {
		return h.do("POST", P+"/password/change", "", map[string]string{"token": token, "newPassword": pw})
	}
	if got := violationCodes(t, change("monkeyfootball")); !slices.Equal(got, []string{"weak"}) {
		t.Errorf("strength 3: codes %q, want weak", got)
	}
	h.putSettings(admin, map[string]any{"passwordMinStrength": 0})
	// Off, the estimate refuses nothing; the shape rules still hold.
	if got := violationCodes(t, change("abcdefghijkl")); !slices.Equal(got, []string{"weak"}) {
		t.Errorf("strength 0, a sequence: codes %q, want weak", got)
	}
	h.putSettings(admin, map[string]any{"passwordMinStrength": 3})

	fullwidth := "ｃｏｒｒｅｃｔ ｈｏｒｓｅ ｂａｔｔｅｒｙ ｓｔａｐｌｅ"
	if r := change(fullwidth); r.Status != 204 {
		t.Fatalf("fullwidth passphrase: %d %s", r.Status, r.Body)
	}
	for _, typed := range []string{goodPassword, fullwidth} {
		if st := h.do("POST", P+"/institutions/acme/users/u/password/verify", admin, map[string]string{"password": typed}).Status; st != 204 {
			t.Errorf("verify %q: %d, want 204 (both are %q after NFKC)", typed, st, goodPassword)
		}
	}
	// The stored hash is of the normalised form: reused in ASCII, it is
	// refused as reused.
	token = h.resetLink(admin, "acme", "u")
	if got := violationCodes(t, change(goodPassword)); !slices.Equal(got, []string{"reused"}) {
		t.Errorf("ASCII form of the fullwidth password: codes %q, want reused", got)
	}
}

// The attack: one link, and refused changes over and over (each could cost
// argon2id verifications of the history). After 10 refusals, on either
// change endpoint, the token is dead: 410 even for a good password, and
// the reset page says the link is used up.
func TestRefusedChangesEndTheToken(t *testing.T) {
	t.Parallel()
	h, admin := policySetup(t)
	token := h.resetLink(admin, "acme", "u")
	paths := []string{P + "/password/change", "/api/Authorize/ChangePassword"}
	for i := range 10 {
		// A reused password: the refusal that costs a history check.
		r := h.do("POST", paths[i%2], "", map[string]string{"token": token, "newPassword": "an old passphrase 1"})
		if got := violationCodes(t, r); !slices.Equal(got, []string{"reused"}) {
			t.Fatalf("refusal %d: codes %q", i+1, got)
		}
	}
	for _, path := range paths {
		if r := h.do("POST", path, "", map[string]string{"token": token, "newPassword": goodPassword}); r.Status != 410 {
			t.Errorf("%s after 10 refusals: %d %s, want 410", path, r.Status, r.Body)
		}
	}
	if p := newBrowserless(t).get(h.url + "/reset?token=" + token); p.status != http.StatusGone {
		t.Errorf("reset page for the dead token: %d, want 410", p.status)
	}
	if st := h.do("POST", P+"/institutions/acme/users/u/password/verify", admin, map[string]string{"password": "an old passphrase 1"}).Status; st != 204 {
		t.Errorf("old password: %d, want 204", st)
	}
	// A fresh link works: the budget is the token's, not the user's.
	token = h.resetLink(admin, "acme", "u")
	if r := h.do("POST", P+"/password/change", "", map[string]string{"token": token, "newPassword": goodPassword}); r.Status != 204 {
		t.Errorf("a new link: %d %s", r.Status, r.Body)
	}
}

// The attack: many links (many users), one source IP, change after change.
// Both change endpoints share the IP's publicPerIPMinute budget, counted
// before any hashing; a sliding minute later the IP may try again.
func TestChangeEndpointsLimitedPerIP(t *testing.T) {
	t.Parallel()
	h, admin := policySetup(t)
	h.putSettings(admin, map[string]any{"publicPerIPMinute": 3})
	var tokens []string
	for i := range 4 {
		id := fmt.Sprintf("ip%d", i)
		h.putUser(admin, "acme", id, map[string]any{"username": "user-" + id, "email": id + "@example.com"})
		tokens = append(tokens, h.resetLink(admin, "acme", id))
	}
	paths := []string{P + "/password/change", "/api/Authorize/ChangePassword", P + "/password/change"}
	for i, path := range paths {
		violationCodes(t, h.do("POST", path, "", map[string]string{"token": tokens[i], "newPassword": "aaaaaaaaaaaa"}))
	}
	for _, path := range []string{"/api/Authorize/ChangePassword", P + "/password/change"} {
		r := h.do("POST", path, "", map[string]string{"token": tokens[3], "newPassword": goodPassword})
		if r.Status != 429 || r.Header.Get("Retry-After") == "" {
			t.Errorf("%s, 4th change from one IP: %d (Retry-After %q), want 429 with Retry-After", path, r.Status, r.Header.Get("Retry-After"))
		}
	}
	h.clock.Advance(61 * time.Second)
	if r := h.do("POST", P+"/password/change", "", map[string]string{"token": tokens[3], "newPassword": goodPassword}); r.Status != 204 {
		t.Errorf("a minute later: %d %s, want 204", r.Status, r.Body)
	}
}

// rangeAPI is a local Pwned Passwords range API on loopback (real HTTP).
type rangeAPI struct {
	*httptest.Server
	asked atomic.Int64
}

func newRangeAPI(t *testing.T, breached ...string) *rangeAPI {
	t.Helper()
	ra := &rangeAPI{}
	ra.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ra.asked.Add(1)
		prefix, ok := strings.CutPrefix(r.URL.Path, "/range/")
		if !ok || len(prefix) != 5 || r.Method != http.MethodGet {
			http.NotFound(w, r)
			return
		}
		for _, pw := range breached {
			sum := sha1.Sum([]byte(pw))
			d := strings.ToUpper(hex.EncodeToString(sum[:]))
			if d[:5] == prefix {
				fmt.Fprintf(w, "%s:17\r\n", d[5:])
			}
		}
		fmt.Fprintf(w, "%035X:0\r\n", 7) // padding
	}))
	t.Cleanup(ra.Close)
	return ra
}

// With --breached-passwords, a password the range API knows is refused as
// "breached" (the range API sees five hex digits, never the password);
// when the API cannot be reached the change goes ahead and
// resetd_breached_list_unreachable_total counts it.
func TestBreachedPasswordsOverHTTP(t *testing.T) {
	t.Parallel()
	const leaked = "violet tractor harbour"
	ra := newRangeAPI(t, leaked)
	h, admin := policySetup(t, func(c *app.Config) { c.BreachedPasswords = ra.URL })
	token := h.resetLink(admin, "acme", "u")
	r := h.do("POST", P+"/password/change", "", map[string]string{"token": token, "newPassword": leaked})
	if got := violationCodes(t, r); !slices.Equal(got, []string{"breached"}) {
		t.Errorf("leaked password: codes %q, want breached", got)
	}
	// Next door: the admin PUT asks the same list.
	put := h.do("PUT", P+"/institutions/acme/users/u", admin, map[string]any{"username": "jsmith", "email": "jane.smith@example.com", "password": leaked})
	if got := violationCodes(t, put); !slices.Equal(got, []string{"breached"}) {
		t.Errorf("users PUT, leaked password: codes %q, want breached", got)
	}
	// A weak password never reaches the list.
	before := ra.asked.Load()
	violationCodes(t, h.do("POST", P+"/password/change", "", map[string]string{"token": token, "newPassword": "qwertyuiopas"}))
	if ra.asked.Load() != before {
		t.Error("a password the cheap rules refuse was sent to the breached list")
	}

	metric := regexp.MustCompile(`(?m)^resetd_breached_list_unreachable_total (\d+)$`)
	read := func() string {
		m := metric.FindStringSubmatch(string(h.do("GET", "/metrics", "", nil).Body))
		if m == nil {
			t.Fatal("/metrics lacks resetd_breached_list_unreachable_total")
		}
		return m[1]
	}
	if n := read(); n != "0" {
		t.Errorf("unreachable = %s before any failure", n)
	}
	ra.Close()
	if r := h.do("POST", P+"/password/change", "", map[string]string{"token": token, "newPassword": leaked}); r.Status != 204 {
		t.Fatalf("list down: %d %s, want the change to proceed", r.Status, r.Body)
	}
	if n := read(); n != "1" {
		t.Errorf("unreachable = %s, want 1", n)
	}
}

func TestBreachedPasswordsURLValidated(t *testing.T) {
	t.Parallel()
	for _, u := range []string{"ftp://list.example", "https://", "https://list.example/?k=1", "not a url"} {
		_, err := app.Open(context.Background(), app.Config{DB: "sqlite:" + t.TempDir() + "/x.db", BreachedPasswords: u})
		if err == nil || !strings.Contains(err.Error(), "--breached-passwords") {
			t.Errorf("%q: Open error %v, want one naming --breached-passwords", u, err)
		}
	}
}

// The attack of issue 14: while 40 clients flood the change endpoints with
// refused passwords (each reused, so each costs an argon2id verification
// of the history, at production parameters), with a fresh link whenever a
// token dies, the bank's login checks (passwords:verify) keep answering:
// at least 95% within 1 s (SPEC §10). A benchmark-style bound: the
// latencies are logged, the flood is checked to have kept the change pool
// full, so a pass is not a quiet machine's. Every call must answer 204;
// the 1 s bound is judged unless the machine is so busy with other work
// that quiet checks already take half of it (RESETD_REQUIRE_ALL=1, as in
// CI, judges it always). Not parallel: the
// package's other tests would be load the bound does not speak of.
func TestVerifyKeepsCapacityUnderChangeFlood(t *testing.T) {
	if testing.Short() {
		t.Skip("a load test")
	}
	// A latency bound measured under the race detector (and beside every
	// other package's tests) measures the instrumentation and the
	// neighbours: scripts/test runs this once more, alone, without -race.
	skipUnderRace(t)
	const slots = 2
	h := newHarness(t, func(c *app.Config) {
		c.Argon2 = &password.DefaultParams
		c.HashSlots, c.LoginHashSlots = slots, slots
	})
	admin := h.admin()
	h.putSettings(admin, map[string]any{"publicPerIPMinute": 100000, "sendsPerUserHour": 1000})
	const reused = "an old passphrase 1"
	h.putUser(admin, "acme", "v", map[string]any{"username": "verifier", "password": goodPassword})
	const clients = 40
	for i := range clients {
		id := fmt.Sprintf("f%d", i)
		h.putUser(admin, "acme", id, map[string]any{"username": "flood-" + id, "email": id + "@flood.example", "password": reused})
	}

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients + 4}, Timeout: 30 * time.Second}
	post := func(ctx context.Context, path, bearer, body string) (int, error) {
		req, err := http.NewRequestWithContext(ctx, "POST", h.url+path, strings.NewReader(body))
		if err != nil {
			return 0, err
		}
		req.Header.Set("Content-Type", "application/json")
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	// link sends user a reset link and reads it from the mail the SMTP
	// server received for the user's address.
	link := func(ctx context.Context, id string) (string, error) {
		before := h.mail.Count()
		if st, err := post(ctx, P+"/institutions/acme/users/"+id+"/password/reset", admin, `{"method":"email"}`); err != nil || st != 200 {
			return "", fmt.Errorf("send reset to %s: %d %v", id, st, err)
		}
		for n := before + 1; ; n++ {
			msgs, err := h.mail.Wait(ctx, n)
			if err != nil {
				return "", err
			}
			for _, m := range msgs[before:] {
				if slices.Contains(m.To, id+"@flood.example") {
					if match := linkToken.FindStringSubmatch(m.Text); match != nil {
						return match[1], nil
					}
				}
			}
		}
	}

	// verify makes n login checks from each of 2 clients and returns
	// their latencies, sorted; an answer other than 204 counts as an hour.
	const verifiers = 2
	statuses := map[int]int{}
	var mu sync.Mutex
	verify := func(n int) []time.Duration {
		var latencies []time.Duration
		var vwg sync.WaitGroup
		for range verifiers {
			vwg.Add(1)
			go func() {
				defer vwg.Done()
				for range n {
					start := time.Now()
					st, err := post(context.Background(), P+"/institutions/acme/users/v/password/verify", admin, fmt.Sprintf(`{"password":%q}`, goodPassword))
					took := time.Since(start)
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					statuses[st]++
					if st != 204 {
						took = time.Hour // not an answer within the bound
					}
					latencies = append(latencies, took)
					mu.Unlock()
				}
			}()
		}
		vwg.Wait()
		slices.Sort(latencies)
		return latencies
	}
	pct := func(ds []time.Duration, p float64) time.Duration { return ds[int(p*float64(len(ds)-1))] }
	// The machine's own pace first, with no flood: SPEC §10's 1 s speaks
	// of a machine whose quiet login checks take well under it.
	baseline := verify(10)
	const bound = time.Second
	quiet := pct(baseline, .95) <= bound/2 || os.Getenv("RESETD_REQUIRE_ALL") == "1"
	clear(statuses)

	ctx, stopFlood := context.WithCancel(context.Background())
	defer stopFlood()
	flood := map[int]int{}
	var maxInFlight atomic.Int64
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("f%d", i)
			token := ""
			for ctx.Err() == nil {
				if token == "" {
					var err error
					if token, err = link(ctx, id); err != nil {
						if ctx.Err() == nil {
							t.Errorf("flood %s: %v", id, err)
						}
						return
					}
				}
				path := P + "/password/change"
				if i%2 == 1 {
					path = "/api/Authorize/ChangePassword"
				}
				st, err := post(ctx, path, "", fmt.Sprintf(`{"token":%q,"newPassword":%q}`, token, reused))
				if err != nil {
					return // the flood was stopped
				}
				if st == 410 {
					token = ""
				}
				mu.Lock()
				flood[st]++
				mu.Unlock()
				if v := int64(h.app.Hasher.InFlight()); v > maxInFlight.Load() {
					maxInFlight.Store(v)
				}
				// A 503 says the change pool is full: the client keeps
				// it full by coming back after Retry-After (the
				// protocol's pace, not a wait for an event). A client
				// that ignores it gets 503s that cost no hashing
				// (Hasher.Full): a request flood, not this attack.
				if st == 503 {
					select {
					case <-ctx.Done():
					case <-time.After(2 * time.Second):
					}
				}
			}
		}()
	}
	// The flood is under way once the change pool is full.
	for h.app.Hasher.InFlight() < slots {
		select {
		case <-ctx.Done():
			t.Fatal("stopped")
		case <-time.After(time.Millisecond): // polling a gauge, not awaiting an event
		}
	}

	latencies := verify(30)
	stopFlood()
	wg.Wait()

	within := 0
	for _, d := range latencies {
		if d <= bound {
			within++
		}
	}
	t.Logf("verify under the flood: %d calls, %d within %v, p50 %v p95 %v max %v, statuses %v (quiet: p50 %v p95 %v); flood statuses %v; change pool at most %d of %d busy",
		len(latencies), within, bound, pct(latencies, .5).Round(time.Millisecond), pct(latencies, .95).Round(time.Millisecond), latencies[len(latencies)-1].Round(time.Millisecond),
		statuses, pct(baseline, .5).Round(time.Millisecond), pct(baseline, .95).Round(time.Millisecond), flood, maxInFlight.Load(), slots)
	// Whatever the machine: every login check answered, none turned away
	// because the change endpoints held the hashing capacity.
	if statuses[204] != len(latencies) {
		t.Errorf("verify statuses %v under the flood, want 204 for every call", statuses)
	}
	switch {
	case within*100 >= 95*len(latencies):
	case quiet:
		t.Errorf("%d of %d verify calls answered 204 within %v, want at least 95%%", within, len(latencies), bound)
	default:
		t.Logf("the 1 s bound is not judged: quiet login checks already take %v at p95 on this machine, busy with other work (RESETD_REQUIRE_ALL=1 judges it anyway)", pct(baseline, .95).Round(time.Millisecond))
	}
	if flood[422] == 0 || maxInFlight.Load() < slots {
		t.Errorf("the flood did not fill the change pool (statuses %v, at most %d busy): the measure says nothing", flood, maxInFlight.Load())
	}
}
