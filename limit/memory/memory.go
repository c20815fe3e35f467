// Package memory implements a [limit.Limiter] and a [limit.Counter] in the
// process, for a single gateway: [New] returns a [*Store] bounded to
// [Options.MaxKeys] keys.
//
// Keys are spread over shards, each with its own lock and maps, so that
// concurrent requests seldom wait on one another. A rate's state is one
// number per key, its theoretical arrival time; deciding takes no
// allocation once the key is held.
//
// # Bounded memory
//
// A full store frees room by forgetting the keys whose state is that of a
// key it never saw: a rate whose theoretical arrival time has passed (a
// full burst may pass again), uses that lapsed at a refill or that it
// holds none of. Forgetting those changes no decision. It never forgets a
// key that has spent part of its burst, nor uses it holds: when nothing
// can go, a new key is refused with [ErrFull] (fail closed: the gateway
// answers 503) until something can. A shard looks for room at most every
// tenth of a second, so that a full store costs little per request.
//
// # Uses
//
// The store takes uses from its [limit.Ledger] (the key store) Options.Batch
// at a time, and counts them down in memory. A process that stops loses the
// uses it held (at most Batch a key), never grants one twice. Once the
// ledger has none left for a key, the store refuses it without asking
// again until the key's budget is set anew or refilled.
package memory

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/signet-dev/signet/limit"
	"github.com/signet-dev/signet/limit/internal/gcra"
)

// Defaults for the zero fields of [Options].
const (
	DefaultMaxKeys = 1 << 20
	DefaultBatch   = 10
)

// ErrFull is returned when a key the store does not hold would need room
// and the store has none: every key it holds is in use. It fails the
// request closed; seeing it means MaxKeys is too small for the traffic.
var ErrFull = errors.New("limit/memory: the store is full of keys in use")

// Options configures a [Store]. The zero value is ready to use for rates.
type Options struct {
	// MaxKeys bounds the number of keys held, rates and uses together, at
	// about 60 bytes each beside the key's string: size it to the number of
	// signing keys, owners and routes limited, times two or more. The bound
	// applies to each of the store's shards, so a store may report ErrFull
	// a little before it holds MaxKeys keys. If zero or less,
	// DefaultMaxKeys is used.
	MaxKeys int

	// Ledger is where Spend takes uses from. Without it, Spend returns an
	// error.
	Ledger limit.Ledger

	// Batch is how many uses Spend takes from the ledger at a time, beyond
	// what the request needs: more means fewer writes to the key store,
	// and more uses lost for a key if the process stops. If zero or less,
	// DefaultBatch is used.
	Batch int

	// Now returns the current time. If nil, time.Now is used.
	Now func() time.Time
}

const (
	shardCount = 64
	// sweepGap is how long a full shard waits before it looks for room
	// again.
	sweepGap = 100 * time.Millisecond
)

// A Store holds the limits of keys in memory. It is safe for concurrent
// use.
type Store struct {
	now       func() time.Time
	realClock bool      // now is time.Now
	start     time.Time // for monotonic readings of now
	startUS   int64
	seed      maphash.Seed
	perMax    int
	ledger    limit.Ledger
	batch     int64
	leases    singleflight.Group
	shards    [shardCount]shard
}

var (
	_ limit.Limiter = (*Store)(nil)
	_ limit.Counter = (*Store)(nil)
)

type shard struct {
	mu    sync.Mutex
	rates map[string]int64 // theoretical arrival time, µs
	pools map[string]pool
	swept int64    // µs of the last look for room
	_     [64]byte // keeps two shards' locks off one cache line
}

// A pool is the uses of one key taken from the ledger and not yet spent.
type pool struct {
	set       int64 // the budget's Set, µs
	until     int64 // when they lapse, µs; 0 never
	balance   int64 // uses held
	remaining int64 // uses left in the ledger when last asked
}

