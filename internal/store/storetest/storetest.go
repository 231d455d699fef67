// Package storetest is the conformance suite every store backend runs, as
// River runs riverdrivertest against each of its drivers: one set of
// contracts (not-found and conflict errors, single use under concurrency,
// no lost updates, jobs that commit or vanish with their transaction), so
// SQLite and PostgreSQL cannot drift apart. A backend's test calls Run
// with a function that opens a fresh, migrated store. The tests are filed
// by area: directory.go (institutions, users, settings), secrets.go
// (tokens, OTPs), records.go (deliveries, counters, approvals), audit.go
// (audit pages, purge), clients.go (clients, keys, meta), keys.go (client
// management, key rotation: SPEC §9), hostile.go, tx.go (rollback, views,
// jobs).
package storetest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/resetd/resetd/internal/queue"
	"github.com/resetd/resetd/internal/store"
)

// Opener returns a fresh, migrated, empty store with a queue attached
// (queue.Attach) that works q's workers once started, and closes the
// store when t ends.
type Opener func(t *testing.T, q queue.Options) (store.Store, Queue)

// Queue is the lifecycle of the queue an Opener attached.
type Queue interface {
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
}

// concurrency is how many callers race in the concurrency tests: more than
// a pool's connections, so some of them queue.
const concurrency = 16

// t0 has sub-millisecond digits on purpose: backends keep milliseconds.
var t0 = time.Date(2031, 3, 4, 5, 6, 7, 123_456_789, time.UTC)

// ms is a time as every backend stores it.
func ms(t time.Time) time.Time { return t.Truncate(time.Millisecond) }

var errRollback = errors.New("storetest: roll back")

// Run runs the whole suite; each test gets its own store.
func Run(t *testing.T, open Opener) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"Institutions", testInstitutions},
		{"Users", testUsers},
		{"UsernameConflictKeepsTxUsable", testUsernameConflict},
		{"PasswordHistory", testPasswordHistory},
		{"UsersByID", testUsersByID},
		{"UserAndUsernameOwner", testUserAndUsernameOwner},
		{"RehashPassword", testRehashPassword},
		{"PasswordSchemes", testPasswordSchemes},
		{"Tokens", testTokens},
		{"InsertTokens", testInsertTokens},
		{"KillTokens", testKillTokens},
		{"ReplaceTokens", testReplaceTokens},
		{"ConcurrentConsumeOneWinner", testConcurrentConsume},
		{"OTP", testOTP},
		{"ConcurrentOTPAttemptsCounted", testConcurrentOTP},
		{"Deliveries", testDeliveries},
		{"DeliveryMessages", testDeliveryMessages},
		{"Audit", testAudit},
		{"AuditPagesEveryRecordOnce", testAuditPages},
		{"AuditPagesUnderConcurrentWrites", testAuditConcurrentPages},
		{"Purge", testPurge},
		{"RateCounters", testRateCounters},
		{"ConcurrentHits", testConcurrentHits},
		{"ConcurrentCountThenHitExact", testConcurrentCountThenHit},
		{"Clients", testClients},
		{"ClientAuthMethods", testClientAuthMethods},
		{"UseOnce", testUseOnce},
		{"ClientAdmin", testClientAdmin},
		{"KeyAdmin", testKeyAdmin},
		{"HostileStrings", testHostileStrings},
		{"SigningKeys", testSigningKeys},
		{"Meta", testMeta},
		{"ConcurrentMetaSetIfAbsentAgree", testConcurrentMeta},
		{"ConcurrentSettingsNoLostUpdate", testConcurrentSettings},
		{"Approvals", testApprovals},
		{"Tombstones", testTombstones},
		{"LiveTokens", testLiveTokens},
		{"Bulks", testBulks},
		{"UpdateRollsBack", testRollback},
		{"ViewIsReadOnly", testView},
		{"Ping", testPing},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, _ := open(t, queue.Options{})
			tc.fn(t, s)
		})
	}
	t.Run("EnqueueCommitsWithTx", func(t *testing.T) {
		t.Parallel()
		testEnqueue(t, open)
	})
}

func ctx(t *testing.T) context.Context { return t.Context() }

func update(t *testing.T, s store.Store, fn func(tx store.Tx) error) {
	t.Helper()
	if err := s.Update(ctx(t), fn); err != nil {
		t.Fatalf("update: %v", err)
	}
}

func view(t *testing.T, s store.Store, fn func(tx store.ReadTx) error) {
	t.Helper()
	if err := s.View(ctx(t), fn); err != nil {
		t.Fatalf("view: %v", err)
	}
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: got error %v, want %v", what, err, want)
	}
}

func sameTime(t *testing.T, what string, got, want time.Time) {
	t.Helper()
	if want.IsZero() {
		if !got.IsZero() {
			t.Errorf("%s = %v, want the zero time", what, got)
		}
		return
	}
	if !ms(got).Equal(ms(want)) {
		t.Errorf("%s = %v, want %v", what, got, ms(want))
	}
}

func putInstitution(t *testing.T, s store.Store, id string, isDefault bool) {
	t.Helper()
	update(t, s, func(tx store.Tx) error {
		return tx.PutInstitution(ctx(t), store.Institution{ID: id, IsDefault: isDefault, Settings: []byte(`{}`), CreatedAt: t0, UpdatedAt: t0})
	})
}

func putUser(t *testing.T, s store.Store, inst, id, username string) {
	t.Helper()
	update(t, s, func(tx store.Tx) error {
		_, err := tx.PutUser(ctx(t), store.User{InstitutionID: inst, ID: id, Username: username, Status: "active", CreatedAt: t0, UpdatedAt: t0})
		return err
	})
}

// race runs fn from n goroutines released at once and waits for them.
func race(n int, fn func(i int)) {
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			fn(i)
		})
	}
	close(start)
	wg.Wait()
}
