// Package gcra is the arithmetic of the generic cell rate algorithm that
// every [limit.Limiter] shares, so that the memory and Redis back ends
// decide alike: in whole microseconds, which the Redis script can count
// exactly in Lua's doubles.
package gcra

import (
	"fmt"
	"time"

	"github.com/signet-dev/signet/limit"
)

// Params are a rate's, in microseconds.
type Params struct {
	Interval  int64 // Per/N, rounded up
	Tolerance int64 // Burst intervals: how far ahead of now a key's arrival time may be
}

// For checks r and cost and returns r's parameters.
func For(r limit.Rate, cost int) (Params, error) {
	if err := r.Validate(); err != nil {
		return Params{}, err
	}
	burst := r.Burst
	if burst == 0 {
		burst = r.N
	}
	if cost < 0 {
		return Params{}, fmt.Errorf("%w cost %d: it must not be negative", limit.ErrInvalid, cost)
	}
	if int64(cost) > burst {
		return Params{}, fmt.Errorf("%w cost %d: it is over the burst of %d, and could never pass", limit.ErrInvalid, cost, burst)
	}
	t := r.Interval().Microseconds()
	return Params{Interval: t, Tolerance: burst * t}, nil
}

// Step applies a request of cost at now to a key whose theoretical
// arrival time is tat (0, or any time not after now, for a key the
// limiter does not hold: the two are the same). It returns whether the
// request passes and how far ahead of now the key's arrival time is after
// it: the state to keep, as now plus that, if it passed.
func Step(p Params, tat, now int64, cost int) (allowed bool, ahead int64) {
	ahead = max(tat-now, 0)
	next := ahead + int64(cost)*p.Interval
	if next > p.Tolerance {
		return false, ahead
	}
	return true, next
}

// Decide is the decision for a request that Step answered.
func Decide(p Params, allowed bool, ahead int64, cost int) limit.Decision {
	d := limit.Decision{
		Allowed:   allowed,
		Remaining: max(p.Tolerance-ahead, 0) / p.Interval,
		Reset:     micros(ahead),
	}
	if !allowed {
		d.RetryAfter = micros(ahead + int64(cost)*p.Interval - p.Tolerance)
	}
	return d
}

func micros(us int64) time.Duration { return time.Duration(us) * time.Microsecond }
