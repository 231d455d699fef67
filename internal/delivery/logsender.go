package delivery

import (
	"context"
	"log/slog"
)

// LogSender is the development sender used when no carrier is configured.
// Unlike every other part of resetd it logs the whole message, reset link
// and OTP included, on purpose: a newcomer running the service locally
// should be able to click the link in the log. Never configure it in
// production.
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
	logger.InfoContext(ctx, "message (no carrier configured; dev mode)",
		slog.String("channel", m.Channel),
		slog.String("kind", m.Kind),
		slog.String("to", m.To),
		slog.String("subject", m.Subject),
		slog.String("text", m.Text),
	)
	return nil
}

var _ Sender = LogSender{}
