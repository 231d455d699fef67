package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/resetd/resetd/internal/delivery"
	"github.com/resetd/resetd/internal/reset"
)

// bulkWorker runs the two steps of a bulk forced reset: the walk of the
// directory and the paced sending. A run works for a few seconds
// (reset.RunBulkWalk, reset.RunBulkSend), well inside the queue's attempt
// timeout, and a step that is not finished snoozes (River keeps the one
// job row; a short snooze makes it available again at once), so a bulk
// never holds a worker for long and a crash mid-run is rescued as quickly
// as a message.
//
// A step that fails (the database away, an SMS bulk on a process without
// an SMS carrier) is logged and snoozed, never retried to exhaustion: a
// bulk ends only done or cancelled.
type bulkWorker struct {
	river.WorkerDefaults[delivery.BulkRunArgs]
	reset  *reset.Service
	logger *slog.Logger
}

// bulkRetry is how long a failed step waits before it runs again.
const bulkRetry = 5 * time.Second

func (w *bulkWorker) Work(ctx context.Context, job *river.Job[delivery.BulkRunArgs]) error {
	err := w.step(ctx, job.Args)
	var snooze *rivertype.JobSnoozeError
	var cancel *rivertype.JobCancelError
	if err == nil || errors.As(err, &snooze) || errors.As(err, &cancel) {
		return err
	}
	w.logger.WarnContext(ctx, "bulk step failed; it runs again shortly", "bulk_id", job.Args.BulkID, "step", job.Args.Step, "err", err)
	return river.JobSnooze(bulkRetry)
}

func (w *bulkWorker) step(ctx context.Context, a delivery.BulkRunArgs) error {
	switch a.Step {
	case delivery.BulkStepWalk:
		more, err := w.reset.RunBulkWalk(ctx, a.InstitutionID, a.BulkID)
		if err != nil {
			return err
		}
		if more {
			return river.JobSnooze(0)
		}
		return nil
	case delivery.BulkStepSend:
		wait, finished, err := w.reset.RunBulkSend(ctx, a.InstitutionID, a.BulkID)
		if err != nil {
			return err
		}
		if !finished {
			return river.JobSnooze(wait)
		}
		return nil
	}
	return river.JobCancel(fmt.Errorf("app: bulk job with unknown step %q", a.Step))
}
