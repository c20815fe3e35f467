package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/signet-dev/signet/httpsig"
	"github.com/signet-dev/signet/keys"
	"github.com/signet-dev/signet/limit"
	"github.com/signet-dev/signet/middleware"
	"github.com/signet-dev/signet/policy"
)

// Reason codes of the requests the usage controls refuse, both 429: a rate
// that applies to the key is spent (rate-limited, with Retry-After), or
// its budget of uses is (uses-exhausted, with Retry-After when a refill
// will come).
const (
	ReasonRateLimited   httpsig.Reason = "rate-limited"
	ReasonUsesExhausted httpsig.Reason = "uses-exhausted"
)

// A Meter counts requests per key, route and outcome; *keys.Meter is one.
// Count is called on every request and must cost no more than a map
// increment.
type Meter interface {
	Count(keyID, route string, outcome httpsig.Reason)
}

var _ Meter = (*keys.Meter)(nil)

// Ledger returns the limit.Ledger of a key service: the key store's
// budgets of uses, spent by a limit.Counter (limit/memory, limit/redis)
// that a gateway enforces them with (Config.Uses).
func Ledger(s interface {
	SpendUses(ctx context.Context, id string, n int64) (keys.UsesGrant, error)
}) limit.Ledger {
	return ledger{s}
}

type ledger struct {
	s interface {
		SpendUses(ctx context.Context, id string, n int64) (keys.UsesGrant, error)
	}
}

// TakeUses takes the uses of the key whose limiter key is key: the
// gateway counts a key's uses under limit.ForKey(keyID), beside its rate.
func (l ledger) TakeUses(ctx context.Context, key string, n int64) (limit.Grant, error) {
	id, _ := strings.CutPrefix(key, keyPrefix)
	g, err := l.s.SpendUses(ctx, id, n)
	return limit.Grant(g), err
}

var keyPrefix = limit.ForKey("")

// An allowSpender decides a key's rate and spends its uses in one call:
// *limit/redis.Store, one round trip instead of two.
type allowSpender interface {
	AllowSpend(ctx context.Context, key string, r limit.Rate, set time.Time, cost int) (rate, uses limit.Decision, err error)
}

// An ownedAllower decides a key's rate, its owner's rate and spends the
// key's uses in one call: *limit/redis.Store on a single server, one round
// trip instead of three. It returns an error that is an
// errors.ErrUnsupported where it cannot (a Redis Cluster).
type ownedAllower interface {
	AllowOwned(ctx context.Context, key string, r limit.Rate, owner string, or limit.Rate, set time.Time, cost int) (rate, ownerRate, uses limit.Decision, err error)
}

// limitedKey is what the gateway learns of a key's limits: the keys of
// keys.Service are limitedKeys.
type limitedKey interface {
	KeyID() string
	RateLimit() (keys.RateLimit, bool)
	Uses() (keys.Uses, bool)
}

var _ limitedKey = (*keys.ResolvedKey)(nil)

// KeyRate returns the limit.Rate of a key's rate limit.
func KeyRate(l keys.RateLimit) limit.Rate {
	return limit.Rate{N: l.Rate.N, Per: l.Rate.Per, Burst: l.Burst}
}

// RouteRate returns the limit.Rate of a route's rate limit.
func RouteRate(r *policy.Rate) limit.Rate {
	return limit.Rate{N: r.Limit, Per: r.Per, Burst: r.Burst}
}

// checkUsageConfig checks the rates of cfg that apply to every key.
func checkUsageConfig(cfg *Config) error {
	for _, r := range []struct {
		name string
		rate limit.Rate
	}{{"DefaultRate", cfg.DefaultRate}, {"OwnerRate", cfg.OwnerRate}} {
		if r.rate != (limit.Rate{}) {
			if err := r.rate.Validate(); err != nil {
				return fmt.Errorf("gateway: Config.%s: %w", r.name, err)
			}
			if cfg.Limiter == nil {
				return errors.New("gateway: Config." + r.name + " needs a Config.Limiter")
			}
		}
	}
	return nil
}

// checkRouteRate checks that the gateway can enforce a route's rate.
func (g *Gateway) checkRouteRate(r *policy.Route) error {
	if r.Rate == nil {
		return nil
	}
	if g.cfg.Limiter == nil {
		return errors.New("gateway: route " + strconv.Quote(r.Name) + " (" + r.Pos.String() + ") has a rate limit, and the gateway has no Config.Limiter")
	}
	if err := RouteRate(r.Rate).Validate(); err != nil {
		return fmt.Errorf("gateway: route %q (%s): %w", r.Name, r.Pos, err)
	}
	return nil
}

var fieldsPool = sync.Pool{New: func() any { return new(limit.Fields) }}

