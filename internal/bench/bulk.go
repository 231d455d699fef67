package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"github.com/resetd/resetd/internal/auth"
	"github.com/resetd/resetd/internal/reset"
	"github.com/resetd/resetd/internal/server"
	"github.com/resetd/resetd/internal/store"
)

// The bulk flow: a bulk forced reset of every seeded user, measured from
// outside. It reports how fast the bulk is queued (every user a member,
// walked in batches), how fast it drains against its configured rate,
// and the mail lag of ordinary resets of another institution sent by a
// few closed-loop clients while it drains. The bulk is cancelled at the
// end, so a later run on the same --db starts afresh.

// BulkResult is the bulk flow's figures.
type BulkResult struct {
	Users int `json:"users"`
	// EnqueueSeconds is from the accepted POST to every user a member.
	EnqueueSeconds float64 `json:"enqueue_seconds"`
	EnqueuePerSec  float64 `json:"enqueue_users_per_sec"`
	RatePerSec     int     `json:"configured_rate_per_sec"`
	// DrainPerSec is messages the SMTP server received per second over
	// DrainSeconds, measured once the bulk was queued.
	DrainSeconds float64 `json:"drain_seconds"`
	DrainPerSec  float64 `json:"drain_per_sec"`
	DrainRatio   float64 `json:"drain_ratio"`
	// Ordinary is the lag of ordinary resets sent meanwhile.
	Ordinary        *Lag    `json:"ordinary_lag"`
	OrdinaryPerSec  float64 `json:"ordinary_per_sec"`
	OrdinaryClients int     `json:"ordinary_clients"`
}

// Bulk flow sizes.
const (
	// otherInstitution holds the users of the ordinary resets.
	otherInstitution = "bench-other"
	otherUsers       = 500
	ordinaryClients  = 4
	// bulkMinDrain is the least drain measured: long enough for ±5% at
	// 50/s to mean something.
	bulkMinDrain = 20 * time.Second
)

func otherEmail(i int) string { return fmt.Sprintf("o%05d@other.bench.example", i) }

func (t *target) bulkFlow(ctx context.Context) (FlowResult, error) {
	res := FlowResult{Flow: FlowBulk, Concurrency: ordinaryClients, RSSScope: t.rssScope()}
	if t.app == nil {
		return res, errors.New("the bulk flow runs against the in-process server only")
	}
	rate := t.cfg.BulkRate
	if rate <= 0 {
		rate = reset.DefaultSettings("").BulkRatePerSecond
	}
	if err := t.bulkSetup(ctx, rate); err != nil {
		return res, err
	}
	t.sink.resetStats()
	t.sink.mu.Lock()
	t.sink.ignore = func(rcpt string) bool { return strings.HasSuffix(rcpt, "@bench.example") }
	t.sink.mu.Unlock()
	defer func() {
		t.sink.mu.Lock()
		t.sink.ignore = nil
		t.sink.mu.Unlock()
	}()
	runtime.GC()
	t.resetRSS()

	start := time.Now()
	id, err := t.startBulk(ctx)
	if err != nil {
		return res, err
	}
	defer t.app.Reset.CancelBulk(context.WithoutCancel(ctx), reset.Actor{ClientID: "bench"}, t.inst, id) //nolint:errcheck // best effort
	var st reset.BulkStatus
	for {
		if st, err = t.app.Reset.BulkStatus(ctx, t.inst, id); err != nil {
			return res, err
		}
		if st.Walked || st.Finished() {
			break
		}
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-time.After(100 * time.Millisecond): // polling the bulk's row
		}
	}
	b := &BulkResult{Users: st.Total, EnqueueSeconds: time.Since(start).Seconds(), RatePerSec: rate, OrdinaryClients: ordinaryClients}
	b.EnqueuePerSec = float64(st.Total) / b.EnqueueSeconds
	t.cfg.progress("  bulk of %d users queued in %.1f s (%.0f users/s); draining at %d/s with ordinary resets beside it…", st.Total, b.EnqueueSeconds, b.EnqueuePerSec, rate)

	// The drain, with ordinary resets of another institution beside it.
	before := t.sink.ignoredCount()
	d := max(t.cfg.Duration, bulkMinDrain)
	samples, elapsed := closedLoop(ctx, ordinaryClients, d, t.ordinaryFlow())
	b.DrainSeconds = elapsed.Seconds()
	b.DrainPerSec = float64(t.sink.ignoredCount()-before) / elapsed.Seconds()
	lag := t.drain(ctx)
	b.DrainRatio = b.DrainPerSec / float64(rate)
	b.Ordinary = lag
	res.Seconds = elapsed.Seconds()
	res.Ops = summarise(samples, elapsed)
	if len(res.Ops) > 0 {
		b.OrdinaryPerSec = res.Ops[0].RPS
	}
	res.Delivery, res.Bulk = lag, b
	res.PeakRSSMiB = t.peakRSSMiB()
	if final, err := t.app.Reset.BulkStatus(ctx, t.inst, id); err == nil && final.Finished() {
		res.Note = fmt.Sprintf("the bulk finished (%s) before the drain ended: the drain rate is low; use more --users", final.State)
	}
	return res, nil
}

