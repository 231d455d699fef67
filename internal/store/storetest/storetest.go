// Package storetest is the conformance suite every store backend runs, as
// River runs riverdrivertest against each of its drivers: one set of
// contracts (not-found and conflict errors, single use under concurrency,
// no lost updates, jobs that commit or vanish with their transaction), so
// SQLite and PostgreSQL cannot drift apart. A backend's test calls Run
// with a function that opens a fresh, migrated store.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/riverqueue/river"

	"github.com/resetd/resetd/internal/store"
)

// Opener returns a fresh, migrated, empty store whose River client works
// q's workers once StartQueue is called, and closes it when t ends.
type Opener func(t *testing.T, q store.QueueOptions) store.Store

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
		{"Tokens", testTokens},
		{"KillTokens", testKillTokens},
		{"ConcurrentConsumeOneWinner", testConcurrentConsume},
		{"OTP", testOTP},
		{"ConcurrentOTPAttemptsCounted", testConcurrentOTP},
		{"Deliveries", testDeliveries},
		{"Audit", testAudit},
		{"RateCounters", testRateCounters},
		{"ConcurrentHits", testConcurrentHits},
		{"ConcurrentCountThenHitExact", testConcurrentCountThenHit},
		{"Clients", testClients},
		{"HostileStrings", testHostileStrings},
		{"SigningKeys", testSigningKeys},
		{"Meta", testMeta},
		{"ConcurrentMetaSetIfAbsentAgree", testConcurrentMeta},
		{"ConcurrentSettingsNoLostUpdate", testConcurrentSettings},
		{"Approvals", testApprovals},
		{"Tombstones", testTombstones},
		{"LiveTokens", testLiveTokens},
		{"UpdateRollsBack", testRollback},
		{"ViewIsReadOnly", testView},
		{"Ping", testPing},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, open(t, store.QueueOptions{}))
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

