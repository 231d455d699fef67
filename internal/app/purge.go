package app

import (
	"context"
	"time"

	"github.com/riverqueue/river"

	"github.com/resetd/resetd/internal/reset"
	"github.com/resetd/resetd/internal/store"
)

// PurgeArgs is the periodic purge job (SPEC §12); it carries nothing.
type PurgeArgs struct{}

// Kind names the job.
func (PurgeArgs) Kind() string { return "purge" }

// purgeTimeout bounds one run; what it leaves, the next run takes.
const purgeTimeout = 10 * time.Minute

// purgeWorker runs the purge with the operator's retention settings.
type purgeWorker struct {
	river.WorkerDefaults[PurgeArgs]
	reset     *reset.Service
	retention reset.Retention
	done      func(reset.PurgeCounts)
}

func (w *purgeWorker) Timeout(*river.Job[PurgeArgs]) time.Duration { return purgeTimeout }

func (w *purgeWorker) Work(ctx context.Context, _ *river.Job[PurgeArgs]) error {
	c, err := w.reset.Purge(ctx, w.retention, false)
	if err != nil {
		return err
	}
	if w.done != nil {
		w.done(c)
	}
	return nil
}

// purgeJob is what the queue inserts every reset.PurgeEvery.
func purgeJob() store.Job { return PurgeArgs{} }