// New returns an empty store.
func New(opts Options) *Store {
	s := &Store{
		now:    opts.Now,
		seed:   maphash.MakeSeed(),
		perMax: opts.MaxKeys,
		ledger: opts.Ledger,
		batch:  int64(opts.Batch),
	}
	if s.now == nil {
		s.now, s.realClock = time.Now, true
	}
	if s.perMax <= 0 {
		s.perMax = DefaultMaxKeys
	}
	s.perMax = max(s.perMax/shardCount, 1)
	if s.batch <= 0 {
		s.batch = DefaultBatch
	}
	s.start = s.now()
	s.startUS = s.start.UnixMicro()
	for i := range s.shards {
		s.shards[i].rates = make(map[string]int64)
		s.shards[i].pools = make(map[string]pool)
		s.shards[i].swept = -1 << 62
	}
	return s
}

// micros is the current time in Unix microseconds, moving on with the
// monotonic clock, so that a wall clock stepped back does not hand out
// a burst again. With the real clock, time.Since reads only the monotonic
// one: half the cost of time.Now, which reads both.
func (s *Store) micros() int64 {
	if s.realClock {
		return s.startUS + time.Since(s.start).Microseconds()
	}
	return s.startUS + s.now().Sub(s.start).Microseconds()
}

func (s *Store) shard(key string) *shard {
	return &s.shards[maphash.String(s.seed, key)%shardCount]
}

// Len returns the number of keys the store holds, rates and uses
// together: for a gauge beside [Store.Cap].
func (s *Store) Len() int {
	n := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		n += len(sh.rates) + len(sh.pools)
		sh.mu.Unlock()
	}
	return n
}

// Cap returns the number of keys the store may hold: MaxKeys, rounded
// down to a multiple of the number of shards.
func (s *Store) Cap() int { return s.perMax * shardCount }

// Allow implements [limit.Limiter].
func (s *Store) Allow(_ context.Context, key string, r limit.Rate, cost int) (limit.Decision, error) {
	p, err := gcra.For(r, cost)
	if err != nil {
		return limit.Decision{}, err
	}
	now := s.micros()
	sh := s.shard(key)
	sh.mu.Lock()
	tat, held := sh.rates[key]
	allowed, ahead := gcra.Step(p, tat, now, cost)
	if allowed && cost > 0 {
		if !held && !sh.room(now, s.perMax) {
			sh.mu.Unlock()
			return limit.Decision{}, ErrFull
		}
		sh.rates[key] = now + ahead
	}
	sh.mu.Unlock()
	return gcra.Decide(p, allowed, ahead, cost), nil
}

// room reports whether the shard may take one more key, forgetting the
// keys it can if it is full.
func (sh *shard) room(now int64, perMax int) bool {
	if len(sh.rates)+len(sh.pools) < perMax {
		return true
	}
	if now-sh.swept < sweepGap.Microseconds() {
		return false
	}
	sh.swept = now
	for k, tat := range sh.rates {
		if tat <= now {
			delete(sh.rates, k)
		}
	}
	for k, p := range sh.pools {
		if p.balance == 0 || p.lapsed(now) {
			delete(sh.pools, k)
		}
	}
	return len(sh.rates)+len(sh.pools) < perMax
}

func (p pool) lapsed(now int64) bool { return p.until != 0 && now >= p.until }

