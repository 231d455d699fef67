// Package password owns what resetd knows about passwords: argon2id hashing
// with a bounded amount of concurrent work (so an overload turns into ErrBusy
// instead of an out-of-memory kill), the PHC string format hashes are stored
// in, verification of the hashes a bank brings from its old system (argon2i,
// bcrypt, PBKDF2, scrypt; SPEC §13), and the policy a new password must meet (length, a shipped blocklist of
// common passwords, the username, and the user's recent password history).
//
// The package keeps no mutable global state: the only package-level data is
// the embedded blocklist, parsed once on first use.
package password

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/argon2"
)

// Params are argon2id cost parameters.
type Params struct {
	Memory  uint32 // KiB
	Time    uint32
	Threads uint8
	KeyLen  uint32
	SaltLen uint32
}

// DefaultParams are OWASP's minimum for argon2id: m=19456 KiB (19 MiB), t=2,
// p=1, with a 32-byte key and a 16-byte salt.
var DefaultParams = Params{
	Memory:  19456,
	Time:    2,
	Threads: 1,
	KeyLen:  32,
	SaltLen: 16,
}

// ErrBusy is returned by Hash and Verify when no hashing slot frees up before
// the wait bound, or when too many callers already wait. The server answers
// it with 503 and Retry-After.
var ErrBusy = errors.New("password: hashing capacity exhausted")

const (
	defaultMaxWait = 2 * time.Second
	// waitersPerSlot bounds the queue: beyond maxConcurrent*waitersPerSlot
	// waiters a caller fails at once, so a 10x overload costs goroutines
	// and requests that end quickly, not argon2 memory or a growing queue.
	waitersPerSlot = 8
)

// Hasher computes argon2id hashes and verifies hashes of every scheme. Each computation holds
// Params.Memory KiB, so the number running at once is bounded; callers beyond
// that wait a bounded time in a bounded queue. A Hasher is safe for
// concurrent use.
type Hasher struct {
	params     Params
	slots      chan struct{} // one element per running computation
	maxWait    time.Duration
	maxWaiters int64
	waiting    atomic.Int64

	// share, when set (by NewHasherPair), divides the cores with another
	// Hasher; priority says whose computations go first.
	share    *cpuShare
	priority bool

	// waitHook, when set (only by tests in this package, before any use),
	// runs each time a caller joins the queue, so tests can synchronise on
	// "the caller is waiting" without sleeping.
	waitHook func()
}

// NewHasher returns a Hasher that runs at most maxConcurrent argon2id
// computations at once (<=0 means runtime.NumCPU()). A caller waits at most
// maxWait for a slot (<=0 means 2s) and then gets ErrBusy; at most
// maxConcurrent*8 callers wait at once, and any further caller gets ErrBusy
// without waiting.
//
// NewHasher panics if p cannot be computed by argon2 or is outside the bounds
// Verify accepts: parameters from configuration are checked with
// Params.Validate first (app.Open does, and serve reports the reason), so a
// panic here is a wiring mistake, caught at start-up, not at the first reset.
func NewHasher(p Params, maxConcurrent int, maxWait time.Duration) *Hasher {
	if err := p.validate(); err != nil {
		panic(fmt.Sprintf("password: invalid params: %v", err))
	}
	if maxConcurrent <= 0 {
		maxConcurrent = runtime.NumCPU()
	}
	if maxWait <= 0 {
		maxWait = defaultMaxWait
	}
	return &Hasher{
		params:     p,
		slots:      make(chan struct{}, maxConcurrent),
		maxWait:    maxWait,
		maxWaiters: int64(maxConcurrent) * waitersPerSlot,
	}
}

// Params returns the parameters new hashes are made with.
func (h *Hasher) Params() Params { return h.params }

// CurrentPrefix is the start of every hash Current accepts, up to the salt:
// $argon2id$v=19$m=19456,t=2,p=1$ (for counting users still to upgrade).
func (h *Hasher) CurrentPrefix() string {
	return fmt.Sprintf("$%s$v=%d$m=%d,t=%d,p=%d$", SchemeArgon2id, argon2.Version, h.params.Memory, h.params.Time, h.params.Threads)
}

