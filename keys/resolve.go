package keys

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"maps"
	"math/bits"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/signet-dev/signet/httpsig"
)

var _ httpsig.KeyResolver = (*Service)(nil)

// errUnknownKey is returned for every keyid that names no key; it carries
// no keyid, so that refusing a flood of them costs nothing.
var errUnknownKey = fmt.Errorf("keys: no such key: %w", httpsig.ErrUnknownKey)

// tick is how often the service's coarse clock moves on and stale cache
// entries are dropped; it is the resolution of last-used times and of the
// cache TTLs.
const tick = time.Second

// ResolveKey implements [httpsig.KeyResolver]. It returns an error wrapping
// httpsig.ErrUnknownKey for a keyid that names no key,
// httpsig.ErrKeyRevoked for a revoked key and httpsig.ErrKeyExpired for an
// expired one (a rotated key past its overlap included), and any other
// error when the store cannot answer, so that the verifier fails closed.
//
// The key it returns has, besides the methods of [httpsig.VerifyingKey],
// the methods KeyID() string, Owner() string and Scopes() []string; the
// slice Scopes returns is shared and must not be modified.
//
// Keys are cached: a cache hit takes no lock and allocates nothing, and
// reads the clock only for a key that has an expiry. A key changed through
// any service on the store (revoked, rotated, re-scoped) leaves every cache
// within about a second. While the store cannot report changes, the cache
// is bypassed.
func (s *Service) ResolveKey(ctx context.Context, keyID string) (httpsig.VerifyingKey, error) {
	if !validID(keyID) {
		return nil, errUnknownKey
	}
	if !s.watching.Load() {
		s.startWatch()
	}
	if s.trusted.Load() {
		if e := s.cache.get(keyID); e != nil {
			return s.use(e)
		}
		if s.neg != nil && s.neg.get(keyID) != nil {
			return nil, errUnknownKey
		}
	}
	return s.resolveSlow(ctx, keyID)
}

// A resolvedKey is a verifying key with what the middleware needs to know
// about its holder.
type resolvedKey struct {
	id, owner  string
	alg        httpsig.Algorithm
	scopes     []string
	vk         httpsig.VerifyingKey // nil if revoked
	expires    time.Time
	revoked    bool
	errRevoked error
	errExpired error
}

func (k *resolvedKey) Algorithm() httpsig.Algorithm  { return k.alg }
func (k *resolvedKey) Verify(base, sig []byte) error { return k.vk.Verify(base, sig) }

// KeyID returns the key's id.
func (k *resolvedKey) KeyID() string { return k.id }

// Owner returns the id of the client or user the key belongs to.
func (k *resolvedKey) Owner() string { return k.owner }

// Scopes returns the key's scopes. The slice is shared: do not modify it.
func (k *resolvedKey) Scopes() []string { return k.scopes }

// An entry is a cached resolution: a key, or (key nil) the knowledge that
// there is none.
type entry struct {
	id      string
	key     *resolvedKey
	loaded  int64        // UnixNano
	used    atomic.Int64 // last use by the coarse clock, UnixNano; 0: none since loaded
	flushed atomic.Int64 // last use written to the store
}

// use returns the key of e if it may be used now, and records the use. The
// time of the use is the coarse clock's, so that recording it writes to
// the entry at most once a tick.
func (s *Service) use(e *entry) (httpsig.VerifyingKey, error) {
	k := e.key
	switch {
	case k == nil:
		return nil, errUnknownKey
	case k.revoked:
		return nil, k.errRevoked
	case !k.expires.IsZero() && !s.now().Before(k.expires):
		return nil, k.errExpired
	}
	if c := s.coarse.Load(); e.used.Load() < c {
		e.used.Store(c)
	}
	return k, nil
}

// setCoarse moves the coarse clock on to t, never back.
func (s *Service) setCoarse(t int64) {
	for {
		c := s.coarse.Load()
		if t <= c || s.coarse.CompareAndSwap(c, t) {
			return
		}
	}
}

// A flight is a lookup of one keyid that concurrent resolutions share.
type flight struct {
	done   chan struct{}
	e      *entry
	cached bool
	err    error
}

