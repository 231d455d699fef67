package delivery_test

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/resetd/resetd/internal/delivery"
	"github.com/resetd/resetd/internal/seal"
	"github.com/resetd/resetd/internal/store"
	"github.com/resetd/resetd/internal/store/sqlite"
)

type workerBundle struct {
	smtp   smtpBundle
	st     *sqlite.Store
	key    *seal.Key
	worker *delivery.Worker
}

func setupWorker(t *testing.T) workerBundle {
	t.Helper()
	b := workerBundle{smtp: setupSMTP(t)}
	st, err := sqlite.Open(testCtx(t), filepath.Join(t.TempDir(), "w.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if err := st.Migrate(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	b.st = st
	if b.key, err = seal.New(seal.Generate()); err != nil {
		t.Fatal(err)
	}
	b.worker = &delivery.Worker{Key: b.key, Email: b.smtp.sender, Recorder: st, Logger: slog.New(slog.DiscardHandler), Now: time.Now}
	return b
}

// queued writes a delivery row with m sealed in it, as a send does.
func (b workerBundle) queued(t *testing.T, m delivery.Message) int64 {
	t.Helper()
	return b.queuedUnder(t, b.key, m)
}

// queuedUnder is queued with m sealed under key.
func (b workerBundle) queuedUnder(t *testing.T, key *seal.Key, m delivery.Message) int64 {
	t.Helper()
	ref, sealed, err := delivery.SealMessage(key, m)
	if err != nil {
		t.Fatal(err)
	}
	var id int64
	err = b.st.Update(testCtx(t), func(tx store.Tx) error {
		id, err = tx.InsertDelivery(testCtx(t), store.Delivery{InstitutionID: "i", UserID: "u", Kind: delivery.KindResetLink, Channel: m.Channel,
			State: store.DeliveryQueued, CreatedAt: time.Now(), MessageRef: ref, Message: sealed})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func (b workerBundle) work(t *testing.T, a delivery.SendArgs, attempt int) error {
	t.Helper()
	return b.worker.Work(testCtx(t), &river.Job[delivery.SendArgs]{
		JobRow: &rivertype.JobRow{ID: a.DeliveryID, Attempt: attempt, MaxAttempts: delivery.MaxAttempts, State: rivertype.JobStateRunning}, Args: a,
	})
}

func (b workerBundle) state(t *testing.T, id int64) store.Delivery {
	t.Helper()
	ds, err := b.st.AllDeliveries(testCtx(t), false, 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		if d.ID == id {
			return d
		}
	}
	t.Fatalf("no delivery %d", id)
	return store.Delivery{}
}

func workerMessage(to string) delivery.Message {
	return delivery.Message{Channel: delivery.ChannelEmail, Kind: delivery.KindResetLink, To: to, Subject: "Reset", Text: "Open " + testLink + "\n"}
}

// The worker sends the message its delivery row holds, and clears it;
// an attempt run again after that (a crash between recording the
// outcome and completing the job) finds nothing to send and sends
// nothing twice.
func TestWorkerSendsOnceFromTheDeliveryRow(t *testing.T) {
	t.Parallel()
	b := setupWorker(t)
	id := b.queued(t, workerMessage("jane@customer.example"))
	a := delivery.SendArgs{DeliveryID: id, InstitutionID: "i", UserID: "u"}
	if err := b.work(t, a, 1); err != nil {
		t.Fatal(err)
	}
	mail, err := b.smtp.srv.Wait(testCtx(t), 1)
	if err != nil || len(mail) != 1 || !strings.Contains(string(mail[0].Data), "jane@customer.example") {
		t.Fatalf("mail: %v, %v", mail, err)
	}
	if d := b.state(t, id); d.State != store.DeliverySent || d.Attempts != 1 {
		t.Errorf("delivery after the send: %+v", d)
	}
	if _, err := b.st.DeliveryMessage(testCtx(t), id); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the sent message is still stored: %v", err)
	}
	if err := b.work(t, a, 2); err != nil {
		t.Fatalf("the rerun attempt: %v", err)
	}
	if n := b.smtp.srv.Count(); n != 1 {
		t.Errorf("%d messages reached the relay; the rerun sent again", n)
	}
	if d := b.state(t, id); d.State != store.DeliverySent || d.Attempts != 1 {
		t.Errorf("the rerun changed the delivery: %+v", d)
	}
}

// A job queued by an earlier version, with its message sealed in its
// arguments, is still delivered.
func TestWorkerSendsAnEarlierVersionsJob(t *testing.T) {
	t.Parallel()
	b := setupWorker(t)
	var id int64
	err := b.st.Update(testCtx(t), func(tx store.Tx) error {
		var err error
		id, err = tx.InsertDelivery(testCtx(t), store.Delivery{InstitutionID: "i", UserID: "u", Kind: delivery.KindResetLink, Channel: delivery.ChannelEmail,
			State: store.DeliveryQueued, CreatedAt: time.Now()})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	a := delivery.SendArgs{DeliveryID: id, InstitutionID: "i", UserID: "u", Sealed: delivery.SealLegacyForTest(b.key, id, workerMessage("old@customer.example"))}
	if err := b.work(t, a, 1); err != nil {
		t.Fatal(err)
	}
	if mail, err := b.smtp.srv.Wait(testCtx(t), 1); err != nil || !strings.Contains(string(mail[0].Data), "old@customer.example") {
		t.Fatalf("mail: %v, %v", mail, err)
	}
	if d := b.state(t, id); d.State != store.DeliverySent {
		t.Errorf("delivery: %+v", d)
	}
}

// A message no key of the ring opens fails at once and is not retried;
// one sealed to another delivery's reference does not open either.
func TestWorkerFailsAnUndecryptableMessage(t *testing.T) {
	t.Parallel()
	b := setupWorker(t)
	other, err := seal.New(seal.Generate())
	if err != nil {
		t.Fatal(err)
	}
	id := b.queuedUnder(t, other, workerMessage("x@customer.example"))
	err = b.work(t, delivery.SendArgs{DeliveryID: id}, 1)
	var cancel *river.JobCancelError
	if !errors.As(err, &cancel) {
		t.Fatalf("Work = %v, want a cancelled job", err)
	}
	if d := b.state(t, id); d.State != store.DeliveryFailed || d.LastError != "undecryptable" {
		t.Errorf("delivery: %+v", d)
	}
	// Sealed by this server, but moved to another delivery's row.
	id2 := b.queued(t, workerMessage("y@customer.example"))
	m2, err := b.st.DeliveryMessage(testCtx(t), id2)
	if err != nil {
		t.Fatal(err)
	}
	id3 := b.queued(t, workerMessage("z@customer.example"))
	if ok, err := b.st.SetDeliveryMessage(testCtx(t), id3, m2.Message); err != nil || !ok {
		t.Fatal(ok, err)
	}
	if err := b.work(t, delivery.SendArgs{DeliveryID: id3}, 1); !errors.As(err, &cancel) {
		t.Fatalf("a message under another reference: Work = %v, want a cancelled job", err)
	}
	if n := b.smtp.srv.Count(); n != 0 {
		t.Errorf("%d messages sent", n)
	}
}

func (b workerBundle) workBatch(t *testing.T, ids []int64, attempt int) error {
	t.Helper()
	a := delivery.SendBatchArgs{}
	for _, id := range ids {
		a.Deliveries = append(a.Deliveries, delivery.BatchedSend{DeliveryID: id})
	}
	w := &delivery.BatchWorker{Send: b.worker}
	return w.Work(testCtx(t), &river.Job[delivery.SendBatchArgs]{
		JobRow: &rivertype.JobRow{ID: 1, Attempt: attempt, MaxAttempts: delivery.MaxAttempts, State: rivertype.JobStateRunning}, Args: a,
	})
}

// A batch whose relay refuses one message for now fails, so River tries it
// again; the attempt again sends only that message: each recipient gets
// exactly one. A message refused for good fails alone and does not make
// the batch try again.
func TestBatchRetriesOnlyWhatFailed(t *testing.T) {
	t.Parallel()
	b := setupWorker(t)
	var ids []int64
	for i := range 3 {
		ids = append(ids, b.queued(t, workerMessage(fmt.Sprintf("u%d@customer.example", i))))
	}
	b.smtp.srv.FailNext(1, 451)
	if err := b.workBatch(t, ids, 1); err == nil {
		t.Fatal("a batch with a message refused for now succeeded: River would not try it again")
	}
	if _, err := b.smtp.srv.Wait(testCtx(t), 2); err != nil {
		t.Fatal(err)
	}
	queued := 0
	for _, id := range ids {
		switch d := b.state(t, id); d.State {
		case store.DeliveryQueued:
			queued++
			if d.LastError != "unavailable" || d.Attempts != 1 {
				t.Errorf("the refused delivery: %+v", d)
			}
		case store.DeliverySent:
		default:
			t.Errorf("delivery %d: %+v", id, d)
		}
	}
	if queued != 1 {
		t.Fatalf("%d deliveries still queued, want the refused one", queued)
	}
	if err := b.workBatch(t, ids, 2); err != nil {
		t.Fatalf("the batch's second attempt: %v", err)
	}
	mail, err := b.smtp.srv.Wait(testCtx(t), 3)
	if err != nil {
		t.Fatal(err)
	}
	if n := b.smtp.srv.Count(); n != 3 {
		t.Fatalf("%d messages for 3 deliveries", n)
	}
	seen := map[string]int{}
	for _, m := range mail {
		for _, to := range m.To {
			seen[to]++
		}
	}
	for i := range 3 {
		if to := fmt.Sprintf("u%d@customer.example", i); seen[to] != 1 {
			t.Errorf("%s got %d messages", to, seen[to])
		}
	}
	for _, id := range ids {
		if d := b.state(t, id); d.State != store.DeliverySent {
			t.Errorf("after the second attempt: %+v", d)
		}
	}

	// Refused for good: recorded failed, the batch does not retry for it.
	more := []int64{b.queued(t, workerMessage("v0@customer.example")), b.queued(t, workerMessage("v1@customer.example"))}
	b.smtp.srv.FailNext(1, 550)
	if err := b.workBatch(t, more, 1); err != nil {
		t.Fatalf("a batch with a message refused for good: %v", err)
	}
	states := map[string]int{}
	for _, id := range more {
		d := b.state(t, id)
		states[d.State+"/"+d.LastError]++
	}
	if states["failed/rejected"] != 1 || states["sent/"] != 1 {
		t.Errorf("outcomes: %v", states)
	}
}

// Only a flow's own send batches: a bulk's paced send, which embeds a
// SendArgs, and a SendArgs job itself are queued one by one.
func TestOnlyQueuedSendsBatch(t *testing.T) {
	t.Parallel()
	for _, j := range []any{delivery.SendArgs{}, delivery.BulkSendArgs{}, delivery.SendBatchArgs{}} {
		if _, ok := j.(store.Batchable); ok {
			t.Errorf("%T is batchable", j)
		}
	}
	q := delivery.QueuedSend{DeliveryID: 1}
	if got := q.Batch([]store.Job{q}); len(got) != 1 || got[0].(delivery.QueuedSend).DeliveryID != 1 {
		t.Errorf("a lone send batched into %v", got)
	}
	var jobs []store.Job
	for i := range 70 {
		jobs = append(jobs, delivery.QueuedSend{DeliveryID: int64(i), WebhookURL: "https://hooks.example/x"})
	}
	got := q.Batch(jobs)
	seen := map[int64]bool{}
	for _, j := range got {
		switch j := j.(type) {
		case delivery.SendBatchArgs:
			if len(j.Deliveries) > 32 {
				t.Errorf("a batch of %d", len(j.Deliveries))
			}
			for _, d := range j.Deliveries {
				if seen[d.DeliveryID] || d.WebhookURL != "https://hooks.example/x" {
					t.Errorf("delivery %+v twice or without its webhook", d)
				}
				seen[d.DeliveryID] = true
			}
		case delivery.QueuedSend:
			seen[j.DeliveryID] = true
		}
	}
	if len(seen) != 70 || len(got) != 3 {
		t.Errorf("70 sends became %d jobs holding %d deliveries", len(got), len(seen))
	}
}