// bulkSetup sets the rate, makes the institution of the ordinary resets
// (once per --db), and cancels a bulk an interrupted run left running.
func (t *target) bulkSetup(ctx context.Context, rate int) error {
	a := t.app
	actor := reset.Actor{ClientID: "bench"}
	if _, err := a.Reset.UpdateSettings(ctx, actor, t.inst, reset.SettingsPatch{BulkRatePerSecond: &rate}); err != nil {
		return err
	}
	err := a.Store.View(ctx, func(tx store.ReadTx) error {
		_, err := tx.User(ctx, otherInstitution, fmt.Sprintf("o%05d", otherUsers-1))
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		if _, err := a.Reset.PutInstitution(ctx, otherInstitution, "Other Bench Bank", []string{t.base + "/reset"}, nil, false); err != nil {
			return err
		}
		zero := 0
		if _, err := a.Reset.UpdateSettings(ctx, actor, otherInstitution, reset.SettingsPatch{SendsPerUserHour: &zero}); err != nil {
			return err
		}
		rows := make([]reset.ImportRow, 0, otherUsers)
		for i := range otherUsers {
			rows = append(rows, reset.ImportRow{Line: i + 2, UserID: fmt.Sprintf("o%05d", i), Username: fmt.Sprintf("other%05d", i), Email: otherEmail(i)})
		}
		if _, err := a.Reset.ImportUsers(ctx, actor, otherInstitution, rows, reset.ImportOptions{}); err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	// A client of the other institution, and its token.
	id, secret, err := a.Auth.CreateClient(ctx, otherInstitution, "resetd bench (ordinary resets beside a bulk)", []string{auth.ScopeResetWrite})
	if err != nil {
		return err
	}
	mine, myID, mySecret := t.bearer, t.clientID, t.clientSecret
	t.clientID, t.clientSecret = id, secret
	err = t.getBearer(ctx)
	t.otherBearer, t.bearer, t.clientID, t.clientSecret = t.bearer, mine, myID, mySecret
	return err
}

// startBulk starts the bulk of every user over HTTP, cancelling one an
// interrupted run left running.
func (t *target) startBulk(ctx context.Context) (string, error) {
	path := server.P + "/institutions/" + t.inst + "/password/reset-bulk"
	for range 2 {
		st, body, _, err := t.do(ctx, http.MethodPost, path, []byte(`{"method":"email","all":true}`), t.auth)
		if err != nil {
			return "", err
		}
		var out struct {
			BulkID string `json:"bulkId"`
			Detail string `json:"detail"`
		}
		_ = json.Unmarshal(body, &out)
		switch st {
		case http.StatusAccepted:
			return out.BulkID, nil
		case http.StatusConflict:
			if _, id, ok := strings.Cut(out.Detail, "bulk "); ok {
				id, _, _ = strings.Cut(id, " ")
				if _, err := t.app.Reset.CancelBulk(ctx, reset.Actor{ClientID: "bench"}, t.inst, id); err != nil {
					return "", err
				}
				continue
			}
		}
		return "", fmt.Errorf("start bulk: %d %s", st, body)
	}
	return "", errors.New("start bulk: a bulk kept running")
}

// ordinaryFlow sends ordinary resets to the other institution's users.
func (t *target) ordinaryFlow() iteration {
	var next atomic.Int64
	body := []byte(`{"method":"email"}`)
	prefix := server.P + "/institutions/" + otherInstitution + "/users/"
	return func(ctx context.Context, _ int, r *recorder) error {
		i := int(next.Add(1)-1) % otherUsers
		start := time.Now()
		st, _, _, err := t.do(ctx, http.MethodPost, prefix+fmt.Sprintf("o%05d", i)+"/password/reset", body, func(r *http.Request) {
			r.Header.Set("Authorization", "Bearer "+t.otherBearer)
			r.Header.Set("Content-Type", "application/json")
		})
		if out, rec := judge(ctx, st, err, http.StatusOK); rec {
			at := r.add("ordinary reset during bulk", start, out)
			if out == ok {
				t.sink.expect(otherEmail(i), at)
			}
		}
		return nil
	}
}
