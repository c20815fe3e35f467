// Package redis implements a [limit.Limiter] and a [limit.Counter] in
// Redis, shared by every instance of a gateway: [New] connects a [*Store]
// to a redis:// URL, of a single server or of a Redis Cluster.
//
// Every decision is one Lua script, run atomically by Redis, so that any
// number of gateways agree: a rate over N requests per period lets no more
// through across all of them than through one. The scripts read the time
// from the Redis server (TIME), not from the gateways, so that gateways
// whose clocks disagree share one clock per key; a Redis Cluster keeps
// each key on one node, and so on that node's clock. A failover to a
// replica whose clock is off by d gives or takes d's worth of a rate, once.
//
// # Keys
//
// A limiter key's state is one Redis key: [Options.KeyPrefix], a hash tag
// made of the first 96 bits of the SHA-256 of the limiter key, in
// URL-safe base64, and "r" for a rate or "u" for uses. The keys thus have
// a fixed size, carry neither key ids nor owners, and a script touches
// one key, so one slot of a cluster; a limiter key's rate and uses share
// a slot. The one exception, [Store.AllowOwned], decides a key's rate, its
// owner's and the key's uses in one script, so on a single server only. A rate's state is a string, the theoretical arrival time in
// microseconds, that expires when it is past (a key at a full burst is
// held by no Redis key at all). Uses are a hash of the uses taken from
// the ledger and not yet spent, which lapses at the key's next refill,
// or after 30 days without a request for a key that is not refilled.
//
// # Uses
//
// The uses of a key are taken from the [limit.Ledger] (the key store)
// [Options.Batch] at a time into Redis, where every gateway spends from
// them, so that none holds uses another needs. Uses in Redis that are
// lost (Redis lost its data, or the key was idle for 30 days) are lost to
// the key, at most one batch; none is ever granted twice.
//
// # Failing closed
//
// Every call is bounded by [Options.Timeout]; when Redis is unreachable or
// slow, Allow and Spend return an error and the gateway refuses the
// request (503). The store reconnects by itself once Redis is back. Run
// Redis with maxmemory-policy noeviction (an evicted rate forgets a spent
// burst), as for nonces.
package redis

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
	"golang.org/x/sync/singleflight"

	"github.com/signet-dev/signet/limit"
	"github.com/signet-dev/signet/limit/internal/gcra"
)

// Defaults for the zero fields of [Options].
const (
	DefaultKeyPrefix   = "signet:limit:"
	DefaultTimeout     = 200 * time.Millisecond
	DefaultDialTimeout = time.Second
	DefaultBatch       = 10
)

// Options configures a [Store]. The zero value gives the defaults.
type Options struct {
	// KeyPrefix starts every key the store writes. Stores must use the
	// same prefix to share limits. If empty, DefaultKeyPrefix is used.
	KeyPrefix string

	// Timeout bounds each call to Redis, including any reconnecting it
	// waits for; a sooner deadline on the caller's context wins. Calls to
	// the ledger are bounded by the caller's context only. If zero or
	// less, DefaultTimeout is used.
	Timeout time.Duration

	// DialTimeout bounds the making of a connection, in New; within a
	// call, Timeout bounds it too. If zero or less, DefaultDialTimeout is
	// used.
	DialTimeout time.Duration

	// Ledger is where Spend takes uses from. Without it, Spend returns an
	// error.
	Ledger limit.Ledger

	// Batch is how many uses Spend takes from the ledger at a time,
	// beyond what the request needs. If zero or less, DefaultBatch is
	// used.
	Batch int
}

// A Store keeps limits in Redis. It is safe for concurrent use.
type Store struct {
	client  rueidis.Client
	cluster bool        // a Redis Cluster's client: no script across slots
	crossed atomic.Bool // a server refused a script across slots (CROSSSLOT)
	prefix  string
	timeout time.Duration
	ledger  limit.Ledger
	batch   int64
	leases  singleflight.Group

	// now, if set, is the clock the scripts use instead of the Redis
	// server's: for tests that move time on.
	now func() time.Time
}

var (
	_ limit.Limiter = (*Store)(nil)
	_ limit.Counter = (*Store)(nil)
)

// poolTTL is how long uses held for a key that is not refilled outlive
// its last request.
const poolTTL = 30 * 24 * time.Hour

