// Package tracing owns OpenTelemetry traces (SPEC §12): one tracer
// provider exporting over OTLP/HTTP, a span per HTTP request (a caller's
// W3C traceparent is its parent), per store transaction, and per job
// attempt (a delivery's SMTP or SMS call) in the trace of the request that
// queued it: the queue carries the trace context in the job's metadata.
// Every span carries the request's TransactionId and never a secret: the
// HTTP span holds the method, route and path (no query string, where the
// reset page's token travels), the others only names and ids. Without an
// endpoint tracing is off and nothing is wrapped.
package tracing

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/resetd/resetd/internal/request"
	"github.com/resetd/resetd/internal/store"
)

// TransactionIDKey is the attribute every span carries the request's
// TransactionId under.
const TransactionIDKey = attribute.Key("resetd.transaction_id")

// metadataKey is where a job's metadata holds the trace context.
const metadataKey = "otel"

// Options configure tracing.
type Options struct {
	// Enabled turns tracing on; the exporter then reads the standard
	// OTEL_EXPORTER_OTLP_* variables (endpoint, headers, timeout) and the
	// resource OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES.
	Enabled bool
	// EndpointURL overrides the traces endpoint (tests point it at a
	// collector of their own).
	EndpointURL string
}

// Tracing is the process's tracer provider, or nothing when off.
type Tracing struct {
	tp     *sdktrace.TracerProvider
	tracer trace.Tracer
	prop   propagation.TextMapPropagator
}

// New starts tracing as o says; a nil *Tracing (tracing off) is valid and
// wraps nothing.
func New(ctx context.Context, o Options) (*Tracing, error) {
	if !o.Enabled {
		return nil, nil
	}
	var opts []otlptracehttp.Option
	if o.EndpointURL != "" {
		opts = append(opts, otlptracehttp.WithEndpointURL(o.EndpointURL))
	}
	exp, err := otlptracehttp.New(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("tracing: exporter: %w", err)
	}
	// "resetd" unless OTEL_SERVICE_NAME says otherwise (the later wins).
	res, err := resource.Merge(resource.NewSchemaless(semconv.ServiceName("resetd")), resource.Environment())
	if err != nil {
		return nil, fmt.Errorf("tracing: resource: %w", err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	return &Tracing{tp: tp, tracer: tp.Tracer("github.com/resetd/resetd"), prop: propagation.TraceContext{}}, nil
}

// Shutdown exports what is left and stops.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	return t.tp.Shutdown(ctx)
}

// Handler gives every request a server span, child of the caller's
// traceparent, named by its route (route returns the pattern that serves
// a request: ids in the path stay out of the name), with the TransactionId
// the server answered with.
func (t *Tracing) Handler(h http.Handler, route func(*http.Request) string) http.Handler {
	if t == nil {
		return h
	}
	tagged := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r)
		if id := w.Header().Get("TransactionId"); id != "" {
			trace.SpanFromContext(r.Context()).SetAttributes(TransactionIDKey.String(id))
		}
	})
	return otelhttp.NewHandler(tagged, "resetd",
		otelhttp.WithTracerProvider(t.tp), otelhttp.WithPropagators(t.prop),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string {
			if p := route(r); p != "" {
				return p
			}
			return r.Method
		}))
}

// Store gives every transaction of s, and every delivery outcome a
// worker records, a span.
func (t *Tracing) Store(s store.Store) store.Store {
	if t == nil {
		return s
	}
	return store.Of(tracedTransactor{Transactor: s.Transactor, t: t}, s.Credentials, tracedOutbox{Outbox: s.Outbox, t: t}, s.KeyAdmin)
}

func (t *Tracing) span(ctx context.Context, name string) (context.Context, trace.Span) {
	ctx, span := t.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindInternal))
	if id := request.TransactionID(ctx); id != "" {
		span.SetAttributes(TransactionIDKey.String(id))
	}
	return ctx, span
}

func end(span trace.Span, err error) {
	if err != nil {
		span.SetStatus(codes.Error, "failed")
	}
	span.End()
}

type tracedTransactor struct {
	store.Transactor
	t *Tracing
}

func (s tracedTransactor) Update(ctx context.Context, fn func(store.Tx) error) error {
	ctx, span := s.t.span(ctx, "store.Update")
	err := s.Transactor.Update(ctx, fn)
	end(span, err)
	return err
}

func (s tracedTransactor) View(ctx context.Context, fn func(store.ReadTx) error) error {
	ctx, span := s.t.span(ctx, "store.View")
	err := s.Transactor.View(ctx, fn)
	end(span, err)
	return err
}

type tracedOutbox struct {
	store.Outbox
	t *Tracing
}

func (s tracedOutbox) MarkDelivery(ctx context.Context, id int64, state string, attempts int, lastError string, now time.Time, then store.Job) error {
	ctx, span := s.t.span(ctx, "store.MarkDelivery")
	err := s.Outbox.MarkDelivery(ctx, id, state, attempts, lastError, now, then)
	end(span, err)
	return err
}

// QueueMiddleware carries the trace context from the transaction that
// queues a job to the attempts that work it: on insert it writes the
// context (and the TransactionId) into the job's metadata, on work it
// starts the attempt's span as its child.
func (t *Tracing) QueueMiddleware() []rivertype.Middleware {
	if t == nil {
		return nil
	}
	return []rivertype.Middleware{&queueMiddleware{t: t}}
}

type queueMiddleware struct {
	river.MiddlewareDefaults
	t *Tracing
}

type jobTrace struct {
	Carrier       propagation.MapCarrier `json:"carrier"`
	TransactionID string                 `json:"transactionId,omitempty"`
}

func (m *queueMiddleware) InsertMany(ctx context.Context, many []*rivertype.JobInsertParams, inner func(context.Context) ([]*rivertype.JobInsertResult, error)) ([]*rivertype.JobInsertResult, error) {
	jt := jobTrace{Carrier: propagation.MapCarrier{}, TransactionID: request.TransactionID(ctx)}
	m.t.prop.Inject(ctx, jt.Carrier)
	if len(jt.Carrier) > 0 {
		for _, p := range many {
			md := map[string]any{}
			if len(p.Metadata) > 0 {
				if err := json.Unmarshal(p.Metadata, &md); err != nil {
					return nil, fmt.Errorf("tracing: job metadata: %w", err)
				}
			}
			md[metadataKey] = jt
			b, err := json.Marshal(md)
			if err != nil {
				return nil, fmt.Errorf("tracing: job metadata: %w", err)
			}
			p.Metadata = b
		}
	}
	return inner(ctx)
}

func (m *queueMiddleware) Work(ctx context.Context, job *rivertype.JobRow, inner func(context.Context) error) error {
	var md struct {
		Trace jobTrace `json:"otel"`
	}
	_ = json.Unmarshal(job.Metadata, &md) // a job without a trace starts its own
	if md.Trace.Carrier != nil {
		ctx = m.t.prop.Extract(ctx, md.Trace.Carrier)
	}
	attrs := []attribute.KeyValue{
		attribute.String("job.kind", job.Kind), attribute.Int64("job.id", job.ID), attribute.Int("job.attempt", job.Attempt),
	}
	if md.Trace.TransactionID != "" {
		attrs = append(attrs, TransactionIDKey.String(md.Trace.TransactionID))
	}
	ctx, span := m.t.tracer.Start(ctx, "job "+job.Kind, trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(attrs...))
	err := inner(ctx)
	end(span, err)
	return err
}
