package server

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are resetd's Prometheus metrics, on a registry of their own.
type Metrics struct {
	registry    *prometheus.Registry
	duration    *prometheus.HistogramVec
	messages    *prometheus.CounterVec
	resets      *prometheus.CounterVec
	otps        *prometheus.CounterVec
	rateLimited *prometheus.CounterVec

	breachUnreachable prometheus.Counter
}

// NewMetrics registers resetd's metrics and the Go runtime's.
func NewMetrics() *Metrics {
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "resetd_http_request_duration_seconds",
			Help:    "HTTP request latency by route, method and status.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"route", "method", "status"}),
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "resetd_messages_total",
			Help: "Outgoing messages by channel, kind and state (sent, failed, retried).",
		}, []string{"channel", "kind", "state"}),
	}
	m.resets = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "resetd_resets_issued_total",
		Help: "Reset links and OTPs issued, by channel and flow (admin, otp, self_service).",
	}, []string{"channel", "flow"})
	m.otps = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "resetd_otp_verifications_total",
		Help: "OTP verifications by outcome (ok, invalid, limited).",
	}, []string{"outcome"})
	m.rateLimited = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "resetd_rate_limited_total",
		Help: "Requests refused by a rate limit, by limit.",
	}, []string{"limit"})
	m.breachUnreachable = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "resetd_breached_list_unreachable_total",
		Help: "Breached-password look-ups that failed; the password change went ahead without them.",
	})
	m.registry.MustRegister(m.duration, m.messages, m.resets, m.otps, m.rateLimited, m.breachUnreachable,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// ResetIssued implements reset.Observer.
func (m *Metrics) ResetIssued(channel, flow string) { m.resets.WithLabelValues(channel, flow).Inc() }

// OTPVerified implements reset.Observer.
func (m *Metrics) OTPVerified(outcome string) { m.otps.WithLabelValues(outcome).Inc() }

// RateLimited counts one refusal by a limit.
func (m *Metrics) RateLimited(limit string) { m.rateLimited.WithLabelValues(limit).Inc() }

// HasherStats is what the argon2id gauges read.
type HasherStats interface {
	Waiting() int
	InFlight() int
}

// QueueStats is what the queue gauges read.
type QueueStats interface {
	QueueStats(ctx context.Context) (int, time.Time, error)
}

// WatchHasher exports one argon2id work queue, labelled pool ("change":
// new passwords and their history; "login": passwords:verify): hashes
// running and callers waiting for a slot (a sustained wait means that
// pool is at capacity and will soon answer 503).
func (m *Metrics) WatchHasher(pool string, h HasherStats) {
	labels := prometheus.Labels{"pool": pool}
	m.registry.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "resetd_argon2_in_flight", Help: "argon2id hashes running now.", ConstLabels: labels},
			func() float64 { return float64(h.InFlight()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "resetd_argon2_waiting", Help: "Requests waiting for an argon2id slot.", ConstLabels: labels},
			func() float64 { return float64(h.Waiting()) }),
	)
}

// BreachListUnreachable counts one breached-password look-up that failed
// (the change went ahead without it).
func (m *Metrics) BreachListUnreachable() { m.breachUnreachable.Inc() }

// WatchQueue exports the delivery queue's depth and the age of its oldest
// message, read from the store at scrape time.
func (m *Metrics) WatchQueue(q QueueStats, now func() time.Time) {
	stats := func() (int, time.Time) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		n, oldest, err := q.QueueStats(ctx)
		if err != nil {
			return -1, time.Time{}
		}
		return n, oldest
	}
	m.registry.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "resetd_queue_depth", Help: "Messages queued, not yet sent or failed (-1: store unreachable)."},
			func() float64 { n, _ := stats(); return float64(n) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "resetd_queue_oldest_age_seconds", Help: "Age of the oldest queued message."},
			func() float64 {
				_, oldest := stats()
				if oldest.IsZero() {
					return 0
				}
				return now().Sub(oldest).Seconds()
			}),
	)
}

// Registry lets other parts register their own collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.registry }

// ObserveMessage counts one delivery outcome.
func (m *Metrics) ObserveMessage(channel, kind, state string) {
	m.messages.WithLabelValues(channel, kind, state).Inc()
}

func (m *Metrics) observe(route, method string, status int, d time.Duration) {
	m.duration.WithLabelValues(route, method, strconv.Itoa(status)).Observe(d.Seconds())
}

func (m *Metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}
