package app_test

// A bulk forced reset survives SIGKILL: a real `resetd serve` process is
// killed right after it accepted the bulk and again in the middle of its
// sending; the process started again on the same file finishes the bulk
// from its cursors. No member is lost, none is given two links, and a
// message goes out twice only if the kill landed inside its delivery
// attempt (the queue's at-least-once window, counted from the file).

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/resetd/resetd/internal/app"
	"github.com/resetd/resetd/internal/auth"
	"github.com/resetd/resetd/internal/mailtest"
	"github.com/resetd/resetd/internal/reset"
)

func TestBulkResetSurvivesSIGKILL(t *testing.T) {
	if onPostgres.Load() {
		t.Skip("SQLite only: the process and its database file are killed and reopened")
	}
	t.Parallel()
	bin := buildServer(t)
	ctx := context.Background()
	const users = 400
	dir, path, db, clientID, clientSecret := crashDB(t, []string{auth.ScopeResetWrite}, func(ctx context.Context, a *app.App) {
		rate := 200
		if _, err := a.Reset.UpdateSettings(ctx, reset.Actor{}, "acme", reset.SettingsPatch{BulkRatePerSecond: &rate}); err != nil {
			t.Fatal(err)
		}
		for i := range users {
			putCrashUser(t, ctx, a, fmt.Sprintf("k%04d", i))
		}
	})
	mail := mailtest.NewServer(t)
	smtpURL := mail.URL("noreply@resetd.example")

	// Kill 1: the moment the bulk is accepted.
	p := startServer(t, bin, dir, db, smtpURL)
	tok := p.token(t, clientID, clientSecret)
	req, _ := http.NewRequest("POST", p.url+P+"/institutions/acme/password/reset-bulk", strings.NewReader(`{"method":"email","all":true}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	p.kill()
	var started struct{ BulkID string }
	json.NewDecoder(resp.Body).Decode(&started)
	resp.Body.Close()
	if resp.StatusCode != 202 || started.BulkID == "" {
		t.Fatalf("start: %d", resp.StatusCode)
	}
	inFlight := runningBulkSends(t, path)

	// Kill 2: in the middle of the sending.
	p = startServer(t, bin, dir, db, smtpURL)
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if _, err := mail.Wait(wctx, users/3); err != nil {
		t.Fatalf("the bulk did not send: %v\n%s", err, p.logs())
	}
	p.kill()
	inFlight += runningBulkSends(t, path)
	sentAtKill := mail.Count()
	if sentAtKill >= users {
		t.Fatalf("the bulk finished (%d messages) before the kill: make it slower", sentAtKill)
	}
	t.Logf("killed after %d messages, %d sends in flight", sentAtKill, inFlight)

	// The third process finishes it.
	p = startServer(t, bin, dir, db, smtpURL)
	tok = p.token(t, clientID, clientSecret)
	within := 60 * time.Second
	if inFlight > 0 {
		within = 3 * time.Minute // those wait for River's rescuer
	}
	deadline := time.Now().Add(within)
	var st bulkStatus
	for {
		req, _ := http.NewRequest("GET", p.url+P+"/institutions/acme/password/reset-bulk/"+started.BulkID, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err := json.Unmarshal(b, &st); err != nil {
			t.Fatalf("status: %d %s", resp.StatusCode, b)
		}
		if st.State == "done" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("bulk not done %s after the restart: %s\n%s", within, b, p.logs())
		}
		time.Sleep(50 * time.Millisecond) // polling an HTTP resource
	}
	p.terminate(t)
	if st.Total != users || st.Sent != users || st.Queued != 0 || st.Failed != 0 {
		t.Errorf("progress after two kills: %+v, want all %d sent", st, users)
	}

	// One link per member: one delivery row each, from the file.
	dbh, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer dbh.Close()
	var rows, distinct, members int
	if err := dbh.QueryRow(`SELECT count(*), count(DISTINCT user_id) FROM deliveries WHERE bulk_id = ?`, started.BulkID).Scan(&rows, &distinct); err != nil {
		t.Fatal(err)
	}
	if err := dbh.QueryRow(`SELECT count(*) FROM bulk_members WHERE bulk_id = ? AND outcome = 'sent'`, started.BulkID).Scan(&members); err != nil {
		t.Fatal(err)
	}
	if rows != users || distinct != users || members != users {
		t.Errorf("%d delivery rows for %d users (%d members sent), want one each for %d", rows, distinct, members, users)
	}
	// Every user got the message; twice only within the sends in flight.
	got := map[string]int{}
	for _, m := range mail.Messages() {
		got[m.To[0]]++
	}
	twice := 0
	for i := range users {
		switch n := got[fmt.Sprintf("k%04d@example.com", i)]; {
		case n == 0:
			t.Errorf("k%04d got nothing", i)
		case n > 1:
			twice++
		}
	}
	t.Logf("%d users got the message twice", twice)
	if twice > inFlight {
		t.Errorf("%d users got the message twice; only the %d sends cut off by a kill may repeat", twice, inFlight)
	}
}

// runningBulkSends counts the bulk's send jobs a kill left running with
// their message not recorded sent: their attempt may have reached the
// relay.
func runningBulkSends(t *testing.T, path string) int {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	// A job River had fetched whose delivery was recorded sent is not
	// sent again (its worker looks first); one still queued may be.
	if err := db.QueryRow(`SELECT count(*) FROM river_job j JOIN deliveries d ON d.id = json_extract(j.args, '$.delivery_id')
		WHERE j.kind = 'resetd_bulk_send' AND j.state = 'running' AND d.state = 'queued'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
