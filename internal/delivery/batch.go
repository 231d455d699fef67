package delivery

import (
	"context"
	"errors"
	"sync"

	"github.com/riverqueue/river"

	"github.com/resetd/resetd/internal/store"
)

// SendBatchArgs is the durable send job of deliveries that committed in
// one transaction (SQLite's group commit joins many sends in one): one
// job, fetched and completed once, for what would be as many send jobs.
// Like SendArgs it names deliveries only; their messages are sealed in
// their rows.
type SendBatchArgs struct {
	Deliveries []BatchedSend `json:"deliveries"`
}

// BatchedSend is one delivery of a batch, with the institution's webhook
// receiver when it was queued (SendArgs.WebhookURL).
type BatchedSend struct {
	DeliveryID int64  `json:"delivery_id"`
	WebhookURL string `json:"webhook_url,omitempty"`
}

// Kind names the job for River.
func (SendBatchArgs) Kind() string { return "resetd_send_batch" }

// Batching bounds. A batch is one attempt, under one attempt timeout,
// whatever its size: maxBatch messages sent batchParallel at a time take
// four rounds of a send, well inside the timeout even from a relay that
// takes a second a message.
const (
	maxBatch      = 32
	batchParallel = 8
)

// QueuedSend is the send job as a flow queues it: a SendArgs, which a
// backend may batch with the sends that commit with it (store.Batchable).
// It is a type of its own, not a method of SendArgs, so that nothing
// embedding a SendArgs (a bulk's paced sends) becomes batchable with it.
type QueuedSend SendArgs

// Kind is SendArgs's: queued alone, it is a SendArgs job.
func (QueuedSend) Kind() string { return SendArgs{}.Kind() }

// Batch implements store.Batchable: the sends of one commit become one
// SendBatchArgs job per maxBatch of them; a lone send stays a send job.
func (QueuedSend) Batch(jobs []store.Job) []store.Job {
	var out []store.Job
	for chunk := range chunks(jobs, maxBatch) {
		if len(chunk) == 1 {
			out = append(out, chunk[0])
			continue
		}
		b := SendBatchArgs{Deliveries: make([]BatchedSend, 0, len(chunk))}
		for _, j := range chunk {
			q, ok := j.(QueuedSend)
			if !ok {
				return jobs // not ours to batch: queued as they are
			}
			b.Deliveries = append(b.Deliveries, BatchedSend{DeliveryID: q.DeliveryID, WebhookURL: q.WebhookURL})
		}
		out = append(out, b)
	}
	return out
}

func chunks(jobs []store.Job, n int) func(func([]store.Job) bool) {
	return func(yield func([]store.Job) bool) {
		for len(jobs) > 0 {
			k := min(n, len(jobs))
			if !yield(jobs[:k]) {
				return
			}
			jobs = jobs[k:]
		}
	}
}

var _ store.Batchable = QueuedSend{}

// BatchWorker sends SendBatchArgs jobs, each delivery as Worker sends a
// SendArgs job, batchParallel at a time.
type BatchWorker struct {
	river.WorkerDefaults[SendBatchArgs]
	Send *Worker
}

// Work sends every delivery of the batch. It fails, for River to try the
// whole batch again with backoff, when any delivery failed for now; the
// attempt again sends only those: a delivery that was sent, or failed for
// good, had its message cleared when its outcome was recorded, and is
// skipped.
func (w *BatchWorker) Work(ctx context.Context, job *river.Job[SendBatchArgs]) error {
	errs := make([]error, len(job.Args.Deliveries))
	slots := make(chan struct{}, batchParallel)
	var wg sync.WaitGroup
	for i, d := range job.Args.Deliveries {
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			err := w.Send.deliver(ctx, job.JobRow, SendArgs{DeliveryID: d.DeliveryID, WebhookURL: d.WebhookURL})
			var cancelled *river.JobCancelError
			if errors.As(err, &cancelled) {
				err = nil // failed for good, and recorded so: nothing to try again
			}
			errs[i] = err
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}
