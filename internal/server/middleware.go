package server

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

type ctxKey int

const (
	ctxTransactionID ctxKey = iota
	ctxClientIP
	ctxClientID
)

func transactionID(ctx context.Context) string {
	v, _ := ctx.Value(ctxTransactionID).(string)
	return v
}

func clientIP(ctx context.Context) string {
	v, _ := ctx.Value(ctxClientIP).(string)
	return v
}

// statusRecorder remembers the status for logs and metrics.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// maxBody bounds every request body (SPEC §3).
const maxBody = 64 << 10

// wrap is the middleware every request passes: transaction id, client IP,
// body limit, panic guard, access log and metrics.
func (s *Server) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		ctx := r.Context()
		tid := r.Header.Get("TransactionId")
		bad := false
		if tid != "" {
			if _, err := uuid.Parse(tid); err != nil || len(tid) != 36 {
				bad = true
				tid = ""
			}
		}
		if tid == "" {
			tid = uuid.NewString()
		}
		// The client id is learned after routing (by the auth check); a
		// pointer in the context lets the log line below see it.
		var cid string
		ctx = context.WithValue(ctx, ctxTransactionID, tid)
		ctx = context.WithValue(ctx, ctxClientIP, s.clientIP(r))
		ctx = context.WithValue(ctx, ctxClientID, &cid)
		r = r.WithContext(ctx)
		w.Header().Set("TransactionId", tid)
		w.Header().Set("X-Content-Type-Options", "nosniff")
		r.Body = http.MaxBytesReader(rec, r.Body, maxBody)

		defer func() {
			if p := recover(); p != nil {
				s.logger.ErrorContext(ctx, "panic serving request", "panic", p, "transaction_id", tid)
				if rec.status == 0 {
					s.problem(rec, r, http.StatusInternalServerError, "internal", "internal error; quote the transaction id to support")
				}
			}
			route := r.Pattern
			if route == "" {
				route = "unmatched"
			}
			status := rec.status
			if status == 0 {
				status = http.StatusOK
			}
			elapsed := time.Since(start)
			s.metrics.observe(route, r.Method, status, elapsed)
			s.logger.LogAttrs(ctx, slog.LevelInfo, "request",
				slog.String("method", r.Method), slog.String("route", route), slog.Int("status", status),
				slog.String("latency", roundLatency(elapsed).String()), slog.String("institution", r.PathValue("institutionId")),
				slog.String("client", cid), slog.String("ip", clientIP(ctx)), slog.String("transaction_id", tid))
		}()
		if bad {
			s.problem(rec, r, http.StatusBadRequest, "invalid-transaction-id", "the TransactionId header must be a UUID")
			return
		}
		next.ServeHTTP(rec, r)
	})
}

func setClientID(ctx context.Context, id string) {
	if p, ok := ctx.Value(ctxClientID).(*string); ok {
		*p = id
	}
}

// clientIP is the TCP peer, or, when the peer is a trusted proxy, the
// rightmost address in X-Forwarded-For that is not itself trusted.
func (s *Server) clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if err != nil || !s.trusted(peer) {
		return host
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break
		}
		if !s.trusted(a) {
			return a.Unmap().String()
		}
	}
	return host
}

func (s *Server) trusted(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range s.trustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func itoa(n int) string { return strconv.Itoa(n) }

// roundLatency keeps a log's latency readable ("2.1ms", "340µs", "1.25s"):
// three significant digits are all an operator reads.
func roundLatency(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(10 * time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(100 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}
