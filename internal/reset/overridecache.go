package reset

import (
	"container/list"
	"sync"

	"github.com/resetd/resetd/internal/delivery"
)

// overrideCacheBytes bounds what parsed overrides may hold (SPEC §11):
// memory does not grow with settings changes, only the hit rate falls.
const overrideCacheBytes = 8 << 20

// overrideCache is a least-recently-used cache of parsed overrides keyed
// by their source (and the link bases they were checked against). The
// size of an entry is estimated from its source: a parse tree, and the
// escaped copy html/template keeps, take a small multiple of the text.
type overrideCache struct {
	mu    sync.Mutex
	max   int
	used  int
	order *list.List // front is the most recently used
	byKey map[string]*list.Element
}

type overrideEntry struct {
	key  string
	cost int
	t    *delivery.Templates
}

func newOverrideCache(maxBytes int) *overrideCache {
	return &overrideCache{max: maxBytes, order: list.New(), byKey: map[string]*list.Element{}}
}

// overrideCost is the estimated heap an entry holds: the key itself plus
// about 16 bytes of parsed nodes per byte of source (measured with
// TestOverrideCacheStaysBounded with the bound lifted: ~12 per byte of an
// HTML part, rounded up).
func overrideCost(key string, sourceBytes int) int { return len(key) + 16*sourceBytes + 4096 }

func (c *overrideCache) get(key string) (*delivery.Templates, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.byKey[key]
	if !ok {
		return nil, false
	}
	c.order.MoveToFront(e)
	return e.Value.(*overrideEntry).t, true
}

func (c *overrideCache) put(key string, sourceBytes int, t *delivery.Templates) {
	cost := overrideCost(key, sourceBytes)
	if cost > c.max {
		return // larger than the whole cache: parse again next time
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.byKey[key]; ok {
		c.order.MoveToFront(e)
		return
	}
	c.byKey[key] = c.order.PushFront(&overrideEntry{key: key, cost: cost, t: t})
	c.used += cost
	for c.used > c.max {
		last := c.order.Back()
		ent := last.Value.(*overrideEntry)
		c.order.Remove(last)
		delete(c.byKey, ent.key)
		c.used -= ent.cost
	}
}

// len reports the cache's contents (tests).
func (c *overrideCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}
