package app_test

import (
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
	for _, name := range []string{"resetd_http_request_duration_seconds", "resetd_argon2_in_flight", "resetd_argon2_waiting", "resetd_queue_depth", "resetd_queue_oldest_age_seconds", "go_goroutines"} {
		if !strings.Contains(before, name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	h.resetLink(tok, "acme", "u")
	if r := h.verifyOTP("acme", map[string]string{"username": "u", "otp": "123456"}); r.Status != 400 {
		t.Fatal(r.Status)
	}
	h.putSettings(tok, map[string]int{"sendsPerUserHour": 1})
	if r := h.do("POST", P+"/institutions/acme/users/u/password/reset", tok, map[string]string{"method": "email"}); r.Status != 429 {
		t.Fatal(r.Status)
	}
	// The send is recorded as sent once the worker is done with it.
	var body string
	deadline := time.Now().Add(30 * time.Second)
	for {
		body = string(h.do("GET", "/metrics", "", nil).Body)
		if metric(body, `resetd_messages_total{channel="email",kind="reset_link",state="sent"}`) == 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond) // polling an HTTP resource: the worker's bookkeeping has no event to await
	}
	for prefix, want := range map[string]float64{
		`resetd_messages_total{channel="email",kind="reset_link",state="sent"}`: 1,
		`resetd_resets_issued_total{channel="email",flow="admin"}`:              1,
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
}
