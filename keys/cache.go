package keys

import (
	"hash/maphash"
	"maps"
	"math/bits"
	"sync"
	"sync/atomic"
)

// An entry is a cached resolution: a key, or (key nil) the knowledge that
// there is none.
type entry struct {
	id      string
	key     *ResolvedKey
	loaded  int64        // UnixNano
	used    atomic.Int64 // last use by the coarse clock, UnixNano; 0: none since loaded
	flushed atomic.Int64 // last use written to the store
}

// A cache maps keyids to entries, in shards. Readers take no lock: each
// shard's map is replaced, never changed, by writers, who hold the shard's
// lock. Shards are small, so copying one is cheap next to the store lookup
// that precedes every write.
type cache struct {
	seed   maphash.Seed
	mask   uint64
	limit  int // entries per shard
	shards []cacheShard
}

type cacheShard struct {
	mu sync.Mutex
	m  atomic.Pointer[map[string]*entry]
	_  [48]byte // keeps shards' hot words off each other's cache lines
	// hits counts lookups found here, on a line of its own so that
	// counting does not slow the reads of m.
	hits atomic.Uint64
	_    [56]byte
}

const (
	shardTarget = 32 // entries per shard the shard count aims at
	// maxShards bounds the shard count. A cache of 10^6 keys gets 2^15
	// shards (128 bytes each: 4 MB), so that a miss copies about 32
	// entries, not the 1,000 that a cap of 1,024 shards left it
	// (BenchmarkCachePut at 10^6 keys: 14 µs a miss instead of 200-400).
	maxShards = 1 << 16
)

func newCache(size int) *cache {
	n := 1 << bits.Len(uint(max(size/shardTarget, 1)-1))
	n = min(n, maxShards)
	c := &cache{seed: maphash.MakeSeed(), mask: uint64(n - 1), limit: max((size+n-1)/n, 1), shards: make([]cacheShard, n)}
	for i := range c.shards {
		m := make(map[string]*entry)
		c.shards[i].m.Store(&m)
	}
	return c
}

func (c *cache) shard(id string) *cacheShard {
	return &c.shards[maphash.String(c.seed, id)&c.mask]
}

func (c *cache) get(id string) *entry {
	sh := c.shard(id)
	e := (*sh.m.Load())[id]
	if e != nil {
		sh.hits.Add(1)
	}
	return e
}

// hits returns how many lookups found an entry.
func (c *cache) hits() uint64 {
	var n uint64
	for i := range c.shards {
		n += c.shards[i].hits.Load()
	}
	return n
}

// put adds e if ok still holds, under the shard's lock, and reports
// whether it did. It returns the entries it pushed out: the one it
// replaced, or one it evicted to stay within bounds (the least recently
// used of a few).
func (c *cache) put(e *entry, ok func() bool) (out []*entry, added bool) {
	sh := c.shard(e.id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if !ok() {
		return nil, false
	}
	old := *sh.m.Load()
	m := make(map[string]*entry, len(old)+1)
	maps.Copy(m, old)
	if prev := m[e.id]; prev != nil {
		out = append(out, prev)
	} else if len(m) >= c.limit {
		victim := evictionVictim(m)
		delete(m, victim.id)
		out = append(out, victim)
	}
	m[e.id] = e
	sh.m.Store(&m)
	return out, true
}

// evictionVictim samples a few entries (map order is random) and returns
// the least recently used.
func evictionVictim(m map[string]*entry) *entry {
	var victim *entry
	var oldest int64
	n := 0
	for _, e := range m {
		t := max(e.used.Load(), e.loaded)
		if victim == nil || t < oldest {
			victim, oldest = e, t
		}
		if n++; n == 5 {
			break
		}
	}
	return victim
}

func (c *cache) remove(id string) *entry {
	sh := c.shard(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	old := *sh.m.Load()
	e := old[id]
	if e == nil {
		return nil
	}
	m := maps.Clone(old)
	delete(m, id)
	sh.m.Store(&m)
	return e
}

// removeOlder removes the entries loaded before t, and returns them.
func (c *cache) removeOlder(t int64) []*entry {
	var out []*entry
	for i := range c.shards {
		sh := &c.shards[i]
		old := *sh.m.Load()
		stale := false
		for _, e := range old {
			if e.loaded < t {
				stale = true
				break
			}
		}
		if !stale {
			continue
		}
		sh.mu.Lock()
		m := make(map[string]*entry, len(*sh.m.Load()))
		for id, e := range *sh.m.Load() {
			if e.loaded < t {
				out = append(out, e)
			} else {
				m[id] = e
			}
		}
		sh.m.Store(&m)
		sh.mu.Unlock()
	}
	return out
}

func (c *cache) clear() []*entry {
	var out []*entry
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		for _, e := range *sh.m.Load() {
			out = append(out, e)
		}
		m := make(map[string]*entry)
		sh.m.Store(&m)
		sh.mu.Unlock()
	}
	return out
}

func (c *cache) each(f func(*entry)) {
	for i := range c.shards {
		for _, e := range *c.shards[i].m.Load() {
			f(e)
		}
	}
}

// len returns the number of entries, for tests.
func (c *cache) len() int {
	n := 0
	for i := range c.shards {
		n += len(*c.shards[i].m.Load())
	}
	return n
}

// CacheStats counts key lookups: Hits were answered from the cache (known
// keys, and keyids known to name none), Misses went to the store.
type CacheStats struct {
	Hits, Misses uint64
}

// CacheStats returns the counts since the service started.
func (s *Service) CacheStats() CacheStats {
	var st CacheStats
	for _, c := range []*cache{s.cache, s.neg} {
		if c != nil {
			st.Hits += c.hits()
		}
	}
	st.Misses = s.misses.Load()
	return st
}
