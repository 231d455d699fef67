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

	"github.com/resetd/resetd/internal/buildinfo"
)

// Metrics are resetd's Prometheus metrics.
type Metrics struct {
	registry          *prometheus.Registry
	duration          *prometheus.HistogramVec
	messages          *prometheus.CounterVec
	resets            *prometheus.CounterVec
	otps              *prometheus.CounterVec
	rateLimited       *prometheus.CounterVec
	changes           *prometheus.CounterVec
	disputes          prometheus.Counter
	breachUnreachable prometheus.Counter
}

// New registers resetd's metrics and the Go runtime's.
func New() *Metrics { return NewFor(buildinfo.Read("")) }

// NewFor is New for a build: resetd_build_info carries its version,
// revision and Go version as labels.
func NewFor(build buildinfo.Info) *Metrics {
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "resetd_http_request_duration_seconds",
			Help:    "HTTP request latency by route, method and status.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"route", "method", "status"}),
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "resetd_messages_total",
			Help: "Outgoing messages by channel, kind and state (sent, logged, failed, retried); logged is serve --dev writing to its log.",
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
	m.changes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "resetd_password_changes_total",
		Help: "Passwords changed by redeeming a reset token, by the token's kind (link, otp).",
	}, []string{"via"})
	m.disputes = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "resetd_disputes_total",
		Help: "\"This wasn't me\" reports confirmed (each locks the user's resets).",
	})
	info := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "resetd_build_info",
		Help:        "Always 1; its labels say which build is running.",
		ConstLabels: prometheus.Labels{"version": build.Version, "revision": build.Revision, "goversion": build.GoVersion},
	})
	info.Set(1)
	m.breachUnreachable = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "resetd_breached_list_unreachable_total",
		Help: "Breached-password look-ups that failed; the password change went ahead without them.",
	})
	m.registry.MustRegister(info, m.duration, m.messages, m.resets, m.otps, m.rateLimited, m.changes, m.disputes, m.breachUnreachable,
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

// PasswordChanged implements reset.Observer.
func (m *Metrics) PasswordChanged(via string) { m.changes.WithLabelValues(via).Inc() }

// Disputed implements reset.Observer.
func (m *Metrics) Disputed() { m.disputes.Inc() }

// PoolStat is one database connection pool as the store reports it.
type PoolStat struct {
	Pool         string // "write", "read" (SQLite) or "pgx" (PostgreSQL)
	Max          int
	InUse, Idle  int
	WaitCount    int64         // acquisitions that had to wait, since start
	WaitDuration time.Duration // time spent waiting, since start
}

// WatchPools exports the store's connection pools, read at scrape time: a
// pool at its maximum with waits rising is the first sign of a database
// that is too small or a pool_max_conns set too low.
func (m *Metrics) WatchPools(stats func() []PoolStat) {
	m.registry.MustRegister(poolCollector{stats})
}

type poolCollector struct{ stats func() []PoolStat }

var (
	poolConns   = prometheus.NewDesc("resetd_db_pool_connections", "Database connections by pool and state (in_use, idle).", []string{"pool", "state"}, nil)
	poolMax     = prometheus.NewDesc("resetd_db_pool_max_connections", "The pool's maximum connections.", []string{"pool"}, nil)
	poolWaits   = prometheus.NewDesc("resetd_db_pool_wait_count_total", "Connection acquisitions that had to wait.", []string{"pool"}, nil)
	poolWaitDur = prometheus.NewDesc("resetd_db_pool_wait_seconds_total", "Time spent waiting for a connection.", []string{"pool"}, nil)
)

func (c poolCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- poolConns
	ch <- poolMax
	ch <- poolWaits
	ch <- poolWaitDur
}

func (c poolCollector) Collect(ch chan<- prometheus.Metric) {
	for _, p := range c.stats() {
		ch <- prometheus.MustNewConstMetric(poolConns, prometheus.GaugeValue, float64(p.InUse), p.Pool, "in_use")
		ch <- prometheus.MustNewConstMetric(poolConns, prometheus.GaugeValue, float64(p.Idle), p.Pool, "idle")
		ch <- prometheus.MustNewConstMetric(poolMax, prometheus.GaugeValue, float64(p.Max), p.Pool)
		ch <- prometheus.MustNewConstMetric(poolWaits, prometheus.CounterValue, float64(p.WaitCount), p.Pool)
		ch <- prometheus.MustNewConstMetric(poolWaitDur, prometheus.CounterValue, p.WaitDuration.Seconds(), p.Pool)
	}
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
