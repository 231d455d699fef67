package delivery

import (
	"context"
	"log/slog"
)

// LogSender is the sender of serve --dev: it writes each message to the
// log instead of sending it, and its deliveries are recorded as "logged",
// never "sent". Unlike every other part of resetd it logs the whole
// message, reset link and OTP included, on purpose: a newcomer running
// the service locally should be able to click the link in the log. The
// application wires it only under --dev; outside it, a missing carrier
// refuses to start (email) or makes the channel unavailable (SMS).
type LogSender struct {
	// Logger receives one Info record per message; nil means slog.Default,
	// so a zero LogSender works in a quick local setup.
	Logger *slog.Logger
}

// Send logs m and always succeeds.
func (s LogSender) Send(ctx context.Context, m Message) error {
	logger := s.Logger
	if logger == nil {
		logger = slog.Default()
	}
	logger.InfoContext(ctx, "message written to the log, not sent (serve --dev)",
		slog.String("channel", m.Channel),
		slog.String("kind", m.Kind),
		slog.String("to", m.To),
		slog.String("subject", m.Subject),
		slog.String("text", m.Text),
	)
	return nil
}

// LogOnly tells the worker that nobody receives what this sender sends.
func (LogSender) LogOnly() bool { return true }

var _ Sender = LogSender{}
