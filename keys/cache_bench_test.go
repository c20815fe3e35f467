package keys

import (
	"fmt"
	"hash/maphash"
	"testing"
)

// fillCache returns a cache sized for n keys holding n entries, sk_ and
// i in 22 digits, built shard by shard (put copies its shard, so filling
// a large cache one put at a time would take minutes), and their ids.
func fillCache(n int) (*cache, []string) {
	c := newCache(n)
	ids := make([]string, n)
	shards := make([]map[string]*entry, len(c.shards))
	for i := range shards {
		shards[i] = make(map[string]*entry)
	}
	for i := range ids {
		id := fmt.Sprintf("sk_%022d", i)
		ids[i] = id
		shards[maphash.String(c.seed, id)&c.mask][id] = &entry{id: id, key: &ResolvedKey{id: id}}
	}
	for i := range shards {
		m := shards[i]
		c.shards[i].m.Store(&m)
	}
	return c, ids
}

// BenchmarkCacheHit looks up cached keys in a cache of 1, 10^4 (the
// default size) and 10^6 keys, each lookup for another key drawn at
// random, so that at 10^6 the entries are rarely in the CPU's caches. The
// keyid looked up is written afresh each time, as a request's is: only the
// cache's memory is cold.
func BenchmarkCacheHit(b *testing.B) {
	for _, n := range []int{1, 10_000, 1_000_000} {
		b.Run(fmt.Sprintf("keys=%d", n), func(b *testing.B) {
			c, _ := fillCache(n)
			x := uint64(88172645463325252)
			id := []byte(fmt.Sprintf("sk_%022d", 0))
			b.ReportAllocs()
			for b.Loop() {
				x ^= x << 13
				x ^= x >> 7
				x ^= x << 17
				v := x % uint64(n)
				for i := len(id) - 1; i >= 3; i-- {
					id[i] = byte('0' + v%10)
					v /= 10
				}
				if c.get(string(id)) == nil {
					b.Fatal("miss")
				}
			}
		})
	}
}

// BenchmarkCachePut adds a key to a full cache of 10^4 and 10^6 keys,
// which copies its shard (lock-free reads) and evicts an entry: the cost a
// cache miss adds to the store lookup before it.
func BenchmarkCachePut(b *testing.B) {
	for _, n := range []int{10_000, 1_000_000} {
		b.Run(fmt.Sprintf("keys=%d", n), func(b *testing.B) {
			c, _ := fillCache(n)
			ok := func() bool { return true }
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				id := fmt.Sprintf("new_%d", i)
				i++
				c.put(&entry{id: id, key: &ResolvedKey{id: id}}, ok)
			}
			b.ReportMetric(float64(len(*c.shards[0].m.Load())), "entries/shard")
		})
	}
}
