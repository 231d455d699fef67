package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/resetd/resetd/internal/store"
)

// maxGroup bounds how many Update calls share one commit, so the first of
// a group never waits for more than that many others' work.
const maxGroup = 64

// errGroupAborted is returned to every member of a group whose
// transaction SQLite ended on its own (an interrupted statement rolls the
// whole transaction back): none of their writes were kept.
var errGroupAborted = errors.New("sqlite: group transaction aborted")

// committer is group commit for the one write connection. With
// synchronous=FULL every commit waits for an fsync, and one connection
// commits at most a few thousand times a second however small the
// transactions are. So concurrent Update calls take turns running their
// function inside one open transaction, each in its own savepoint (an
// error rolls back that caller's writes only), and the last caller of the
// turn — the one that finds nobody queued behind it — commits for all.
// Each caller returns only after the commit that holds its writes, so an
// Update that returned nil is as durable as before; what changes is that
// one fsync pays for many.
//
// Callers in one group run one after another and see the writes of those
// before them, exactly as if each had committed before the next began. If
// the group's commit fails, every caller of the group gets the error,
// including those whose function failed (their answer may rest on writes
// that were lost).
type committer struct {
	db *sql.DB
	s  *Store

	mu      sync.Mutex // held while a caller uses the open transaction
	tx      *sql.Tx    // the open group transaction; nil between groups
	g       *group
	waiting atomic.Int32 // callers queued for mu

	// The savepoint statements, prepared once on the write connection
	// (SQLite's parser is a visible share of a request's CPU).
	savepoint, rollbackTo, release *sql.Stmt
}

func newCommitter(ctx context.Context, db *sql.DB, s *Store) (*committer, error) {
	c := &committer{db: db, s: s}
	for q, dst := range map[string]**sql.Stmt{
		`SAVEPOINT resetd_update`: &c.savepoint, `ROLLBACK TO resetd_update`: &c.rollbackTo, `RELEASE resetd_update`: &c.release,
	} {
		st, err := db.PrepareContext(ctx, q)
		if err != nil {
			return nil, fmt.Errorf("sqlite: prepare %q: %w", q, err)
		}
		*dst = st
	}
	return c, nil
}

// group is the callers sharing one transaction.
type group struct {
	n int
	// batched are the batchable jobs of the group's callers whose
	// functions succeeded, in order.
	batched []batchedJob
	done    chan struct{} // closed when the group is committed or aborted
	err     error         // the commit's outcome, set before done closes
}

