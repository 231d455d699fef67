package delivery

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/google/uuid"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/resetd/resetd/internal/seal"
	"github.com/resetd/resetd/internal/secret"
	"github.com/resetd/resetd/internal/store"
)

// SendArgs is the durable send job. It names the delivery; the message,
// which carries a secret (a link or a code), is sealed under the server's
// key in the delivery's row (store.Delivery.Message), so neither the
// queue's table nor the row has it in clear, and it is written once
// rather than with every state change of the job.
type SendArgs struct {
	DeliveryID    int64  `json:"delivery_id"`
	InstitutionID string `json:"institution_id,omitempty"`
	UserID        string `json:"user_id,omitempty"`
	// WebhookURL is the institution's receiver when the message was
	// queued: a message that will never be delivered is reported there
	// (delivery.failed) in the same transaction that records the failure.
	WebhookURL string `json:"webhook_url,omitempty"`
	// Sealed is the message of a job queued by an earlier version, which
	// sealed it into the job (to the delivery's id); new jobs leave it
	// empty.
	Sealed []byte `json:"sealed,omitempty"`
}

// Kind names the job for River.
func (SendArgs) Kind() string { return "resetd_send" }

// Associated data of sealed messages: v1 in a job's arguments, bound to
// the delivery's id; v2 in the delivery's row, bound to its random
// message_ref.
const (
	sealContext   = "delivery/message/v1"
	sealContextV2 = "delivery/message/v2"
)

// refSize is the length of a message's random reference.
const refSize = 16

// SealMessage seals m for its delivery row: a fresh random reference and
// the message sealed to it (store.Delivery.MessageRef and Message).
func SealMessage(key *seal.Key, m Message) (ref, sealed []byte, err error) {
	b, err := pack(m)
	if err != nil {
		return nil, nil, fmt.Errorf("delivery: seal: %w", err)
	}
	ref = secret.Bytes(refSize)
	return ref, key.Seal(b, messageAD(ref)), nil
}

func messageAD(ref []byte) string { return sealContextV2 + "/" + hex.EncodeToString(ref) }

// OpenMessage opens what SealMessage sealed.
func OpenMessage(key *seal.Key, ref, sealed []byte) (Message, error) {
	return openPacked(key, sealed, messageAD(ref))
}

// openPacked opens a sealed message under its associated data.
func openPacked(key *seal.Key, sealed []byte, ad string) (Message, error) {
	b, err := key.Open(sealed, ad)
	if err != nil {
		return Message{}, fmt.Errorf("delivery: open: %w", err)
	}
	m, err := unpack(b)
	if err != nil {
		return Message{}, fmt.Errorf("delivery: open: %w", err)
	}
	return m, nil
}

// ResealMessage re-seals a delivery's message under the current key of
// the ring (resetd keys rewrap); changed is false when it already was.
func ResealMessage(key *seal.Key, ref, sealed []byte) (out []byte, changed bool, err error) {
	if key.Current(sealed) {
		return sealed, false, nil
	}
	b, err := key.Open(sealed, messageAD(ref))
	if err != nil {
		return sealed, false, fmt.Errorf("delivery: reseal: %w", err)
	}
	return key.Seal(b, messageAD(ref)), true, nil
}

// Open unpacks the message an earlier version sealed into a job.
func Open(key *seal.Key, a SendArgs) (Message, error) {
	return openPacked(key, a.Sealed, fmt.Sprintf("%s/%d", sealContext, a.DeliveryID))
}

// Recorder keeps the support-staff view of a delivery up to date; state
// is one of the store's persisted values (store.DeliveryQueued, …).
type Recorder interface {
	// MarkDelivery records an attempt; a non-nil then (the delivery.failed
	// event) is queued in the same transaction.
	MarkDelivery(ctx context.Context, id int64, state string, attempts int, lastError string, now time.Time, then store.Job) error
	// DeliveryMessage reads a delivery with its sealed message
	// (store.ErrNotFound when the message is gone).
	DeliveryMessage(ctx context.Context, id int64) (store.Delivery, error)
}

