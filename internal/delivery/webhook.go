package delivery

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/riverqueue/river"

	"github.com/resetd/resetd/internal/seal"
)

// Event is what an institution's webhookUrl receives. It never carries a
// secret: no token, code or password, and contact details only masked.
type Event struct {
	ID            string         `json:"id"`
	Type          string         `json:"type"`
	Time          time.Time      `json:"time"`
	InstitutionID string         `json:"institutionId"`
	UserID        string         `json:"userId,omitempty"`
	Data          map[string]any `json:"data,omitempty"`
}

// Event types.
const (
	EventPasswordChanged = "password.changed"
	EventResetRequested  = "reset.requested"
	EventDeliveryFailed  = "delivery.failed"
	EventResetDisputed   = "reset.disputed"
)

// WebhookArgs is the durable job that posts one event.
type WebhookArgs struct {
	URL   string `json:"url"`
	Event Event  `json:"event"`
}

// Kind names the job for River.
func (WebhookArgs) Kind() string { return "resetd_webhook" }

// WebhookWorker posts events, signed like the SMS webhook:
// X-Resetd-Timestamp and X-Resetd-Signature: v1=hex(HMAC-SHA256(secret,
// timestamp + "." + body)); during a secret rotation's overlap the header
// holds one signature per secret, comma-separated, new first.
type WebhookWorker struct {
	river.WorkerDefaults[WebhookArgs]
	Key *seal.Key
	// Secrets is where the institutions' webhook secrets are kept.
	Secrets MetaStore
	Client  *http.Client
	Now     func() time.Time
	Logger  *slog.Logger
}

// Work posts the event; a 4xx other than 408/429 is final, anything else retried.
func (w *WebhookWorker) Work(ctx context.Context, job *river.Job[WebhookArgs]) error {
	body, err := json.Marshal(job.Args.Event)
	if err != nil {
		return river.JobCancel(fmt.Errorf("delivery: webhook: %w", err))
	}
	now := w.Now()
	ts := now.Unix()
	secrets, err := WebhookSecrets(ctx, w.Secrets, w.Key, job.Args.Event.InstitutionID, now)
	if err != nil {
		return fmt.Errorf("delivery: webhook: %w", err)
	}
	sigs := make([]string, len(secrets))
	for i, sec := range secrets {
		sigs[i] = SignWebhook([]byte(sec), ts, body)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, job.Args.URL, bytes.NewReader(body))
	if err != nil {
		return river.JobCancel(fmt.Errorf("delivery: webhook: %w", err))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "resetd-webhook/1")
	req.Header.Set("X-Resetd-Event", job.Args.Event.Type)
	req.Header.Set("X-Resetd-Timestamp", strconv.FormatInt(ts, 10))
	req.Header.Set("X-Resetd-Signature", strings.Join(sigs, ","))
	client := w.Client
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	resp, err := client.Do(req)
	if err != nil {
		w.Logger.WarnContext(ctx, "webhook delivery failed", "event", job.Args.Event.Type, "institution", job.Args.Event.InstitutionID, "attempt", job.Attempt, "class", "unavailable")
		return fmt.Errorf("delivery: webhook: %w", err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return nil
	case resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != 408 && resp.StatusCode != 429:
		w.Logger.WarnContext(ctx, "webhook refused", "event", job.Args.Event.Type, "institution", job.Args.Event.InstitutionID, "status", resp.StatusCode)
		return river.JobCancel(fmt.Errorf("delivery: webhook refused with %d", resp.StatusCode))
	default:
		return fmt.Errorf("delivery: webhook answered %d", resp.StatusCode)
	}
}
