package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"

	"github.com/signet-dev/signet/limit"
	"github.com/signet-dev/signet/limit/internal/gcra"
)

// gcraLua is allowScript's step as a function: it returns true and the
// key's arrival time ahead of now after the request if it passes (and
// records it), false and how far ahead it was if not.
const gcraLua = `
local function step(key, now, interval, tolerance, cost)
	local ahead = 0
	local tat = redis.call('GET', key)
	if tat then
		ahead = math.max(tonumber(tat) - now, 0)
	end
	local next = ahead + cost * interval
	if next > tolerance then
		return false, ahead
	end
	if cost > 0 then
		redis.call('SET', key, string.format('%d', now + next), 'PX', math.ceil(next / 1000))
	end
	return true, next
end
`

// allowOwnedScript is allowScript on the key's rate (KEYS[1]), then, if
// the request passes it, on the owner's rate (KEYS[2]), then, if it
// passes that too, spendLua on the key's uses (KEYS[3]), as Allow, Allow
// and Spend would be in turn, in one call and on one clock: {0, ahead} if
// the key's rate refuses the request, {1, next, 0, ahead} if the owner's
// does (the key's rate spent, its uses untouched), else {1, next, 1,
// next} followed by spendLua's reply. The keys are of different limiter
// keys, so in different slots: a Redis Cluster cannot run it.
//
// ARGV[1] and ARGV[2] the key's interval and tolerance, ARGV[3] and
// ARGV[4] the owner's (µs), ARGV[5] the cost, ARGV[6] the caller's Set or
// ”, ARGV[7] the time or ”.
var allowOwnedScript = rueidis.NewLuaScript(nowLua + spendLua + gcraLua + `
local now = clock(ARGV[7])
local cost = tonumber(ARGV[5])
local ok, v = step(KEYS[1], now, tonumber(ARGV[1]), tonumber(ARGV[2]), cost)
if not ok then
	return {0, v}
end
local ok2, v2 = step(KEYS[2], now, tonumber(ARGV[3]), tonumber(ARGV[4]), cost)
if not ok2 then
	return {1, v, 0, v2}
end
KEYS[1] = KEYS[3]
local res = spend(now, ARGV[6], cost)
table.insert(res, 1, v2)
table.insert(res, 1, 1)
table.insert(res, 1, v)
table.insert(res, 1, 1)
return res
`)

// ErrCluster is returned by AllowOwned on a Redis Cluster, where the three
// states it decides on are in different slots: call Allow, Allow and
// Spend instead. It is an [errors.ErrUnsupported].
var ErrCluster = fmt.Errorf("limit/redis: AllowOwned needs a single Redis server, not a Cluster: %w", errors.ErrUnsupported)

// AllowOwned decides a request of key under the key's rate r, then of
// owner (a limiter key, see [limit.ForOwner]) under the owner's rate or,
// and, if both let it pass, spends cost of the key's uses: as Allow(key),
// Allow(owner) and Spend(key) would in turn, stopping at the first
// refusal, in one round trip when Redis holds uses for the key (the
// ledger is asked as Spend asks it). A Decision after a refusal is the
// zero value. A request the owner's rate refuses has spent the key's rate,
// and one the uses refuse has spent both rates, as in turn. On a Redis
// Cluster, or a server that refuses a script across slots, it decides
// nothing and returns ErrCluster.
func (s *Store) AllowOwned(ctx context.Context, key string, r limit.Rate, owner string, or limit.Rate, set time.Time, cost int) (rate, ownerRate, uses limit.Decision, err error) {
	if s.cluster || s.crossed.Load() {
		return rate, ownerRate, uses, ErrCluster
	}
	p, err := gcra.For(r, cost)
	if err != nil {
		return rate, ownerRate, uses, err
	}
	po, err := gcra.For(or, cost)
	if err != nil {
		return rate, ownerRate, uses, err
	}
	if s.ledger == nil {
		return rate, ownerRate, uses, fmt.Errorf("limit/redis: AllowOwned needs a Ledger")
	}
	callerSet := ""
	if !set.IsZero() {
		callerSet = strconv.FormatInt(set.UnixMicro(), 10)
	}
	cctx, cancel := context.WithTimeout(ctx, s.timeout)
	res, err := allowOwnedScript.Exec(cctx, s.client, []string{s.key(key, 'r'), s.key(owner, 'r'), s.key(key, 'u')}, []string{
		strconv.FormatInt(p.Interval, 10), strconv.FormatInt(p.Tolerance, 10),
		strconv.FormatInt(po.Interval, 10), strconv.FormatInt(po.Tolerance, 10),
		strconv.Itoa(cost), callerSet, s.clock(),
	}).AsIntSlice()
	cancel()
	if re, ok := rueidis.IsRedisErr(err); ok && strings.HasPrefix(re.Error(), "CROSSSLOT") {
		// A server that looks single but holds its slots apart (a proxy
		// in front of a cluster) ran nothing: decide in turn from now on.
		s.crossed.Store(true)
		return rate, ownerRate, uses, ErrCluster
	}
	switch {
	case err != nil:
		return rate, ownerRate, uses, fmt.Errorf("limit/redis: allow owned: %w", err)
	case len(res) == 2 && res[0] == 0:
		return gcra.Decide(p, false, res[1], cost), ownerRate, uses, nil
	case len(res) < 4 || res[0] != 1:
		return rate, ownerRate, uses, fmt.Errorf("limit/redis: allow owned: unexpected reply %v", res)
	}
	rate = gcra.Decide(p, true, res[1], cost)
	if res[2] == 0 {
		if len(res) != 4 {
			return limit.Decision{}, ownerRate, uses, fmt.Errorf("limit/redis: allow owned: unexpected reply %v", res)
		}
		return rate, gcra.Decide(po, false, res[3], cost), uses, nil
	}
	ownerRate = gcra.Decide(po, true, res[3], cost)
	sp := res[4:]
	switch {
	case len(sp) == 1 && sp[0] == ask:
		// Redis holds too few uses: as Spend, from the ledger.
		uses, err = s.Spend(ctx, key, set, cost)
		return rate, ownerRate, uses, err
	case len(sp) != 4 || sp[0] != allowed && sp[0] != refused:
		return limit.Decision{}, limit.Decision{}, uses, fmt.Errorf("limit/redis: allow owned: unexpected reply %v", res)
	}
	uses = limit.Decision{Allowed: sp[0] == allowed, Remaining: sp[1] + sp[2], Reset: time.Duration(sp[3]) * time.Microsecond}
	if !uses.Allowed {
		uses.RetryAfter = uses.Reset
	}
	return rate, ownerRate, uses, nil
}
