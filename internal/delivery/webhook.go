package delivery

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
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

// QueueWebhook is the River queue webhook events travel on: apart from the
// messages, so a receiver that hangs never delays an email or an SMS.
const QueueWebhook = "webhook"

// InsertOpts puts every event on QueueWebhook.
func (WebhookArgs) InsertOpts() river.InsertOpts { return river.InsertOpts{Queue: QueueWebhook} }

// Webhook concurrency: the queue's workers, and how many of them one
// institution's events may hold at a time (per process), so one tenant's
// dead receiver leaves the rest to every other tenant.
const (
	WebhookWorkers        = 32
	WebhookPerInstitution = 4
)

// WebhookWorker posts events, signed like the SMS webhook:
// X-Resetd-Timestamp and X-Resetd-Signature: v1=hex(HMAC-SHA256(secret,
// timestamp + "." + body)); during a secret rotation's overlap the header
// holds one signature per secret, comma-separated, new first.
type WebhookWorker struct {
	river.WorkerDefaults[WebhookArgs]
	Key *seal.Key
	// Secrets is where the institutions' webhook secrets are kept.
	Secrets MetaStore
	// Client must enforce the WebhookPolicy (WebhookPolicy.Client).
	Client *http.Client
	Now    func() time.Time
	Logger *slog.Logger
	// PerInstitution bounds one institution's events in flight; 0 is
	// WebhookPerInstitution.
	PerInstitution int

	mu       sync.Mutex
	inFlight map[string]int
}

// acquire takes one of institution's slots, or reports that all are taken.
func (w *WebhookWorker) acquire(institution string) bool {
	limit := w.PerInstitution
	if limit <= 0 {
		limit = WebhookPerInstitution
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.inFlight == nil {
		w.inFlight = map[string]int{}
	}
	if w.inFlight[institution] >= limit {
		return false
	}
	w.inFlight[institution]++
	return true
}

func (w *WebhookWorker) release(institution string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.inFlight[institution]--; w.inFlight[institution] <= 0 {
		delete(w.inFlight, institution)
	}
}

// Work posts the event; a 4xx other than 408/429 is final, anything else
// (a 3xx included: redirects are not followed) retried. An institution
// whose events already hold all its slots waits: the job is snoozed, which
// costs it no attempt, and the worker goes to another tenant's event.
func (w *WebhookWorker) Work(ctx context.Context, job *river.Job[WebhookArgs]) error {
	inst := job.Args.Event.InstitutionID
	if !w.acquire(inst) {
		// Long enough that a backlog behind a dead receiver costs the
		// database a few writes a second, spread so it does not return
		// in one burst.
		return river.JobSnooze(5*time.Second + time.Duration(job.ID%5000)*time.Millisecond)
	}
	defer w.release(inst)
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
	resp, err := w.Client.Do(req)
	if err != nil {
		class := "unavailable"
		if errors.Is(err, ErrWebhookAddress) {
			class = "refused_address" // resolved inside, outside --webhook-allow
		}
		w.Logger.WarnContext(ctx, "webhook delivery failed", "event", job.Args.Event.Type, "institution", job.Args.Event.InstitutionID, "attempt", job.Attempt, "class", class)
		return fmt.Errorf("delivery: webhook: %w", err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return nil
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		w.Logger.WarnContext(ctx, "webhook answered a redirect, not followed", "event", job.Args.Event.Type, "institution", job.Args.Event.InstitutionID, "status", resp.StatusCode, "attempt", job.Attempt)
		return fmt.Errorf("delivery: webhook answered %d (redirects are not followed)", resp.StatusCode)
	case resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != 408 && resp.StatusCode != 429:
		w.Logger.WarnContext(ctx, "webhook refused", "event", job.Args.Event.Type, "institution", job.Args.Event.InstitutionID, "status", resp.StatusCode)
		return river.JobCancel(fmt.Errorf("delivery: webhook refused with %d", resp.StatusCode))
	default:
		return fmt.Errorf("delivery: webhook answered %d", resp.StatusCode)
	}
}
