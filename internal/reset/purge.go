package reset

import (
	"context"
	"time"

	"github.com/resetd/resetd/internal/store"
)

// Retention (SPEC §12): what has ended is deleted, a bounded batch per
// short transaction, so a purge never holds the writer long.

// Retention is how long the rows kept for support and regulators live.
type Retention struct {
	Deliveries time.Duration
	Audit      time.Duration
}

// PurgeCounts is how many rows of each kind a purge deleted (or, in a dry
// run, would delete).
type PurgeCounts struct {
	Tokens       int `json:"tokens"`
	OTPs         int `json:"otps"`
	Approvals    int `json:"approvals"`
	RateCounters int `json:"rateCounters"`
	Deliveries   int `json:"deliveries"`
	Audit        int `json:"audit"`
	// BulkMembers and Bulks are bulk forced resets finished before the
	// deliveries' retention, and their member rows.
	BulkMembers int `json:"bulkMembers"`
	Bulks       int `json:"bulks"`
}

const (
	// purgeBatch bounds the rows one purge transaction deletes.
	purgeBatch = 500
	// tokenGrace keeps an ended token so a late click still gets the
	// "used or expired" page rather than "unknown".
	tokenGrace = 7 * 24 * time.Hour
	// counterLife is how long a rate event may still be read: the
	// longest window any counter slides over (SPEC §10). That is a link's
	// wrong-fact window, its expiration (at most maxExpiration); every other
	// window is at most a day (otpFailWindow). An event is never purged
	// while a window still counts it.
	counterLife = maxExpiration
	// PurgeEvery is how often the periodic purge runs: within an hour of
	// a row's end, it is gone.
	PurgeEvery = time.Hour
	// maxExpiration is the longest a link may live (Settings.Validate's
	// bound on expiration, 604800 s).
	maxExpiration = 7 * 24 * time.Hour
)

// Purge deletes what is past its end: tokens a week after they expired or
// were used, OTPs and approvals once ended, rate events once no window
// reads them, deliveries and audit records older than r, and bulk forced
// resets (with their members) finished longer ago than r's deliveries.
func (s *Service) Purge(ctx context.Context, r Retention, dryRun bool) (PurgeCounts, error) {
	now := s.now()
	var c PurgeCounts
	for _, k := range []struct {
		kind   store.PurgeKind
		cutoff time.Time
		n      *int
	}{
		{store.PurgeTokens, now.Add(-tokenGrace), &c.Tokens},
		{store.PurgeOTPs, now, &c.OTPs},
		{store.PurgeApprovals, now, &c.Approvals},
		{store.PurgeRateCounters, now.Add(-counterLife), &c.RateCounters},
		{store.PurgeDeliveries, now.Add(-r.Deliveries), &c.Deliveries},
		{store.PurgeAudit, now.Add(-r.Audit), &c.Audit},
		{store.PurgeBulkMembers, now.Add(-r.Deliveries), &c.BulkMembers},
		{store.PurgeBulks, now.Add(-r.Deliveries), &c.Bulks},
	} {
		for {
			n, err := s.store.Purge(ctx, k.kind, k.cutoff, purgeBatch, dryRun)
			if err != nil {
				return c, err
			}
			*k.n += n
			if dryRun || n < purgeBatch {
				break
			}
			if err := ctx.Err(); err != nil {
				return c, err
			}
		}
	}
	s.logger.InfoContext(ctx, "purge", "dryRun", dryRun, "tokens", c.Tokens, "otps", c.OTPs, "approvals", c.Approvals,
		"rateCounters", c.RateCounters, "deliveries", c.Deliveries, "audit", c.Audit, "bulkMembers", c.BulkMembers, "bulks", c.Bulks)
	return c, nil
}
