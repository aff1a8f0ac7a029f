package api

import (
	"sync"
	"time"
)

// DefaultKeyCacheTTL is how long a looked-up API key is trusted without
// asking the database again when Config.KeyCacheTTL is zero.
const DefaultKeyCacheTTL = 5 * time.Second

// maxCachedKeys bounds the cache; past it the cache starts over.
const maxCachedKeys = 10000

// keyCache remembers, for a short time, which tenant a valid API key's
// hash belongs to, so that a busy client's requests do not each cost a
// database query. Only keys that were found are kept: a new key works at
// once, and a key deleted from the database stops working within the
// TTL (in every process, as each keeps its own cache).
type keyCache struct {
	ttl time.Duration
	now func() time.Time

	mu      sync.RWMutex
	entries map[string]cachedKey
}

type cachedKey struct {
	tenant string
	until  time.Time
}

func newKeyCache(ttl time.Duration, now func() time.Time) *keyCache {
	return &keyCache{ttl: ttl, now: now, entries: map[string]cachedKey{}}
}

// get returns the tenant of a key hash seen less than the TTL ago.
func (c *keyCache) get(hash string) (string, bool) {
	if c.ttl <= 0 {
		return "", false
	}
	c.mu.RLock()
	e, ok := c.entries[hash]
	c.mu.RUnlock()
	if !ok || !c.now().Before(e.until) {
		return "", false
	}
	return e.tenant, true
}

func (c *keyCache) put(hash, tenant string) {
	if c.ttl <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= maxCachedKeys {
		clear(c.entries)
	}
	c.entries[hash] = cachedKey{tenant: tenant, until: c.now().Add(c.ttl)}
}
