package app

import (
	"context"
	"fmt"
	"time"

	"github.com/riverqueue/river"

	"github.com/resetd/resetd/internal/delivery"
	"github.com/resetd/resetd/internal/reset"
)

// bulkTimeout bounds one run of a bulk's job: a run works for a couple of
// seconds (reset.RunBulkWalk, reset.RunBulkSend) and then snoozes.
const bulkTimeout = 20 * time.Second

// bulkWorker runs the two steps of a bulk forced reset: the walk of the
// directory and the paced sending. A step that is not finished snoozes
// (River keeps the one job row; a short snooze makes it available again
// at once), so a bulk never holds a worker for long.
type bulkWorker struct {
	river.WorkerDefaults[delivery.BulkRunArgs]
	reset *reset.Service
}

func (w *bulkWorker) Timeout(*river.Job[delivery.BulkRunArgs]) time.Duration { return bulkTimeout }

func (w *bulkWorker) Work(ctx context.Context, job *river.Job[delivery.BulkRunArgs]) error {
	a := job.Args
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
