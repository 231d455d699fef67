package main

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/resetd/resetd/internal/app"
	"github.com/resetd/resetd/internal/mailtest"
	"github.com/resetd/resetd/internal/reset"
)

// TestResetBulkCommand starts bulks from the CLI on the database a real
// server works, with a real SMTP server: the command follows the bulk to
// its end, refuses bad input before touching anything, and reads and
// cancels bulks.
func TestResetBulkCommand(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db := "sqlite:" + filepath.Join(dir, "bulk.db")
	ctx := context.Background()
	mail := mailtest.NewServer(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.Open(ctx, app.Config{DB: db, SecretKey: cliKey, SMTP: mail.URL("noreply@bank.example"), Server: true, Addr: ln.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Reset.PutInstitution(ctx, "acme", "Acme Bank", nil, nil, true); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"u1", "u2", "u3"} {
		if _, err := a.Reset.PutUser(ctx, reset.Actor{}, "acme", u, reset.UserInput{Username: u, Email: u + "@example.com"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.Reset.PutUser(ctx, reset.Actor{}, "acme", "nomail", reset.UserInput{Username: "nomail"}); err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- a.Serve(sctx, ln) }()
	t.Cleanup(func() {
		stop()
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
		a.Close()
	})

	file := filepath.Join(dir, "users.csv")
	if err := os.WriteFile(file, []byte("userId,username\nu1,jane\n\nu2,sam\nnomail,x\nghost,y\nu1,again\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI(t, "", "reset", "bulk", "--institution", "acme", "--users", file, "--method", "email", "--rate", "100/s", "--db", db)
	if code != 0 || !strings.Contains(out, " done: 4 members, 2 sent, 0 failed, 0 queued, 0 cancelled, skipped 2 (no contact 1,") ||
		!strings.Contains(errOut, "bulk: ") {
		t.Fatalf("reset bulk: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	msgs, err := mail.Wait(wctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, m := range msgs {
		got[m.To[0]] = true
	}
	if !got["u1@example.com"] || !got["u2@example.com"] {
		t.Errorf("mail went to %v", got)
	}

	// Refused before anything is opened or started.
	for _, c := range []struct {
		name string
		args []string
		code int
		says string
	}{
		{"neither", []string{"--method", "email"}, 2, "missing flags"},
		{"both", []string{"--all", "--users", file, "--method", "email"}, 2, "can't be used together"},
		{"bad method", []string{"--all", "--method", "fax"}, 2, "must be one of"},
		{"rate zero", []string{"--all", "--method", "email", "--rate", "0"}, 1, "--rate must be"},
		{"rate words", []string{"--all", "--method", "email", "--rate", "fast"}, 1, "--rate must be"},
		{"missing file", []string{"--users", filepath.Join(dir, "nope"), "--method", "email"}, 1, "no such file"},
		{"unknown institution", []string{"--institution", "nope", "--all", "--method", "email"}, 1, "no such institution"},
	} {
		t.Run(c.name, func(t *testing.T) {
			args := append([]string{"reset", "bulk"}, c.args...)
			if !strings.Contains(strings.Join(c.args, " "), "--institution") {
				args = append(args, "--institution", "acme")
			}
			code, out, errOut := runCLI(t, "", append(args, "--db", db)...)
			if code != c.code || !strings.Contains(out+errOut, c.says) {
				t.Fatalf("exit %d, want %d saying %q\n%s%s", code, c.code, c.says, out, errOut)
			}
		})
	}
	bad := filepath.Join(dir, "bad.txt")
	os.WriteFile(bad, []byte("u1\n../etc\n"), 0o600)
	if code, _, errOut := runCLI(t, "", "reset", "bulk", "--institution", "acme", "--users", bad, "--method", "email", "--db", db); code != 1 || !strings.Contains(errOut, "line 2: not a valid user id") {
		t.Errorf("a bad line: exit %d %s", code, errOut)
	}

	// Started detached at 1/s, read, cancelled.
	code, out, errOut = runCLI(t, "", "reset", "bulk", "--institution", "acme", "--all", "--method", "email", "--rate", "1", "--detach", "--db", db)
	if code != 0 {
		t.Fatalf("detached: exit %d %s %s", code, out, errOut)
	}
	id := strings.TrimSpace(out)
	code, out, _ = runCLI(t, "", "reset", "bulk", "status", "--institution", "acme", id, "--json", "--db", db)
	var st reset.BulkStatus
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || st.ID != id || st.RatePerSecond != 1 {
		t.Fatalf("status: exit %d %s", code, out)
	}
	if code, _, errOut := runCLI(t, "", "reset", "bulk", "--institution", "acme", "--all", "--method", "email", "--db", db); code != 1 || !strings.Contains(errOut, "bulk "+id+" of this institution is still running") {
		t.Errorf("a second bulk while one runs: exit %d %s", code, errOut)
	}
	code, out, _ = runCLI(t, "", "reset", "bulk", "cancel", "--institution", "acme", id, "--db", db)
	if code != 0 || !strings.Contains(out, id+" cancelled") {
		t.Fatalf("cancel: exit %d %s", code, out)
	}
	if code, _, errOut := runCLI(t, "", "reset", "bulk", "status", "--institution", "other", id, "--db", db); code != 1 || !strings.Contains(errOut, "no such") {
		t.Errorf("another institution's bulk: exit %d %s", code, errOut)
	}
}