// Spend implements [limit.Counter].
func (s *Store) Spend(ctx context.Context, key string, set time.Time, cost int) (limit.Decision, error) {
	if cost < 0 {
		return limit.Decision{}, fmt.Errorf("%w cost %d: it must not be negative", limit.ErrInvalid, cost)
	}
	if s.ledger == nil {
		return limit.Decision{}, errors.New("limit/memory: Spend needs a Ledger")
	}
	c := int64(cost)
	callerSet := setMicros(set)
	sh := s.shard(key)
	if d, ok := sh.spend(key, callerSet, c, s.micros()); ok {
		return d, nil
	}
	// The store holds too few of the key's uses, and the ledger may have
	// more: one call at a time takes a batch for every request waiting.
	_, err, _ := s.leases.Do(key, func() (any, error) {
		g, err := s.take(ctx, key, s.batch+c)
		if err != nil {
			return nil, err
		}
		sh.mu.Lock()
		defer sh.mu.Unlock()
		return nil, sh.deposit(key, g, callerSet, s.micros(), s.perMax)
	})
	if err != nil {
		return unlimitedOr(err)
	}
	if d, ok := sh.spend(key, callerSet, c, s.micros()); ok {
		return d, nil
	}
	// Others spent that batch first: take one for this request, and spend
	// from it before anyone else can.
	g, err := s.take(ctx, key, s.batch+c)
	if err != nil {
		return unlimitedOr(err)
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	now := s.micros()
	if err := sh.deposit(key, g, callerSet, now, s.perMax); err != nil {
		return limit.Decision{}, err
	}
	if d, ok := sh.spendLocked(key, callerSet, c, now); ok {
		return d, nil
	}
	// The key's budget was set again or refilled while this request took
	// its uses.
	return limit.Decision{}, errors.New("limit/memory: the key's budget changed while spending from it")
}

var errUnlimited = errors.New("no budget")

// take takes n of the key's uses from the ledger.
func (s *Store) take(ctx context.Context, key string, n int64) (limit.Grant, error) {
	g, err := s.ledger.TakeUses(ctx, key, n)
	switch {
	case err != nil:
		return g, fmt.Errorf("limit/memory: take uses: %w", err)
	case g.Unlimited:
		return g, errUnlimited
	}
	return g, nil
}

// unlimitedOr is the answer to a request whose key turned out to have no
// budget, or that failed with err.
func unlimitedOr(err error) (limit.Decision, error) {
	if errors.Is(err, errUnlimited) {
		return limit.Decision{Allowed: true, Remaining: limit.Unlimited}, nil
	}
	return limit.Decision{}, err
}

// spend spends cost of the key's uses if the store holds enough, or
// refuses the request if the ledger has none to add, and reports whether
// it decided.
func (sh *shard) spend(key string, callerSet, cost, now int64) (limit.Decision, bool) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.spendLocked(key, callerSet, cost, now)
}

func (sh *shard) spendLocked(key string, callerSet, cost, now int64) (limit.Decision, bool) {
	p, ok := sh.pools[key]
	if ok && (callerSet > p.set || p.lapsed(now)) {
		delete(sh.pools, key)
		ok = false
	}
	switch {
	case !ok:
		return limit.Decision{}, false
	case p.balance >= cost:
		p.balance -= cost
		sh.pools[key] = p
		return p.decide(true, now), true
	case p.remaining == 0:
		return p.decide(false, now), true
	}
	return limit.Decision{}, false
}

// deposit adds uses taken from the ledger to those the store holds for
// the key. They are held under the later of the grant's Set and the
// caller's, so that a caller whose Set the ledger does not give back to
// the microsecond does not drop them on its next call.
func (sh *shard) deposit(key string, g limit.Grant, callerSet, now int64, perMax int) error {
	n := pool{set: max(setMicros(g.Set), callerSet), balance: g.Spent, remaining: g.Remaining}
	if !g.Until.IsZero() {
		n.until = g.Until.UnixMicro()
	}
	if n.lapsed(now) {
		return nil
	}
	p, ok := sh.pools[key]
	switch {
	case !ok:
		if !sh.room(now, perMax) {
			return ErrFull
		}
	case n.set == p.set && n.until == p.until:
		n.balance += p.balance
		n.remaining = min(n.remaining, p.remaining)
	case n.set < p.set || n.set == p.set && n.until < p.until:
		return nil // taken under a budget that has since moved on: lost
	}
	sh.pools[key] = n
	return nil
}

// decide is the decision on a request after the store spent its uses, or
// refused it.
func (p pool) decide(allowed bool, now int64) limit.Decision {
	d := limit.Decision{Allowed: allowed, Remaining: p.balance + p.remaining}
	if p.until != 0 {
		d.Reset = time.Duration(p.until-now) * time.Microsecond
		if !allowed {
			d.RetryAfter = d.Reset
		}
	}
	return d
}

// setMicros is a budget's Set in Unix microseconds; the zero time, a Set
// the caller does not know, is before every other.
func setMicros(t time.Time) int64 {
	if t.IsZero() {
		return -1 << 63
	}
	return t.UnixMicro()
}
