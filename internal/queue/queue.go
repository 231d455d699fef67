// Package queue owns the durable job queue's lifecycle: the one River
// client of a process, built once here rather than in each store backend,
// with its workers, its timing and retry policy, and Start/Stop. The
// store backend hands it its River driver (Attach); in return the backend
// gets an Inserter, through which a store transaction queues a job in its
// own driver transaction (River's InsertTx), so the job commits or
// vanishes with the state that caused it. Package store itself never sees
// River.
package queue

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/rivertype"

	"github.com/resetd/resetd/internal/config"
	"github.com/resetd/resetd/internal/store"
)

// Timing of the queue. One delivery attempt (a whole SMTP session, an
// SMS or webhook call) is cut off after attemptTimeout: River cancels the
// job's context, and the senders close their connection when it ends, so
// nothing of that attempt reaches the carrier afterwards. A job whose
// process died mid-attempt stays "running"; once rescueAfter has passed
// since that attempt began, it can only be an orphan (a live attempt has
// long been cut off), and the rescuer of any surviving or restarted
// process makes it available again at once. The gap between the two keeps
// a slow but live attempt from being rescued, and sent twice, while it
// still runs.
//
// River rescues stuck jobs too, but only on the elected leader, every 30
// seconds, and after a dead leader's lease (15 seconds) runs out: a
// message could wait 60–90 seconds. The quick rescuer runs on every
// process every rescueEvery, for the kinds named in Options.QuickRescue,
// so such a message goes out within rescueAfter + rescueEvery of its
// attempt's start plus the time to restart. Other kinds (a long purge
// with its own timeout) are left to River's rescuer, which honours a
// worker's own Timeout.
const (
	// quietPoll is the poll interval of the Quiet queues: each of River's
	// polls of SQLite costs about a millisecond of CPU, so four queues at
	// 100 ms kept an idle server at ~58 ms of CPU a second.
	quietPoll = time.Second

	attemptTimeout = 10 * time.Second
	rescueAfter    = 15 * time.Second
	rescueEvery    = 2 * time.Second
)

// Options configure the queue.
type Options struct {
	// Workers work the jobs; nil makes an insert-only queue (migrations,
	// CLI commands), which must not be started.
	Workers *river.Workers
	// MaxWorkers bounds concurrent jobs of the default queue; 0 is
	// config.QueueWorkers.
	MaxWorkers int
	// Queues are further queues worked beside the default, by name, with
	// their MaxWorkers; a job names its queue in its InsertOpts.
	Queues map[string]int
	// Quiet names queues of Queues whose jobs may wait a second after a
	// quiet spell (webhook events, a bulk's steps): where River polls
	// (Poll), it polls them every quietPoll rather than every 100 ms.
	Quiet []string
	// RetryPolicy decides when a failed job runs again; nil is River's.
	RetryPolicy river.ClientRetryPolicy
	MaxAttempts int
	// Poll is for a database without LISTEN/NOTIFY (SQLite): River then
	// polls (see New for the timing). Without it, inserts are announced
	// and polling is only the fallback.
	Poll   bool
	Logger *slog.Logger
	// Periodic jobs are inserted on a schedule (needs Workers).
	Periodic []Periodic
	// Middleware wraps inserting and working jobs (tracing).
	Middleware []rivertype.Middleware
	// QuickRescue names the job kinds whose attempts attemptTimeout
	// bounds (no Timeout of their own): a crash mid-attempt leaves such a
	// job running, and every process's rescuer frees it rescueAfter after
	// that attempt began.
	QuickRescue []string
}

// Periodic is a job inserted every Every, and once when the queue starts.
// River's elected leader inserts it, so one replica at a time does; and
// it is unique while queued or running, so two never overlap, however
// long one takes or however often leadership changes.
type Periodic struct {
	Every time.Duration
	Job   func() store.Job
}

// Backend is a store backend that can carry a queue: it names its River
// driver and takes the Inserter its transactions' Enqueue calls.
type Backend[TTx any] interface {
	QueueDriver() riverdriver.Driver[TTx]
	UseQueue(store.Inserter[TTx])
}

// Queue is the River client over one backend's driver.
type Queue[TTx any] struct {
	client  *river.Client[TTx]
	rescuer *rescuer
	// copyFree: insert without COPY FROM (see InsertTx).
	copyFree bool
}

var _ store.Inserter[any] = (*Queue[any])(nil)