// usage returns the handler that applies the usage controls to the
// requests whose signature verified (and whose scopes sufficed) before
// next forwards them: the rates of route (nil on a gateway without a
// policy), of the key, of its owner, then the key's uses; and counts every
// outcome with the meter.
func (g *Gateway) usage(route *policy.Route, next http.Handler) http.Handler {
	meterRoute := ""
	if route != nil {
		meterRoute = route.Name
	}
	var routeRate limit.Rate
	if route != nil && route.Rate != nil {
		routeRate = RouteRate(route.Rate)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, ok := middleware.FromContext(r.Context())
		if !ok {
			// Cannot happen behind middleware.Verify; fail closed.
			g.writeProblem(w, http.StatusInternalServerError, "internal", "Internal error", "the request reached the proxy unverified")
			return
		}
		key := g.limitedKeyOf(r, id.KeyID)
		if g.cfg.Limiter == nil && g.cfg.Uses == nil && !hasUses(key) {
			g.accepted(r, id.KeyID, meterRoute)
			next.ServeHTTP(w, r)
			return
		}
		f := fieldsPool.Get().(*limit.Fields)
		rt := routedOf(r)
		defer func() {
			if rt != nil {
				rt.limits = nil
			}
			f.Reset()
			fieldsPool.Put(f)
		}()
		ctx := r.Context()
		if reason, err := g.applyLimits(ctx, f, route, routeRate, id, key); err != nil || reason != "" {
			f.AddTo(w.Header())
			if err != nil {
				g.limitUnavailable(w, r, id.KeyID, meterRoute, err)
				return
			}
			g.limited(w, r, id.KeyID, meterRoute, reason)
			return
		}
		f.AddTo(w.Header())
		if rt != nil {
			rt.limits = f // for restoreFields
		}
		g.accepted(r, id.KeyID, meterRoute)
		next.ServeHTTP(w, r)
	})
}

// applyLimits decides, in order, the rates of the route, of the key and
// of its owner, stopping at the first refusal, and last the key's uses,
// adding each decision to f. It returns the reason of a refusal, or an
// error if a limiter or the ledger could not decide.
func (g *Gateway) applyLimits(ctx context.Context, f *limit.Fields, route *policy.Route, routeRate limit.Rate, id *middleware.Identity, key limitedKey) (httpsig.Reason, error) {
	if lim := g.cfg.Limiter; lim != nil {
		if routeRate.N != 0 {
			var k string
			switch route.Rate.By {
			case "route":
				k = limit.ForRoute(route.Name, "")
			case "owner":
				// "\x00" is in no key id: no owner's key is a key's.
				k = limit.ForRoute(route.Name, "\x00"+id.Owner)
			default:
				k = limit.ForRoute(route.Name, id.KeyID)
			}
			d, err := lim.Allow(ctx, k, routeRate, 1)
			if err != nil {
				return "", err
			}
			f.AddRate("route", routeRate, d)
			if !d.Allowed {
				return ReasonRateLimited, nil
			}
		}
		rate := g.cfg.DefaultRate
		if key != nil {
			if rl, ok := key.RateLimit(); ok {
				rate = KeyRate(rl)
			}
		}
		keyName := limit.ForKey(id.KeyID)
		owner := g.cfg.OwnerRate.N != 0 && id.Owner != ""
		if rate.N != 0 && !owner && g.cfg.Uses != nil && any(g.cfg.Uses) == any(lim) {
			// The key's rate and uses, and nothing between them: in one
			// call where the store can.
			if as, ok := lim.(allowSpender); ok {
				if u, ok := usesOf(key); ok {
					rd, ud, err := as.AllowSpend(ctx, keyName, rate, u.Set, 1)
					if err != nil {
						return "", err
					}
					f.AddRate("key", rate, rd)
					if !rd.Allowed {
						return ReasonRateLimited, nil
					}
					return usesDecided(f, u, ud), nil
				}
			}
		}
		if rate.N != 0 && owner && g.cfg.Uses != nil && any(g.cfg.Uses) == any(lim) {
			// The key's rate, its owner's and the key's uses: in one call
			// where the store can.
			if oa, ok := lim.(ownedAllower); ok {
				if u, ok := usesOf(key); ok {
					rd, od, ud, err := oa.AllowOwned(ctx, keyName, rate, limit.ForOwner(id.Owner), g.cfg.OwnerRate, u.Set, 1)
					switch {
					case errors.Is(err, errors.ErrUnsupported): // in turn, below
					case err != nil:
						return "", err
					default:
						f.AddRate("key", rate, rd)
						if !rd.Allowed {
							return ReasonRateLimited, nil
						}
						f.AddRate("owner", g.cfg.OwnerRate, od)
						if !od.Allowed {
							return ReasonRateLimited, nil
						}
						return usesDecided(f, u, ud), nil
					}
				}
			}
		}
		if rate.N != 0 {
			d, err := lim.Allow(ctx, keyName, rate, 1)
			if err != nil {
				return "", err
			}
			f.AddRate("key", rate, d)
			if !d.Allowed {
				return ReasonRateLimited, nil
			}
		}
		if owner {
			d, err := lim.Allow(ctx, limit.ForOwner(id.Owner), g.cfg.OwnerRate, 1)
			if err != nil {
				return "", err
			}
			f.AddRate("owner", g.cfg.OwnerRate, d)
			if !d.Allowed {
				return ReasonRateLimited, nil
			}
		}
	}
	u, ok := usesOf(key)
	if !ok {
		return "", nil
	}
	if g.cfg.Uses == nil {
		// A budget the gateway cannot count is not ignored.
		return "", errors.New("gateway: the key has a budget of uses, and the gateway has no Config.Uses")
	}
	d, err := g.cfg.Uses.Spend(ctx, limit.ForKey(id.KeyID), u.Set, 1)
	if err != nil {
		return "", err
	}
	return usesDecided(f, u, d), nil
}

