package app_test

// Crash safety on SQLite (SPEC §4 "a restart or a crash loses no
// message"): a real `resetd serve` process is killed with SIGKILL right
// after it answered 200 to a send while the SMTP server was down, then
// started again on the same database file with SMTP up; the message must
// arrive exactly once. The multi-replica PostgreSQL variant lives in
// cmd/resetd (replica_test.go).

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/resetd/resetd/internal/app"
	"github.com/resetd/resetd/internal/auth"
	"github.com/resetd/resetd/internal/mailtest"
	"github.com/resetd/resetd/internal/reset"
	_ "github.com/resetd/resetd/internal/store/sqlite" // the "sqlite" database/sql driver, to look at the file
)

// buildServer compiles cmd/resetd with the flags this test binary was
// built with (-race or not), so the build reuses the cached packages.
func buildServer(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "resetd")
	args := []string{"build", "-o", bin}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "-race" && s.Value == "true" {
				args = append(args, "-race")
			}
		}
	}
	out, err := exec.Command("go", append(args, "github.com/resetd/resetd/cmd/resetd")...).CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// process is one `resetd serve`.
type process struct {
	cmd  *exec.Cmd
	url  string
	done chan struct{}
	mu   sync.Mutex
	log  bytes.Buffer
}

func (p *process) logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// testKey is RESETD_SECRET_KEY of the tests that run the binary.
const testKey = "6d1f0c2b8a4e3f5d7c9b1a0e2d4c6b8a0f1e3d5c7b9a8e6d4c2b0a1f3e5d7c9b"

// startServer runs `resetd serve` on the database file, with only the
// flags given (no RESETD_* from the environment), and waits for the line
// that says where it listens.
func startServer(t *testing.T, bin, dir, db, smtpURL string) *process {
	t.Helper()
	cmd := exec.Command(bin, "serve", "--db", db, "--addr", "127.0.0.1:0", "--smtp", smtpURL, "--secret-key", testKey)
	cmd.Dir = dir
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "RESETD_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.log.WriteString(line + "\n")
			p.mu.Unlock()
			var l struct{ Msg, Addr string }
			if json.Unmarshal([]byte(line), &l) == nil && l.Msg == "resetd listening" {
				addr <- l.Addr
			}
		}
		_ = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("server log:\n%s", p.logs())
		}
	})
	select {
	case a := <-addr:
		p.url = "http://" + a
	case <-p.done:
		t.Fatalf("resetd exited before listening:\n%s", p.logs())
	case <-time.After(60 * time.Second):
		t.Fatalf("resetd never listened:\n%s", p.logs())
	}
	return p
}