func view(t *testing.T, s store.Store, fn func(tx store.Tx) error) {
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

func testInstitutions(t *testing.T, s store.Store) {
	view(t, s, func(tx store.Tx) error {
		_, err := tx.Institution(ctx(t), "nope")
		wantErr(t, "Institution of an unknown id", err, store.ErrNotFound)
		_, err = tx.DefaultInstitution(ctx(t))
		wantErr(t, "DefaultInstitution with none", err, store.ErrNotFound)
		return nil
	})
	update(t, s, func(tx store.Tx) error {
		_, err := tx.LockInstitution(ctx(t), "nope")
		wantErr(t, "LockInstitution of an unknown id", err, store.ErrNotFound)
		wantErr(t, "SetSettings of an unknown id", tx.SetSettings(ctx(t), "nope", []byte(`{}`), t0), store.ErrNotFound)
		return nil
	})

	t1, t2 := t0.Add(time.Minute), t0.Add(2*time.Minute)
	update(t, s, func(tx store.Tx) error {
		if err := tx.PutInstitution(ctx(t), store.Institution{ID: "a", Settings: []byte(`{"displayName":"A"}`), CreatedAt: t0, UpdatedAt: t0}); err != nil {
			return err
		}
		return tx.PutInstitution(ctx(t), store.Institution{ID: "b", IsDefault: true, Settings: []byte(`{}`), CreatedAt: t0, UpdatedAt: t0})
	})
	view(t, s, func(tx store.Tx) error {
		a, err := tx.Institution(ctx(t), "a")
		if err != nil {
			return err
		}
		if a.ID != "a" || a.IsDefault || string(a.Settings) != `{"displayName":"A"}` {
			t.Errorf("institution a = %+v", a)
		}
		sameTime(t, "created", a.CreatedAt, t0)
		sameTime(t, "updated", a.UpdatedAt, t0)
		d, err := tx.DefaultInstitution(ctx(t))
		if err != nil || d.ID != "b" {
			t.Errorf("default = %q, %v; want b", d.ID, err)
		}
		return nil
	})
	// Making a the default takes the flag from b; a second put keeps the
	// creation time.
	update(t, s, func(tx store.Tx) error {
		return tx.PutInstitution(ctx(t), store.Institution{ID: "a", IsDefault: true, Settings: []byte(`{"displayName":"A2"}`), CreatedAt: t1, UpdatedAt: t1})
	})
	update(t, s, func(tx store.Tx) error {
		if err := tx.SetSettings(ctx(t), "a", []byte(`{"displayName":"A3"}`), t2); err != nil {
			return err
		}
		a, err := tx.LockInstitution(ctx(t), "a")
		if err != nil {
			return err
		}
		if !a.IsDefault || string(a.Settings) != `{"displayName":"A3"}` {
			t.Errorf("after SetSettings: %+v", a)
		}
		sameTime(t, "created after upsert", a.CreatedAt, t0)
		sameTime(t, "updated after SetSettings", a.UpdatedAt, t2)
		return nil
	})
	view(t, s, func(tx store.Tx) error {
		d, err := tx.DefaultInstitution(ctx(t))
		if err != nil || d.ID != "a" {
			t.Errorf("default = %q, %v; want a", d.ID, err)
		}
		b, err := tx.Institution(ctx(t), "b")
		if err != nil || b.IsDefault {
			t.Errorf("b still default: %+v %v", b, err)
		}
		return nil
	})
}

func testUsers(t *testing.T, s store.Store) {
	putInstitution(t, s, "i1", false)
	putInstitution(t, s, "i2", false)
	t1, t2 := t0.Add(time.Hour), t0.Add(2*time.Hour)
	view(t, s, func(tx store.Tx) error {
		_, err := tx.User(ctx(t), "i1", "u1")
		wantErr(t, "User unknown", err, store.ErrNotFound)
		_, err = tx.UserByUsername(ctx(t), "i1", "jane")
		wantErr(t, "UserByUsername unknown", err, store.ErrNotFound)
		return nil
	})
	u := store.User{
		InstitutionID: "i1", ID: "u1", Username: "Jane.Doe", Email: "jane@example.com", Phone: "+14155550100",
		Status: "active", PasswordHash: "$argon2id$h1", CreatedAt: t0, UpdatedAt: t0,
		EmailChangedAt: t1, LockedUntil: t2, Facts: map[string]string{"dateOfBirth": "00ff"},
	}
	update(t, s, func(tx store.Tx) error {
		created, err := tx.PutUser(ctx(t), u)
		if err != nil || !created {
			t.Errorf("first PutUser: created=%v err=%v", created, err)
		}
		u.Email, u.UpdatedAt = "jane@new.example", t1
		created, err = tx.PutUser(ctx(t), u)
		if err != nil || created {
			t.Errorf("second PutUser: created=%v err=%v", created, err)
		}
		return nil
	})
	view(t, s, func(tx store.Tx) error {
		for _, name := range []string{"Jane.Doe", " jane.doe ", "JANE.DOE"} {
			got, err := tx.UserByUsername(ctx(t), "i1", name)
			if err != nil || got.ID != "u1" {
				t.Errorf("UserByUsername(%q) = %q, %v", name, got.ID, err)
			}
		}
		_, err := tx.UserByUsername(ctx(t), "i2", "jane.doe")
		wantErr(t, "username in another institution", err, store.ErrNotFound)
		got, err := tx.User(ctx(t), "i1", "u1")
		if err != nil {
			return err
		}
		if got.Username != "Jane.Doe" || got.Email != "jane@new.example" || got.Phone != "+14155550100" || got.Status != "active" ||
			got.PasswordHash != "$argon2id$h1" || got.Facts["dateOfBirth"] != "00ff" || len(got.Facts) != 1 {
			t.Errorf("user = %+v", got)
		}
		sameTime(t, "created", got.CreatedAt, t0)
		sameTime(t, "updated", got.UpdatedAt, t1)
		sameTime(t, "email changed", got.EmailChangedAt, t1)
		sameTime(t, "phone changed", got.PhoneChangedAt, time.Time{})
		sameTime(t, "locked until", got.LockedUntil, t2)
		return nil
	})
	// The same username is free in another institution; a rename frees
	// the old one.
	putUser(t, s, "i2", "u1", "jane.doe")
	update(t, s, func(tx store.Tx) error {
		u.Username = "jd"
		_, err := tx.PutUser(ctx(t), u)
		return err
	})
	putUser(t, s, "i1", "u2", "jane.doe")

	update(t, s, func(tx store.Tx) error {
		wantErr(t, "SetPassword unknown", tx.SetPassword(ctx(t), "i1", "nope", "h", t2), store.ErrNotFound)
		wantErr(t, "LockUser unknown", tx.LockUser(ctx(t), "i1", "nope", t2), store.ErrNotFound)
		if err := tx.SetPassword(ctx(t), "i1", "u2", "$argon2id$h2", t2); err != nil {
			return err
		}
		return tx.LockUser(ctx(t), "i1", "u2", t2)
	})
	view(t, s, func(tx store.Tx) error {
		got, err := tx.User(ctx(t), "i1", "u2")
		if err != nil {
			return err
		}
		if got.PasswordHash != "$argon2id$h2" || len(got.Facts) != 0 {
			t.Errorf("after SetPassword: %+v", got)
		}
		sameTime(t, "updated by SetPassword", got.UpdatedAt, t2)
		sameTime(t, "locked until", got.LockedUntil, t2)
		return nil
	})
	update(t, s, func(tx store.Tx) error {
		if err := tx.DeleteUser(ctx(t), "i1", "u2"); err != nil {
			return err
		}
		wantErr(t, "second DeleteUser", tx.DeleteUser(ctx(t), "i1", "u2"), store.ErrNotFound)
		_, err := tx.User(ctx(t), "i1", "u2")
		wantErr(t, "deleted user", err, store.ErrNotFound)
		return nil
	})
	view(t, s, func(tx store.Tx) error {
		if _, err := tx.User(ctx(t), "i2", "u1"); err != nil {
			t.Errorf("deleting i1/u2 touched i2/u1: %v", err)
		}
		return nil
	})
}

// A conflict is an answer, not a broken transaction: the caller may go on
// and commit the rest (SQLite allows it; PostgreSQL needs a savepoint).
func testUsernameConflict(t *testing.T, s store.Store) {
	putInstitution(t, s, "i", false)
	putUser(t, s, "i", "u1", "jane")
	update(t, s, func(tx store.Tx) error {
		_, err := tx.PutUser(ctx(t), store.User{InstitutionID: "i", ID: "u2", Username: " JANE", Status: "active", CreatedAt: t0, UpdatedAt: t0})
		wantErr(t, "PutUser with a taken username", err, store.ErrConflict)
		_, err = tx.PutUser(ctx(t), store.User{InstitutionID: "i", ID: "u2", Username: "john", Status: "active", CreatedAt: t0, UpdatedAt: t0})
		return err
	})
	view(t, s, func(tx store.Tx) error {
		u, err := tx.User(ctx(t), "i", "u2")
		if err != nil || u.Username != "john" {
			t.Errorf("after a conflict in the same transaction: %+v %v", u, err)
		}
		return nil
	})
}

func testPasswordHistory(t *testing.T, s store.Store) {
	putInstitution(t, s, "i", false)
	putUser(t, s, "i", "u", "u")
	putUser(t, s, "i", "v", "v")
	update(t, s, func(tx store.Tx) error {
		for i := 1; i <= 5; i++ {
			if err := tx.AddPasswordHistory(ctx(t), "i", "u", fmt.Sprintf("h%d", i), t0.Add(time.Duration(i)*time.Second), 3); err != nil {
				return err
			}
		}
		return tx.AddPasswordHistory(ctx(t), "i", "v", "v1", t0, 3)
	})
	history := func(user string, n int) []string {
		var out []string
		view(t, s, func(tx store.Tx) (err error) {
			out, err = tx.PasswordHistory(ctx(t), "i", user, n)
			return err
		})
		return out
	}
	if got := history("u", 10); !slices.Equal(got, []string{"h5", "h4", "h3"}) {
		t.Errorf("history after trimming to 3 = %v, want [h5 h4 h3]", got)
	}
	if got := history("u", 2); !slices.Equal(got, []string{"h5", "h4"}) {
		t.Errorf("history(2) = %v", got)
	}
	if got := history("u", 0); len(got) != 0 {
		t.Errorf("history(0) = %v", got)
	}
	if got := history("v", 10); !slices.Equal(got, []string{"v1"}) {
		t.Errorf("another user's history = %v", got)
	}
	update(t, s, func(tx store.Tx) error {
		return tx.AddPasswordHistory(ctx(t), "i", "u", "h6", t0, 0)
	})
	if got := history("u", 10); len(got) != 0 {
		t.Errorf("history after keep=0 = %v", got)
	}
	// A deleted user's history goes with them.
	update(t, s, func(tx store.Tx) error { return tx.DeleteUser(ctx(t), "i", "v") })
	putUser(t, s, "i", "v", "v")
	if got := history("v", 10); len(got) != 0 {
		t.Errorf("history of a re-created user = %v", got)
	}
}

func token(hash, user, purpose string, created, expires time.Time) store.Token {
	return store.Token{Hash: []byte(hash), InstitutionID: "i", UserID: user, Purpose: purpose, CreatedAt: created, ExpiresAt: expires}
}

func testTokens(t *testing.T, s store.Store) {
	exp := t0.Add(time.Hour)
	update(t, s, func(tx store.Tx) error {
		if err := tx.InsertToken(ctx(t), token("h1", "u", "reset", t0, exp)); err != nil {
			return err
		}
		wantErr(t, "InsertToken of a known hash", tx.InsertToken(ctx(t), token("h1", "u", "reset", t0, exp)), store.ErrConflict)
		// The transaction goes on after the conflict.
		return tx.InsertToken(ctx(t), token("h2", "u", "reset", t0, exp))
	})
	view(t, s, func(tx store.Tx) error {
		tk, err := tx.LookupToken(ctx(t), []byte("h1"), t0)
		if err != nil {
			return err
		}
		if tk.InstitutionID != "i" || tk.UserID != "u" || tk.Purpose != "reset" || string(tk.Hash) != "h1" {
			t.Errorf("token = %+v", tk)
		}
		sameTime(t, "token created", tk.CreatedAt, t0)
		sameTime(t, "token expires", tk.ExpiresAt, exp)
		sameTime(t, "token used", tk.UsedAt, time.Time{})
		if _, err := tx.LookupToken(ctx(t), []byte("h2"), t0); err != nil {
			t.Errorf("token inserted after a conflict: %v", err)
		}
		_, err = tx.LookupToken(ctx(t), []byte("h1"), exp)
		wantErr(t, "LookupToken at expiry", err, store.ErrNotFound)
		_, err = tx.LookupToken(ctx(t), []byte("nope"), t0)
		wantErr(t, "LookupToken unknown", err, store.ErrNotFound)
		return nil
	})
	// A consumption rolled back leaves the token live.
	if err := s.Update(ctx(t), func(tx store.Tx) error {
		if _, err := tx.ConsumeToken(ctx(t), []byte("h1"), t0); err != nil {
			return err
		}
		return errRollback
	}); !errors.Is(err, errRollback) {
		t.Fatalf("rolled-back consume: %v", err)
	}
	used := t0.Add(time.Minute)
	update(t, s, func(tx store.Tx) error {
		tk, err := tx.ConsumeToken(ctx(t), []byte("h1"), used)
		if err != nil {
			return fmt.Errorf("consume after a rolled-back consume: %w", err)
		}
		if tk.UserID != "u" || tk.Purpose != "reset" {
			t.Errorf("consumed token = %+v", tk)
		}
		sameTime(t, "consumed token expires", tk.ExpiresAt, exp)
		sameTime(t, "consumed token used", tk.UsedAt, used)
		_, err = tx.ConsumeToken(ctx(t), []byte("h1"), used)
		wantErr(t, "second ConsumeToken", err, store.ErrNotFound)
		_, err = tx.LookupToken(ctx(t), []byte("h1"), used)
		wantErr(t, "LookupToken of a used token", err, store.ErrNotFound)
		_, err = tx.ConsumeToken(ctx(t), []byte("h2"), exp)
		wantErr(t, "ConsumeToken at expiry", err, store.ErrNotFound)
		_, err = tx.ConsumeToken(ctx(t), []byte("nope"), t0)
		wantErr(t, "ConsumeToken unknown", err, store.ErrNotFound)
		return nil
	})
}

func testKillTokens(t *testing.T, s store.Store) {
	exp := t0.Add(time.Hour)
	update(t, s, func(tx store.Tx) error {
		for _, tk := range []store.Token{
			token("a1", "a", "reset", t0, exp), token("a2", "a", "otp", t0, exp), token("a3", "a", "dispute", t0, exp),
			token("b1", "b", "reset", t0, exp),
		} {
			if err := tx.InsertToken(ctx(t), tk); err != nil {
				return err
			}
		}
		return nil
	})
	live := func(hashes ...string) []string {
		var out []string
		view(t, s, func(tx store.Tx) error {
			for _, h := range hashes {
				if _, err := tx.LookupToken(ctx(t), []byte(h), t0); err == nil {
					out = append(out, h)
				} else if !errors.Is(err, store.ErrNotFound) {
					return err
				}
			}
			return nil
		})
		return out
	}
	update(t, s, func(tx store.Tx) error { return tx.KillTokens(ctx(t), "i", "a", t0, "reset", "otp") })
	if got := live("a1", "a2", "a3", "b1"); !slices.Equal(got, []string{"a3", "b1"}) {
		t.Errorf("live after killing a's reset and otp tokens = %v, want [a3 b1]", got)
	}
	update(t, s, func(tx store.Tx) error { return tx.KillTokens(ctx(t), "i", "a", t0) })
	if got := live("a1", "a2", "a3", "b1"); !slices.Equal(got, []string{"b1"}) {
		t.Errorf("live after killing all of a's tokens = %v, want [b1]", got)
	}
}

func testConcurrentConsume(t *testing.T, s store.Store) {
	update(t, s, func(tx store.Tx) error {
		return tx.InsertToken(ctx(t), token("h", "u", "reset", t0, t0.Add(time.Hour)))
	})
	var mu sync.Mutex
	wins, losses := 0, 0
	race(concurrency, func(int) {
		err := s.Update(ctx(t), func(tx store.Tx) error {
			_, err := tx.ConsumeToken(ctx(t), []byte("h"), t0)
			return err
		})
		mu.Lock()
		defer mu.Unlock()
		switch {
		case err == nil:
			wins++
		case errors.Is(err, store.ErrNotFound):
			losses++
		default:
			t.Errorf("concurrent consume: %v", err)
		}
	})
	if wins != 1 || losses != concurrency-1 {
		t.Errorf("%d concurrent consumes: %d won, %d lost; want exactly 1 winner", concurrency, wins, losses)
	}
}

func lockOTP(t *testing.T, s store.Store, inst, user string) store.OTP {
	t.Helper()
	var o store.OTP
	update(t, s, func(tx store.Tx) (err error) {
		o, err = tx.LockOTP(ctx(t), inst, user)
		return err
	})
	return o
}

func testOTP(t *testing.T, s store.Store) {
	exp := t0.Add(10 * time.Minute)
	update(t, s, func(tx store.Tx) error {
		_, err := tx.LockOTP(ctx(t), "i", "u")
		wantErr(t, "LockOTP with none", err, store.ErrNotFound)
		if err := tx.KillOTP(ctx(t), "i", "u", t0); err != nil {
			t.Errorf("KillOTP with none: %v", err)
		}
		// Attempts and UsedAt of a new OTP start afresh whatever is passed.
		return tx.PutOTP(ctx(t), store.OTP{InstitutionID: "i", UserID: "u", MAC: []byte("m1"), Channel: "sms", CreatedAt: t0, ExpiresAt: exp,
			Attempts: 3, MaxAttempts: 5, UsedAt: t0})
	})
	o := lockOTP(t, s, "i", "u")
	if string(o.MAC) != "m1" || o.Channel != "sms" || o.Attempts != 0 || o.MaxAttempts != 5 || o.InstitutionID != "i" || o.UserID != "u" {
		t.Errorf("otp = %+v", o)
	}
	sameTime(t, "otp created", o.CreatedAt, t0)
	sameTime(t, "otp expires", o.ExpiresAt, exp)
	sameTime(t, "otp used", o.UsedAt, time.Time{})

	used := t0.Add(time.Minute)
	update(t, s, func(tx store.Tx) error {
		o.Attempts, o.UsedAt = 2, used
		return tx.UpdateOTP(ctx(t), o)
	})
	o = lockOTP(t, s, "i", "u")
	if o.Attempts != 2 {
		t.Errorf("attempts after UpdateOTP = %d", o.Attempts)
	}
	sameTime(t, "used after UpdateOTP", o.UsedAt, used)

	// A newer OTP replaces the old one; an update meant for the old one
	// (same user, old MAC) no longer lands.
	stale := o
	update(t, s, func(tx store.Tx) error {
		return tx.PutOTP(ctx(t), store.OTP{InstitutionID: "i", UserID: "u", MAC: []byte("m2"), Channel: "email", CreatedAt: used, ExpiresAt: exp, MaxAttempts: 3})
	})
	update(t, s, func(tx store.Tx) error {
		stale.Attempts = 9
		return tx.UpdateOTP(ctx(t), stale)
	})
	o = lockOTP(t, s, "i", "u")
	if string(o.MAC) != "m2" || o.Channel != "email" || o.Attempts != 0 || o.MaxAttempts != 3 {
		t.Errorf("replaced otp = %+v", o)
	}
	sameTime(t, "replaced otp used", o.UsedAt, time.Time{})

	killed := t0.Add(2 * time.Minute)
	update(t, s, func(tx store.Tx) error { return tx.KillOTP(ctx(t), "i", "u", killed) })
	update(t, s, func(tx store.Tx) error { return tx.KillOTP(ctx(t), "i", "u", killed.Add(time.Minute)) })
	o = lockOTP(t, s, "i", "u")
	sameTime(t, "killed otp used (first kill wins)", o.UsedAt, killed)
}

func testConcurrentOTP(t *testing.T, s store.Store) {
	update(t, s, func(tx store.Tx) error {
		return tx.PutOTP(ctx(t), store.OTP{InstitutionID: "i", UserID: "u", MAC: []byte("m"), Channel: "sms", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour), MaxAttempts: 100})
	})
	race(concurrency, func(int) {
		err := s.Update(ctx(t), func(tx store.Tx) error {
			o, err := tx.LockOTP(ctx(t), "i", "u")
			if err != nil {
				return err
			}
			o.Attempts++
			return tx.UpdateOTP(ctx(t), o)
		})
		if err != nil {
			t.Errorf("wrong try: %v", err)
		}
	})
	if o := lockOTP(t, s, "i", "u"); o.Attempts != concurrency {
		t.Errorf("%d concurrent wrong tries counted %d", concurrency, o.Attempts)
	}
}

