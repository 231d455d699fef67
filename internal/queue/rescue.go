package queue

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"time"

	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/rivertype"
)

// rescueBatch bounds one query of the rescuer.
const rescueBatch = 100

// rescuer frees jobs of the quick-rescue kinds that a dead process left
// "running": see attemptTimeout. It runs on every process that works
// jobs, not only on River's leader; each rescue is one UPDATE guarded by
// "still running and attempted before the horizon", so two processes
// rescuing at once free a job once, and a job that finished meanwhile is
// left alone.
type rescuer struct {
	exec   riverdriver.Executor
	kinds  map[string]bool
	logger *slog.Logger
	now    func() time.Time

	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
}

func newRescuer(exec riverdriver.Executor, kinds []string, logger *slog.Logger) *rescuer {
	r := &rescuer{exec: exec, kinds: map[string]bool{}, logger: logger, now: time.Now}
	for _, k := range kinds {
		r.kinds[k] = true
	}
	return r
}

// start runs a sweep now (a restarted process frees its predecessor's
// jobs as soon as their horizon allows) and then every rescueEvery.
func (r *rescuer) start() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cancel != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	// The goroutine closes its own channel: stop clears r.done under the
	// lock, which the goroutine does not hold.
	done := make(chan struct{})
	r.cancel, r.done = cancel, done
	go func() {
		defer close(done)
		t := time.NewTicker(rescueEvery)
		defer t.Stop()
		for {
			if n, err := r.sweep(ctx); err != nil && ctx.Err() == nil {
				r.logger.Warn("queue: rescuing jobs cut off by a crash", "err", err)
			} else if n > 0 {
				r.logger.Info("queue: rescued jobs cut off by a crash", "jobs", n)
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

func (r *rescuer) stop() {
	r.mu.Lock()
	cancel, done := r.cancel, r.done
	r.cancel, r.done = nil, nil
	r.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}

// sweep frees every quick-rescue job whose attempt began more than
// rescueAfter ago and is still marked running, and says how many.
func (r *rescuer) sweep(ctx context.Context) (int, error) {
	now := r.now().UTC()
	horizon := now.Add(-rescueAfter)
	rescued := 0
	var after int64
	for {
		jobs, err := r.exec.JobGetStuck(ctx, &riverdriver.JobGetStuckParams{AfterID: after, Max: rescueBatch, StuckHorizon: horizon})
		if err != nil {
			return rescued, err
		}
		p := riverdriver.JobRescueManyParams{StuckHorizon: horizon}
		for _, j := range jobs {
			after = j.ID
			if !r.kinds[j.Kind] {
				continue
			}
			state, finalized := rescueState(j, now)
			e, err := json.Marshal(rivertype.AttemptError{At: now, Attempt: max(j.Attempt, 0), Error: "attempt cut off: its process stopped; rescued"})
			if err != nil {
				return rescued, err
			}
			p.ID = append(p.ID, j.ID)
			p.Error = append(p.Error, e)
			p.FinalizedAt = append(p.FinalizedAt, finalized)
			p.ScheduledAt = append(p.ScheduledAt, now)
			p.State = append(p.State, string(state))
		}
		if len(p.ID) > 0 {
			if _, err := r.exec.JobRescueMany(ctx, &p); err != nil {
				return rescued, err
			}
			rescued += len(p.ID)
		}
		if len(jobs) < rescueBatch {
			return rescued, nil
		}
	}
}

// rescueState is where a rescued job goes: back to the queue at once
// while it has attempts left (the cut-off attempt counts as one, as a
// failed one would); discarded when that was its last; cancelled when a
// cancellation was asked for while it ran.
func rescueState(j *rivertype.JobRow, now time.Time) (rivertype.JobState, *time.Time) {
	var meta struct {
		CancelAttemptedAt time.Time `json:"cancel_attempted_at"`
	}
	if json.Unmarshal(j.Metadata, &meta) == nil && !meta.CancelAttemptedAt.IsZero() {
		return rivertype.JobStateCancelled, &now
	}
	if j.Attempt < max(j.MaxAttempts, 0) {
		return rivertype.JobStateAvailable, nil
	}
	return rivertype.JobStateDiscarded, &now
}
