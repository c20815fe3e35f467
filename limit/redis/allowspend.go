package redis

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/rueidis"

	"github.com/signet-dev/signet/limit"
	"github.com/signet-dev/signet/limit/internal/gcra"
)

// allowSpendScript is allowScript on the key's rate (KEYS[1]), then, if
// the request passes it, spendLua on the key's uses (KEYS[2]), in one
// call: {0, ahead} if the rate refuses the request (its uses untouched),
// else {1, next} followed by spendLua's reply. Both keys are the same
// limiter key's, so in one slot of a cluster.
//
// ARGV[1] the interval, ARGV[2] the tolerance (µs), ARGV[3] the cost,
// ARGV[4] the caller's Set or ”, ARGV[5] the time or ”.
var allowSpendScript = rueidis.NewLuaScript(nowLua + spendLua + `
local now = clock(ARGV[5])
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
KEYS[1] = KEYS[2]
local res = spend(now, ARGV[4], cost)
table.insert(res, 1, next)
table.insert(res, 1, 1)
return res
`)

// AllowSpend decides a request of key under the rate r and, if the rate
// lets it pass, spends cost of the key's uses, as Allow then Spend would
// on the same key, in one round trip when Redis holds uses for the key
// (the ledger is asked as Spend asks it). The second Decision is the
// zero value when the rate refused the request, which then spent no use.
// A request that passes the rate and that the uses refuse has spent its
// rate, as with Allow then Spend.
func (s *Store) AllowSpend(ctx context.Context, key string, r limit.Rate, set time.Time, cost int) (rate, uses limit.Decision, err error) {
	p, err := gcra.For(r, cost)
	if err != nil {
		return limit.Decision{}, limit.Decision{}, err
	}
	if s.ledger == nil {
		return limit.Decision{}, limit.Decision{}, fmt.Errorf("limit/redis: AllowSpend needs a Ledger")
	}
	callerSet := ""
	if !set.IsZero() {
		callerSet = strconv.FormatInt(set.UnixMicro(), 10)
	}
	cctx, cancel := context.WithTimeout(ctx, s.timeout)
	res, err := allowSpendScript.Exec(cctx, s.client, []string{s.key(key, 'r'), s.key(key, 'u')}, []string{
		strconv.FormatInt(p.Interval, 10), strconv.FormatInt(p.Tolerance, 10), strconv.Itoa(cost), callerSet, s.clock(),
	}).AsIntSlice()
	cancel()
	switch {
	case err != nil:
		return limit.Decision{}, limit.Decision{}, fmt.Errorf("limit/redis: allow and spend: %w", err)
	case len(res) == 2 && res[0] == 0:
		return gcra.Decide(p, false, res[1], cost), limit.Decision{}, nil
	case len(res) < 3 || res[0] != 1:
		return limit.Decision{}, limit.Decision{}, fmt.Errorf("limit/redis: allow and spend: unexpected reply %v", res)
	}
	rate = gcra.Decide(p, true, res[1], cost)
	sp := res[2:]
	switch {
	case len(sp) == 1 && sp[0] == ask:
		// Redis holds too few uses: as Spend, from the ledger.
		uses, err = s.Spend(ctx, key, set, cost)
		return rate, uses, err
	case len(sp) != 4 || sp[0] != allowed && sp[0] != refused:
		return limit.Decision{}, limit.Decision{}, fmt.Errorf("limit/redis: allow and spend: unexpected reply %v", res)
	}
	uses = limit.Decision{Allowed: sp[0] == allowed, Remaining: sp[1] + sp[2], Reset: time.Duration(sp[3]) * time.Microsecond}
	if !uses.Allowed {
		uses.RetryAfter = uses.Reset
	}
	return rate, uses, nil
}
