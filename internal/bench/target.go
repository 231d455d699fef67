package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/resetd/resetd/internal/app"
	"github.com/resetd/resetd/internal/auth"
	"github.com/resetd/resetd/internal/reset"
	"github.com/resetd/resetd/internal/server"
	"github.com/resetd/resetd/internal/store"
)

// benchInstitution is the institution an in-process run creates.
const benchInstitution = "bench"

// seedBatch is how many users one seeding transaction writes: big enough
// that a million users take a few hundred commits, small enough that the
// write lock is never held for long.
const seedBatch = 5000

// target is the server under load and how to reach it.
type target struct {
	cfg  Config
	sink *sink
	http *http.Client
	app  *app.App // nil in URL mode

	base, inst             string
	clientID, clientSecret string
	bearer                 string
	otherBearer            string // the bulk flow's client of another institution
	rssPID                 int    // 0: this process
	seeded                 *SeedResult
	quiet                  atomic.Bool
}

func userID(i int) string   { return fmt.Sprintf("u%07d", i) }
func username(i int) string { return fmt.Sprintf("user%07d", i) }
func email(i int) string    { return fmt.Sprintf("u%07d@bench.example", i) }

// startInProcess opens resetd on db and serves it on a loopback port, with
// the bench's SMTP server as its relay, exactly as `resetd serve` wires it.
func (t *target) startInProcess(ctx context.Context, db string) (stop func(), err error) {
	return t.startInProcessOn(ctx, db, "127.0.0.1:0", true)
}

// startInProcessOn opens resetd on db for addr and sets up the bench
// institution and its client; serve says whether it also serves (else
// the App only prepares the database for a child process).
func (t *target) startInProcessOn(ctx context.Context, db, addr string, serve bool) (stop func(), err error) {
	var ln net.Listener
	if serve {
		if ln, err = net.Listen("tcp", addr); err != nil {
			return nil, err
		}
		addr = ln.Addr().String()
	}
	a, err := app.Open(ctx, app.Config{
		Addr: addr, DB: db, SMTP: t.sink.url(), Logger: serverLogger(&t.quiet), QueueWorkers: t.cfg.QueueWorkers,
		// The benchmark's database is a trial's: its key is kept in it.
		SecretKey: t.cfg.SecretKey, Dev: t.cfg.SecretKey == "", Server: true,
	})
	if err != nil {
		if ln != nil {
			ln.Close()
		}
		return nil, err
	}
	stop = func() { _ = a.Close() }
	if serve {
		sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		done := make(chan error, 1)
		go func() { done <- a.Serve(sctx, ln) }()
		stop = func() {
			t.quiet.Store(true)
			cancel()
			<-done
			_ = a.Close()
		}
	}
	t.app, t.base, t.inst = a, a.PublicURL(), benchInstitution

	// The institution, its limits off (SPEC §4: 0 turns a limit off, for
	// benchmarks), and a client holding every scope.
	if _, err := a.Reset.PutInstitution(ctx, benchInstitution, "Bench Bank", []string{t.base + "/reset"}, nil, true); err != nil {
		stop()
		return nil, err
	}
	zero := 0
	if _, err := a.Reset.UpdateSettings(ctx, reset.Actor{ClientID: "bench"}, benchInstitution, reset.SettingsPatch{
		SendsPerUserHour: &zero, PublicPerIPMinute: &zero, PublicPerUsernameHour: &zero,
	}); err != nil {
		stop()
		return nil, err
	}
	if t.clientID, t.clientSecret, err = a.Auth.CreateClient(ctx, benchInstitution, "resetd bench", auth.AllScopes); err != nil {
		stop()
		return nil, err
	}
	return stop, nil
}

