package server_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/resetd/resetd/internal/request"
	"github.com/resetd/resetd/internal/server"
)

// A line a handler logs during a request carries the request's
// transaction id, as does the access log line, each exactly once.
func TestLogLinesOfARequestCarryItsTransactionID(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, nil))
	srv := server.New(server.Config{Logger: logger})
	srv.Handle("GET /page", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The handler's own logger, as a package given the app's would hold.
		request.Logger(logger).InfoContext(r.Context(), "handler line", "ip", request.ClientIP(r.Context()))
		w.WriteHeader(http.StatusNoContent)
	}))
	for _, c := range []struct{ name, sent string }{
		{"minted", ""},
		{"from the client", "0b6cbb5e-3c2a-4b5f-9f0e-6c1b2f8f4a11"},
	} {
		t.Run(c.name, func(t *testing.T) {
			logs.Reset()
			r := httptest.NewRequest("GET", "/page", nil)
			r.RemoteAddr = "192.0.2.9:4000"
			if c.sent != "" {
				r.Header.Set("TransactionId", c.sent)
			}
			w := httptest.NewRecorder()
			srv.ServeHTTP(w, r)
			tid := w.Header().Get("TransactionId")
			if tid == "" || (c.sent != "" && tid != c.sent) {
				t.Fatalf("TransactionId %q", tid)
			}
			lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
			if len(lines) != 2 {
				t.Fatalf("want the handler's line and the access log:\n%s", logs.String())
			}
			for _, line := range lines {
				var rec map[string]any
				if err := json.Unmarshal([]byte(line), &rec); err != nil {
					t.Fatal(err)
				}
				if rec[request.LogKey] != tid || strings.Count(line, request.LogKey) != 1 {
					t.Errorf("line without its transaction id %s once: %s", tid, line)
				}
				if rec["ip"] != "192.0.2.9" {
					t.Errorf("ip %v", rec["ip"])
				}
			}
		})
	}
}
