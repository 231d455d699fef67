package metrics

import (
	"context"
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fakeQueue counts the store reads a scrape costs.
type fakeQueue struct {
	calls  atomic.Int32
	n      int
	oldest time.Time
	err    error
}

func (q *fakeQueue) QueueStats(ctx context.Context) (int, time.Time, error) {
	q.calls.Add(1)
	return q.n, q.oldest, q.err
}

type fakeHasher struct{}

func (fakeHasher) Waiting() int  { return 3 }
func (fakeHasher) InFlight() int { return 2 }

func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	w := httptest.NewRecorder()
	m.Handler().ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	b, _ := io.ReadAll(w.Body)
	return string(b)
}

func TestQueueGaugesCostOneReadPerScrape(t *testing.T) {
	t.Parallel()
	now := time.Unix(2_000_000_000, 0)
	for _, c := range []struct {
		name      string
		q         *fakeQueue
		depth     string
		oldestAge string
	}{
		{"queued", &fakeQueue{n: 4, oldest: now.Add(-90 * time.Second)}, "resetd_queue_depth 4", "resetd_queue_oldest_age_seconds 90"},
		{"empty", &fakeQueue{}, "resetd_queue_depth 0", "resetd_queue_oldest_age_seconds 0"},
		{"store unreachable", &fakeQueue{n: 7, oldest: now, err: errors.New("down")}, "resetd_queue_depth -1", "resetd_queue_oldest_age_seconds 0"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			m := New()
			m.WatchQueue(c.q, func() time.Time { return now })
			body := scrape(t, m)
			if got := c.q.calls.Load(); got != 1 {
				t.Errorf("one scrape read the queue %d times", got)
			}
			for _, want := range []string{c.depth, c.oldestAge} {
				if !strings.Contains(body, want+"\n") {
					t.Errorf("no %q in\n%s", want, body)
				}
			}
		})
	}
}

func TestObserversAndHasherReachTheScrape(t *testing.T) {
	t.Parallel()
	m := New()
	m.WatchHasher("change", fakeHasher{})
	m.BreachListUnreachable()
	m.ResetIssued("email", "admin")
	m.OTPVerified("invalid")
	m.ObserveMessage("sms", "otp", "sent")
	m.RateLimited("sendsPerUserHour")
	m.ObserveRequest("GET /healthz", "GET", 200, time.Millisecond)
	body := scrape(t, m)
	for _, want := range []string{
		`resetd_resets_issued_total{channel="email",flow="admin"} 1`,
		`resetd_otp_verifications_total{outcome="invalid"} 1`,
		`resetd_messages_total{channel="sms",kind="otp",state="sent"} 1`,
		`resetd_rate_limited_total{limit="sendsPerUserHour"} 1`,
		`resetd_http_request_duration_seconds_count{method="GET",route="GET /healthz",status="200"} 1`,
		`resetd_argon2_in_flight{pool="change"} 2`,
		`resetd_argon2_waiting{pool="change"} 3`,
		"resetd_breached_list_unreachable_total 1",
		"go_goroutines",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("no %q in the scrape", want)
		}
	}
}