// seed puts cfg.Users users in place (unless the last one is there
// already, from an earlier run on the same --db) and gets an access token.
func (t *target) seed(ctx context.Context) (SeedResult, error) {
	if t.seeded != nil { // by startChild, before the server started
		return *t.seeded, t.getBearer(ctx)
	}
	if t.app == nil {
		if err := t.getBearer(ctx); err != nil {
			return SeedResult{}, err
		}
		if err := t.putLimitsOff(ctx); err != nil {
			return SeedResult{}, err
		}
	}
	start := time.Now()
	var res SeedResult
	var err error
	if t.app != nil {
		res, err = t.seedStore(ctx)
	} else {
		res, err = t.seedHTTP(ctx)
	}
	if err != nil {
		return res, err
	}
	res.Seconds = time.Since(start).Seconds()
	if t.app != nil {
		err = t.getBearer(ctx)
	}
	return res, err
}

// seedStore writes users through reset.Service.ImportUsers, the path
// `resetd user import` takes, seedBatch rows per transaction (the CSV
// parsing is the only part skipped).
func (t *target) seedStore(ctx context.Context) (SeedResult, error) {
	res := SeedResult{Method: fmt.Sprintf("reset.ImportUsers (the path of `resetd user import`), %d rows per transaction", seedBatch)}
	last := t.cfg.Users - 1
	err := t.app.Store.View(ctx, func(tx store.ReadTx) error {
		_, err := tx.User(ctx, t.inst, userID(last))
		return err
	})
	if err == nil {
		res.Skipped = true
		return res, t.checkNoHistory(ctx)
	}
	if !errors.Is(err, store.ErrNotFound) {
		return res, err
	}
	rows := make([]reset.ImportRow, 0, seedBatch)
	for lo := 0; lo < t.cfg.Users; lo += seedBatch {
		hi := min(lo+seedBatch, t.cfg.Users)
		rows = rows[:0]
		for i := lo; i < hi; i++ {
			rows = append(rows, reset.ImportRow{Line: i + 2, UserID: userID(i), Username: username(i), Email: email(i)})
		}
		r, err := t.app.Reset.ImportUsers(ctx, reset.Actor{ClientID: "bench"}, t.inst, rows, reset.ImportOptions{})
		if err == nil && len(r.Rejected) > 0 {
			err = fmt.Errorf("line %d: %s", r.Rejected[0].Line, r.Rejected[0].Reason)
		}
		if err == nil && r.Imported != hi-lo {
			err = fmt.Errorf("imported %d of %d", r.Imported, hi-lo)
		}
		if err != nil {
			return res, fmt.Errorf("bench: seed users %d–%d: %w", lo, hi-1, err)
		}
		if hi%100000 == 0 {
			t.cfg.progress("  %d users", hi)
		}
	}
	return res, nil
}

// checkNoHistory refuses users of an earlier run on the same --db that
// changed their passwords there, when this run has change flows: the
// change and overload tokens are won for users of [Users/2, Users)
// (newPlan), the change figure is for users without a password history,
// and a history would have each change verify argon2id hashes besides
// computing one (an earlier run's figures on a reused PostgreSQL database
// were a third of a fresh one's). It reads every user of that range, one
// point read each: about a second for 10k users.
func (t *target) checkNoHistory(ctx context.Context) error {
	if !slices.Contains(t.cfg.Flows, FlowChange) && !slices.Contains(t.cfg.Flows, FlowOverload) {
		return nil
	}
	return t.app.Store.View(ctx, func(tx store.ReadTx) error {
		for i := t.cfg.Users / 2; i < t.cfg.Users; i++ {
			h, err := tx.PasswordHistory(ctx, t.inst, userID(i), 1)
			if err != nil {
				return err
			}
			if len(h) > 0 {
				return fmt.Errorf("bench: user %s of an earlier run on this database has changed its password, and the change flows measure users without a password history: give --db a fresh database (PostgreSQL: dropdb and createdb; SQLite: a new file)", userID(i))
			}
		}
		return nil
	})
}