// Observer hears the outcome of every attempt (metrics); may be nil.
type Observer func(channel, kind, state string)

// Worker sends SendArgs jobs.
type Worker struct {
	river.WorkerDefaults[SendArgs]
	Key      *seal.Key
	Email    Sender
	SMS      Sender
	Recorder Recorder
	Logger   *slog.Logger
	Now      func() time.Time
	Observe  Observer
}

// Work sends one message. A permanent failure cancels the job (no retry);
// a temporary one returns the error so River retries with backoff.
func (w *Worker) Work(ctx context.Context, job *river.Job[SendArgs]) error {
	return w.deliver(ctx, job.JobRow, job.Args)
}

// deliver sends the message of one delivery in an attempt of job (a send
// job or a batch): nil when the delivery is done (sent, or already
// finished), a river.JobCancel error when it failed for good (recorded
// failed), any other error when it is to be tried again (recorded queued).
func (w *Worker) deliver(ctx context.Context, job *rivertype.JobRow, a SendArgs) error {
	m, d, err := w.message(ctx, a)
	switch {
	case errors.Is(err, store.ErrNotFound):
		// The message was cleared: its delivery was sent, failed or
		// cancelled. This is an attempt cut off after the outcome was
		// recorded (a crash before the job completed), a batch tried again
		// for the deliveries in it that failed, or a cancelled bulk's send:
		// nothing is left to send, and sending again would send twice.
		w.Logger.DebugContext(ctx, "delivery already finished", "delivery_id", a.DeliveryID)
		return nil
	case errors.Is(err, errUndecryptable):
		// Sealed under a key this server no longer has: it can never be sent.
		w.record(ctx, job, a, Message{}, store.DeliveryFailed, "undecryptable", nil)
		return river.JobCancel(err)
	case err != nil:
		return err // the store could not be read: River tries again
	}
	sender := w.Email
	if m.Channel == ChannelSMS {
		sender = w.SMS
	}
	if sender == nil {
		// No carrier for this channel (serve without --sms): fail closed,
		// never pretend it went out.
		setting := "--smtp"
		if m.Channel == ChannelSMS {
			setting = "--sms"
		}
		w.Logger.WarnContext(ctx, "delivery has no carrier", "delivery_id", a.DeliveryID, "channel", m.Channel, "setting", setting)
		w.record(ctx, job, a, m, store.DeliveryFailed, "no_sender", failedEvent(a, d, m, w.Now()))
		return river.JobCancel(fmt.Errorf("delivery: no sender for channel %q", m.Channel))
	}
	err = sender.Send(ctx, m)
	switch {
	case err == nil:
		state := store.DeliverySent
		if lo, ok := sender.(interface{ LogOnly() bool }); ok && lo.LogOnly() {
			state = store.DeliveryLogged // nobody received it: never count it as sent
		}
		w.record(ctx, job, a, m, state, "", nil)
		return nil
	case IsPermanent(err):
		w.Logger.WarnContext(ctx, "delivery refused by carrier", "delivery_id", a.DeliveryID, "channel", m.Channel, "attempt", job.Attempt, "class", "rejected")
		w.record(ctx, job, a, m, store.DeliveryFailed, "rejected", failedEvent(a, d, m, w.Now()))
		return river.JobCancel(err)
	default:
		last := job.Attempt >= job.MaxAttempts
		state := store.DeliveryQueued
		if last {
			state = store.DeliveryFailed
		}
		w.Logger.WarnContext(ctx, "delivery attempt failed", "delivery_id", a.DeliveryID, "channel", m.Channel, "attempt", job.Attempt, "class", "unavailable", "final", last)
		var then store.Job
		if last {
			then = failedEvent(a, d, m, w.Now())
		}
		w.record(ctx, job, a, m, state, "unavailable", then)
		return err
	}
}

// errUndecryptable marks a message no key of the ring opens.
var errUndecryptable = errors.New("delivery: message cannot be opened")