func queueStats(t *testing.T, s store.Store, wantN int, wantOldest time.Time) {
	t.Helper()
	n, oldest, err := s.QueueStats(ctx(t))
	if err != nil || n != wantN {
		t.Errorf("QueueStats = %d, %v; want %d queued", n, err, wantN)
	}
	sameTime(t, "oldest queued", oldest, wantOldest)
}

func testDeliveries(t *testing.T, s store.Store) {
	queueStats(t, s, 0, time.Time{})
	var ids []int64
	update(t, s, func(tx store.Tx) error {
		for i, d := range []store.Delivery{
			{InstitutionID: "i", UserID: "u", Kind: "reset_link", Channel: "email", Destination: "u•••@e•••.com"},
			{InstitutionID: "i", UserID: "u", Kind: "otp", Channel: "sms", Destination: "+1•••00"},
			{InstitutionID: "i", UserID: "v", Kind: "reset_link", Channel: "email", Destination: "v•••@e•••.com"},
			{InstitutionID: "i", UserID: "u", Kind: "password_changed", Channel: "email", Destination: "u•••@e•••.com"},
		} {
			d.State, d.CreatedAt = store.DeliveryQueued, t0.Add(time.Duration(i)*time.Second)
			id, err := tx.InsertDelivery(ctx(t), d)
			if err != nil {
				return err
			}
			ids = append(ids, id)
		}
		return nil
	})
	if !slices.IsSorted(ids) || len(slices.Compact(slices.Clone(ids))) != len(ids) {
		t.Fatalf("delivery ids not increasing: %v", ids)
	}
	got, err := s.Deliveries(ctx(t), "i", "u", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].ID != ids[3] || got[1].ID != ids[1] || got[2].ID != ids[0] {
		t.Fatalf("deliveries of u, newest first: %+v (ids %v)", got, ids)
	}
	d := got[1]
	if d.InstitutionID != "i" || d.UserID != "u" || d.Kind != "otp" || d.Channel != "sms" || d.Destination != "+1•••00" ||
		d.State != store.DeliveryQueued || d.Attempts != 0 || d.LastError != "" {
		t.Errorf("delivery = %+v", d)
	}
	sameTime(t, "delivery created", d.CreatedAt, t0.Add(time.Second))
	sameTime(t, "delivery updated", d.UpdatedAt, t0.Add(time.Second))
	if got, _ := s.Deliveries(ctx(t), "i", "u", 2); len(got) != 2 || got[0].ID != ids[3] {
		t.Errorf("deliveries limit 2: %+v", got)
	}
	if got, err := s.Deliveries(ctx(t), "i", "nobody", 10); err != nil || len(got) != 0 {
		t.Errorf("deliveries of nobody: %v %v", got, err)
	}

	queueStats(t, s, 4, t0)
	marked := t0.Add(time.Hour)
	if err := s.MarkDelivery(ctx(t), ids[0], store.DeliveryFailed, 13, "unavailable", marked); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkDelivery(ctx(t), ids[1], store.DeliverySent, 2, "", marked); err != nil {
		t.Fatal(err)
	}
	all, err := s.AllDeliveries(ctx(t), false, 10)
	if err != nil || len(all) != 4 || all[0].ID != ids[3] || all[3].ID != ids[0] {
		t.Fatalf("all deliveries: %+v %v", all, err)
	}
	f := all[3]
	if f.State != store.DeliveryFailed || f.Attempts != 13 || f.LastError != "unavailable" {
		t.Errorf("marked delivery = %+v", f)
	}
	sameTime(t, "marked delivery updated", f.UpdatedAt, marked)
	sameTime(t, "marked delivery created", f.CreatedAt, t0)
	if all[2].State != store.DeliverySent || all[2].Attempts != 2 {
		t.Errorf("sent delivery = %+v", all[2])
	}
	queueStats(t, s, 2, t0.Add(2*time.Second))
	failed, err := s.AllDeliveries(ctx(t), true, 10)
	if err != nil || len(failed) != 1 || failed[0].ID != ids[0] {
		t.Errorf("failed deliveries: %+v %v", failed, err)
	}
	if got, _ := s.AllDeliveries(ctx(t), false, 1); len(got) != 1 || got[0].ID != ids[3] {
		t.Errorf("all deliveries limit 1: %+v", got)
	}
}