// Waiting reports how many callers currently wait for a slot.
func (h *Hasher) Waiting() int { return int(h.waiting.Load()) }

// Full reports whether a caller now would get ErrBusy without waiting:
// every slot taken and the queue at its bound. A caller may use it to
// refuse work that would end in ErrBusy before doing the rest of it.
func (h *Hasher) Full() bool {
	return len(h.slots) == cap(h.slots) && h.waiting.Load() >= h.maxWaiters
}

// MaxMemory is the most memory h's computations hold at once, in bytes:
// a buffer of Params.Memory KiB for each slot, allocated afresh by every
// computation and garbage as soon as it ends.
func (h *Hasher) MaxMemory() uint64 {
	return uint64(cap(h.slots)) * uint64(h.params.Memory) * 1024
}

// InFlight reports how many argon2id computations are running now.
func (h *Hasher) InFlight() int { return len(h.slots) }

// Hash returns pw hashed with h's parameters and a fresh random salt, as a PHC
// string: $argon2id$v=19$m=19456,t=2,p=1$<salt>$<key>, both in unpadded
// standard base64.
func (h *Hasher) Hash(ctx context.Context, pw string) (string, error) {
	p := phc{params: h.params, salt: make([]byte, h.params.SaltLen)}
	if _, err := rand.Read(p.salt); err != nil {
		return "", fmt.Errorf("password: read salt: %w", err)
	}
	release, err := h.acquire(ctx)
	if err != nil {
		return "", err
	}
	defer release()
	p.key = p.derive(pw)
	return p.String(), nil
}

// Verify reports whether pw matches the stored hash encoded, of any scheme
// CheckHash accepts, using the parameters in encoded rather than h's, so
// hashes made under older parameters or imported from another system still
// verify. A malformed or out-of-bounds hash is an error wrapping
// ErrInvalidHash. The computation takes one of h's slots whatever the scheme,
// and the comparison runs in constant time.
func (h *Hasher) Verify(ctx context.Context, encoded, pw string) (bool, error) {
	// Parse before taking a slot: a bad string must not cost hashing time.
	p, err := parseHash(encoded)
	if err != nil {
		return false, err
	}
	release, err := h.acquire(ctx)
	if err != nil {
		return false, err
	}
	defer release()
	return p.matches(pw), nil
}

// Current reports whether encoded is an argon2id hash made with h's
// parameters. A hash that is not should be replaced by Hash of the password
// once Verify has accepted it (SPEC §13: rehash on verify).
func (h *Hasher) Current(encoded string) bool {
	p, err := parsePHC(encoded)
	return err == nil && p.scheme() == SchemeArgon2id && p.params == h.params
}

// acquire takes a computation slot, waiting at most h.maxWait in a queue of at
// most h.maxWaiters. The returned release must be called exactly once.
func (h *Hasher) acquire(ctx context.Context) (release func(), err error) {
	deadline := time.Now().Add(h.maxWait)
	releaseSlot, err := h.acquireSlot(ctx)
	if err != nil || h.share == nil {
		return releaseSlot, err
	}
	if err := h.share.enter(ctx, h.priority, deadline); err != nil {
		releaseSlot()
		return nil, err
	}
	return func() { h.share.leave(); releaseSlot() }, nil
}

func (h *Hasher) acquireSlot(ctx context.Context) (release func(), err error) {
	// A caller that has gone away is not worth an argon2 computation.
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	release = func() { <-h.slots }
	select {
	case h.slots <- struct{}{}:
		return release, nil
	default:
	}

	// Compare-and-swap rather than add-then-undo, so Waiting never reports
	// more than the bound, not even for a moment.
	for {
		n := h.waiting.Load()
		if n >= h.maxWaiters {
			return nil, ErrBusy
		}
		if h.waiting.CompareAndSwap(n, n+1) {
			break
		}
	}
	defer h.waiting.Add(-1)
	if h.waitHook != nil {
		h.waitHook()
	}

	// Blocked senders on a channel are served in order, so a waiter is not
	// overtaken by a newcomer taking the fast path above.
	timer := time.NewTimer(h.maxWait)
	defer timer.Stop()
	select {
	case h.slots <- struct{}{}:
		return release, nil
	case <-timer.C:
		return nil, ErrBusy
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
