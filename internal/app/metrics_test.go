package app_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// metric returns the value of the sample whose line starts with prefix
// (name and labels), or -1 when there is none.
func metric(body, prefix string) float64 {
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, prefix+" ") {
			v, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimPrefix(line, prefix)), 64)
			if err == nil {
				return v
			}
		}
	}
	return -1
}

func TestMetricsMoveWithTheFlows(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tok := h.admin()
	h.putUser(tok, "acme", "u", map[string]any{"username": "u", "email": "u@example.com"})
	before := string(h.do("GET", "/metrics", "", nil).Body)
	// SQLite has a write and a read pool; PostgreSQL one pgx pool.
	writePool, readPool := "write", "read"
	if onPostgres.Load() {
		writePool, readPool = "pgx", "pgx"
	}
	for _, name := range []string{"resetd_http_request_duration_seconds", "resetd_argon2_in_flight", "resetd_argon2_waiting", "resetd_queue_depth", "resetd_queue_oldest_age_seconds", "go_goroutines",
		`resetd_build_info{goversion="go`, `resetd_db_pool_connections{pool="` + writePool + `",state="in_use"}`, `resetd_db_pool_max_connections{pool="` + readPool + `"}`, "resetd_db_pool_wait_count_total", "resetd_disputes_total 0"} {
		if !strings.Contains(before, name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	link := h.resetLink(tok, "acme", "u")
	if r := h.do("POST", P+"/password/change", "", map[string]string{"token": link, "newPassword": "correct horse battery staple"}); r.Status != 204 {
		t.Fatalf("change: %d %s", r.Status, r.Body)
	}
	if r := h.verifyOTP("acme", map[string]string{"username": "u", "otp": "123456"}); r.Status != 400 {
		t.Fatal(r.Status)
	}
	h.putSettings(tok, map[string]int{"sendsPerUserHour": 1})
	if r := h.do("POST", P+"/institutions/acme/users/u/password/reset", tok, map[string]string{"method": "email"}); r.Status != 429 {
		t.Fatal(r.Status)
	}
	// The sends (the link, the change notice) are recorded as sent once
	// the worker is done with them.
	var body string
	deadline := time.Now().Add(30 * time.Second)
	for {
		body = string(h.do("GET", "/metrics", "", nil).Body)
		if (metric(body, `resetd_messages_total{channel="email",kind="reset_link",state="sent"}`) == 1 && metric(body, "resetd_queue_depth") == 0) || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond) // polling an HTTP resource: the worker's bookkeeping has no event to await
	}
	for prefix, want := range map[string]float64{
		`resetd_messages_total{channel="email",kind="reset_link",state="sent"}`: 1,
		`resetd_resets_issued_total{channel="email",flow="admin"}`:              1,
		`resetd_password_changes_total{via="link"}`:                             1,
		`resetd_otp_verifications_total{outcome="invalid"}`:                     1,
		`resetd_rate_limited_total{limit="sendsPerUserHour"}`:                   1,
		`resetd_http_request_duration_seconds_count{method="POST",route="POST /a/password-reset/api/v0/institutions/{institutionId}/users/{userId}/password/reset",status="429"}`: 1,
	} {
		if got := metric(body, prefix); got != want {
			t.Errorf("%s = %v, want %v", prefix, got, want)
		}
	}
	if q := metric(body, "resetd_queue_depth"); q != 0 {
		t.Errorf("queue depth after delivery: %v", q)
	}
	if regexp.MustCompile(`token=|otp":|password":`).MatchString(body) {
		t.Error("a secret-looking value in /metrics")
	}
	checkDeployQueries(t, body)
}

// deployMetric finds metric names in PromQL.
var deployMetric = regexp.MustCompile(`\b((?:resetd|go|process)_[a-z0-9_]+)`)

// checkDeployQueries holds the Grafana dashboard and the Prometheus
// alert rules in deploy/ to the metrics /metrics really exposes (body):
// a renamed metric must not leave a dashboard panel silently empty.
func checkDeployQueries(t *testing.T, body string) {
	t.Helper()
	exposed := map[string]bool{}
	for _, line := range strings.Split(body, "\n") {
		if name, ok := strings.CutPrefix(line, "# TYPE "); ok {
			name, kind, _ := strings.Cut(name, " ")
			exposed[name] = true
			if kind == "histogram" {
				exposed[name+"_bucket"], exposed[name+"_count"], exposed[name+"_sum"] = true, true, true
			}
		}
	}
	var queries []string
	raw, err := os.ReadFile(filepath.Join("..", "..", "deploy", "grafana", "resetd.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("deploy/grafana/resetd.json: %v", err)
	}
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("dashboard panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			queries = append(queries, tg.Expr)
		}
	}
	rules, err := os.ReadFile(filepath.Join("..", "..", "deploy", "prometheus", "alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(rules), "\n") {
		if strings.Contains(line, "expr:") || strings.HasPrefix(strings.TrimSpace(line), "histogram_quantile") {
			queries = append(queries, line)
		}
	}
	names := 0
	for _, q := range queries {
		for _, m := range deployMetric.FindAllStringSubmatch(q, -1) {
			names++
			if !exposed[m[1]] {
				t.Errorf("deploy/ queries %s, which /metrics does not expose: %s", m[1], q)
			}
		}
	}
	if names < 15 {
		t.Errorf("only %d metric names found in deploy/: the check reads nothing", names)
	}
}
