package reset

import (
	"maps"
	"slices"
	"sync"
)

// settingsCacheBytes bounds the stored settings documents the cache keys
// hold (an institution's templates are part of its document); past it
// the cache starts empty again.
const settingsCacheBytes = 4 << 20

// settingsCache keeps decoded settings by the institution and the exact
// stored document they were decoded from: every flow reads its
// institution once or twice, and decoding the JSON document each time
// was a twentieth of a send's CPU. A changed document is a new key, so a
// settings update takes effect on the next read, as before.
type settingsCache struct {
	mu    sync.Mutex
	m     map[string]Settings
	bytes int
}

func settingsKey(institutionID string, raw []byte) string {
	return institutionID + "\x00" + string(raw)
}

func (c *settingsCache) get(key string) (Settings, bool) {
	c.mu.Lock()
	st, ok := c.m[key]
	c.mu.Unlock()
	if !ok {
		return Settings{}, false
	}
	return st.clone(), true
}

func (c *settingsCache) put(key string, st Settings) {
	st = st.clone()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || c.bytes+len(key) > settingsCacheBytes {
		c.m, c.bytes = map[string]Settings{}, 0
	}
	if _, ok := c.m[key]; !ok {
		c.m[key] = st
		c.bytes += len(key)
	}
}

// clone copies st so that no two callers share its slices or map.
func (st Settings) clone() Settings {
	st.LinkBases = slices.Clone(st.LinkBases)
	st.Senders = slices.Clone(st.Senders)
	st.SMSCountries = slices.Clone(st.SMSCountries)
	st.RequireFacts = slices.Clone(st.RequireFacts)
	st.Templates = maps.Clone(st.Templates)
	st.Locales = slices.Clone(st.Locales)
	return st
}
