package password

import (
	"context"
	"runtime"
	"sync"
	"time"
)

// cpuShare lets two Hashers share the machine's cores with a priority:
// the first's computations always start (on its own slots), the other's
// only while fewer than cores computations of both are running. argon2id
// is CPU-bound, so more computations than cores only make each slower: a
// login verification then competes for CPU with at most the password
// changes already running, never with new ones (SPEC §10).
type cpuShare struct {
	cores int

	mu      sync.Mutex
	running int
	freed   chan struct{} // closed and replaced whenever running drops

	// waitHook, when set (by tests, before use), runs each time a caller
	// starts waiting for a core.
	waitHook func()
}

// NewHasherPair returns two Hashers with the same parameters: first with
// firstSlots slots, which takes priority for the cores, and second with
// secondSlots, whose computations wait (within maxWait, like a wait for
// a slot) while first's keep the cores busy. Slots <=0 mean
// runtime.NumCPU(). resetd gives the login (passwords:verify) the first
// and password changes the second.
func NewHasherPair(p Params, firstSlots, secondSlots int, maxWait time.Duration) (first, second *Hasher) {
	share := &cpuShare{cores: runtime.NumCPU(), freed: make(chan struct{})}
	first, second = NewHasher(p, firstSlots, maxWait), NewHasher(p, secondSlots, maxWait)
	first.share, first.priority = share, true
	second.share = share
	return first, second
}

// enter counts one computation in, waiting until deadline while a
// computation without priority would exceed the cores.
func (c *cpuShare) enter(ctx context.Context, priority bool, deadline time.Time) error {
	for {
		c.mu.Lock()
		if priority || c.running < c.cores {
			c.running++
			c.mu.Unlock()
			return nil
		}
		freed := c.freed
		c.mu.Unlock()
		if c.waitHook != nil {
			c.waitHook()
		}
		timer := time.NewTimer(time.Until(deadline))
		select {
		case <-freed:
			timer.Stop()
		case <-timer.C:
			return ErrBusy
		case <-ctx.Done():
			timer.Stop()
			return ctx.Err()
		}
	}
}

func (c *cpuShare) leave() {
	c.mu.Lock()
	c.running--
	close(c.freed)
	c.freed = make(chan struct{})
	c.mu.Unlock()
}
