// Package metrics owns resetd's Prometheus metrics on a registry of their
// own: the domain reports issued resets and OTP outcomes to it (as
// reset.Observer), the delivery worker each attempt's outcome, the server
// request latency and rate-limit refusals; it reads the argon2id work
// queue and the delivery queue at scrape time, and serves the lot.
package metrics

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are resetd's Prometheus metrics.
type Metrics struct {
	registry    *prometheus.Registry
	duration    *prometheus.HistogramVec
	messages    *prometheus.CounterVec
	resets      *prometheus.CounterVec
	otps        *prometheus.CounterVec
	rateLimited *prometheus.CounterVec

	breachUnreachable prometheus.Counter
}

// New registers resetd's metrics and the Go runtime's.
func New() *Metrics {
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
		resets: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "resetd_resets_issued_total",
			Help: "Reset links and OTPs issued, by channel and flow (admin, otp, self_service).",
		}, []string{"channel", "flow"}),
		otps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "resetd_otp_verifications_total",
			Help: "OTP verifications by outcome (ok, invalid, limited).",
		}, []string{"outcome"}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "resetd_rate_limited_total",
			Help: "Requests refused by a rate limit, by limit.",
		}, []string{"limit"}),
	}
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

// ObserveMessage counts one delivery outcome (a delivery.Observer).
func (m *Metrics) ObserveMessage(channel, kind, state string) {
	m.messages.WithLabelValues(channel, kind, state).Inc()
}

// RateLimited counts one refusal by a limit.
func (m *Metrics) RateLimited(limit string) { m.rateLimited.WithLabelValues(limit).Inc() }

// ObserveRequest records one HTTP request's latency.
func (m *Metrics) ObserveRequest(route, method string, status int, d time.Duration) {
	m.duration.WithLabelValues(route, method, strconv.Itoa(status)).Observe(d.Seconds())
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}

// HasherStats is what the argon2id gauges read.
type HasherStats interface {
	Waiting() int
	InFlight() int
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

// QueueStats is what the queue gauges read: messages queued and when the
// oldest of them was queued (zero when none).
type QueueStats interface {
	QueueStats(ctx context.Context) (int, time.Time, error)
}

// WatchQueue exports the delivery queue's depth and the age of its oldest
// message, read from the store once per scrape.
func (m *Metrics) WatchQueue(q QueueStats, now func() time.Time) {
	m.registry.MustRegister(&queueCollector{q: q, now: now})
}

// queueTimeout bounds the store read of one scrape.
const queueTimeout = 2 * time.Second

var (
	queueDepth = prometheus.NewDesc("resetd_queue_depth",
		"Messages queued, not yet sent or failed (-1: store unreachable).", nil, nil)
	queueOldest = prometheus.NewDesc("resetd_queue_oldest_age_seconds",
		"Age of the oldest queued message.", nil, nil)
)

// queueCollector emits both queue gauges from one QueueStats call, so a
// scrape costs the store one query and the two values agree.
type queueCollector struct {
	q   QueueStats
	now func() time.Time
}

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- queueDepth
	ch <- queueOldest
}

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), queueTimeout)
	defer cancel()
	n, oldest, err := c.q.QueueStats(ctx)
	if err != nil {
		n, oldest = -1, time.Time{}
	}
	age := 0.0
	if !oldest.IsZero() {
		age = c.now().Sub(oldest).Seconds()
	}
	ch <- prometheus.MustNewConstMetric(queueDepth, prometheus.GaugeValue, float64(n))
	ch <- prometheus.MustNewConstMetric(queueOldest, prometheus.GaugeValue, age)
}
