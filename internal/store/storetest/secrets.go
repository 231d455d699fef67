package storetest

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/resetd/resetd/internal/store"
)

// Single-use secrets: reset tokens and OTPs.

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
	view(t, s, func(tx store.ReadTx) error {
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
		// A used token still names its institution; an unknown one none.
		if id, err := tx.TokenInstitution(ctx(t), []byte("h1")); err != nil || id != "i" {
			t.Errorf("TokenInstitution of a used token = %q, %v", id, err)
		}
		_, err = tx.TokenInstitution(ctx(t), []byte("nope"))
		wantErr(t, "TokenInstitution unknown", err, store.ErrNotFound)
		_, err = tx.ConsumeToken(ctx(t), []byte("h2"), exp)
		wantErr(t, "ConsumeToken at expiry", err, store.ErrNotFound)
		_, err = tx.ConsumeToken(ctx(t), []byte("nope"), t0)
		wantErr(t, "ConsumeToken unknown", err, store.ErrNotFound)
		return nil
	})
}

// testInsertTokens: several tokens in one call are all stored, and one
// taken hash among them stores none, with the transaction still usable.
func testInsertTokens(t *testing.T, s store.Store) {
	exp := t0.Add(time.Hour)
	update(t, s, func(tx store.Tx) error {
		if err := tx.InsertTokens(ctx(t), token("m1", "u", "reset", t0, exp), token("m2", "u", "dispute", t0, exp)); err != nil {
			return err
		}
		wantErr(t, "InsertTokens with one known hash", tx.InsertTokens(ctx(t), token("m3", "u", "reset", t0, exp), token("m1", "u", "reset", t0, exp)), store.ErrConflict)
		return tx.InsertTokens(ctx(t), token("m4", "v", "reset", t0, exp))
	})
	view(t, s, func(tx store.ReadTx) error {
		for _, h := range []string{"m1", "m2", "m4"} {
			if _, err := tx.LookupToken(ctx(t), []byte(h), t0); err != nil {
				t.Errorf("token %s: %v", h, err)
			}
		}
		tk, err := tx.LookupToken(ctx(t), []byte("m2"), t0)
		if err == nil && (tk.Purpose != "dispute" || tk.UserID != "u") {
			t.Errorf("m2 = %+v", tk)
		}
		sameTime(t, "m2 expires", tk.ExpiresAt, exp)
		_, err = tx.LookupToken(ctx(t), []byte("m3"), t0)
		wantErr(t, "the other token of a conflicting InsertTokens", err, store.ErrNotFound)
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
		view(t, s, func(tx store.ReadTx) error {
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

// ReplaceTokens kills the user's tokens of the purposes given, keeps the
// others and other users', and inserts the new ones live (never among
// those it kills); a taken hash is ErrConflict and inserts none.
func testReplaceTokens(t *testing.T, s store.Store) {
	exp := t0.Add(time.Hour)
	update(t, s, func(tx store.Tx) error {
		return tx.InsertTokens(ctx(t), token("r1", "a", "reset", t0, exp), token("r2", "a", "otp", t0, exp), token("r3", "b", "reset", t0, exp))
	})
	update(t, s, func(tx store.Tx) error {
		return tx.ReplaceTokens(ctx(t), "i", "a", t0, []string{"reset", "selfservice"},
			token("n1", "a", "reset", t0, exp), token("n2", "a", "dispute", t0, exp))
	})
	live := map[string]bool{}
	view(t, s, func(tx store.ReadTx) error {
		for _, h := range []string{"r1", "r2", "r3", "n1", "n2"} {
			_, err := tx.LookupToken(ctx(t), []byte(h), t0)
			live[h] = err == nil
		}
		return nil
	})
	if want := map[string]bool{"r1": false, "r2": true, "r3": true, "n1": true, "n2": true}; !maps.Equal(live, want) {
		t.Errorf("live after ReplaceTokens = %v, want %v", live, want)
	}
	errConflict := errors.New("rolled back")
	err := s.Update(ctx(t), func(tx store.Tx) error {
		wantErr(t, "ReplaceTokens with a taken hash", tx.ReplaceTokens(ctx(t), "i", "a", t0, []string{"reset"},
			token("n3", "a", "reset", t0, exp), token("n1", "a", "reset", t0, exp)), store.ErrConflict)
		return errConflict
	})
	if !errors.Is(err, errConflict) {
		t.Fatal(err)
	}
	view(t, s, func(tx store.ReadTx) error {
		if _, err := tx.LookupToken(ctx(t), []byte("n1"), t0); err != nil {
			t.Errorf("a rolled-back ReplaceTokens killed n1: %v", err)
		}
		_, err := tx.LookupToken(ctx(t), []byte("n3"), t0)
		wantErr(t, "the other token of a conflicting ReplaceTokens", err, store.ErrNotFound)
		return nil
	})
}