// message opens the message of a's delivery: from the delivery's row, or
// from the job's arguments where an earlier version sealed it there. d
// says whose it is (the row's institution and user, or the job's).
func (w *Worker) message(ctx context.Context, a SendArgs) (m Message, d store.Delivery, err error) {
	if len(a.Sealed) > 0 {
		d = store.Delivery{ID: a.DeliveryID, InstitutionID: a.InstitutionID, UserID: a.UserID}
		if m, err = Open(w.Key, a); err != nil {
			return m, d, fmt.Errorf("%w: %w", errUndecryptable, err)
		}
		return m, d, nil
	}
	if d, err = w.Recorder.DeliveryMessage(ctx, a.DeliveryID); err != nil {
		return m, d, err
	}
	if m, err = OpenMessage(w.Key, d.MessageRef, d.Message); err != nil {
		return m, d, fmt.Errorf("%w: %w", errUndecryptable, err)
	}
	return m, d, nil
}

// failedEvent is the delivery.failed event for a message that will never
// be delivered, or nil when its institution had no webhook.
func failedEvent(a SendArgs, d store.Delivery, m Message, now time.Time) store.Job {
	if a.WebhookURL == "" || d.InstitutionID == "" {
		return nil
	}
	return WebhookArgs{URL: a.WebhookURL, Event: Event{
		ID: uuid.NewString(), Type: EventDeliveryFailed, Time: now.UTC(), InstitutionID: d.InstitutionID, UserID: d.UserID,
		Data: map[string]any{"deliveryId": a.DeliveryID, "channel": m.Channel, "kind": m.Kind},
	}}
}

// record stores an attempt's outcome, then tells the observer: a metric
// that says "sent" is never ahead of the delivery row.
func (w *Worker) record(ctx context.Context, job *rivertype.JobRow, a SendArgs, m Message, state, lastErr string, then store.Job) {
	// The outcome is recorded even when the attempt's time ran out just as
	// the carrier answered: a message delivered at the deadline is still
	// delivered.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	if err := w.Recorder.MarkDelivery(ctx, a.DeliveryID, state, job.Attempt, lastErr, w.Now(), then); err != nil {
		w.Logger.ErrorContext(ctx, "recording delivery state", "delivery_id", a.DeliveryID, "err", err)
	}
	if w.Observe != nil {
		st := state
		if state == store.DeliveryQueued {
			st = "retried"
		}
		w.Observe(m.Channel, m.Kind, st)
	}
}

// recordTimeout bounds recording an attempt's outcome.
const recordTimeout = 5 * time.Second

// MaxAttempts spreads retries over about a day with RetryPolicy.
const MaxAttempts = 13

// RetryPolicy backs off exponentially: attempt^4 seconds (1 s, 16 s, 81 s,
// …), so 13 attempts span about 24 hours, plus up to 10% jitter.
type RetryPolicy struct{}

// NextRetry implements river.ClientRetryPolicy.
func (RetryPolicy) NextRetry(job *rivertype.JobRow) time.Time {
	a := float64(max(job.Attempt, 1))
	d := time.Duration(math.Pow(a, 4)) * time.Second
	jitter := time.Duration(float64(d) * 0.1 * pseudoRandom(job.ID, job.Attempt))
	return time.Now().Add(d + jitter)
}

// pseudoRandom gives a stable fraction in [0,1) from the job; jitter needs
// spread, not secrecy.
func pseudoRandom(id int64, attempt int) float64 {
	x := uint64(id)*0x9E3779B97F4A7C15 + uint64(attempt)*0xBF58476D1CE4E5B9
	x ^= x >> 31
	return float64(x%1000) / 1000
}

var _ river.ClientRetryPolicy = RetryPolicy{}

// Reseal re-seals a queued message under the current key of the ring
// (resetd keys rewrap); changed is false when it already was.
func Reseal(key *seal.Key, a SendArgs) (out SendArgs, changed bool, err error) {
	if key.Current(a.Sealed) {
		return a, false, nil
	}
	ad := fmt.Sprintf("%s/%d", sealContext, a.DeliveryID)
	b, err := key.Open(a.Sealed, ad)
	if err != nil {
		return a, false, fmt.Errorf("delivery: reseal: %w", err)
	}
	a.Sealed = key.Seal(b, ad)
	return a, true, nil
}
