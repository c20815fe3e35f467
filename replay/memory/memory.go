// Package memory implements an in-process [httpsig.NonceStore] for a single
// server: [New] returns a [*Store] bounded to [Options.MaxEntries] entries.
//
// The store does not keep keyids and nonces. It keeps a 128-bit hash of each
// pair, made of two 64-bit [maphash] sums under seeds drawn when the store is
// made, over the keyid length, the keyid and the nonce; the length prefix
// keeps ("ab", "c") and ("a", "bc") apart. A pair whose hash collided with
// one held would look replayed: its message would be refused, never let
// through. With a million entries held, the chance is about 2^-108 for each
// new pair, and as the seeds are secret a client cannot aim for it.
//
// Entries are spread over shards, each with its own lock, map and min-heap of
// expiry times, so that concurrent requests seldom wait on one another and
// expired entries are dropped a few at a time on each call rather than by a
// scan. A full store never drops a live entry to make room (that would let a
// replay through): [Store.Remember] returns [ErrFull] instead.
package memory

import (
	"context"
	"encoding/binary"
	"errors"
	"hash/maphash"
	"math"
	"math/bits"
	"runtime"
	"sync"
	"time"

	"github.com/signet-dev/signet/httpsig"
)

// DefaultMaxEntries is the capacity of a store whose [Options.MaxEntries] is
// zero. An entry takes about 90 bytes, so a full default store takes about
// 90 MiB; the memory grows with use up to that and then stays flat.
const DefaultMaxEntries = 1 << 20

// ErrFull is returned by [Store.Remember] when the store holds as many live
// entries as it may. It is not [httpsig.ErrReplayed]: the verifier fails
// closed with it and a server answers 503. Seeing it means MaxEntries is too
// small for the traffic; see [Options.MaxEntries].
var ErrFull = errors.New("memory: nonce store is full")

// Options configures a [Store]. The zero value is ready to use.
type Options struct {
	// MaxEntries bounds the number of entries held. Entries live until the
	// time given to Remember, so it should exceed the peak rate of signed
	// requests times the verifier's acceptance window (maximum age plus
	// allowed skew), with headroom: 1,000 requests a second with the default
	// 330 s window hold 330,000 entries. The bound applies to each shard, so
	// a store may report ErrFull a little before it holds MaxEntries entries
	// in all: at the default size, at 99.5% on 2 processors, 96% on 64. If
	// zero or less, DefaultMaxEntries is used.
	MaxEntries int

	// Now returns the current time, by which entries expire. If nil,
	// time.Now is used. Give the store the verifier's clock when that is not
	// the real one.
	Now func() time.Time
}

// A Store remembers (keyid, nonce) pairs in memory. It is safe for
// concurrent use. Its methods do not allocate once the store has grown to its
// working size.
type Store struct {
	now    func() time.Time
	seeds  [2]maphash.Seed
	mask   uint64
	shards []shard
}

var _ httpsig.NonceStore = (*Store)(nil)

// A shard is padded so that two shards' locks never share a cache line.
type shard struct {
	mu    sync.Mutex
	until map[pairHash]int64 // expiry of each pair, in Unix nanoseconds
	heap  []entry            // min-heap on until: what to drop next
	limit int
	_     [64]byte
}

type pairHash [2]uint64

// An entry whose until differs from the map's value for its pair is stale: the
// pair expired and was remembered again before the entry was dropped.
type entry struct {
	until int64
	pair  pairHash
}

const (
	// minShardEntries keeps small stores in few shards, so that their bound
	// stays close to MaxEntries.
	minShardEntries = 1024
	maxShards       = 256

	// sweepPerCall is how many expired entries a call drops at most, besides
	// those it drops to make room. More than one, so that dropping outpaces
	// adding; few, so that no call pays for a backlog.
	sweepPerCall = 4
)

