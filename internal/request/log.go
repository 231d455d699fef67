package request

import (
	"context"
	"log/slog"
)

// LogKey is the attribute the log handler stamps the transaction id under.
const LogKey = "transaction_id"

// Logger returns l with its handler wrapped so that every line logged with
// a request's context carries that request's transaction id. Wrapping a
// logger twice stamps the id once.
func Logger(l *slog.Logger) *slog.Logger {
	if _, ok := l.Handler().(logHandler); ok {
		return l
	}
	return slog.New(logHandler{next: l.Handler()})
}

// logHandler adds the transaction id of the record's context, if any.
type logHandler struct{ next slog.Handler }

func (h logHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.next.Enabled(ctx, level)
}

func (h logHandler) Handle(ctx context.Context, rec slog.Record) error {
	if tid := TransactionID(ctx); tid != "" {
		rec = rec.Clone()
		rec.AddAttrs(slog.String(LogKey, tid))
	}
	return h.next.Handle(ctx, rec)
}

func (h logHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return logHandler{next: h.next.WithAttrs(attrs)}
}

func (h logHandler) WithGroup(name string) slog.Handler {
	return logHandler{next: h.next.WithGroup(name)}
}