func testAudit(t *testing.T, s store.Store) {
	recs := []store.AuditRecord{
		{Time: t0, Action: "reset.send", InstitutionID: "i1", UserID: "u", ClientID: "c", IP: "192.0.2.1", TransactionID: "tx1", Outcome: "ok"},
		{Time: t0.Add(time.Second), Action: "settings.update", InstitutionID: "i2", ClientID: "c", Outcome: "ok"},
		{Time: t0.Add(time.Second), Action: "reset.change", InstitutionID: "i1", UserID: "u", Outcome: "ok"},
		{Time: t0.Add(2 * time.Second), Action: "auth.fail", ClientID: "x", IP: "2001:db8::1", Outcome: "invalid_client"},
	}
	update(t, s, func(tx store.Tx) error {
		for _, r := range recs {
			if err := tx.InsertAudit(ctx(t), r); err != nil {
				return err
			}
		}
		return nil
	})
	actions := func(f store.AuditFilter) []string {
		t.Helper()
		got, err := s.Audit(ctx(t), f)
		if err != nil {
			t.Fatal(err)
		}
		out := []string{}
		for _, r := range got {
			out = append(out, r.Action)
		}
		return out
	}
	for _, c := range []struct {
		name string
		f    store.AuditFilter
		want []string
	}{
		{"all, newest last (ties in insertion order)", store.AuditFilter{}, []string{"reset.send", "settings.update", "reset.change", "auth.fail"}},
		{"one institution", store.AuditFilter{InstitutionID: "i1"}, []string{"reset.send", "reset.change"}},
		{"since is inclusive", store.AuditFilter{Since: t0.Add(time.Second)}, []string{"settings.update", "reset.change", "auth.fail"}},
		{"institution and since", store.AuditFilter{InstitutionID: "i1", Since: t0.Add(time.Second)}, []string{"reset.change"}},
		{"limit keeps the newest", store.AuditFilter{Limit: 2}, []string{"reset.change", "auth.fail"}},
		{"nothing after", store.AuditFilter{Since: t0.Add(time.Hour)}, []string{}},
	} {
		if got := actions(c.f); !slices.Equal(got, c.want) {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
	got, err := s.Audit(ctx(t), store.AuditFilter{InstitutionID: "i1", Limit: 1})
	if err != nil || len(got) != 1 {
		t.Fatalf("audit: %v %v", got, err)
	}
	r := got[0]
	if r.ID == 0 || r.Action != "reset.change" || r.UserID != "u" || r.Outcome != "ok" || r.ClientID != "" {
		t.Errorf("audit record = %+v", r)
	}
	sameTime(t, "audit time", r.Time, t0.Add(time.Second))
	got, _ = s.Audit(ctx(t), store.AuditFilter{})
	if f := got[0]; f.IP != "192.0.2.1" || f.TransactionID != "tx1" || f.ClientID != "c" || f.InstitutionID != "i1" {
		t.Errorf("audit record fields = %+v", f)
	}
}

func hit(t *testing.T, s store.Store, key string, window time.Duration, now time.Time) int {
	t.Helper()
	var n int
	update(t, s, func(tx store.Tx) (err error) {
		n, err = tx.Hit(ctx(t), key, window, now)
		return err
	})
	return n
}

func count(t *testing.T, s store.Store, key string, window time.Duration, now time.Time) int {
	t.Helper()
	var n int
	view(t, s, func(tx store.Tx) (err error) {
		n, err = tx.Count(ctx(t), key, window, now)
		return err
	})
	return n
}

func testRateCounters(t *testing.T, s store.Store) {
	w := time.Hour
	start := t0.Truncate(w)
	for i, at := range []time.Time{start, start.Add(10 * time.Minute), start.Add(w - time.Millisecond)} {
		if n := hit(t, s, "k", w, at); n != i+1 {
			t.Errorf("hit %d in one window = %d", i+1, n)
		}
	}
	if n := count(t, s, "k", w, start.Add(30*time.Minute)); n != 3 {
		t.Errorf("count = %d, want 3", n)
	}
	if n := count(t, s, "other", w, start); n != 0 {
		t.Errorf("count of an unknown key = %d", n)
	}
	if n := hit(t, s, "other", w, start); n != 1 {
		t.Errorf("first hit of another key = %d", n)
	}
	// Windows slide: an hour after the first hit, it has left the window
	// and the other two have not (a fixed window would start from one).
	if n := hit(t, s, "k", w, start.Add(w)); n != 3 {
		t.Errorf("hit an hour after the first = %d, want 3 (a sliding window)", n)
	}
	var oldest time.Time
	view(t, s, func(tx store.Tx) (err error) {
		oldest, err = tx.Oldest(ctx(t), "k", w, start.Add(w), 1)
		return err
	})
	sameTime(t, "second-oldest event", oldest, start.Add(w-time.Millisecond))
	if n := count(t, s, "k", w, start.Add(w+10*time.Minute)); n != 2 {
		t.Errorf("count 70 minutes in = %d, want 2", n)
	}
	if n := count(t, s, "k", w, start.Add(3*w)); n != 0 {
		t.Errorf("count in a later window = %d", n)
	}
	update(t, s, func(tx store.Tx) error { return tx.ClearCounter(ctx(t), "other") })
	if n := count(t, s, "other", w, start); n != 0 {
		t.Errorf("count after ClearCounter = %d", n)
	}
	// A hit rolled back is not counted.
	if err := s.Update(ctx(t), func(tx store.Tx) error {
		if _, err := tx.Hit(ctx(t), "k", w, start.Add(w)); err != nil {
			return err
		}
		return errRollback
	}); !errors.Is(err, errRollback) {
		t.Fatal(err)
	}
	if n := count(t, s, "k", w, start.Add(w)); n != 3 {
		t.Errorf("count after a rolled-back hit = %d", n)
	}
}

func testConcurrentHits(t *testing.T, s store.Store) {
	var mu sync.Mutex
	var got []int
	race(concurrency, func(int) {
		var n int
		err := s.Update(ctx(t), func(tx store.Tx) (err error) {
			n, err = tx.Hit(ctx(t), "hot", time.Hour, t0)
			return err
		})
		if err != nil {
			t.Errorf("hit: %v", err)
			return
		}
		mu.Lock()
		got = append(got, n)
		mu.Unlock()
	})
	sort.Ints(got)
	for i, n := range got {
		if n != i+1 {
			t.Fatalf("%d concurrent hits returned %v, want each of 1…%d once", concurrency, got, concurrency)
		}
	}
	if n := count(t, s, "hot", time.Hour, t0); n != concurrency {
		t.Errorf("count after %d concurrent hits = %d", concurrency, n)
	}
}

// The domain reads a counter and, on what it read, adds to it in the same
// transaction ("fewer than 10 wrong tries today? then count this one").
// Of many such transactions at once, exactly the cap may act: a backend
// must not let two of them read the same count.
func testConcurrentCountThenHit(t *testing.T, s store.Store) {
	const limit = 5
	for _, key := range []string{"fresh", "warm"} {
		if key == "warm" {
			hit(t, s, key, time.Hour, t0) // a counter that has a row already
		}
		var mu sync.Mutex
		acted := 0
		race(concurrency, func(int) {
			err := s.Update(ctx(t), func(tx store.Tx) error {
				n, err := tx.Count(ctx(t), key, time.Hour, t0)
				if err != nil || n >= limit {
					return err
				}
				if _, err := tx.Hit(ctx(t), key, time.Hour, t0); err != nil {
					return err
				}
				mu.Lock()
				acted++
				mu.Unlock()
				return nil
			})
			if err != nil {
				t.Errorf("count then hit: %v", err)
			}
		})
		want := limit
		if key == "warm" {
			want--
		}
		if acted != want {
			t.Errorf("%s counter: %d of %d concurrent check-then-hit transactions acted, want %d", key, acted, concurrency, want)
		}
		if n := count(t, s, key, time.Hour, t0); n != limit {
			t.Errorf("%s counter = %d, want %d", key, n, limit)
		}
	}
}

// Clients send anything: a NUL, bytes that are not UTF-8. A lookup by such
// a value is not found (never a database error, which would be a 500); a
// counter keyed by it counts; an audit record of it is written.
func testHostileStrings(t *testing.T, s store.Store) {
	putInstitution(t, s, "i", false)
	for _, bad := range []string{"x\x00y", "\xff\xfe", "caf\xc3"} {
		_, err := s.Client(ctx(t), bad)
		wantErr(t, fmt.Sprintf("Client(%q)", bad), err, store.ErrNotFound)
		if ds, err := s.Deliveries(ctx(t), bad, bad, 10); err != nil || len(ds) != 0 {
			t.Errorf("Deliveries(%q): %v %v", bad, ds, err)
		}
		if rs, err := s.Audit(ctx(t), store.AuditFilter{InstitutionID: bad}); err != nil || len(rs) != 0 {
			t.Errorf("Audit(%q): %v %v", bad, rs, err)
		}
		update(t, s, func(tx store.Tx) error {
			_, err := tx.Institution(ctx(t), bad)
			wantErr(t, fmt.Sprintf("Institution(%q)", bad), err, store.ErrNotFound)
			_, err = tx.LockInstitution(ctx(t), bad)
			wantErr(t, fmt.Sprintf("LockInstitution(%q)", bad), err, store.ErrNotFound)
			_, err = tx.User(ctx(t), "i", bad)
			wantErr(t, fmt.Sprintf("User(%q)", bad), err, store.ErrNotFound)
			_, err = tx.UserByUsername(ctx(t), "i", bad)
			wantErr(t, fmt.Sprintf("UserByUsername(%q)", bad), err, store.ErrNotFound)
			_, err = tx.LockOTP(ctx(t), "i", bad)
			wantErr(t, fmt.Sprintf("LockOTP(%q)", bad), err, store.ErrNotFound)
			_, err = tx.LockApproval(ctx(t), "i", bad)
			wantErr(t, fmt.Sprintf("LockApproval(%q)", bad), err, store.ErrNotFound)
			wantErr(t, fmt.Sprintf("DeleteUser(%q)", bad), tx.DeleteUser(ctx(t), "i", bad), store.ErrNotFound)
			if err := tx.KillTokens(ctx(t), "i", bad, t0); err != nil {
				t.Errorf("KillTokens(%q): %v", bad, err)
			}
			for i := 1; i <= 2; i++ {
				if n, err := tx.Hit(ctx(t), "authfail:"+bad, time.Hour, t0); err != nil || n != i {
					t.Errorf("Hit(%q) = %d, %v; want %d", bad, n, err, i)
				}
			}
			if n, err := tx.Count(ctx(t), "authfail:"+bad, time.Hour, t0); err != nil || n != 2 {
				t.Errorf("Count(%q) = %d, %v", bad, n, err)
			}
			return tx.InsertAudit(ctx(t), store.AuditRecord{Time: t0, Action: "auth.token", ClientID: bad, IP: bad, Outcome: "invalid_client"})
		})
	}
	// Keys that differ only in what PostgreSQL text could not hold are
	// still different counters.
	if n := count(t, s, "authfail:x", time.Hour, t0); n != 0 {
		t.Errorf("a near-identical key shares the count: %d", n)
	}
	if recs, err := s.Audit(ctx(t), store.AuditFilter{}); err != nil || len(recs) != 3 {
		t.Errorf("audit of hostile values: %d records, %v", len(recs), err)
	}
}

func testClients(t *testing.T, s store.Store) {
	_, err := s.Client(ctx(t), "nope")
	wantErr(t, "Client unknown", err, store.ErrNotFound)
	c := store.Client{ID: "rc_1", InstitutionID: "*", Name: "sync", SecretHash: []byte{0, 1, 2, 255}, Scopes: []string{"b:write", "a:read"}, CreatedAt: t0}
	if err := s.InsertClient(ctx(t), c); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "InsertClient of a known id", s.InsertClient(ctx(t), c), store.ErrConflict)
	got, err := s.Client(ctx(t), "rc_1")
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != c.ID || got.InstitutionID != "*" || got.Name != "sync" || string(got.SecretHash) != string(c.SecretHash) || !slices.Equal(got.Scopes, c.Scopes) {
		t.Errorf("client = %+v", got)
	}
	sameTime(t, "client created", got.CreatedAt, t0)
}

func testSigningKeys(t *testing.T, s store.Store) {
	if keys, err := s.SigningKeys(ctx(t)); err != nil || len(keys) != 0 {
		t.Fatalf("signing keys of an empty store: %v %v", keys, err)
	}
	t1 := t0.Add(time.Hour)
	for _, k := range []store.SigningKey{
		{ID: "old", Alg: "EdDSA", Private: []byte("sealed-old"), Public: []byte("pub-old"), CreatedAt: t0, RetiredAt: t1},
		{ID: "new", Alg: "EdDSA", Private: []byte("sealed-new"), Public: []byte("pub-new"), CreatedAt: t1},
	} {
		if err := s.InsertSigningKey(ctx(t), k); err != nil {
			t.Fatal(err)
		}
	}
	keys, err := s.SigningKeys(ctx(t))
	if err != nil || len(keys) != 2 || keys[0].ID != "new" || keys[1].ID != "old" {
		t.Fatalf("signing keys, newest first: %+v %v", keys, err)
	}
	if string(keys[0].Private) != "sealed-new" || string(keys[0].Public) != "pub-new" || keys[0].Alg != "EdDSA" {
		t.Errorf("key = %+v", keys[0])
	}
	sameTime(t, "new key created", keys[0].CreatedAt, t1)
	sameTime(t, "new key retired", keys[0].RetiredAt, time.Time{})
	sameTime(t, "old key retired", keys[1].RetiredAt, t1)
}

func testMeta(t *testing.T, s store.Store) {
	v, err := s.MetaSetIfAbsent(ctx(t), "k", []byte{1, 2, 3})
	if err != nil || string(v) != "\x01\x02\x03" {
		t.Fatalf("first MetaSetIfAbsent = %v, %v", v, err)
	}
	v, err = s.MetaSetIfAbsent(ctx(t), "k", []byte{9})
	if err != nil || string(v) != "\x01\x02\x03" {
		t.Errorf("second MetaSetIfAbsent = %v, %v; want the first value", v, err)
	}
	if v, _ := s.MetaSetIfAbsent(ctx(t), "other", []byte("x")); string(v) != "x" {
		t.Errorf("another key = %q", v)
	}
}

// Replicas starting together on an empty database must agree on one
// secret key: every caller gets the value that was stored.
func testConcurrentMeta(t *testing.T, s store.Store) {
	got := make([][]byte, concurrency)
	race(concurrency, func(i int) {
		v, err := s.MetaSetIfAbsent(ctx(t), "secret_key", fmt.Appendf(nil, "value-%d", i))
		if err != nil {
			t.Errorf("MetaSetIfAbsent: %v", err)
		}
		got[i] = v
	})
	stored, _ := s.MetaSetIfAbsent(ctx(t), "secret_key", []byte("late"))
	for i, v := range got {
		if string(v) != string(stored) {
			t.Fatalf("caller %d got %q, the store holds %q", i, v, stored)
		}
	}
}

// Settings are a JSON document changed by read-modify-write: under the
// institution's lock, concurrent writers of different fields (on any
// replicas) never lose each other's change.
func testConcurrentSettings(t *testing.T, s store.Store) {
	putInstitution(t, s, "i", false)
	race(concurrency, func(i int) {
		err := s.Update(ctx(t), func(tx store.Tx) error {
			in, err := tx.LockInstitution(ctx(t), "i")
			if err != nil {
				return err
			}
			m := map[string]int{}
			if err := json.Unmarshal(in.Settings, &m); err != nil {
				return err
			}
			m[fmt.Sprintf("field%02d", i)] = i
			b, _ := json.Marshal(m)
			return tx.SetSettings(ctx(t), "i", b, t0)
		})
		if err != nil {
			t.Errorf("settings update %d: %v", i, err)
		}
	})
	view(t, s, func(tx store.Tx) error {
		in, err := tx.Institution(ctx(t), "i")
		if err != nil {
			return err
		}
		m := map[string]int{}
		if err := json.Unmarshal(in.Settings, &m); err != nil {
			return err
		}
		if len(m) != concurrency {
			t.Errorf("%d concurrent settings updates left %d fields: %s", concurrency, len(m), in.Settings)
		}
		return nil
	})
}

func testApprovals(t *testing.T, s store.Store) {
	exp := t0.Add(time.Hour)
	update(t, s, func(tx store.Tx) error {
		_, err := tx.LockApproval(ctx(t), "i", "nope")
		wantErr(t, "LockApproval unknown", err, store.ErrNotFound)
		return tx.InsertApproval(ctx(t), store.Approval{ID: "ap1", InstitutionID: "i", UserID: "u", Method: "email", RequestedBy: "maker", CreatedAt: t0, ExpiresAt: exp})
	})
	update(t, s, func(tx store.Tx) error {
		_, err := tx.LockApproval(ctx(t), "other", "ap1")
		wantErr(t, "LockApproval in another institution", err, store.ErrNotFound)
		a, err := tx.LockApproval(ctx(t), "i", "ap1")
		if err != nil {
			return err
		}
		if a.ID != "ap1" || a.UserID != "u" || a.Method != "email" || a.RequestedBy != "maker" || a.ApprovedBy != "" {
			t.Errorf("approval = %+v", a)
		}
		sameTime(t, "approval created", a.CreatedAt, t0)
		sameTime(t, "approval expires", a.ExpiresAt, exp)
		sameTime(t, "approval approved", a.ApprovedAt, time.Time{})
		return tx.MarkApproved(ctx(t), "i", "ap1", "checker", t0.Add(time.Minute))
	})
	update(t, s, func(tx store.Tx) error {
		a, err := tx.LockApproval(ctx(t), "i", "ap1")
		if err != nil {
			return err
		}
		if a.ApprovedBy != "checker" {
			t.Errorf("approved by %q", a.ApprovedBy)
		}
		sameTime(t, "approved at", a.ApprovedAt, t0.Add(time.Minute))
		return nil
	})
}

func testRollback(t *testing.T, s store.Store) {
	err := s.Update(ctx(t), func(tx store.Tx) error {
		if err := tx.PutInstitution(ctx(t), store.Institution{ID: "gone", Settings: []byte(`{}`), CreatedAt: t0, UpdatedAt: t0}); err != nil {
			return err
		}
		if err := tx.InsertAudit(ctx(t), store.AuditRecord{Time: t0, Action: "x"}); err != nil {
			return err
		}
		return fmt.Errorf("wrapped: %w", errRollback)
	})
	if !errors.Is(err, errRollback) {
		t.Fatalf("Update returned %v, want fn's error", err)
	}
	view(t, s, func(tx store.Tx) error {
		_, err := tx.Institution(ctx(t), "gone")
		wantErr(t, "institution of a rolled-back transaction", err, store.ErrNotFound)
		return nil
	})
	if recs, _ := s.Audit(ctx(t), store.AuditFilter{}); len(recs) != 0 {
		t.Errorf("audit of a rolled-back transaction: %+v", recs)
	}
}

func testView(t *testing.T, s store.Store) {
	putInstitution(t, s, "i", false)
	err := s.View(ctx(t), func(tx store.Tx) error {
		if _, err := tx.Institution(ctx(t), "i"); err != nil {
			t.Errorf("View reads committed data: %v", err)
		}
		return tx.PutInstitution(ctx(t), store.Institution{ID: "w", Settings: []byte(`{}`), CreatedAt: t0, UpdatedAt: t0})
	})
	if err == nil {
		t.Error("a write inside View succeeded")
	}
	if err := s.View(ctx(t), func(tx store.Tx) error {
		return tx.Enqueue(ctx(t), probeArgs{N: 1}, nil)
	}); err == nil {
		t.Error("Enqueue inside View succeeded")
	}
	view(t, s, func(tx store.Tx) error {
		_, err := tx.Institution(ctx(t), "w")
		wantErr(t, "institution written in a View", err, store.ErrNotFound)
		return nil
	})
}

func testPing(t *testing.T, s store.Store) {
	if err := s.Ping(ctx(t)); err != nil {
		t.Fatal(err)
	}
}

// probeArgs is the job the Enqueue test inserts; its worker reports N.
type probeArgs struct {
	N int `json:"n"`
}

func (probeArgs) Kind() string { return "storetest_probe" }

type probeWorker struct {
	river.WorkerDefaults[probeArgs]
	done chan<- int
}

func (w *probeWorker) Work(ctx context.Context, job *river.Job[probeArgs]) error {
	select {
	case w.done <- job.Args.N:
	case <-ctx.Done():
	}
	return nil
}

// A job enqueued in a transaction exists exactly when the transaction
// commits: the row and its side effect go together (STYLE rule 5).
func testEnqueue(t *testing.T, open Opener) {
	done := make(chan int, 10)
	workers := river.NewWorkers()
	river.AddWorker(workers, &probeWorker{done: done})
	// One worker: jobs are worked in insertion order, so once job 3 is
	// done, a job 2 that existed would have been done before it.
	s := open(t, store.QueueOptions{Workers: workers, MaxWorkers: 1, MaxAttempts: 1})
	update(t, s, func(tx store.Tx) error {
		if err := tx.PutInstitution(ctx(t), store.Institution{ID: "i", Settings: []byte(`{}`), CreatedAt: t0, UpdatedAt: t0}); err != nil {
			return err
		}
		return tx.Enqueue(ctx(t), probeArgs{N: 1}, nil)
	})
	if err := s.Update(ctx(t), func(tx store.Tx) error {
		if err := tx.Enqueue(ctx(t), probeArgs{N: 2}, nil); err != nil {
			return err
		}
		return errRollback
	}); !errors.Is(err, errRollback) {
		t.Fatalf("rolled-back enqueue: %v", err)
	}
	update(t, s, func(tx store.Tx) error { return tx.Enqueue(ctx(t), probeArgs{N: 3}, nil) })

	// Jobs committed before the queue starts are worked once it does.
	if err := s.StartQueue(ctx(t)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stop, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.StopQueue(stop); err != nil {
			t.Errorf("stop queue: %v", err)
		}
	})
	var got []int
	timeout := time.After(30 * time.Second)
	for len(got) < 2 {
		select {
		case n := <-done:
			got = append(got, n)
		case <-timeout:
			t.Fatalf("jobs worked: %v; want [1 3]", got)
		}
	}
	if !slices.Equal(got, []int{1, 3}) {
		t.Errorf("jobs worked: %v; want [1 3] (2 was rolled back)", got)
	}
}

