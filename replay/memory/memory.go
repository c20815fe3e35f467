// Package memory implements an in-process [httpsig.NonceStore] for a single
// server: [New] returns a [*Store] bounded to [Options.MaxEntries] entries.
//
// The store does not keep keyids and nonces. It keeps, for each pair, a
// 64-bit fingerprint: the SipHash-2-4 of the keyid, under a secret key drawn
// when the store is made, XORed with the SipHash of the nonce under a second
// one. Two pairs with the same fingerprint look alike: the second would be
// refused as a replay, never let through. With a million entries held, the
// chance is about 2^-44 for each new pair, and as the keys are secret a
// client can neither aim for it nor crowd a part of the table. An entry takes
// 16 bytes (the fingerprint, the second its pair expires, and the index of
// its keyid's counter) in a table kept at most three quarters full, which
// doubles as it fills: from 21 bytes an entry in a full store to twice that
// just after a table grew (TestEntrySize measures 26 at a million entries in
// a store of 1.25 million).
//
// Entries are spread over shards, each with its own lock and open-addressing
// table, so that concurrent requests seldom wait on one another. Expired
// entries are dropped by a sweep that goes round each table every few
// seconds, a little at a time, and their slots are reused as new pairs pass
// by them. A full store never drops a live entry to make room (that would let
// a replay through): [Store.Remember] returns [ErrFull] instead.
//
// # Fair shares
//
// One keyid cannot lock the others out. Once a shard is three quarters full,
// a keyid that holds at least its share of it (the shard's capacity divided
// by the number of keyids with entries there) is refused with [ErrKeyFull],
// while the keyids below their share go on using the last quarter. A client
// that floods the store thus fills at most three quarters of it, and as its
// entries expire the others' share grows. Many keyids acting together can
// still fill the store: that is for rate limits to prevent.
//
// # Restarts
//
// A store is empty when it is made, so a server that restarts would accept
// again the requests it accepted in the last maximum age. A store made with
// [Options.Horizon] refuses them: it answers [replay.ErrUnvouched] for any
// signature created before its horizon, the earliest created time from which
// it holds every pair it may have accepted. [Store.SaveFile] writes a
// snapshot on a graceful shutdown and [Store.LoadFile] reads it at the next
// start, so that a graceful restart keeps its horizon and its pairs and
// loses nothing; after a crash there is no snapshot, and the store fails
// closed for what came before. [Lock] keeps two servers from keeping
// separate stores for the same clients.
package memory

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/dchest/siphash"

	"github.com/signet-dev/signet/httpsig"
	"github.com/signet-dev/signet/replay"
)

// DefaultMaxEntries is the capacity of a store whose [Options.MaxEntries] is
// zero: about 22 MiB when full, at 21 bytes an entry. The memory grows with
// use up to that and then stays flat.
const DefaultMaxEntries = 1 << 20

var (
	// ErrFull is returned by [Store.Remember] when the store holds as many
	// live entries as it may. It is not [httpsig.ErrReplayed]: the verifier
	// fails closed with it and a server answers 503. Seeing it means
	// MaxEntries is too small for the traffic; see [Options.MaxEntries].
	ErrFull = errors.New("memory: nonce store is full")

	// ErrKeyFull is returned by [Store.Remember] when the store is nearly
	// full and the pair's keyid holds more than its share of it (see the
	// package documentation). It wraps ErrFull, so that a caller that
	// branches on ErrFull treats both alike; a caller that cares which key
	// floods the store tests for ErrKeyFull first.
	ErrKeyFull = fmt.Errorf("%w for this keyid, which holds more than its share", ErrFull)

	// ErrClosed is returned by [Store.Remember] once [Store.Save] has begun:
	// a pair accepted after the snapshot would be lost to the next process.
	ErrClosed = errors.New("memory: nonce store is closed: its snapshot was taken")
)

// Options configures a [Store]. The zero value is ready to use.
type Options struct {
	// MaxEntries bounds the number of entries held. An entry is held from
	// the request that brings it until the signature can no longer be
	// accepted (a little over the verifier's maximum age), so size it as
	// the peak rate of signed requests times the maximum age, times a
	// headroom of two or more: 1,000 requests a second with the default
	// 300 s hold about 300,000 entries, and 1<<20 leaves room for bursts
	// and for the share each keyid keeps (see the package documentation).
	// The store's tables grow with use, up to 21 bytes for each entry of
	// MaxEntries: ten million take at most 213 MB. The bound applies to each shard, so a
	// store may report ErrFull a little before it holds MaxEntries entries
	// in all. If zero or less, DefaultMaxEntries is used.
	MaxEntries int

	// Now returns the current time, by which entries expire. If nil,
	// time.Now is used. Give the store the verifier's clock when that is not
	// the real one.
	Now func() time.Time

	// Horizon makes the store refuse, with [replay.ErrUnvouched], every
	// signature created before its horizon, and every signature with no
	// created time: an earlier process may have accepted them. A new
	// store's horizon is the time it is made plus MaxSkew, since a server
	// accepts signatures created up to MaxSkew ahead of its clock; a
	// snapshot read by [Store.Load] brings the horizon of the store that
	// wrote it. Set it in a server: after a crash, requests captured
	// before it are refused for as long as they would otherwise be fresh,
	// at the cost of refusing, for MaxSkew after the start, requests
	// created before the horizon. The zero value, false, is the behaviour
	// of a store made once for the life of its verifier.
	Horizon bool

	// MaxAge and MaxSkew are the verifier's (see [httpsig.Policy]); zero
	// means the httpsig defaults, and a negative MaxSkew none. MaxSkew sets
	// the horizon of a new store; MaxAge bounds how old a snapshot Load
	// accepts, since an older one could only shorten the horizon.
	MaxAge  time.Duration
	MaxSkew time.Duration
}

