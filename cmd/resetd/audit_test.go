package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/resetd/resetd/internal/app"
	"github.com/resetd/resetd/internal/reset"
)

// resetd audit streams every record (SPEC §12): 2,500 records written by
// the CLI and the domain are each printed once by --jsonl and --json,
// oldest first; a client id with a newline, sent over HTTP to the token
// endpoint, cannot forge a line of the text output; resetd purge prints
// its counts.
func TestAuditCommandStreamsEveryRecord(t *testing.T) {
	t.Parallel()
	db := "sqlite:" + filepath.Join(t.TempDir(), "audit.db")
	ok := func(args ...string) string {
		t.Helper()
		code, out, errOut := runCLI(t, "", append(args, "--db", db, "--secret-key", testKey)...)
		if code != 0 {
			t.Fatalf("resetd %v: exit %d\n%s%s", args, code, out, errOut)
		}
		return out
	}
	ok("migrate")
	ok("institution", "put", "acme", "--name", "Acme Bank", "--default")
	ctx := context.Background()
	a, err := app.Open(ctx, app.Config{DB: db, Command: true, SecretKey: testKey})
	if err != nil {
		t.Fatal(err)
	}
	const n = 2500
	for i := range n - 1 {
		if _, err := a.Reset.PutUser(ctx, reset.Actor{ClientID: "cli"}, "acme", fmt.Sprintf("u%04d", i), reset.UserInput{Username: fmt.Sprintf("u%04d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	// A hostile client id over real HTTP: newline, tab, an escape
	// sequence, a line separator.
	srv := httptest.NewServer(a.Server)
	forged := "evil\n2030-01-01T00:00:00Z\tuser.delete\tacme\tceo\t\x1b[2J\u2028x"
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {forged}, "client_secret": {"nope"}}
	resp, err := http.PostForm(srv.URL+"/a/oidc-provider/api/v0/token", form)
	if err != nil || resp.StatusCode != 401 {
		t.Fatalf("token with a hostile client id: %v %v", resp, err)
	}
	resp.Body.Close()
	srv.Close()
	if err := a.Reset.AuthFailures().Flush(ctx, true); err != nil {
		t.Fatal(err)
	}
	a.Close()
	ok("user", "put", "--institution", "acme", "last", "--username", "last")

	lines := strings.Split(strings.TrimSuffix(ok("audit", "--jsonl"), "\n"), "\n")
	seen := map[string]int{}
	for _, l := range lines {
		var r reset.AuditRecord
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("--jsonl line %q: %v", l, err)
		}
		if r.Action == "user.put" {
			seen[r.UserID]++
		}
	}
	if len(seen) != n || seen["last"] != 1 {
		t.Fatalf("--jsonl printed %d distinct user.put records, want %d", len(seen), n)
	}
	for u, c := range seen {
		if c != 1 {
			t.Fatalf("%s printed %d times", u, c)
		}
	}
	var doc struct{ Records []reset.AuditRecord }
	if err := json.Unmarshal([]byte(ok("audit", "--json", "--institution", "acme")), &doc); err != nil {
		t.Fatal(err)
	}
	puts := 0
	for _, r := range doc.Records {
		if r.Action == "user.put" {
			puts++
		}
	}
	if puts != n {
		t.Errorf("--json --institution acme: %d user.put records, want %d", puts, n)
	}
	if doc.Records[len(doc.Records)-1].UserID != "last" {
		t.Errorf("--json is not oldest first: last record %+v", doc.Records[len(doc.Records)-1])
	}
	// The failure names no institution: only the operator's unfiltered
	// view has it.
	for _, r := range doc.Records {
		if strings.HasPrefix(r.Action, "auth.") {
			t.Errorf("acme's audit holds %+v", r)
		}
	}

	text := ok("audit")
	sc := bufio.NewScanner(strings.NewReader(text))
	rows := 0
	for sc.Scan() {
		rows++
		if strings.Count(sc.Text(), "\t") != 8 {
			t.Errorf("a text line without 9 columns: %q", sc.Text())
		}
		if strings.HasPrefix(sc.Text(), "2030-") || strings.Contains(sc.Text(), "\x1b") || strings.Contains(sc.Text(), "\u2028") {
			t.Errorf("forged or raw control text: %q", sc.Text())
		}
	}
	if rows != len(lines)+1 {
		t.Errorf("text output has %d lines for %d records (+ header)", rows, len(lines))
	}
	if !strings.Contains(text, `evil\n2030-01-01T00:00:00Z\tuser.delete\tacme\tceo\t\x1b[2J\u2028x`) {
		t.Errorf("the hostile client id is not shown escaped:\n%s", text[strings.LastIndex(text, "auth."):])
	}
	if out := ok("audit", "--until", "2000-01-01T00:00:00Z"); strings.Count(out, "\n") != 1 {
		t.Errorf("--until before everything: %q", out)
	}
	if code, _, _ := runCLI(t, "", "audit", "--json", "--jsonl", "--db", db, "--secret-key", testKey); code == 0 {
		t.Error("--json with --jsonl accepted")
	}

	var counts map[string]int
	if err := json.Unmarshal([]byte(ok("purge", "--dry-run", "--json")), &counts); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"tokens", "otps", "approvals", "rateCounters", "deliveries", "audit"} {
		if v, present := counts[k]; !present || v != 0 {
			t.Errorf("purge --dry-run --json: %s = %d (present %v)", k, v, present)
		}
	}
	if out := ok("purge", "--retention-audit", "30d"); !strings.HasPrefix(out, "deleted: ") {
		t.Errorf("purge: %q", out)
	}
	if code, _, _ := runCLI(t, "", "purge", "--retention-audit", "0d", "--db", db, "--secret-key", testKey); code == 0 {
		t.Error("a retention of 0d accepted")
	}
}