// New returns an empty store configured by opts.
func New(opts Options) *Store {
	maxEntries := opts.MaxEntries
	if maxEntries <= 0 {
		maxEntries = DefaultMaxEntries
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	n := shardCount(maxEntries, runtime.GOMAXPROCS(0))
	s := &Store{
		now:    now,
		seeds:  [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()},
		mask:   uint64(n - 1),
		shards: make([]shard, n),
	}
	for i := range s.shards {
		s.shards[i].until = make(map[pairHash]int64)
		s.shards[i].limit = maxEntries / n
	}
	return s
}

// shardCount returns a power of two near 8 shards per processor, fewer when
// each shard would hold fewer than minShardEntries entries.
func shardCount(maxEntries, procs int) int {
	n := 1 << bits.Len(uint(8*procs-1))
	n = min(n, maxShards)
	for n > 1 && maxEntries/n < minShardEntries {
		n /= 2
	}
	return n
}

// Remember records the pair (keyID, nonce) until the given time and returns
// nil, or returns [httpsig.ErrReplayed] if the pair is recorded already and
// its time has not passed. A pair is held through until itself. A time that
// has already passed records nothing and returns nil: no signature that old
// is accepted anyway. It returns [ErrFull] if the pair is new and the store
// has no room for it. The context is not used: the store never waits but for
// its own lock.
func (s *Store) Remember(_ context.Context, keyID, nonce string, _, until time.Time) error {
	t := s.now()
	ttl := until.Sub(t) // saturates, unlike until.UnixNano
	if ttl < 0 {
		return nil
	}
	now := t.UnixNano()
	exp := now + int64(ttl)
	if exp < now {
		exp = math.MaxInt64
	}
	p := s.hash(keyID, nonce)
	sh := &s.shards[p[0]&s.mask]

	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.sweep(now, sweepPerCall)
	if u, ok := sh.until[p]; ok && u >= now {
		return httpsig.ErrReplayed
	}
	if len(sh.heap) >= sh.limit && !sh.makeRoom(now) {
		return ErrFull
	}
	sh.until[p] = exp
	sh.push(entry{until: exp, pair: p})
	return nil
}

// Len reports how many entries the store holds, counting expired ones that
// are not yet dropped. It never exceeds MaxEntries.
func (s *Store) Len() int {
	n := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		n += len(sh.heap)
		sh.mu.Unlock()
	}
	return n
}

func (s *Store) hash(keyID, nonce string) pairHash {
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(keyID)))
	var p pairHash
	var h maphash.Hash
	for i, seed := range s.seeds {
		h.SetSeed(seed)
		h.Write(n[:])
		h.WriteString(keyID)
		h.WriteString(nonce)
		p[i] = h.Sum64()
	}
	return p
}

// sweep drops up to max entries that expired before now.
func (sh *shard) sweep(now int64, max int) {
	for i := 0; i < max && len(sh.heap) > 0 && sh.heap[0].until < now; i++ {
		sh.drop()
	}
}

// makeRoom drops expired entries until the shard is below its limit, and
// reports whether it got there. It never drops a live entry.
func (sh *shard) makeRoom(now int64) bool {
	for len(sh.heap) >= sh.limit {
		if sh.heap[0].until >= now {
			return false
		}
		sh.drop()
	}
	return true
}

// drop removes the heap's first entry, and its pair from the map unless the
// entry is stale.
func (sh *shard) drop() {
	e := sh.heap[0]
	if sh.until[e.pair] == e.until {
		delete(sh.until, e.pair)
	}
	last := len(sh.heap) - 1
	sh.heap[0] = sh.heap[last]
	sh.heap = sh.heap[:last]
	sh.down(0)
}

// The heap is 4-ary: half as deep as a binary one, with the children of a
// node next to each other in memory, which matters once it outgrows the
// processor's caches.
const arity = 4

func (sh *shard) push(e entry) {
	sh.heap = append(sh.heap, e)
	h := sh.heap
	i := len(h) - 1
	for i > 0 {
		parent := (i - 1) / arity
		if h[parent].until <= e.until {
			break
		}
		h[i] = h[parent]
		i = parent
	}
	h[i] = e
}

func (sh *shard) down(i int) {
	h := sh.heap
	if len(h) == 0 {
		return
	}
	e := h[i]
	for {
		first := arity*i + 1
		if first >= len(h) {
			break
		}
		least := first
		for c := first + 1; c < min(first+arity, len(h)); c++ {
			if h[c].until < h[least].until {
				least = c
			}
		}
		if e.until <= h[least].until {
			break
		}
		h[i] = h[least]
		i = least
	}
	h[i] = e
}