// New connects to the Redis server at url and returns a store that keeps
// its limits there. The URL has the form
// redis://[user:password@]host[:port][/db], or rediss:// for TLS; query
// parameters are those of rueidis.ParseURL. A node of a Redis Cluster is
// found to be one, and the store then works with the whole cluster; name
// more nodes with addr parameters, so that the store can start while one
// is down: redis://node1:6379?addr=node2:6379&addr=node3:6379. New returns
// an error if Redis does not answer, so that a misconfigured gateway does
// not start; once made, a store rides out outages by itself.
func New(url string, opts Options) (*Store, error) {
	co, err := rueidis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("limit/redis: %w", err)
	}
	s := &Store{
		prefix:  opts.KeyPrefix,
		timeout: opts.Timeout,
		ledger:  opts.Ledger,
		batch:   int64(opts.Batch),
	}
	if s.prefix == "" {
		s.prefix = DefaultKeyPrefix
	}
	if s.timeout <= 0 {
		s.timeout = DefaultTimeout
	}
	if s.batch <= 0 {
		s.batch = DefaultBatch
	}
	co.Dialer.Timeout = opts.DialTimeout
	if co.Dialer.Timeout <= 0 {
		co.Dialer.Timeout = DefaultDialTimeout
	}
	// A connection with replies overdue by this much is dropped and made
	// anew: callers gave up on it long before.
	co.ConnWriteTimeout = max(time.Second, 5*s.timeout)
	// Every command is a script that writes: a client-side cache would
	// only cost the server its tracking.
	co.DisableCache = true
	if s.client, err = rueidis.NewClient(co); err != nil {
		return nil, fmt.Errorf("limit/redis: connect: %w", err)
	}
	s.cluster = s.client.Mode() == rueidis.ClientModeCluster
	ctx, cancel := context.WithTimeout(context.Background(), co.Dialer.Timeout)
	defer cancel()
	if err := s.Ping(ctx); err != nil {
		s.client.Close()
		return nil, err
	}
	return s, nil
}

// Ping checks that Redis answers within the store's timeout, and returns
// nil if it does. It is meant for a health check.
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if err := s.client.Do(ctx, s.client.B().Ping().Build()).Error(); err != nil {
		return fmt.Errorf("limit/redis: ping: %w", err)
	}
	return nil
}

// Close closes the store's connections. Calls made after it return an
// error. It always returns nil, and has an error result so that a Store
// is an io.Closer.
func (s *Store) Close() error {
	s.client.Close()
	return nil
}

// now is how a script reads the time: from the Redis server's clock,
// unless ARGV names a time, in microseconds.
const nowLua = `
local function clock(arg)
	if arg ~= '' then
		return tonumber(arg)
	end
	local t = redis.call('TIME')
	return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
`

// allowScript is gcra.Step. It returns {1, ahead} if the request passes
// and {0, ahead} if not, ahead being how far ahead of now the key's
// arrival time is, in microseconds, after the request.
//
// KEYS[1] is the rate's key; ARGV[1] the interval, ARGV[2] the tolerance
// (both µs), ARGV[3] the cost, ARGV[4] the time or ”.
var allowScript = rueidis.NewLuaScript(nowLua + `
local now = clock(ARGV[4])
local interval, tolerance, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local ahead = 0
local tat = redis.call('GET', KEYS[1])
if tat then
	ahead = math.max(tonumber(tat) - now, 0)
end
local next = ahead + cost * interval
if next > tolerance then
	return {0, ahead}
end
if cost > 0 then
	redis.call('SET', KEYS[1], string.format('%d', now + next), 'PX', math.ceil(next / 1000))
end
return {1, next}
`)