func (s *Service) resolveSlow(ctx context.Context, id string) (httpsig.VerifyingKey, error) {
	s.misses.Add(1)
	for {
		s.flightMu.Lock()
		f, joined := s.flights[id]
		if !joined {
			f = &flight{done: make(chan struct{})}
			s.flights[id] = f
		}
		s.flightMu.Unlock()
		if !joined {
			f.e, f.cached, f.err = s.load(ctx, id)
			s.flightMu.Lock()
			delete(s.flights, id)
			s.flightMu.Unlock()
			close(f.done)
		} else {
			select {
			case <-f.done:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			// The leader's request may have gone away; ours has not.
			if f.err != nil && ctx.Err() == nil && (errors.Is(f.err, context.Canceled) || errors.Is(f.err, context.DeadlineExceeded)) {
				continue
			}
		}
		if f.err != nil {
			return nil, f.err
		}
		k, err := s.use(f.e)
		if !f.cached && f.e.key != nil {
			s.keepUse(f.e)
		}
		return k, err
	}
}

// load reads a key from the store and caches it if the cache may be
// trusted, reporting whether it did.
func (s *Service) load(ctx context.Context, id string) (*entry, bool, error) {
	gen := s.gen.Load()
	trusted := s.trusted.Load()
	unchanged := func() bool { return s.gen.Load() == gen }
	rec, err := s.store.Get(ctx, id)
	loaded := s.now().UnixNano()
	s.setCoarse(loaded)
	if errors.Is(err, ErrNotFound) {
		e := &entry{id: id, loaded: loaded}
		if trusted && s.neg != nil {
			s.neg.put(e, unchanged)
		}
		return e, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("keys: looking up key %s: %w", id, err)
	}
	k, err := s.resolved(ctx, rec)
	if err != nil {
		return nil, false, err
	}
	e := &entry{id: id, key: k, loaded: loaded}
	if !trusted {
		return e, false, nil
	}
	out, added := s.cache.put(e, unchanged)
	s.keepUses(out)
	return e, added, nil
}

// resolved makes the verifying key of a record, opening its secret.
func (s *Service) resolved(ctx context.Context, rec *Record) (*resolvedKey, error) {
	k := &resolvedKey{
		id: rec.ID, owner: rec.Owner, alg: rec.Alg, scopes: slices.Clip(rec.Scopes),
		expires: rec.Expires, revoked: !rec.Revoked.IsZero(),
	}
	if k.scopes == nil {
		k.scopes = []string{}
	}
	if k.revoked {
		k.errRevoked = fmt.Errorf("keys: key %s was revoked at %s: %w", rec.ID, rec.Revoked.Format(time.RFC3339), httpsig.ErrKeyRevoked)
		return k, nil
	}
	if !k.expires.IsZero() {
		k.errExpired = fmt.Errorf("keys: key %s expired at %s: %w", rec.ID, rec.Expires.Format(time.RFC3339), httpsig.ErrKeyExpired)
	}
	var err error
	if rec.Alg.Symmetric() {
		st := s.seal.Load()
		var secret []byte
		if secret, err = st.s.openSecret(rec.ID, rec.Secret); err != nil {
			if check, cerr := s.store.MasterCheck(ctx, nil); cerr == nil && !st.s.opensCheck(check) {
				return nil, fmt.Errorf("%w: the store was rekeyed under another master key since this service started; restart it with the new one", ErrWrongMasterKey)
			}
			return nil, err
		}
		k.vk, err = httpsig.NewHMACKey(secret)
	} else {
		k.vk, err = verifyingKeyOf(rec.Alg, rec.PublicKey)
	}
	if err != nil {
		return nil, fmt.Errorf("keys: key %s: %w", rec.ID, err)
	}
	return k, nil
}

// startWatch starts watching the store for changes, once, when the cache
// is first needed; until the store reports that it watches, the cache is
// bypassed.
func (s *Service) startWatch() {
	if s.cache == nil || !s.watching.CompareAndSwap(false, true) {
		return
	}
	s.goBackground(func() { s.store.Watch(s.ctx, s.onEvent) })
}

func (s *Service) onEvent(ev Event) {
	if ev.Lost {
		s.trusted.Store(false)
		s.dropAll()
		s.log.Warn("keys: the store cannot report changes; resolving every key from the store until it can", "err", ev.Err)
	}
	if ev.Reset {
		s.dropAll()
		s.trusted.Store(true)
	}
	s.invalidate(ev.Changed)
}

// invalidate drops keys from the cache. Bumping the generation first keeps
// a lookup that read the store before the change from caching what it
// read.
func (s *Service) invalidate(ids []string) {
	if s.cache == nil || len(ids) == 0 {
		return
	}
	s.gen.Add(1)
	for _, id := range ids {
		s.keepUse(s.cache.remove(id))
		if s.neg != nil {
			s.neg.remove(id)
		}
	}
}

func (s *Service) dropAll() {
	if s.cache == nil {
		return
	}
	s.gen.Add(1)
	s.keepUses(s.cache.clear())
	if s.neg != nil {
		s.neg.clear()
	}
}

// keepUse moves the unwritten last use of an entry leaving the cache to
// the pending uses.
func (s *Service) keepUse(e *entry) {
	if e == nil || e.key == nil {
		return
	}
	u := e.used.Load()
	if u == 0 || u <= e.flushed.Load() {
		return
	}
	s.pendMu.Lock()
	s.pending[e.id] = max(s.pending[e.id], u)
	s.pendMu.Unlock()
}

func (s *Service) keepUses(es []*entry) {
	for _, e := range es {
		s.keepUse(e)
	}
}

// overlayLastUsed shows in k a use not yet written to the store.
func (s *Service) overlayLastUsed(k *Key) {
	var u int64
	if s.cache != nil {
		if e := s.cache.get(k.ID); e != nil {
			u = e.used.Load()
		}
	}
	s.pendMu.Lock()
	u = max(u, s.pending[k.ID])
	s.pendMu.Unlock()
	if u != 0 {
		if t := time.Unix(0, u).UTC().Truncate(time.Microsecond); t.After(k.LastUsed) {
			k.LastUsed = t
		}
	}
}

// maintain moves the coarse clock on, drops cache entries older than their
// TTL, and writes the last-used times every interval.
func (s *Service) maintain() {
	t := time.NewTicker(min(tick, s.interval))
	defer t.Stop()
	lastFlush := time.Now()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		now := s.now().UnixNano()
		s.setCoarse(now)
		if s.cache != nil {
			s.keepUses(s.cache.removeOlder(now - s.ttl))
			if s.neg != nil {
				s.neg.removeOlder(now - s.negTTL)
			}
		}
		if time.Since(lastFlush) >= s.interval {
			lastFlush = time.Now()
			if err := s.flush(s.ctx); err != nil && s.ctx.Err() == nil {
				s.log.Warn("keys: writing last-used times", "err", err)
			}
		}
	}
}