// A Store remembers (keyid, nonce) pairs in memory. It is safe for
// concurrent use. Remember does not allocate once the store has grown to its
// working size.
type Store struct {
	now     func() time.Time
	keys    [4]uint64 // SipHash keys: two for keyids, two for nonces
	strict  bool      // Options.Horizon
	horizon atomic.Int64
	maxAge  time.Duration
	closed  atomic.Bool
	mask    uint64
	shards  []shard
}

var _ httpsig.NonceStore = (*Store)(nil)

const (
	// minShardEntries keeps small stores in few shards, so that their bound
	// stays close to MaxEntries.
	minShardEntries = 1024
	maxShards       = 256
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
	skew := opts.MaxSkew
	switch {
	case skew == 0:
		skew = httpsig.DefaultMaxSkew
	case skew < 0:
		skew = 0
	}
	maxAge := opts.MaxAge
	if maxAge <= 0 {
		maxAge = httpsig.DefaultMaxAge
	}
	n := shardCount(maxEntries, runtime.GOMAXPROCS(0))
	s := &Store{
		now:    now,
		keys:   newKeys(),
		strict: opts.Horizon,
		maxAge: maxAge,
		mask:   uint64(n - 1),
		shards: make([]shard, n),
	}
	s.horizon.Store(now().Add(skew).UnixNano())
	for i := range s.shards {
		s.shards[i].init(maxEntries / n)
	}
	return s
}

func newKeys() [4]uint64 {
	var b [32]byte
	rand.Read(b[:])
	var k [4]uint64
	for i := range k {
		k[i] = binary.LittleEndian.Uint64(b[8*i:])
	}
	return k
}

// shardCount returns a power of two near 8 shards per processor, fewer when
// each shard would hold fewer than minShardEntries entries.
func shardCount(maxEntries, procs int) int {
	n := 1
	for n < 8*procs && n < maxShards {
		n *= 2
	}
	for n > 1 && maxEntries/n < minShardEntries {
		n /= 2
	}
	return n
}

// Remember records the pair (keyID, nonce) until the given time and returns
// nil, or returns [httpsig.ErrReplayed] if the pair is recorded already and
// its time has not passed. A pair is held through until itself, and may be
// held up to two seconds longer: the store counts in whole seconds, so a
// time that has passed by a second or more records nothing. A pair still
// held is refused whatever the until given with it.
//
// It returns [ErrFull] if the pair is new and the store has no room for it,
// [ErrKeyFull] if the keyid holds more than its share of a nearly full
// store, [replay.ErrUnvouched] if the store was made with
// [Options.Horizon] and created is before its horizon or zero, and
// [ErrClosed] once [Store.Save] has begun. The context is not used: the
// store never waits but for its own lock.
func (s *Store) Remember(_ context.Context, keyID, nonce string, created, until time.Time) error {
	t := s.now()
	if s.strict && (created.IsZero() || created.Before(time.Unix(0, s.horizon.Load()))) {
		return replay.ErrUnvouched
	}
	kh, fp := s.hash(keyID, nonce)
	sh := &s.shards[fp&s.mask]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if s.closed.Load() {
		return ErrClosed
	}
	return sh.remember(kh, fp, ceilSecond(until), second(t))
}

// Len reports how many entries the store holds. It counts expired entries
// that are not yet dropped, which are those of the last few seconds, so it
// may exceed the number of live ones by that much; it never exceeds Cap.
// It is meant for a gauge: it takes each shard's lock in turn.
func (s *Store) Len() int {
	nowS := second(s.now())
	n := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		sh.tick(nowS)
		n += sh.n
		sh.mu.Unlock()
	}
	return n
}

// Cap reports how many entries the store may hold: MaxEntries, rounded down
// to a multiple of the number of shards.
func (s *Store) Cap() int {
	return len(s.shards) * s.shards[0].limit
}

// HorizonTime returns the store's horizon: with [Options.Horizon], Remember
// refuses signatures created before it. It is meant for a log line at start.
func (s *Store) HorizonTime() time.Time {
	return time.Unix(0, s.horizon.Load())
}

// hash returns the hash of keyID, by which the store counts each keyid's
// entries, and the fingerprint of the pair, which is never 0.
func (s *Store) hash(keyID, nonce string) (kh, fp uint64) {
	kh = siphash.Hash(s.keys[0], s.keys[1], bytesOf(keyID))
	fp = kh ^ siphash.Hash(s.keys[2], s.keys[3], bytesOf(nonce))
	if fp == 0 {
		fp = 1
	}
	return kh, fp
}

// bytesOf returns the bytes of s without copying them; siphash.Hash only
// reads them.
func bytesOf(s string) []byte {
	return unsafe.Slice(unsafe.StringData(s), len(s))
}

// second returns the Unix second of t, within the range a slot holds.
func second(t time.Time) uint32 {
	return clampSecond(t.Unix())
}

// ceilSecond returns the first Unix second not before t, within the range a
// slot holds: pairs held past 2106 are held until then.
func ceilSecond(t time.Time) uint32 {
	s := t.Unix()
	if t.Nanosecond() > 0 {
		s++
	}
	return clampSecond(s)
}

func clampSecond(s int64) uint32 {
	return uint32(min(max(s, 0), math.MaxUint32))
}
