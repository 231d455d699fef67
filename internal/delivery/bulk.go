package delivery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/riverqueue/river"

	"github.com/resetd/resetd/internal/seal"
	"github.com/resetd/resetd/internal/store"
)

// Bulk forced resets travel on queues of their own, so a bulk of a
// million users never stands between an ordinary reset and its worker:
// QueueBulk runs each bulk's walk of the directory and its paced sending
// (short slices that snooze in between), QueueBulkSend its messages.
const (
	QueueBulk     = "bulk"
	QueueBulkSend = "bulk_send"
	// BulkWorkers and BulkSendWorkers are their concurrent jobs per
	// process. The sending is paced by the bulk (its rate per second),
	// not by these: they bound what every running bulk together may hold.
	BulkWorkers     = 8
	BulkSendWorkers = 32
)

// BulkRunArgs is a bulk's own job: Step "walk" adds the institution's
// users as members, batch by batch; "send" decides and sends the members
// at the bulk's rate. Both keep their place in the bulk's row, so a
// retried or rescued job resumes where the last committed batch ended.
type BulkRunArgs struct {
	InstitutionID string `json:"institution_id"`
	BulkID        string `json:"bulk_id"`
	Step          string `json:"step"`
}

// Bulk steps.
const (
	BulkStepWalk = "walk"
	BulkStepSend = "send"
)

// Kind names the job for River.
func (BulkRunArgs) Kind() string { return "resetd_bulk" }

// InsertOpts puts the job on QueueBulk.
func (BulkRunArgs) InsertOpts() river.InsertOpts { return river.InsertOpts{Queue: QueueBulk} }

// BulkSendArgs is one message of a bulk: a send job (sealed as every
// queued message is) that names its bulk, on QueueBulkSend.
type BulkSendArgs struct {
	SendArgs
	BulkID string `json:"bulk_id"`
}

// Kind names the job for River.
func (BulkSendArgs) Kind() string { return "resetd_bulk_send" }

// InsertOpts puts the job on QueueBulkSend.
func (BulkSendArgs) InsertOpts() river.InsertOpts { return river.InsertOpts{Queue: QueueBulkSend} }

// BulkDeliveries tells whether a bulk's message may still go out.
type BulkDeliveries interface {
	// BulkDeliveryQueued is false once the delivery was sent, failed or
	// cancelled with its bulk.
	BulkDeliveryQueued(ctx context.Context, deliveryID int64) (bool, error)
}

// BulkWorker sends BulkSendArgs jobs through Send, the worker of every
// message, unless the delivery is no longer queued: its bulk was
// cancelled, or an earlier run of this very job sent it and recorded so
// before the process died (a rescued job then sends nothing twice).
type BulkWorker struct {
	river.WorkerDefaults[BulkSendArgs]
	Send       *Worker
	Deliveries BulkDeliveries
}

// Work sends one bulk message.
func (w *BulkWorker) Work(ctx context.Context, job *river.Job[BulkSendArgs]) error {
	queued, err := w.Deliveries.BulkDeliveryQueued(ctx, job.Args.DeliveryID)
	if errors.Is(err, store.ErrNotFound) {
		return river.JobCancel(fmt.Errorf("delivery: bulk delivery %d is gone", job.Args.DeliveryID))
	}
	if err != nil {
		return err
	}
	if !queued {
		return river.JobCancel(fmt.Errorf("delivery: bulk delivery %d is no longer queued", job.Args.DeliveryID))
	}
	if err := w.Send.Work(ctx, &river.Job[SendArgs]{JobRow: job.JobRow, Args: job.Args.SendArgs}); err != nil {
		return err
	}
	// Sent. Its bulk waits for the delivery row, so an outcome the worker
	// could not record (the database too busy as the relay answered) is
	// tried once more; should that fail too, the bulk ends without it.
	ctx = context.WithoutCancel(ctx)
	if queued, err := w.Deliveries.BulkDeliveryQueued(ctx, job.Args.DeliveryID); err != nil || !queued {
		return nil
	}
	state := store.DeliverySent
	// Still queued, so its message is still there to say the channel.
	if m, _, err := w.Send.message(ctx, job.Args.SendArgs); err == nil && logOnly(w.Send.senderFor(m.Channel)) {
		state = store.DeliveryLogged
	}
	rctx, cancel := context.WithTimeout(ctx, recordTimeout)
	defer cancel()
	if err := w.Send.Recorder.MarkDelivery(rctx, job.Args.DeliveryID, state, job.Attempt, "", w.Send.Now(), nil); err != nil {
		w.Send.Logger.ErrorContext(ctx, "bulk message sent, its delivery still recorded queued", "delivery_id", job.Args.DeliveryID, "err", err)
	}
	return nil
}

// senderFor is the carrier of a channel.
func (w *Worker) senderFor(channel string) Sender {
	if channel == ChannelSMS {
		return w.SMS
	}
	return w.Email
}

func logOnly(s Sender) bool {
	lo, ok := s.(interface{ LogOnly() bool })
	return ok && lo.LogOnly()
}

// SealedOf returns the sealed message of a queued job's arguments, for
// the send jobs of both kinds (ok is false for any other kind).
func SealedOf(kind string, args []byte) (sealed []byte, ok bool, err error) {
	switch kind {
	case SendArgs{}.Kind(), BulkSendArgs{}.Kind():
		var a SendArgs // a bulk job's arguments are a SendArgs and its bulk id
		if err := json.Unmarshal(args, &a); err != nil {
			return nil, true, fmt.Errorf("delivery: job args: %w", err)
		}
		return a.Sealed, true, nil
	}
	return nil, false, nil
}

// ResealJob re-seals the message of a queued send job of either kind under
// the current key of the ring, keeping every other argument; changed is
// false when it already was (or the job is no send job).
func ResealJob(key *seal.Key, kind string, args []byte) (out []byte, changed bool, err error) {
	switch kind {
	case SendArgs{}.Kind():
		var a SendArgs
		if err := json.Unmarshal(args, &a); err != nil {
			return nil, false, fmt.Errorf("delivery: job args: %w", err)
		}
		fresh, changed, err := Reseal(key, a)
		if err != nil || !changed {
			return nil, false, err
		}
		out, err = json.Marshal(fresh)
		return out, err == nil, err
	case BulkSendArgs{}.Kind():
		var a BulkSendArgs
		if err := json.Unmarshal(args, &a); err != nil {
			return nil, false, fmt.Errorf("delivery: job args: %w", err)
		}
		fresh, changed, err := Reseal(key, a.SendArgs)
		if err != nil || !changed {
			return nil, false, err
		}
		a.SendArgs = fresh
		out, err = json.Marshal(a)
		return out, err == nil, err
	}
	return nil, false, nil
}
