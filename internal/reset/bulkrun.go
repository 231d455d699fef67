package reset

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/resetd/resetd/internal/delivery"
	"github.com/resetd/resetd/internal/store"
)

// The two jobs of a bulk. Each runs for a slice and then asks to run
// again (the queue snoozes it), so no job holds a worker or looks stuck
// for long, and each keeps its place in the bulk's row: the walk its
// cursor over the users, the sending its cursor over the members and its
// pacing clock. A crash between two batches loses nothing (the next run
// starts from the last committed cursor) and repeats nothing (a batch and
// its cursor commit together; a member is a primary key).

// Timing and sizes of a bulk's jobs.
const (
	// bulkSlice is how long one run of a bulk job works before it yields.
	bulkSlice = 5 * time.Second
	// walkBatch is how many users one walk transaction adds as members:
	// large enough for tens of thousands a second, small enough that the
	// one SQLite writer is held for milliseconds.
	walkBatch = 2000
	// bulkTick is the least time between two send batches: at 50/s a
	// batch holds about five members.
	bulkTick = 100 * time.Millisecond
	// bulkBurst bounds how far a sender that fell behind (a busy
	// machine, the pause between two runs of its job, a restart) catches
	// up at once: the rate is never exceeded by more than this much of it.
	bulkBurst = time.Second
	// bulkMaxBatch bounds the members one send transaction decides.
	bulkMaxBatch = 500
	// bulkBacklogSeconds: sending waits while more than this many seconds
	// of the rate are queued and not yet sent (a slow or failing relay),
	// so the queue never holds the whole bulk.
	bulkBacklogSeconds = 10
)

// bulkBacklog is how many of a bulk's messages may wait to be sent.
func bulkBacklog(rate int) int { return max(rate*bulkBacklogSeconds, 100) }

// RunBulkWalk adds the institution's users as members of the bulk, batch
// by batch, for a slice; more says the walk has not reached the end.
func (s *Service) RunBulkWalk(ctx context.Context, institutionID, id string) (more bool, err error) {
	until := time.Now().Add(bulkSlice)
	for time.Now().Before(until) {
		done := false
		err := s.store.Update(ctx, func(tx store.Tx) error {
			b, err := tx.Bulk.LockBulk(ctx, institutionID, id)
			if err != nil {
				return err
			}
			if b.State != store.BulkRunning || b.Walked {
				done = true
				return nil
			}
			n, last, err := tx.Bulk.WalkBulk(ctx, b.ID, institutionID, b.WalkCursor, walkBatch)
			if err != nil {
				return err
			}
			if last == "" {
				b.Walked, done = true, true
			} else {
				b.WalkCursor, b.Total = last, b.Total+n
			}
			b.UpdatedAt = s.now()
			return tx.Bulk.SaveBulk(ctx, b)
		})
		if isNotFound(err) {
			return false, nil // the institution, and its bulks, are gone
		}
		if err != nil || done {
			return false, err
		}
	}
	return true, nil
}

// RunBulkSend sends the bulk's members at its rate for a slice. It
// returns how long to wait before the next slice, and finished once the
// bulk is done or cancelled.
func (s *Service) RunBulkSend(ctx context.Context, institutionID, id string) (wait time.Duration, finished bool, err error) {
	until := time.Now().Add(bulkSlice)
	for {
		wait, finished, err = s.bulkTick(ctx, institutionID, id)
		if err != nil || finished || time.Now().Add(wait).After(until) {
			return wait, finished, err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return 0, false, ctx.Err()
		case <-t.C:
		}
	}
}

