package delivery_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"testing"

	"github.com/resetd/resetd/internal/delivery"
)

func TestLogSenderLogsTheWholeMessage(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	s := delivery.LogSender{Logger: slog.New(slog.NewJSONHandler(&buf, nil))}
	m := delivery.Message{
		Channel: delivery.ChannelEmail,
		Kind:    delivery.KindResetLink,
		To:      "jane@customer.example",
		Subject: "Reset your Demo Bank password",
		Text:    "Open " + realisticLink + " to reset your password.\n",
		HTML:    "<p>not logged</p>",
	}
	if err := s.Send(t.Context(), m); err != nil {
		t.Fatalf("Send: %v", err)
	}
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatalf("want exactly one JSON log line, got %q: %v", buf.String(), err)
	}
	want := map[string]any{
		"level":   "INFO",
		"msg":     "message written to the log, not sent (serve --dev)",
		"channel": m.Channel,
		"kind":    m.Kind,
		"to":      m.To,
		"subject": m.Subject,
		// The dev path exists so a newcomer can click the link.
		"text": m.Text,
	}
	for k, v := range want {
		if rec[k] != v {
			t.Errorf("log %s = %v, want %v", k, rec[k], v)
		}
	}
}
