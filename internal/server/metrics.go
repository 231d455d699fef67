package server

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are resetd's Prometheus metrics, on a registry of their own.
type Metrics struct {
	registry *prometheus.Registry
	duration *prometheus.HistogramVec
	messages *prometheus.CounterVec
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
	m.registry.MustRegister(m.duration, m.messages, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
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