// bulkTick decides the members that are due: it reads and renders
// outside the write transaction, then decides them in one transaction
// that reads the bulk, the institution and the users again.
func (s *Service) bulkTick(ctx context.Context, institutionID, id string) (time.Duration, bool, error) {
	b, err := s.store.Bulk(ctx, institutionID, id)
	if isNotFound(err) {
		return 0, true, nil
	}
	if err != nil {
		return 0, false, err
	}
	if b.State != store.BulkRunning {
		return 0, true, nil
	}
	var in store.Institution
	var st Settings
	if err := s.store.View(ctx, func(tx store.ReadTx) (err error) {
		in, st, err = s.institutionIn(ctx, tx, institutionID)
		return err
	}); err != nil {
		if isNotFound(err) || errors.Is(err, ErrNotFound) {
			return 0, true, nil
		}
		return 0, false, err
	}
	if b.Method == delivery.ChannelSMS && s.noSMS {
		// This process has no SMS carrier: it leaves the bulk to one
		// that has, or to itself once configured, and skips nobody.
		return 0, false, fmt.Errorf("reset: bulk %s: %w", b.ID, ErrChannelUnavailable)
	}
	rate := bulkRate(b, st)
	// Pacing follows the wall clock (the relay's time), the rules the
	// service's clock.
	now, wall := s.now(), time.Now()
	next := b.NextAt
	if floor := wall.Add(-bulkBurst); next.Before(floor) {
		next = floor
	}
	if wall.Before(next) {
		return max(next.Sub(wall), bulkTick), false, nil
	}
	due := min(int(wall.Sub(next).Seconds()*float64(rate))+1, bulkMaxBatch)
	ids, err := s.store.BulkMembersAfter(ctx, b.ID, b.SendCursor, due)
	if err != nil {
		return 0, false, err
	}
	if len(ids) == 0 {
		if !b.Walked {
			return 2 * bulkTick, false, nil // the walk is behind
		}
		return s.finishBulk(ctx, institutionID, id)
	}
	var users map[string]store.User
	if err := s.store.View(ctx, func(tx store.ReadTx) (err error) {
		users, err = tx.UsersByID(ctx, institutionID, ids)
		return err
	}); err != nil {
		return 0, false, err
	}
	prepared := make(map[string]preparedLink, len(ids))
	for _, uid := range ids {
		u, ok := users[uid]
		if !ok {
			continue
		}
		if _, err := s.linkTarget(st, u, b.Method, now); err != nil {
			continue // skipped, as the write decides again
		}
		p, err := s.prepareLink(st, u, b.Method, now)
		if err != nil {
			return 0, false, err
		}
		prepared[uid] = p
	}
	var after time.Time
	stalled := false
	issued := 0
	err = s.store.Update(ctx, func(tx store.Tx) error {
		now := s.now()
		cur, err := tx.Bulk.LockBulk(ctx, institutionID, id)
		if err != nil {
			return err
		}
		if cur.State != store.BulkRunning || cur.SendCursor != b.SendCursor {
			return errStale // cancelled, or another run of the job moved on
		}
		in2, st2, err := s.institutionIn(ctx, tx, institutionID)
		if err != nil {
			return err
		}
		if !sameSettings(in, in2) {
			return errStale
		}
		fresh, err := tx.UsersByID(ctx, institutionID, ids)
		if err != nil {
			return err
		}
		queued, err := tx.Bulk.BulkQueued(ctx, cur.ID)
		if err != nil {
			return err
		}
		room := bulkBacklog(rate) - queued
		issued = 0
		for _, uid := range ids {
			m := store.BulkMember{BulkID: cur.ID, UserID: uid}
			u, exists := fresh[uid]
			if !exists {
				m.Outcome = SkipNotFound
			} else {
				to, err := s.linkTarget(st2, u, cur.Method, now)
				m.Outcome = skipReason(err)
				if m.Outcome == "" && err != nil {
					return err
				}
				if m.Outcome == "" {
					p, ok := prepared[uid]
					if !ok || snapshotOf(in, users[uid], true) != snapshotOf(in2, u, true) || issued >= room {
						// Rendered for another record, or the relay is
						// behind: this member waits for the next batch.
						stalled = issued == 0
						break
					}
					// The per-user cap of every send, and the per-number
					// cap of every SMS, hold for a bulk too: starting and
					// cancelling bulks sends no user more than a single
					// send could.
					err := s.limit(ctx, tx, now, "sendsPerUserHour", sendKey(institutionID, u.ID), st2.SendsPerUserHour, time.Hour)
					if err == nil && cur.Method == delivery.ChannelSMS {
						err = s.smsLimit(ctx, tx, now, institutionID, to)
					}
					if err != nil {
						var lim *LimitError
						if !errors.As(err, &lim) {
							return err
						}
						m.Outcome = SkipRateLimited
					}
					if m.Outcome == "" {
						if m.DeliveryID, err = s.issueBulkLink(ctx, tx, now, st2, cur, u, p); err != nil {
							return err
						}
						m.Outcome = "sent"
						issued++
						cur.Issued++
					}
				}
			}
			if m.Outcome != "sent" {
				if cur.Skipped == nil {
					cur.Skipped = map[string]int{}
				}
				cur.Skipped[m.Outcome]++
			}
			if err := tx.Bulk.SetBulkMember(ctx, m); err != nil {
				return err
			}
			outcome := "ok"
			if m.Outcome != "sent" {
				outcome = "skipped_" + m.Outcome
			}
			if err := s.audit(ctx, tx, now, Actor{ClientID: cur.ClientID, TransactionID: cur.ID}, "reset.bulk."+cur.Method, institutionID, uid, outcome); err != nil {
				return err
			}
			cur.SendCursor = uid
		}
		cur.NextAt = next.Add(time.Duration(float64(issued) * float64(time.Second) / float64(rate)))
		cur.UpdatedAt = now
		after = cur.NextAt
		return tx.Bulk.SaveBulk(ctx, cur)
	})
	switch {
	case errors.Is(err, errStale):
		return bulkTick, false, nil
	case err != nil:
		return 0, false, err
	}
	for range issued {
		s.observer.ResetIssued(b.Method, "bulk")
	}
	if stalled {
		return 5 * bulkTick, false, nil
	}
	return max(time.Until(after), bulkTick), false, nil
}

