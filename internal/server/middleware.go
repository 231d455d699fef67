package server

import (
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/resetd/resetd/internal/request"
)

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

// maxBody bounds every request body (SPEC §3) but a settings PUT's.
const maxBody = 64 << 10

// maxSettingsBody bounds a settings PUT's body: room for a logo of 64 KiB
// in base64 (4/3 of it) beside the other settings.
const maxSettingsBody = 160 << 10

// bodyLimit is the most a request's body may hold.
func (s *Server) bodyLimit(r *http.Request) int64 {
	if r.Method == http.MethodPut {
		if _, pattern := s.mux.Handler(r); pattern == settingsPutPattern {
			return maxSettingsBody
		}
	}
	return maxBody
}

// wrap is the middleware every request passes: transaction id and client
// IP into the request context, body limit, panic guard, access log and
// metrics.
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
		ctx = request.With(ctx, tid, request.PeerIP(r, s.trustedProxies))
		r = r.WithContext(ctx)
		w.Header().Set("TransactionId", tid)
		w.Header().Set("X-Content-Type-Options", "nosniff")
		if s.hsts {
			w.Header().Set("Strict-Transport-Security", "max-age=31536000")
		}
		r.Body = http.MaxBytesReader(rec, r.Body, s.bodyLimit(r))

		defer func() {
			if p := recover(); p != nil {
				s.logger.ErrorContext(ctx, "panic serving request", "panic", p)
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
			s.metrics.ObserveRequest(route, r.Method, status, elapsed)
			s.logger.LogAttrs(ctx, slog.LevelInfo, "request",
				slog.String("method", r.Method), slog.String("route", route), slog.Int("status", status),
				slog.String("latency", roundLatency(elapsed).String()), slog.String("institution", r.PathValue("institutionId")),
				slog.String("client", request.ClientID(ctx)), slog.String("ip", request.ClientIP(ctx)))
		}()
		if bad {
			s.problem(rec, r, http.StatusBadRequest, "invalid-transaction-id", "the TransactionId header must be a UUID")
			return
		}
		next.ServeHTTP(rec, r)
	})
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