func testTombstones(t *testing.T, s store.Store) {
	update(t, s, func(tx store.Tx) error {
		_, _, err := tx.Tombstone(ctx(t), "i", "u")
		wantErr(t, "Tombstone of nobody", err, store.ErrNotFound)
		if err := tx.PutTombstone(ctx(t), "i", "u", []byte{0, 1, 255}, t0); err != nil {
			return err
		}
		if err := tx.PutTombstone(ctx(t), "i", "u", []byte{7}, t0.Add(time.Second)); err != nil {
			return err // a second deletion replaces the first
		}
		if err := tx.PutTombstone(ctx(t), "i", "old", []byte{8}, t0.Add(-time.Hour)); err != nil {
			return err
		}
		return tx.PutTombstone(ctx(t), "j", "old", []byte{9}, t0.Add(-time.Hour))
	})
	update(t, s, func(tx store.Tx) error {
		sealed, at, err := tx.Tombstone(ctx(t), "i", "u")
		if err != nil || string(sealed) != "\x07" {
			t.Errorf("Tombstone = %v, %v", sealed, err)
		}
		sameTime(t, "deleted at", at, t0.Add(time.Second))
		if err := tx.PruneTombstones(ctx(t), "i", t0); err != nil {
			return err
		}
		_, _, err = tx.Tombstone(ctx(t), "i", "old")
		wantErr(t, "pruned tombstone", err, store.ErrNotFound)
		if _, _, err := tx.Tombstone(ctx(t), "j", "old"); err != nil {
			t.Errorf("pruning one institution touched another: %v", err)
		}
		if err := tx.DeleteTombstone(ctx(t), "i", "u"); err != nil {
			return err
		}
		_, _, err = tx.Tombstone(ctx(t), "i", "u")
		wantErr(t, "deleted tombstone", err, store.ErrNotFound)
		return nil
	})
}

func testLiveTokens(t *testing.T, s store.Store) {
	putInstitution(t, s, "i", false)
	putUser(t, s, "i", "u", "jane")
	update(t, s, func(tx store.Tx) error {
		for i, p := range []string{"link", "link", "selfservice", "dispute"} {
			if err := tx.InsertToken(ctx(t), store.Token{Hash: []byte{byte(i), 1}, InstitutionID: "i", UserID: "u", Purpose: p, CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}); err != nil {
				return err
			}
		}
		if _, err := tx.ConsumeToken(ctx(t), []byte{0, 1}, t0); err != nil {
			return err
		}
		return nil
	})
	view(t, s, func(tx store.Tx) error {
		for _, c := range []struct {
			at       time.Time
			purposes []string
			want     int
		}{
			{t0, []string{"link", "selfservice"}, 2},
			{t0, nil, 3},
			{t0, []string{"otp"}, 0},
			{t0.Add(time.Hour), nil, 0},
		} {
			if n, err := tx.LiveTokens(ctx(t), "i", "u", c.at, c.purposes...); err != nil || n != c.want {
				t.Errorf("LiveTokens(%v, %v) = %d, %v; want %d", c.at, c.purposes, n, err, c.want)
			}
		}
		return nil
	})
}
