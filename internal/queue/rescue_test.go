package queue

import (
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/rivertype"

	"github.com/resetd/resetd/internal/store/postgres"
	"github.com/resetd/resetd/internal/store/postgres/pgtest"
	"github.com/resetd/resetd/internal/store/sqlite"
)

// TestRescuerFreesOnlyOrphans puts jobs in the states a crash leaves on a
// real database of each backend and runs one sweep: only a quick-rescue
// job whose attempt began before the horizon is freed, into the state its
// attempts and metadata call for; a live attempt, another kind and a job
// that is not running are left alone.
func TestRescuerFreesOnlyOrphans(t *testing.T) {
	backends := map[string]func(t *testing.T) riverdriver.Executor{
		"sqlite": func(t *testing.T) riverdriver.Executor {
			st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "q.db"), sqlite.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			if err := st.Migrate(t.Context()); err != nil {
				t.Fatal(err)
			}
			return st.QueueDriver().GetExecutor()
		},
		"postgres": func(t *testing.T) riverdriver.Executor {
			st, err := postgres.Open(t.Context(), pgtest.NewDatabase(t), postgres.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			if err := st.Migrate(t.Context()); err != nil {
				t.Fatal(err)
			}
			return st.QueueDriver().GetExecutor()
		},
	}
	for name, open := range backends {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			exec := open(t)
			ctx := t.Context()
			now := time.Now().UTC().Truncate(time.Millisecond)
			long := now.Add(-rescueAfter - time.Second)     // an attempt no live process still runs
			recent := now.Add(-rescueAfter + 3*time.Second) // may still be running
			insert := func(kind string, state rivertype.JobState, attempt int, attemptedAt time.Time, meta string) int64 {
				t.Helper()
				j, err := exec.JobInsertFull(ctx, &riverdriver.JobInsertFullParams{
					Kind: kind, State: state, Attempt: attempt, AttemptedAt: &attemptedAt, AttemptedBy: []string{"dead"},
					EncodedArgs: []byte(`{}`), Metadata: []byte(meta), MaxAttempts: 3, Priority: 1, Queue: "default", ScheduledAt: &attemptedAt,
				})
				if err != nil {
					t.Fatal(err)
				}
				return j.ID
			}
			orphan := insert("quick", rivertype.JobStateRunning, 1, long, `{}`)
			lastTry := insert("quick", rivertype.JobStateRunning, 3, long, `{}`)
			cancelled := insert("quick", rivertype.JobStateRunning, 1, long, `{"cancel_attempted_at":"`+long.Format(time.RFC3339Nano)+`"}`)
			live := insert("quick", rivertype.JobStateRunning, 1, recent, `{}`)
			slow := insert("slow", rivertype.JobStateRunning, 1, long, `{}`)
			retryable := insert("quick", rivertype.JobStateRetryable, 1, long, `{}`)

			r := newRescuer(exec, []string{"quick"}, slog.New(slog.DiscardHandler))
			r.now = func() time.Time { return now }
			n, err := r.sweep(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if n != 3 {
				t.Errorf("sweep rescued %d jobs, want 3", n)
			}
			want := map[int64]rivertype.JobState{
				orphan:    rivertype.JobStateAvailable,
				lastTry:   rivertype.JobStateDiscarded,
				cancelled: rivertype.JobStateCancelled,
				live:      rivertype.JobStateRunning,
				slow:      rivertype.JobStateRunning,
				retryable: rivertype.JobStateRetryable,
			}
			for id, state := range want {
				j, err := exec.JobGetByID(ctx, &riverdriver.JobGetByIDParams{ID: id})
				if err != nil {
					t.Fatal(err)
				}
				if j.State != state {
					t.Errorf("job %d (%s, attempt %d): %s after the sweep, want %s", id, j.Kind, j.Attempt, j.State, state)
				}
			}
			j, _ := exec.JobGetByID(ctx, &riverdriver.JobGetByIDParams{ID: orphan})
			if j.ScheduledAt.After(now.Add(time.Second)) || len(j.Errors) != 1 {
				t.Errorf("rescued job scheduled at %v with errors %v; want at once, with the cut-off attempt recorded", j.ScheduledAt, j.Errors)
			}

			// A second sweep (another replica's) finds nothing left to free.
			if n, err := r.sweep(ctx); err != nil || n != 0 {
				t.Errorf("second sweep: %d, %v; want nothing", n, err)
			}
		})
	}
}