// seedHTTP puts users through the API (URL mode).
func (t *target) seedHTTP(ctx context.Context) (SeedResult, error) {
	res := SeedResult{Method: "PUT …/users/{id} over HTTP"}
	var found struct {
		Users []struct{ ID string } `json:"users"`
	}
	if st, b, _, err := t.do(ctx, http.MethodGet, server.P+"/institutions/"+t.inst+"/users?username="+username(t.cfg.Users-1), nil, t.auth); err == nil && st == http.StatusOK {
		if json.Unmarshal(b, &found) == nil && len(found.Users) > 0 {
			res.Skipped = true
			return res, nil
		}
	}
	var next atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	for range t.cfg.Concurrency {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= t.cfg.Users || ctx.Err() != nil {
					return
				}
				body, _ := json.Marshal(map[string]string{"username": username(i), "email": email(i)})
				st, b, _, err := t.do(ctx, http.MethodPut, server.P+"/institutions/"+t.inst+"/users/"+userID(i), body, t.auth)
				if err == nil && st != http.StatusOK && st != http.StatusCreated {
					err = fmt.Errorf("status %d: %s", st, b)
				}
				if err != nil {
					once.Do(func() { firstErr = fmt.Errorf("bench: seed user %d: %w", i, err) })
					return
				}
			}
		})
	}
	wg.Wait()
	return res, firstErr
}

func (t *target) putLimitsOff(ctx context.Context) error {
	body := []byte(`{"sendsPerUserHour":0,"publicPerIPMinute":0,"publicPerUsernameHour":0}`)
	st, b, _, err := t.do(ctx, http.MethodPut, server.P+"/institutions/"+t.inst+"/settings", body, t.auth)
	if err != nil {
		return err
	}
	if st != http.StatusNoContent {
		return fmt.Errorf("bench: turning limits off: status %d: %s", st, b)
	}
	return nil
}

func (t *target) getBearer(ctx context.Context) error {
	st, b, _, err := t.do(ctx, http.MethodPost, server.TokenPath, []byte("grant_type=client_credentials"), t.basic)
	if err != nil {
		return err
	}
	if st != http.StatusOK {
		return fmt.Errorf("bench: token: status %d: %s", st, b)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(b, &tok); err != nil {
		return err
	}
	t.bearer = tok.AccessToken
	return nil
}

func (t *target) basic(r *http.Request) {
	r.SetBasicAuth(url.QueryEscape(t.clientID), url.QueryEscape(t.clientSecret))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
}

func (t *target) auth(r *http.Request) {
	r.Header.Set("Authorization", "Bearer "+t.bearer)
	if r.Body != nil && r.Body != http.NoBody {
		r.Header.Set("Content-Type", "application/json")
	}
}

func public(r *http.Request) {
	if r.Body != nil && r.Body != http.NoBody {
		r.Header.Set("Content-Type", "application/json")
	}
}

// do sends one request and reads the whole answer (so the connection is
// reused).
func (t *target) do(ctx context.Context, method, path string, body []byte, prepare func(*http.Request)) (int, []byte, http.Header, error) {
	var rd io.Reader = http.NoBody
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, t.base+path, rd)
	if err != nil {
		return 0, nil, nil, err
	}
	if prepare != nil {
		prepare(req)
	}
	resp, err := t.http.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, resp.Header, err
}

// rss resets and reads the peak resident set of the server's process.
func (t *target) resetRSS() {
	_ = os.WriteFile(t.procPath("clear_refs"), []byte("5"), 0)
}

func (t *target) peakRSSMiB() float64 {
	b, err := os.ReadFile(t.procPath("status"))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			return kb / 1024
		}
	}
	return 0
}

func (t *target) rssScope() string {
	switch {
	case t.rssPID != 0:
		return "server"
	case t.app != nil:
		return "server+loadgen"
	default:
		return "loadgen only"
	}
}

func (t *target) procPath(name string) string {
	if t.rssPID != 0 {
		return fmt.Sprintf("/proc/%d/%s", t.rssPID, name)
	}
	return "/proc/self/" + name
}
