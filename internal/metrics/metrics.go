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
	"sync"
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
	m.registry.MustRegister(m.duration, m.messages, m.resets, m.otps, m.rateLimited,
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

// WatchHasher exports the argon2id work queue: hashes running and callers
// waiting for a slot (a sustained wait means the change endpoints are at
// capacity and will soon answer 503).
func (m *Metrics) WatchHasher(h HasherStats) {
	m.registry.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "resetd_argon2_in_flight", Help: "argon2id hashes running now."},
			func() float64 { return float64(h.InFlight()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "resetd_argon2_waiting", Help: "Requests waiting for an argon2id slot."},
			func() float64 { return float64(h.Waiting()) }),
	)
}

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

// PasswordSchemeStats is what the users-per-scheme gauge reads.
type PasswordSchemeStats interface {
	PasswordSchemes(ctx context.Context, current string) (map[string]int, error)
}

// passwordSchemes is resetd_users_by_password_scheme: the progress of an
// import's upgrade to argon2id (SPEC §13). Counting scans the users table,
// so a scrape reuses a count younger than maxAge.
type passwordSchemes struct {
	desc    *prometheus.Desc
	stats   PasswordSchemeStats
	current string
	now     func() time.Time
	maxAge  time.Duration

	mu     sync.Mutex
	at     time.Time
	counts map[string]int
}

func (p *passwordSchemes) Describe(ch chan<- *prometheus.Desc) { ch <- p.desc }

func (p *passwordSchemes) Collect(ch chan<- prometheus.Metric) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.counts == nil || p.now().Sub(p.at) >= p.maxAge {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		counts, err := p.stats.PasswordSchemes(ctx, p.current)
		cancel()
		if err != nil && p.counts == nil {
			return // no figure rather than a wrong one
		}
		if err == nil {
			p.counts, p.at = counts, p.now()
		}
	}
	for scheme, n := range p.counts {
		ch <- prometheus.MustNewConstMetric(p.desc, prometheus.GaugeValue, float64(n), scheme)
	}
}

// WatchPasswordSchemes exports how many users have a password hash of each
// scheme; "argon2id" counts those with current (the PHC prefix of the
// current parameters), the others are waiting for their next login.
func (m *Metrics) WatchPasswordSchemes(s PasswordSchemeStats, current string, now func() time.Time) {
	m.registry.MustRegister(&passwordSchemes{
		desc: prometheus.NewDesc("resetd_users_by_password_scheme",
			"Users by the scheme of their stored password hash (argon2id: current parameters; argon2id-old-params, argon2i, bcrypt, pbkdf2-sha256, pbkdf2-sha512, scrypt: upgraded at the next successful verify; none: no password). Counted at most once a minute.",
			[]string{"scheme"}, nil),
		stats: s, current: current, now: now, maxAge: time.Minute,
	})
}
