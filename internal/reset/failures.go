package reset

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/resetd/resetd/internal/store"
)

// Unauthenticated noise is bounded (SPEC §12). A failed client or bearer
// authentication writes nothing when it happens: it is counted here, per
// source IP (past AuthFailuresPerIPMinute a minute the IP is refused,
// 429), and audited aggregated, one record per (source IP, institution,
// action) and minute carrying a count, by Run shortly after the minute
// ends. The counts live in the process, so N replicas allow N times the
// limit and write up to N records per key and minute; a crash loses the
// counts of at most the last two minutes.

// AuthFailuresPerIPMinute is how many failed authentications one source IP
// gets a minute before it is refused.
const AuthFailuresPerIPMinute = 20

// maxFailureKeys bounds the memory an attacker with many addresses can
// take: past it, new IPs are counted together under an empty IP (and, for
// the aggregate, an empty institution).
const maxFailureKeys = 10000

// failureFlushEvery is how often Run writes the minutes that have ended.
const failureFlushEvery = 30 * time.Second

// AuthFailures counts and aggregates failed authentication.
type AuthFailures struct {
	svc *Service

	mu     sync.Mutex
	minute time.Time      // the minute perIP counts
	perIP  map[string]int // failures this minute, refusals excluded
	agg    map[failureKey]*failureAgg
}

type failureKey struct {
	minute                  time.Time
	ip, institution, action string
}

type failureAgg struct {
	count                            int
	outcome, clientID, transactionID string
}

func newAuthFailures(s *Service) *AuthFailures {
	return &AuthFailures{svc: s, perIP: map[string]int{}, agg: map[failureKey]*failureAgg{}}
}

// AuthFailures is the service's counter of failed authentication.
func (s *Service) AuthFailures() *AuthFailures { return s.failures }

// rollLocked starts a new per-IP minute when the clock has moved on.
func (f *AuthFailures) rollLocked(now time.Time) time.Time {
	m := now.Truncate(time.Minute)
	if !m.Equal(f.minute) {
		f.minute, f.perIP = m, map[string]int{}
	}
	return m
}

func (f *AuthFailures) addLocked(m time.Time, a Actor, action, institutionID, outcome string) {
	k := failureKey{minute: m, ip: a.IP, institution: institutionID, action: action}
	if _, ok := f.agg[k]; !ok && len(f.agg) >= maxFailureKeys {
		k.ip, k.institution = "", ""
	}
	g := f.agg[k]
	if g == nil {
		// The first request of the minute names the record's client and
		// transaction, so one of them can be followed in the logs.
		g = &failureAgg{outcome: outcome, clientID: a.ClientID, transactionID: a.TransactionID}
		f.agg[k] = g
	}
	g.count++
}

// ipLocked is the key ip is counted under this minute.
func (f *AuthFailures) ipLocked(ip string) string {
	if _, ok := f.perIP[ip]; !ok && len(f.perIP) >= maxFailureKeys {
		return ""
	}
	return ip
}

// RetryAfter is how long a refused IP waits: until the minute ends.
func (f *AuthFailures) RetryAfter() time.Duration {
	now := f.svc.now()
	return now.Truncate(time.Minute).Add(time.Minute).Sub(now)
}

// Refused reports whether a's IP has used up its failures this minute;
// a refused attempt is counted in the aggregate (with outcome
// "throttled" when it opens the record). Call it before the work an
// authentication costs.
func (f *AuthFailures) Refused(a Actor, action, institutionID string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := f.rollLocked(f.svc.now())
	if f.perIP[f.ipLocked(a.IP)] < AuthFailuresPerIPMinute {
		return false
	}
	f.addLocked(m, a, action, institutionID, "throttled")
	return true
}

// Failed counts one failed authentication and reports whether a's IP is
// now past its limit (the caller answers 429 instead).
func (f *AuthFailures) Failed(a Actor, action, institutionID, outcome string) (limited bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := f.rollLocked(f.svc.now())
	ip := f.ipLocked(a.IP)
	f.perIP[ip]++
	f.addLocked(m, a, action, institutionID, outcome)
	return f.perIP[ip] > AuthFailuresPerIPMinute
}

// Run writes the aggregates of ended minutes every failureFlushEvery
// until ctx ends, then writes all that is left.
func (f *AuthFailures) Run(ctx context.Context) error {
	t := time.NewTicker(failureFlushEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return f.Flush(context.WithoutCancel(ctx), true)
		case <-t.C:
			if err := f.Flush(ctx, false); err != nil {
				f.svc.logger.ErrorContext(ctx, "writing aggregated authentication failures", "err", err)
			}
		}
	}
}

// Flush writes the aggregates of minutes that have ended (all of them
// when all is set) in one transaction. A path naming an institution that
// does not exist is audited under no institution, never a tenant's.
func (f *AuthFailures) Flush(ctx context.Context, all bool) error {
	f.mu.Lock()
	now := f.svc.now().Truncate(time.Minute)
	taken := map[failureKey]*failureAgg{}
	for k, g := range f.agg {
		if all || k.minute.Before(now) {
			taken[k] = g
			delete(f.agg, k)
		}
	}
	f.mu.Unlock()
	if len(taken) == 0 {
		return nil
	}
	known := map[string]bool{"": true}
	err := f.svc.store.View(ctx, func(tx store.ReadTx) error {
		for k := range taken {
			if _, seen := known[k.institution]; seen || !ValidID(k.institution) {
				continue
			}
			_, err := tx.Institution(ctx, k.institution)
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
			known[k.institution] = err == nil
		}
		return nil
	})
	if err != nil {
		return err
	}
	// Unknown institutions merge into one record per (IP, action, minute).
	merged := map[failureKey]*failureAgg{}
	for k, g := range taken {
		if !known[k.institution] {
			k.institution = ""
		}
		if m := merged[k]; m != nil {
			m.count += g.count
			continue
		}
		merged[k] = g
	}
	return f.svc.store.Update(ctx, func(tx store.Tx) error {
		for k, g := range merged {
			r := store.AuditRecord{Time: k.minute, Action: k.action, InstitutionID: k.institution, ClientID: g.clientID,
				IP: k.ip, TransactionID: g.transactionID, Outcome: g.outcome, Count: g.count}
			if err := tx.InsertAudit(ctx, r); err != nil {
				return err
			}
		}
		return nil
	})
}

// AuditFailure records a refused request of a known caller (a rate limit
// on an authenticated call) in its own transaction.
func (s *Service) AuditFailure(ctx context.Context, a Actor, action, institutionID, userID, outcome string) {
	err := s.store.Update(ctx, func(tx store.Tx) error {
		return s.audit(ctx, tx, s.now(), a, action, institutionID, userID, outcome)
	})
	if err != nil {
		s.logger.ErrorContext(ctx, "writing audit record", "action", action, "err", err)
	}
}
