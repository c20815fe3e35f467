package limit

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// A Rate lets through on average N requests per Per, and at most Burst at
// once: a key that has been idle for Burst×Per/N may send Burst requests
// together, and then one every Per/N. In any stretch of time d, at most
// Burst + d×N/Per requests pass (rounded down), so over one Per at most
// N + Burst.
type Rate struct {
	N   int64
	Per time.Duration

	// Burst is how many requests may pass at once. If zero, N is used.
	Burst int64
}

// Bounds of a [Rate]. The limiters count time in microseconds, so a rate
// with an interval (Per/N) under a microsecond counts as one a
// microsecond; a burst times the interval must stay within MaxTolerance.
const (
	MaxPer       = 366 * 24 * time.Hour
	MaxTolerance = 1 << 50 * time.Microsecond // about 35 years
)

// ErrInvalid is wrapped by the errors a limiter returns for a rate or a
// cost that cannot be used: a zero rate, a negative cost, a cost over the
// burst (it could never pass). Check a configured [Rate] with
// [Rate.Validate] when it is read, not per request.
var ErrInvalid = errors.New("limit: invalid")

// Validate checks r, and returns an error wrapping [ErrInvalid] if a
// limiter cannot apply it.
func (r Rate) Validate() error {
	switch {
	case r.N < 1:
		return fmt.Errorf("%w rate %d/%v: the count must be 1 or more", ErrInvalid, r.N, r.Per)
	case r.Per < time.Microsecond || r.Per > MaxPer:
		return fmt.Errorf("%w rate %d/%v: the period must be from 1µs to 366 days", ErrInvalid, r.N, r.Per)
	case r.Burst < 0:
		return fmt.Errorf("%w rate %d/%v: the burst must not be negative", ErrInvalid, r.N, r.Per)
	}
	if r.burst() > int64(MaxTolerance/r.Interval()) {
		return fmt.Errorf("%w rate %d/%v: a burst of %d lasts longer than %v", ErrInvalid, r.N, r.Per, r.burst(), MaxTolerance)
	}
	return nil
}

func (r Rate) burst() int64 {
	if r.Burst == 0 {
		return r.N
	}
	return r.Burst
}

// Interval is the time between two requests at the rate: Per/N, rounded
// up to the microsecond, so that a limiter never lets more through than N
// per Per.
func (r Rate) Interval() time.Duration {
	per := r.Per.Microseconds()
	return time.Duration((per+r.N-1)/r.N) * time.Microsecond
}

// A Decision is a limiter's answer for one request.
type Decision struct {
	// Allowed reports whether the request may pass. A request that is
	// not allowed spent nothing.
	Allowed bool

	// Remaining is how many more requests of cost 1 would pass now, or
	// [Unlimited] for a key that has no budget of uses.
	Remaining int64

	// Reset is how long until the limit is back to its fullest: for a
	// rate, until a full burst may pass again (and the limiter may forget
	// the key); for uses, until their next refill, or zero if there is
	// none.
	Reset time.Duration

	// RetryAfter, for a request that is not allowed, is how long until
	// the same request would be: zero if waiting will not help (uses
	// that are not refilled).
	RetryAfter time.Duration
}

// Unlimited is the Remaining of a [Decision] on a key with no budget of
// uses (see [Grant.Unlimited]).
const Unlimited = -1

// A Limiter applies rates to requests, with the generic cell rate
// algorithm (GCRA): each key has a theoretical arrival time, which each
// request it lets through moves on by the rate's interval times the
// request's cost, and a request passes if that time is no more than the
// burst's worth of intervals ahead of now.
//
// Allow decides whether a request of the given cost (1 for one request;
// 0 reports on the key without spending) may pass under r for key, and
// spends it if so, atomically with respect to every other call on the
// same key, in this process or, for a shared store, any other. A Decision
// that is not allowed changes nothing. The error is non-nil only when the
// limiter could not decide (a store that is full, down or slow: the
// caller refuses the request, failing closed) or r or cost is invalid
// ([ErrInvalid]); the Decision is then the zero value, which allows
// nothing.
//
// Implementations are safe for concurrent use.
type Limiter interface {
	Allow(ctx context.Context, key string, r Rate, cost int) (Decision, error)
}

// A Counter spends the uses of keys that have a budget of them: a number
// of requests, maybe refilled every period, kept by a [Ledger].
//
// Spend decides whether a request of the given cost may pass for key
// and spends cost uses if so, atomically with respect to every other call
// on the same key, in this process or, for a shared store, any other. It
// takes uses from the ledger ahead, in batches, and hands them out: set
// is when the key's budget was last set as the caller knows it (the key
// record's), so that uses taken under an older budget are dropped at
// once. Cost 0 reports on the key without spending. The error is non-nil
// only when the counter could not decide (its store or the ledger failed:
// the caller refuses the request, failing closed) or cost is invalid.
//
// Implementations are safe for concurrent use.
type Counter interface {
	Spend(ctx context.Context, key string, set time.Time, cost int) (Decision, error)
}

// A Ledger holds the uses of each key durably: the key store. A [Counter]
// takes uses from it ahead of the requests that spend them.
//
// TakeUses takes up to n of the key's remaining uses, after refilling
// them if a refill is due, atomically with respect to every other taker,
// and reports what it took; n may be 0, to learn the state of the budget.
// Uses taken are spent by the taker or lost, never given back: a counter
// that stops loses what it held, and never grants a use twice.
type Ledger interface {
	TakeUses(ctx context.Context, key string, n int64) (Grant, error)
}

// A Grant is what a [Ledger] took of a key's uses. Its fields are those of
// keys.UsesGrant, so that one converts to the other.
type Grant struct {
	// Unlimited says that the key has no budget: every request may pass.
	Unlimited bool

	// Spent is how many uses were taken, at most as many as asked for.
	Spent int64

	// Remaining is how many are left in the ledger after them.
	Remaining int64

	// Set is when the budget they were taken from was set.
	Set time.Time

	// Until is when they lapse: the next refill, when the budget is put
	// back to its full amount, so uses taken before it must not be spent
	// after it. Zero if the key is not refilled.
	Until time.Time
}