// flush writes the last uses not yet written, one write for all keys.
func (s *Service) flush(ctx context.Context) error {
	used := make(map[string]time.Time)
	s.pendMu.Lock()
	pending := s.pending
	s.pending = make(map[string]int64)
	s.pendMu.Unlock()
	for id, u := range pending {
		used[id] = time.Unix(0, u)
	}
	type mark struct {
		e *entry
		u int64
	}
	var marks []mark
	if s.cache != nil {
		s.cache.each(func(e *entry) {
			if u := e.used.Load(); u > e.flushed.Load() {
				if t := time.Unix(0, u); t.After(used[e.id]) {
					used[e.id] = t
				}
				marks = append(marks, mark{e, u})
			}
		})
	}
	if len(used) == 0 {
		return nil
	}
	if err := s.store.TouchLastUsed(ctx, used); err != nil {
		s.pendMu.Lock()
		for id, u := range pending {
			s.pending[id] = max(s.pending[id], u)
		}
		s.pendMu.Unlock()
		return err
	}
	for _, m := range marks {
		m.e.flushed.Store(m.u)
	}
	return nil
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

const shardTarget = 32 // entries per shard the shard count aims at

func newCache(size int) *cache {
	n := 1 << bits.Len(uint(max(size/shardTarget, 1)-1))
	n = min(n, 1024)
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
