package password

import (
	"errors"
	"testing"
	"time"
)

// Of a pair, the first's computations always start; the second's wait
// while the cores are taken, give up with ErrBusy at the wait bound, and
// start as soon as a computation ends.
func TestHasherPairShare(t *testing.T) {
	t.Parallel()
	login, change := NewHasherPair(cheapParams, 2, 2, 50*time.Millisecond)
	login.share.cores = 1 // one core, whatever the machine

	// A change computation takes the core.
	releaseChange, err := change.acquire(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	// A login verification starts anyway: its own slot, first claim.
	releaseLogin, err := login.acquire(t.Context())
	if err != nil {
		t.Fatalf("login beside a running change: %v", err)
	}
	// A second change must wait for the core and gives up at the bound.
	if _, err := change.acquire(t.Context()); !errors.Is(err, ErrBusy) {
		t.Fatalf("second change with the core taken: %v, want ErrBusy", err)
	}
	releaseChange()
	// Still one login running: the core is taken.
	if _, err := change.acquire(t.Context()); !errors.Is(err, ErrBusy) {
		t.Fatalf("change while a login runs: %v, want ErrBusy", err)
	}

	// A waiting change starts when the login ends.
	waiting := make(chan struct{}, 1)
	change.share.waitHook = func() { waiting <- struct{}{} }
	change.maxWait = time.Minute
	got := make(chan error, 1)
	go func() {
		release, err := change.acquire(t.Context())
		if err == nil {
			release()
		}
		got <- err
	}()
	<-waiting
	releaseLogin()
	if err := <-got; err != nil {
		t.Fatalf("a waiting change after the login ended: %v", err)
	}
	if n := change.share.running; n != 0 {
		t.Errorf("%d computations counted after every release", n)
	}
}

// Full is true exactly when a caller would get ErrBusy without waiting.
func TestFull(t *testing.T) {
	t.Parallel()
	h := NewHasher(cheapParams, 1, time.Minute)
	if h.Full() {
		t.Fatal("an idle Hasher is full")
	}
	release := holdSlot(t, h)
	if h.Full() {
		t.Fatal("full with the slot taken but the queue empty")
	}
	h.waiting.Store(h.maxWaiters)
	if !h.Full() {
		t.Fatal("not full with the slot taken and the queue at its bound")
	}
	if _, err := h.acquire(t.Context()); !errors.Is(err, ErrBusy) {
		t.Fatalf("acquire when Full: %v, want ErrBusy", err)
	}
	h.waiting.Store(0)
	release()
	if h.Full() {
		t.Fatal("full after the slot was released")
	}
}
