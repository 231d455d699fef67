package app_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/resetd/resetd/internal/app"
	"github.com/resetd/resetd/internal/store"
	"github.com/resetd/resetd/internal/tracing"
)

// collector is an OTLP/HTTP trace receiver on loopback: it decodes the
// protobuf requests the exporter sends, as a real collector would.
type collector struct {
	mu       sync.Mutex
	spans    []*tracepb.Span
	services []string
	bad      []string
}

func newCollector(t *testing.T) (*collector, string) {
	c := &collector{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body := io.Reader(r.Body)
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(r.Body)
			if err != nil {
				http.Error(w, err.Error(), 400)
				return
			}
			body = zr
		}
		b, _ := io.ReadAll(body)
		var req collectortrace.ExportTraceServiceRequest
		c.mu.Lock()
		defer c.mu.Unlock()
		if r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" {
			c.bad = append(c.bad, r.Method+" "+r.URL.Path+" "+r.Header.Get("Content-Type"))
		}
		if err := proto.Unmarshal(b, &req); err != nil {
			c.bad = append(c.bad, err.Error())
			http.Error(w, err.Error(), 400)
			return
		}
		for _, rs := range req.ResourceSpans {
			for _, a := range rs.GetResource().GetAttributes() {
				if a.Key == "service.name" {
					c.services = append(c.services, a.GetValue().GetStringValue())
				}
			}
			for _, ss := range rs.ScopeSpans {
				c.spans = append(c.spans, ss.Spans...)
			}
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
		out, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
		w.Write(out)
	}))
	t.Cleanup(srv.Close)
	return c, srv.URL + "/v1/traces"
}

func attr(s *tracepb.Span, key string) string {
	for _, a := range s.Attributes {
		if a.Key == key {
			return a.GetValue().GetStringValue()
		}
	}
	return ""
}

// Traces (SPEC §12): a platform's call with its own traceparent, through
// resetd's HTTP span, its store transactions and the queued delivery, to
// the SMTP attempt, is one trace whose root is the caller's span; each of
// resetd's spans carries the TransactionId; none holds a secret.
func TestOneTraceFromTheCallToTheSMTPAttempt(t *testing.T) {
	t.Parallel()
	col, endpoint := newCollector(t)
	h := newHarness(t, func(c *app.Config) { c.Tracing = tracing.Options{Enabled: true, EndpointURL: endpoint} })
	tok := h.admin()
	h.putUser(tok, "acme", "u", map[string]any{"username": "u", "email": "u@example.com"})
	const traceID, parentID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	r := h.do("POST", P+"/institutions/acme/users/u/password/reset", tok, map[string]string{"method": "email"},
		"traceparent", "00-"+traceID+"-"+parentID+"-01")
	if r.Status != 200 {
		t.Fatalf("send: %d %s", r.Status, r.Body)
	}
	txid := r.Header.Get("TransactionId")
	mail := h.waitMail(1)[0]
	link := linkToken.FindStringSubmatch(mail.Text)[1]
	// The relay has the message; the attempt ends when its row says sent.
	for deadline := time.Now().Add(30 * time.Second); ; runtime.Gosched() {
		ds, err := h.app.Store.Deliveries(context.Background(), "acme", "u", 1)
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) == 1 && ds[0].State == store.DeliverySent {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("delivery never marked sent: %+v", ds)
		}
	}
	h.stop() // exports every span left

	col.mu.Lock()
	defer col.mu.Unlock()
	if len(col.bad) > 0 {
		t.Fatalf("the collector got malformed exports: %v", col.bad)
	}
	if len(col.services) == 0 || col.services[0] != "resetd" {
		t.Errorf("service.name: %v", col.services)
	}
	var inTrace []*tracepb.Span
	for _, s := range col.spans {
		if hex.EncodeToString(s.TraceId) == traceID {
			inTrace = append(inTrace, s)
		}
		// No span holds a secret: not the link's token, the bearer token
		// or the client secret.
		raw, _ := proto.Marshal(s)
		for _, secret := range []string{link, tok, h.adminSecret} {
			if bytes.Contains(raw, []byte(secret)) {
				t.Errorf("span %q holds a secret", s.Name)
			}
		}
	}
	var server, update, job *tracepb.Span
	for _, s := range inTrace {
		switch {
		case s.Kind == tracepb.Span_SPAN_KIND_SERVER:
			server = s
		case s.Name == "store.Update" && update == nil:
			update = s
		case s.Name == "job resetd_send":
			job = s
		}
	}
	if server == nil || update == nil || job == nil {
		names := []string{}
		for _, s := range col.spans {
			names = append(names, s.Name+"@"+hex.EncodeToString(s.TraceId)[:8])
		}
		t.Fatalf("trace %s lacks a server, store or job span; spans: %v", traceID, names)
	}
	if hex.EncodeToString(server.ParentSpanId) != parentID {
		t.Errorf("the server span's parent is %x, not the caller's %s", server.ParentSpanId, parentID)
	}
	if !strings.Contains(server.Name, "/password/reset") {
		t.Errorf("server span named %q", server.Name)
	}
	if !bytes.Equal(update.ParentSpanId, server.SpanId) {
		t.Error("the store transaction is not a child of the request's span")
	}
	if !bytes.Equal(job.ParentSpanId, server.SpanId) {
		t.Error("the delivery attempt is not a child of the request that queued it")
	}
	for _, s := range []*tracepb.Span{server, update, job} {
		if got := attr(s, string(tracing.TransactionIDKey)); got != txid {
			t.Errorf("span %q: TransactionId %q, want %q", s.Name, got, txid)
		}
	}
	if job.EndTimeUnixNano < job.StartTimeUnixNano || job.Status.GetCode() == tracepb.Status_STATUS_CODE_ERROR {
		t.Errorf("job span: %+v", job)
	}
}