// skipReason names why a member gets no message, from linkTarget's
// refusal ("" for none, or for an error that is no reason to skip).
func skipReason(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrUserDisabled):
		return SkipDisabled
	case errors.Is(err, ErrNoContact):
		return SkipNoContact
	case errors.Is(err, ErrSMSNotAllowed):
		return SkipSMSRefused
	case errors.Is(err, ErrLocked):
		return SkipLocked
	case errors.Is(err, ErrContactCooldown):
		return SkipCooldown
	}
	return ""
}

// issueBulkLink gives one member a link as an admin reset does — the
// user's older links die, the link's hash and its dispute token are
// stored, its delivery row and sealed send job are queued (on the bulk's
// own queue) and the reset.requested event — and returns the delivery.
// The per-user send cap does not apply: a bulk sends one link per user.
func (s *Service) issueBulkLink(ctx context.Context, tx store.Tx, now time.Time, st Settings, b store.Bulk, u store.User, p preparedLink) (int64, error) {
	// Older links die as the new link and its dispute token are written:
	// one statement, as a single send.
	if err := tx.ReplaceTokens(ctx, u.InstitutionID, u.ID, now, []string{PurposeLink, PurposeSelfService},
		store.Token{Hash: p.hash, InstitutionID: u.InstitutionID, UserID: u.ID, Purpose: PurposeLink,
			CreatedAt: now, ExpiresAt: now.Add(time.Duration(st.Expiration) * time.Second)}, p.dispute.token(u, now)); err != nil {
		return 0, err
	}
	m := p.message
	dest := MaskEmail(m.To)
	if m.Channel == delivery.ChannelSMS {
		dest = MaskPhone(m.To)
	}
	ref, sealed, err := delivery.SealMessage(s.key, m)
	if err != nil {
		return 0, err
	}
	id, err := tx.Bulk.InsertBulkDelivery(ctx, store.Delivery{InstitutionID: u.InstitutionID, UserID: u.ID, Kind: delivery.KindResetLink,
		Channel: m.Channel, Destination: dest, State: store.DeliveryQueued, CreatedAt: now, MessageRef: ref, Message: sealed}, b.ID)
	if err != nil {
		return 0, err
	}
	args := delivery.SendArgs{DeliveryID: id, InstitutionID: u.InstitutionID, UserID: u.ID, WebhookURL: st.WebhookURL}
	if err := tx.Enqueue(ctx, delivery.BulkSendArgs{SendArgs: args, BulkID: b.ID}); err != nil {
		return 0, err
	}
	if err := s.emit(ctx, tx, now, st, u.InstitutionID, u.ID, delivery.EventResetRequested, map[string]any{"flow": "bulk", "channel": p.method, "bulkId": b.ID}); err != nil {
		return 0, err
	}
	return id, nil
}

// finishBulk marks the bulk done once every member is decided and none of
// its messages waits to be sent, with an audit record of its counts.
func (s *Service) finishBulk(ctx context.Context, institutionID, id string) (time.Duration, bool, error) {
	finished := false
	err := s.store.Update(ctx, func(tx store.Tx) error {
		now := s.now()
		b, err := tx.Bulk.LockBulk(ctx, institutionID, id)
		if err != nil {
			return err
		}
		if b.State != store.BulkRunning {
			finished = true
			return nil
		}
		rest, err := tx.Bulk.BulkMembersAfter(ctx, b.ID, b.SendCursor, 1)
		if err != nil || len(rest) > 0 || !b.Walked {
			return err
		}
		if q, err := tx.Bulk.BulkQueued(ctx, b.ID); err != nil || q > 0 {
			// Done anyway when no send job is left to send them: their
			// outcome could not be recorded (the database was too busy as
			// the relay answered), and nothing will change them.
			if err != nil {
				return err
			}
			if live, err := tx.Bulk.BulkLiveSends(ctx, b.ID); err != nil || live > 0 {
				return err
			}
			s.logger.WarnContext(ctx, "bulk done with messages whose outcome was not recorded", "bulk_id", b.ID, "queued", q)
		}
		// Counted under the bulk's lock, once no message waits: the
		// counts the record gives are the final ones.
		c, err := tx.Bulk.BulkCounts(ctx, b.ID)
		if err != nil {
			return err
		}
		b.State, b.UpdatedAt, b.FinishedAt = store.BulkDone, now, now
		if err := tx.Bulk.SaveBulk(ctx, b); err != nil {
			return err
		}
		finished = true
		return s.audit(ctx, tx, now, Actor{ClientID: b.ClientID, TransactionID: b.ID}, "reset.bulk.done", institutionID, "",
			fmt.Sprintf("bulk=%s total=%d sent=%d failed=%d skipped=%d cancelled=%d", b.ID, b.Total, c.Sent+c.Logged, c.Failed, skippedOf(b.Skipped).Total(), c.Cancelled))
	})
	if err != nil {
		return 0, false, err
	}
	if finished {
		return 0, true, nil
	}
	return time.Second, false, nil
}