// Allow implements [limit.Limiter].
func (s *Store) Allow(ctx context.Context, key string, r limit.Rate, cost int) (limit.Decision, error) {
	p, err := gcra.For(r, cost)
	if err != nil {
		return limit.Decision{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	res, err := allowScript.Exec(ctx, s.client, []string{s.key(key, 'r')}, []string{
		strconv.FormatInt(p.Interval, 10), strconv.FormatInt(p.Tolerance, 10), strconv.Itoa(cost), s.clock(),
	}).AsIntSlice()
	if err != nil {
		return limit.Decision{}, fmt.Errorf("limit/redis: allow: %w", err)
	}
	if len(res) != 2 {
		return limit.Decision{}, fmt.Errorf("limit/redis: allow: unexpected reply %v", res)
	}
	return gcra.Decide(p, res[0] == 1, res[1], cost), nil
}

// spendLua spends from the uses held for a key. It returns {1, balance,
// remaining, until} if the request passes, {0, balance, remaining, until}
// if the key's uses are spent, balance being the uses held after the
// request, remaining those the ledger had when last asked, until the time
// to their lapse (µs, 0 never); and {-1} if the ledger must be asked.
// Uses held under a budget older than the caller's, or that lapsed, are
// dropped.
//
// KEYS[1] is the key's uses: a hash of s (the budget's Set), u (when they
// lapse, 0 never), b (the uses held) and r (the ledger's remaining), all
// integers, times in µs. The caller's ARGV[1] is its Set or ”, ARGV[2]
// the cost; now is the time.
var spendLua = `
local function spend(now, callerSet, cost)
	local p = redis.call('HMGET', KEYS[1], 's', 'u', 'b', 'r')
	if not p[1] then
		return {-1}
	end
	local set, untl, bal, rem = tonumber(p[1]), tonumber(p[2]), tonumber(p[3]), tonumber(p[4])
	if (callerSet ~= '' and tonumber(callerSet) > set) or (untl ~= 0 and now >= untl) then
		redis.call('DEL', KEYS[1])
		return {-1}
	end
	local left = 0
	if untl ~= 0 then
		left = untl - now
	end
	if bal >= cost then
		if cost > 0 then
			redis.call('HINCRBY', KEYS[1], 'b', -cost)
			if untl == 0 then
				redis.call('PEXPIRE', KEYS[1], ` + strconv.FormatInt(poolTTL.Milliseconds(), 10) + `)
			end
		end
		return {1, bal - cost, rem, left}
	end
	if rem == 0 then
		return {0, bal, rem, left}
	end
	return {-1}
end
`

// spendScript runs spendLua. ARGV[1] and ARGV[2] are spendLua's, ARGV[3]
// the time or ”.
var spendScript = rueidis.NewLuaScript(nowLua + spendLua + `
return spend(clock(ARGV[3]), ARGV[1], tonumber(ARGV[2]))
`)

// depositScript adds uses taken from the ledger to those held, unless
// they lapsed or the uses held are under a later budget or period, then
// runs spendLua.
//
// ARGV[1] and ARGV[2] are spendLua's; ARGV[3] the time or ”; ARGV[4]
// the Set to hold the uses under, ARGV[5] when they lapse (0 never),
// ARGV[6] how many were taken, ARGV[7] how many the ledger has left.
var depositScript = rueidis.NewLuaScript(nowLua + spendLua + `
local now = clock(ARGV[3])
local set, untl, bal, rem = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
if untl == 0 or now < untl then
	local p = redis.call('HMGET', KEYS[1], 's', 'u', 'b', 'r')
	local keep = true
	if p[1] then
		local ps, pu = tonumber(p[1]), tonumber(p[2])
		if ps == set and pu == untl then
			bal = bal + tonumber(p[3])
			rem = math.min(rem, tonumber(p[4]))
		elseif set < ps or (set == ps and untl < pu) then
			keep = false
		end
	end
	if keep then
		redis.call('HSET', KEYS[1], 's', ARGV[4], 'u', ARGV[5], 'b', string.format('%d', bal), 'r', string.format('%d', rem))
		if untl == 0 then
			redis.call('PEXPIRE', KEYS[1], ` + strconv.FormatInt(poolTTL.Milliseconds(), 10) + `)
		else
			redis.call('PEXPIRE', KEYS[1], math.ceil((untl - now) / 1000))
		end
	end
end
return spend(now, ARGV[1], tonumber(ARGV[2]))
`)

// Results of spendLua.
const (
	refused = 0
	allowed = 1
	ask     = -1
)

var errUnlimited = errors.New("no budget")

// Spend implements [limit.Counter].
func (s *Store) Spend(ctx context.Context, key string, set time.Time, cost int) (limit.Decision, error) {
	if cost < 0 {
		return limit.Decision{}, fmt.Errorf("%w cost %d: it must not be negative", limit.ErrInvalid, cost)
	}
	if s.ledger == nil {
		return limit.Decision{}, errors.New("limit/redis: Spend needs a Ledger")
	}
	rkey := s.key(key, 'u')
	callerSet := ""
	if !set.IsZero() {
		callerSet = strconv.FormatInt(set.UnixMicro(), 10)
	}
	args := []string{callerSet, strconv.Itoa(cost), s.clock()}
	if d, ok, err := s.spend(ctx, spendScript, rkey, args); ok || err != nil {
		return d, err
	}
	// Redis holds too few of the key's uses, and the ledger may have more:
	// one call at a time in this process takes a batch for every request
	// waiting.
	_, err, _ := s.leases.Do(key, func() (any, error) {
		g, err := s.take(ctx, key, s.batch+int64(cost))
		if err != nil {
			return nil, err
		}
		_, _, err = s.spend(ctx, depositScript, rkey, deposit([]string{callerSet, "0", s.clock()}, g, set))
		return nil, err
	})
	if err != nil {
		return unlimitedOr(err)
	}
	args[2] = s.clock()
	if d, ok, err := s.spend(ctx, spendScript, rkey, args); ok || err != nil {
		return d, err
	}
	// Others spent that batch first: take one for this request, and spend
	// from it before anyone else can.
	g, err := s.take(ctx, key, s.batch+int64(cost))
	if err != nil {
		return unlimitedOr(err)
	}
	args[2] = s.clock()
	if d, ok, err := s.spend(ctx, depositScript, rkey, deposit(args, g, set)); ok || err != nil {
		return d, err
	}
	// The key's budget was set again or refilled while this request took
	// its uses.
	return limit.Decision{}, errors.New("limit/redis: the key's budget changed while spending from it")
}

// deposit returns the arguments of depositScript: those of spendScript,
// and the grant's. The uses are held under the later of the grant's Set
// and the caller's, so that a caller whose Set the ledger does not give
// back to the microsecond does not drop them on its next call.
func deposit(args []string, g limit.Grant, callerSet time.Time) []string {
	set := int64(-1 << 53) // before any Set; exact in Lua
	if !g.Set.IsZero() {
		set = g.Set.UnixMicro()
	}
	if !callerSet.IsZero() {
		set = max(set, callerSet.UnixMicro())
	}
	var until int64
	if !g.Until.IsZero() {
		until = g.Until.UnixMicro()
	}
	return append(args,
		strconv.FormatInt(set, 10), strconv.FormatInt(until, 10),
		strconv.FormatInt(g.Spent, 10), strconv.FormatInt(g.Remaining, 10))
}

// spend runs script, spendScript or depositScript, and reports whether
// it decided.
func (s *Store) spend(ctx context.Context, script *rueidis.Lua, rkey string, args []string) (limit.Decision, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	res, err := script.Exec(ctx, s.client, []string{rkey}, args).AsIntSlice()
	switch {
	case err != nil:
		return limit.Decision{}, false, fmt.Errorf("limit/redis: spend: %w", err)
	case len(res) == 1 && res[0] == ask:
		return limit.Decision{}, false, nil
	case len(res) != 4 || res[0] != allowed && res[0] != refused:
		return limit.Decision{}, false, fmt.Errorf("limit/redis: spend: unexpected reply %v", res)
	}
	d := limit.Decision{
		Allowed:   res[0] == allowed,
		Remaining: res[1] + res[2],
		Reset:     time.Duration(res[3]) * time.Microsecond,
	}
	if !d.Allowed {
		d.RetryAfter = d.Reset
	}
	return d, true, nil
}

// take takes n of the key's uses from the ledger.
func (s *Store) take(ctx context.Context, key string, n int64) (limit.Grant, error) {
	g, err := s.ledger.TakeUses(ctx, key, n)
	switch {
	case err != nil:
		return g, fmt.Errorf("limit/redis: take uses: %w", err)
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

// clock is the time argument of the scripts: ” for the Redis server's.
func (s *Store) clock() string {
	if s.now == nil {
		return ""
	}
	return strconv.FormatInt(s.now().UnixMicro(), 10)
}

// hashLen is how many bytes of SHA-256 a key keeps: 96 bits, 16
// characters of base64.
const hashLen = 12

// key returns the Redis key of the state of kind ('r' or 'u') of the
// limiter key.
func (s *Store) key(key string, kind byte) string {
	sum := sha256.Sum256([]byte(key))
	enc := base64.RawURLEncoding
	b := make([]byte, 0, len(s.prefix)+enc.EncodedLen(hashLen)+3)
	b = append(b, s.prefix...)
	b = append(b, '{')
	b = enc.AppendEncode(b, sum[:hashLen])
	return string(append(b, '}', kind))
}