func (c *committer) update(ctx context.Context, fn func(store.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.waiting.Add(1)
	c.mu.Lock()
	c.waiting.Add(-1)
	first := c.tx == nil
	if first {
		// The group outlives this caller's context: another caller's
		// cancellation must not roll back everyone's work.
		tx, err := c.db.BeginTx(context.WithoutCancel(ctx), nil)
		if err != nil {
			c.mu.Unlock()
			return fmt.Errorf("sqlite: begin: %w", err)
		}
		c.tx, c.g = tx, &group{done: make(chan struct{})}
	}
	g := c.g
	g.n++
	var fnErr, aborted error
	var p any
	var batched []batchedJob
	if first {
		// The first caller needs no savepoint: its failure rolls back the
		// whole transaction, which holds nothing else yet.
		fnErr, p = c.call(fn, &batched)
		if fnErr != nil {
			tx := c.tx
			c.tx, c.g = nil, nil
			_ = tx.Rollback()
			close(g.done)
			c.mu.Unlock()
			if p != nil {
				panic(p)
			}
			return fnErr
		}
	} else {
		fnErr, aborted, p = c.runInSavepoint(ctx, fn, &batched)
	}
	if fnErr == nil && aborted == nil {
		g.batched = append(g.batched, batched...)
	}
	if aborted != nil {
		c.endLocked(aborted)
	} else if c.waiting.Load() == 0 || g.n >= maxGroup {
		c.endLocked(nil)
	}
	c.mu.Unlock()
	if p != nil {
		panic(p)
	}
	<-g.done
	if g.err != nil {
		return g.err
	}
	return fnErr
}

// call runs fn on the open transaction, recovering a panic (re-raised by
// the caller once the lock is released).
func (c *committer) call(fn func(store.Tx) error, batched *[]batchedJob) (err error, p any) {
	defer func() {
		if r := recover(); r != nil {
			p = r
			err = fmt.Errorf("sqlite: update panicked: %v", r)
		}
	}()
	return fn(writeTx(&txn{q: c.tx, tx: c.tx, s: c.s, batched: batched})), nil
}

func (c *committer) stmt(ctx context.Context, s *sql.Stmt) error {
	_, err := c.tx.StmtContext(ctx, s).ExecContext(ctx)
	return err
}

// runInSavepoint runs fn in a savepoint of the open transaction. aborted
// is set when the transaction itself is gone or unusable.
func (c *committer) runInSavepoint(ctx context.Context, fn func(store.Tx) error, batched *[]batchedJob) (fnErr, aborted error, p any) {
	bg := context.WithoutCancel(ctx)
	if err := c.stmt(bg, c.savepoint); err != nil {
		return nil, fmt.Errorf("%w: savepoint: %v", errGroupAborted, err), nil
	}
	fnErr, p = c.call(fn, batched)
	if fnErr != nil {
		// ROLLBACK TO keeps the savepoint on the stack; RELEASE pops it.
		if err := c.stmt(bg, c.rollbackTo); err != nil {
			return fnErr, fmt.Errorf("%w: %v", errGroupAborted, err), p
		}
	}
	if err := c.stmt(bg, c.release); err != nil {
		// "no such savepoint": SQLite rolled the transaction back (an
		// interrupted statement does that), and the group with it.
		return fnErr, fmt.Errorf("%w: %v", errGroupAborted, err), p
	}
	return fnErr, nil, p
}

// endLocked commits (or, after an abort, rolls back) the open group and
// wakes its callers.
func (c *committer) endLocked(aborted error) {
	tx, g := c.tx, c.g
	c.tx, c.g = nil, nil
	err := aborted
	if err == nil {
		err = c.insertBatched(tx, g.batched)
	}
	if err != nil {
		_ = tx.Rollback()
	} else if cerr := tx.Commit(); cerr != nil {
		err = fmt.Errorf("sqlite: commit: %w", cerr)
	}
	g.err = err
	close(g.done)
}

// insertBatched queues the group's batchable jobs as the group commits,
// each kind's as the jobs its Batch makes of them: the sends of a group
// become one job to fetch and complete rather than one each. Should the
// insert fail, the group rolls back and every caller gets the error, as
// when its commit fails.
func (c *committer) insertBatched(tx *sql.Tx, jobs []batchedJob) (err error) {
	if len(jobs) == 0 {
		return nil
	}
	// Batch is the jobs' own code, run while the group holds the write
	// connection: a panic in it must fail the group, not leave the lock
	// held.
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("sqlite: batching jobs panicked: %v", r)
		}
	}()
	var kinds []string
	byKind := map[string][]batchedJob{}
	for _, j := range jobs {
		k := j.job.Kind()
		if _, ok := byKind[k]; !ok {
			kinds = append(kinds, k)
		}
		byKind[k] = append(byKind[k], j)
	}
	for _, k := range kinds {
		list := byKind[k]
		in := make([]store.Job, len(list))
		for i, j := range list {
			in[i] = j.job
		}
		out := list[0].job.(store.Batchable).Batch(in)
		for i, j := range out {
			// A job left as it was is queued in its caller's context; a
			// batch in the first one's (a job has one trace parent).
			ctx := list[0].ctx
			if len(out) == len(in) {
				ctx = list[i].ctx
			}
			if err := c.s.queue.InsertTx(ctx, tx, j); err != nil {
				return fmt.Errorf("sqlite: enqueue: %w", err)
			}
		}
	}
	return nil
}