// Attach builds the queue on b's driver and hands it to b, so b's
// transactions can Enqueue. Call it once, before b's first Update.
func Attach[TTx any](b Backend[TTx], o Options) (*Queue[TTx], error) {
	q, err := New(b.QueueDriver(), o)
	if err != nil {
		return nil, err
	}
	b.UseQueue(q)
	return q, nil
}

// New builds the queue on a River driver.
func New[TTx any](driver riverdriver.Driver[TTx], o Options) (*Queue[TTx], error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	cfg := &river.Config{
		Logger:               o.Logger,
		Workers:              o.Workers,
		MaxAttempts:          o.MaxAttempts,
		RetryPolicy:          o.RetryPolicy,
		JobTimeout:           attemptTimeout,
		RescueStuckJobsAfter: rescueAfter,
		Middleware:           o.Middleware,
	}
	if o.Poll {
		// While jobs flow, fetches come every FetchCooldown (a finished
		// job or a full fetch calls for the next); the poll only finds
		// the first job after a quiet spell. Before the SQLite store pinned
		// its connections' query plans, River's fetch was prepared
		// again on nearly every run (about 1 ms of CPU), and a 50 ms poll
		// cost an idle server 48 ms of CPU a second; 100 ms cost 29, for
		// at most 50 ms more lag on a lone message.
		cfg.FetchCooldown = 20 * time.Millisecond
		cfg.FetchPollInterval = 100 * time.Millisecond
	}
	if o.Workers != nil {
		n := o.MaxWorkers
		if n <= 0 {
			n = config.QueueWorkers
		}
		cfg.Queues = map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: n}}
		for name, workers := range o.Queues {
			qc := river.QueueConfig{MaxWorkers: workers}
			if o.Poll && slices.Contains(o.Quiet, name) {
				qc.FetchPollInterval = quietPoll
			}
			cfg.Queues[name] = qc
		}
		for _, p := range o.Periodic {
			cfg.PeriodicJobs = append(cfg.PeriodicJobs, river.NewPeriodicJob(river.PeriodicInterval(p.Every),
				func() (river.JobArgs, *river.InsertOpts) {
					return p.Job(), &river.InsertOpts{UniqueOpts: river.UniqueOpts{ByState: []rivertype.JobState{
						rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRunning,
						rivertype.JobStateRetryable, rivertype.JobStateScheduled,
					}}}
				}, &river.PeriodicJobOpts{RunOnStart: true}))
		}
	}
	c, err := river.NewClient(driver, cfg)
	if err != nil {
		return nil, fmt.Errorf("queue: river client: %w", err)
	}
	q := &Queue[TTx]{client: c, copyFree: !o.Poll}
	if o.Workers != nil && len(o.QuickRescue) > 0 {
		q.rescuer = newRescuer(driver.GetExecutor(), o.QuickRescue, o.Logger)
	}
	return q, nil
}

// InsertTx queues job in the driver transaction tx, one row with its
// insert notification. On SQLite it takes River's fast path
// (InsertManyFastTx), which does not read the inserted row back (nothing
// here uses it; the read-back was a quarter of the insert's cost there).
// On PostgreSQL River's fast path is COPY FROM, a round trip per message
// of the copy protocol, and one row cost ~1 ms of the server's time where
// River's INSERT … RETURNING (InsertTx) costs ~0.1: the sends' job insert
// was PostgreSQL's most expensive statement.
func (q *Queue[TTx]) InsertTx(ctx context.Context, tx TTx, job store.Job) error {
	var err error
	if q.copyFree {
		_, err = q.client.InsertTx(ctx, tx, job, nil)
	} else {
		_, err = q.client.InsertManyFastTx(ctx, tx, []river.InsertManyParams{{Args: job}})
	}
	if err != nil {
		return fmt.Errorf("queue: insert: %w", err)
	}
	return nil
}

// Start starts working jobs with the workers given at New.
func (q *Queue[TTx]) Start(ctx context.Context) error {
	if err := q.client.Start(ctx); err != nil {
		return fmt.Errorf("queue: start: %w", err)
	}
	if q.rescuer != nil {
		q.rescuer.start()
	}
	return nil
}

// Stop stops fetching jobs and waits for running ones (bounded by ctx).
func (q *Queue[TTx]) Stop(ctx context.Context) error {
	if q.rescuer != nil {
		q.rescuer.stop()
	}
	if err := q.client.Stop(ctx); err != nil {
		return fmt.Errorf("queue: stop: %w", err)
	}
	return nil
}