// usesOf returns the key's budget of uses, if it has one.
func usesOf(k limitedKey) (keys.Uses, bool) {
	if k == nil {
		return keys.Uses{}, false
	}
	return k.Uses()
}

// usesDecided adds the decision on the key's uses u to f, and returns the
// reason of a refusal, or "".
func usesDecided(f *limit.Fields, u keys.Uses, d limit.Decision) httpsig.Reason {
	var refill limit.Rate
	if !u.Refill.IsZero() {
		refill = limit.Rate{N: u.Refill.N, Per: u.Refill.Per}
	}
	f.AddUses("uses", refill, d)
	if !d.Allowed {
		return ReasonUsesExhausted
	}
	return ""
}

// limitedKeyOf returns the key of keyID as it was resolved to verify r's
// signature, or resolved again, or nil if the key resolver's keys carry
// no limits.
func (g *Gateway) limitedKeyOf(r *http.Request, keyID string) limitedKey {
	if rt := routedOf(r); rt != nil && rt.key != nil && rt.key.KeyID() == keyID {
		return rt.key
	}
	k, err := g.cfg.Verify.Verifier.Keys.ResolveKey(r.Context(), keyID)
	if err != nil {
		return nil
	}
	lk, _ := k.(limitedKey)
	return lk
}

// accepted counts a request that goes to the upstream.
func (g *Gateway) accepted(r *http.Request, keyID, route string) {
	g.metrics.requests.WithLabelValues("accepted", "", routeLabel(r)).Inc()
	if g.cfg.Meter != nil {
		g.cfg.Meter.Count(keyID, route, "")
	}
}

// limited answers a request that a limit refused.
func (g *Gateway) limited(w http.ResponseWriter, r *http.Request, keyID, route string, reason httpsig.Reason) {
	g.metrics.requests.WithLabelValues("limited", string(reason), routeLabel(r)).Inc()
	if g.cfg.Meter != nil {
		g.cfg.Meter.Count(keyID, route, reason)
	}
	// The body was read to verify it: the connection can carry on.
	if reason == ReasonUsesExhausted {
		g.writeProblem(w, http.StatusTooManyRequests, string(reason), "Uses exhausted",
			"the key has no uses left; see the RateLimit field for when they are refilled, if they are")
		return
	}
	g.writeProblem(w, http.StatusTooManyRequests, string(reason), "Rate limited",
		"the key is over a rate limit; retry after the time Retry-After gives")
}

// limitUnavailable answers a request whose limits could not be decided:
// 503, failing closed, as when the replay cache is down.
func (g *Gateway) limitUnavailable(w http.ResponseWriter, r *http.Request, keyID, route string, err error) {
	g.metrics.requests.WithLabelValues("unavailable", string(middleware.ReasonUnavailable), routeLabel(r)).Inc()
	g.metrics.limitErrors.Inc()
	if g.cfg.Meter != nil {
		g.cfg.Meter.Count(keyID, route, middleware.ReasonUnavailable)
	}
	g.unavailable.add(err.Error(), "request_id", r.Header.Get(HeaderRequestID), "method", r.Method, "path", r.URL.Path,
		"route", route, "key_id", keyID, "reason", "limits", "error", err.Error())
	w.Header().Set("Retry-After", "1")
	g.writeProblem(w, http.StatusServiceUnavailable, string(middleware.ReasonUnavailable), "Service unavailable",
		"the gateway could not check the limits of the key; retry later")
}

// meterRefusal counts a request refused before it reached the usage
// controls, under its key id only if the key was found (an unknown keyid
// is the client's to choose, and would fill the meter).
func (g *Gateway) meterRefusal(r *http.Request, o middleware.Outcome) {
	if g.cfg.Meter == nil {
		return
	}
	rt := routedOf(r)
	keyID, route := "", ""
	if rt != nil {
		if rt.key != nil && rt.key.KeyID() == o.KeyID {
			keyID = o.KeyID
		}
		if !rt.snap.legacy {
			route = rt.route.Name
		}
	}
	g.cfg.Meter.Count(keyID, route, o.Reason)
}

// routeLabel is the route of the metrics' labels.
func routeLabel(r *http.Request) string {
	if rt := routedOf(r); rt != nil {
		return rt.route.Name
	}
	return ""
}

func hasUses(k limitedKey) bool {
	_, ok := usesOf(k)
	return ok
}