func (p *process) kill() {
	select {
	case <-p.done:
	default:
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func (p *process) terminate(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Error("resetd ignored SIGTERM")
		p.kill()
	}
}

func (p *process) token(t *testing.T, id, secret string) string {
	t.Helper()
	req, _ := http.NewRequest("POST", p.url+"/a/oidc-provider/api/v0/token", strings.NewReader("grant_type=client_credentials"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.AccessToken == "" {
		t.Fatalf("token: %d %v", resp.StatusCode, err)
	}
	return out.AccessToken
}

// jobStates reads the send jobs' states from the database file, as the
// next process will find them.
func jobStates(t *testing.T, path string) []string {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT state FROM river_job WHERE kind = 'resetd_send' ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

// crashDB writes, with the code the CLI uses, a SQLite database file for
// a test that kills `resetd serve`: the institution acme, a client of it
// with scopes, and whatever fill adds (users, settings). It returns the
// directory, the file, its --db value and the client's credentials.
func crashDB(t *testing.T, scopes []string, fill func(ctx context.Context, a *app.App)) (dir, path, db, clientID, clientSecret string) {
	t.Helper()
	dir = t.TempDir()
	path = filepath.Join(dir, "resetd.db")
	db = "sqlite:" + path
	ctx := context.Background()
	a, err := app.Open(ctx, app.Config{DB: db, SecretKey: testKey, Command: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Reset.PutInstitution(ctx, "acme", "Acme Bank", nil, nil, true); err != nil {
		t.Fatal(err)
	}
	clientID, clientSecret, err = a.Auth.CreateClient(ctx, "acme", "crash", scopes)
	if err != nil {
		t.Fatal(err)
	}
	fill(ctx, a)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	return dir, path, db, clientID, clientSecret
}

// putCrashUser adds a user with an email address to acme.
func putCrashUser(t *testing.T, ctx context.Context, a *app.App, id string) {
	t.Helper()
	if _, err := a.Reset.PutUser(ctx, reset.Actor{}, "acme", id, reset.UserInput{Username: id, Email: id + "@example.com"}); err != nil {
		t.Fatal(err)
	}
}

func TestCrashAfterAcceptingASendLosesNothing(t *testing.T) {
	if onPostgres.Load() {
		t.Skip("SQLite only; on PostgreSQL, TestReplicas (cmd/resetd) kills a replica")
	}
	t.Parallel()
	bin := buildServer(t)
	ctx := context.Background()
	// A user per try: a kill that lands inside a delivery attempt (rare)
	// leaves a job that is rescued only once no live attempt can still be
	// running (TestCrashMidSendDeliversWithin30s), so that try is set aside
	// and another made.
	const tries = 3
	dir, path, db, clientID, clientSecret := crashDB(t, []string{auth.ScopeResetWrite, auth.ScopeUsersRead}, func(ctx context.Context, a *app.App) {
		for i := range tries {
			putCrashUser(t, ctx, a, userID(i))
		}
	})

	mail := mailtest.NewServer(t)
	mail.Stop()
	smtpURL := mail.URL("noreply@resetd.example")
	var user string
	job := -1
	for i := range tries {
		p := startServer(t, bin, dir, db, smtpURL)
		tok := p.token(t, clientID, clientSecret)
		req, _ := http.NewRequest("POST", p.url+P+"/institutions/acme/users/"+userID(i)+"/password/reset", strings.NewReader(`{"method":"email"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		// SIGKILL the moment the answer is in: no shutdown, no flush.
		p.kill()
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("send: %d", resp.StatusCode)
		}
		states := jobStates(t, path)
		if len(states) != i+1 {
			t.Fatalf("after a 200 and a kill the queue holds %d send jobs (%v), want %d", len(states), states, i+1)
		}
		t.Logf("try %d: killed with the job %s", i, states[i])
		if states[i] != "running" {
			user, job = userID(i), i
			break
		}
	}
	wait := 60 * time.Second
	if user == "" {
		// Every kill landed inside a delivery attempt (a loaded machine):
		// then the jobs wait for the rescuer, and the first must still go
		// out exactly once.
		t.Logf("every kill landed inside a delivery attempt; waiting for the rescuer")
		user, job, wait = userID(0), 0, 2*time.Minute
	}
	if n := mail.Count(); n != 0 {
		t.Fatalf("%d emails while SMTP was down", n)
	}

	// SMTP back, a new process on the same file: the message goes out,
	// once, and its link works.
	mail.Start()
	p := startServer(t, bin, dir, db, smtpURL)
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	var mine mailtest.Mail
	for n := 1; mine.Text == ""; n++ {
		msgs, err := mail.Wait(wctx, n)
		if err != nil {
			t.Fatalf("the message accepted before the crash never arrived: %v\n%s", err, p.logs())
		}
		if m := msgs[n-1]; m.To[0] == user+"@example.com" {
			mine = m
		}
	}
	link := linkToken.FindStringSubmatch(mine.Text)
	if link == nil {
		t.Fatalf("email without a link: %s", mine.Text)
	}
	tok := p.token(t, clientID, clientSecret)
	for {
		req, _ := http.NewRequest("GET", p.url+P+"/institutions/acme/users/"+user+"/password/deliveries", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(b), `"state":"sent"`) {
			break
		}
		select {
		case <-wctx.Done():
			t.Fatalf("delivery never marked sent: %s", b)
		case <-time.After(20 * time.Millisecond): // polling an HTTP resource; there is no event to await
		}
	}
	change, _ := http.NewRequest("POST", p.url+P+"/password/change", strings.NewReader(`{"token":"`+link[1]+`","newPassword":"`+goodPassword+`"}`))
	change.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(change)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 204 {
		t.Errorf("the link delivered after the crash: change answered %d", resp.StatusCode)
	}
	p.terminate(t)
	// The change queued its own notice; besides it, the link went out once.
	links := 0
	for _, m := range mail.Messages() {
		if m.To[0] == user+"@example.com" && linkToken.MatchString(m.Text) {
			links++
		}
	}
	if links != 1 {
		t.Fatalf("the reset link arrived %d times, want exactly once", links)
	}
	if s := jobStates(t, path)[job]; s != "completed" {
		t.Errorf("the link's send job is %s after it was delivered and the server stopped", s)
	}
}

func userID(i int) string { return "crash" + string(rune('a'+i)) }

// TestCrashMidSendDeliversWithin30s kills `resetd serve` while its relay
// holds a message at the end of DATA, unanswered: the job is left
// "running", the relay never accepted the message. A new process on the
// same file must deliver it within 30 seconds of the kill, once, and
// record the cut-off attempt.
func TestCrashMidSendDeliversWithin30s(t *testing.T) {
	if onPostgres.Load() {
		t.Skip("SQLite only; on PostgreSQL, TestReplicas (cmd/resetd) kills a replica mid-send")
	}
	t.Parallel()
	bin := buildServer(t)
	ctx := context.Background()
	const user = "midsend"
	dir, path, db, clientID, clientSecret := crashDB(t, []string{auth.ScopeResetWrite, auth.ScopeUsersRead}, func(ctx context.Context, a *app.App) {
		putCrashUser(t, ctx, a, user)
	})

	mail := mailtest.NewServer(t)
	smtpURL := mail.URL("noreply@resetd.example")
	held := mail.HoldNext(1)
	p := startServer(t, bin, dir, db, smtpURL)
	tok := p.token(t, clientID, clientSecret)
	req, _ := http.NewRequest("POST", p.url+P+"/institutions/acme/users/"+user+"/password/reset", strings.NewReader(`{"method":"email"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("send: %d", resp.StatusCode)
	}
	select {
	case <-held:
	case <-time.After(30 * time.Second):
		t.Fatalf("the message never reached the relay:\n%s", p.logs())
	}
	// The relay has the whole message and has not answered: kill now.
	p.kill()
	killed := time.Now()
	mail.Release() // the dead sender's session ends with a 451 nobody reads
	if s := jobStates(t, path); len(s) != 1 || s[0] != "running" {
		t.Fatalf("after a kill mid-send the send job is %v, want running", s)
	}

	p = startServer(t, bin, dir, db, smtpURL)
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second-time.Since(killed))
	defer cancel()
	msgs, err := mail.Wait(wctx, 1)
	if err != nil {
		t.Fatalf("the message cut off by the crash did not go out within 30 s of it: %v (job %v)\n%s", err, jobStates(t, path), p.logs())
	}
	t.Logf("the message cut off by a kill mid-send went out %v after the kill", time.Since(killed).Round(100*time.Millisecond))
	if msgs[0].To[0] != user+"@example.com" || !linkToken.MatchString(msgs[0].Text) {
		t.Fatalf("unexpected message %v", msgs[0])
	}

	// Recorded as sent, on its second attempt (the cut-off one counts).
	tok = p.token(t, clientID, clientSecret)
	for {
		req, _ := http.NewRequest("GET", p.url+P+"/institutions/acme/users/"+user+"/password/deliveries", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var ds struct {
			Deliveries []map[string]any `json:"deliveries"`
		}
		err = json.NewDecoder(resp.Body).Decode(&ds)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if len(ds.Deliveries) == 1 && ds.Deliveries[0]["state"] == "sent" {
			if ds.Deliveries[0]["attempts"] != float64(2) {
				t.Errorf("delivery after the rescue: %v, want 2 attempts", ds.Deliveries[0])
			}
			break
		}
		select {
		case <-wctx.Done():
			t.Fatalf("delivery never marked sent: %v", ds)
		case <-time.After(20 * time.Millisecond): // polling an HTTP resource; there is no event to await
		}
	}
	p.terminate(t)
	if n := mail.Count(); n != 1 {
		t.Fatalf("%d messages after the rescue, want exactly one", n)
	}
	if s := jobStates(t, path); s[0] != "completed" {
		t.Errorf("the send job is %s after it was delivered", s[0])
	}
}

// TestCrashMidBatchLosesNothing: sends that committed together are one
// batch job. A kill while the relay holds every message of the batch
// unanswered leaves it running; the next process rescues it within 30 s
// of the kill and every user gets exactly one message.
func TestCrashMidBatchLosesNothing(t *testing.T) {
	if onPostgres.Load() {
		t.Skip("SQLite only: batches are made by SQLite's group commit")
	}
	t.Parallel()
	bin := buildServer(t)
	ctx := context.Background()
	const users, round = 48, 12
	var sent []string
	dir, _, db, _, _ := crashDB(t, []string{auth.ScopeResetWrite}, func(ctx context.Context, a *app.App) {
		for i := range users {
			putCrashUser(t, ctx, a, fmt.Sprintf("batch%02d", i))
		}
		// Concurrent sends share a commit, and their jobs a batch: send in
		// rounds until one has.
		for r := 0; r*round < users && batchJobs(t, a) == 0; r++ {
			var wg sync.WaitGroup
			for i := r * round; i < (r+1)*round; i++ {
				id := fmt.Sprintf("batch%02d", i)
				sent = append(sent, id)
				wg.Go(func() {
					if _, err := a.Reset.SendResetLink(ctx, reset.Actor{ClientID: "crash"}, "acme", id, "email"); err != nil {
						t.Error(err)
					}
				})
			}
			wg.Wait()
		}
		if batchJobs(t, a) == 0 {
			t.Fatalf("%d concurrent sends made no batch", len(sent))
		}
	})

	mail := mailtest.NewServer(t)
	smtpURL := mail.URL("noreply@resetd.example")
	held := mail.HoldNext(len(sent))
	p := startServer(t, bin, dir, db, smtpURL)
	// Every send the batch's attempt started is held, unanswered.
	select {
	case <-held:
	case <-time.After(30 * time.Second):
		t.Fatalf("no message reached the relay:\n%s", p.logs())
	}
	p.kill()
	killed := time.Now()
	mail.Release()
	if n := mail.Count(); n != 0 {
		t.Fatalf("the relay accepted %d messages before the kill; it was to hold them all", n)
	}

	p = startServer(t, bin, dir, db, smtpURL)
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second-time.Since(killed))
	defer cancel()
	msgs, err := mail.Wait(wctx, len(sent))
	if err != nil {
		t.Fatalf("the messages of the batch cut off by the kill did not all go out within 30 s of it: %v (%d of %d)\n%s", err, mail.Count(), len(sent), p.logs())
	}
	t.Logf("%d messages of a batch cut off by a kill went out within %v of it", len(msgs), time.Since(killed).Round(100*time.Millisecond))
	p.terminate(t)
	got := map[string]int{}
	for _, m := range mail.Messages() {
		got[m.To[0]]++
	}
	for _, id := range sent {
		if n := got[id+"@example.com"]; n != 1 {
			t.Errorf("%s got %d messages, want exactly one", id, n)
		}
	}
	if len(got) != len(sent) {
		t.Errorf("%d recipients for %d sends", len(got), len(sent))
	}
}

// batchJobs counts the batch send jobs in a's database.
func batchJobs(t *testing.T, a *app.App) int {
	t.Helper()
	recs, err := a.Store.KeyedRecords(context.Background(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, j := range recs.Jobs {
		if j.Kind == "resetd_send_batch" {
			n++
		}
	}
	return n
}
