package limittest

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/signet-dev/signet/limit"
)

// A Ledger is a [limit.Ledger] kept in memory, by the rules of the key
// store: a key has a budget of uses, set at a time; a refill of N every
// Per puts the budget back to N (unspent uses do not carry over) at the
// start of each period, periods counted in UTC from the zero time of
// package time (midnight for a day); a key without a budget is unlimited.
// It is safe for concurrent use.
type Ledger struct {
	now   func() time.Time
	takes atomic.Int64
	fail  atomic.Pointer[error]

	mu   sync.Mutex
	keys map[string]*budget
}

type budget struct {
	remaining     int64
	refill        limit.Rate
	refilled, set time.Time
}

var _ limit.Ledger = (*Ledger)(nil)

// NewLedger returns an empty ledger that reads the time from now.
func NewLedger(now func() time.Time) *Ledger {
	return &Ledger{now: now, keys: make(map[string]*budget)}
}

// Set gives key a budget of uses, refilled by refill (the zero Rate for
// none), as an operator does, and returns the budget's Set time: now, or
// a microsecond after the key's last one if the clock has not moved on.
func (l *Ledger) Set(key string, uses int64, refill limit.Rate) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	set := l.now().Truncate(time.Microsecond)
	if b, ok := l.keys[key]; ok && !set.After(b.set) {
		set = b.set.Add(time.Microsecond)
	}
	l.keys[key] = &budget{remaining: uses, refill: refill, refilled: set, set: set}
	return set
}

// TakeUses implements [limit.Ledger].
func (l *Ledger) TakeUses(_ context.Context, key string, n int64) (limit.Grant, error) {
	l.takes.Add(1)
	if err := l.fail.Load(); err != nil {
		return limit.Grant{}, *err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.keys[key]
	if !ok {
		return limit.Grant{Unlimited: true}, nil
	}
	g := limit.Grant{Set: b.set}
	if b.refill.N > 0 {
		start := l.now().UTC().Truncate(b.refill.Per)
		if start.After(b.refilled) {
			b.remaining, b.refilled = b.refill.N, start
		}
		g.Until = start.Add(b.refill.Per)
	}
	g.Spent = max(min(n, b.remaining), 0)
	b.remaining -= g.Spent
	g.Remaining = b.remaining
	return g, nil
}

// Remaining returns the uses left in the ledger for key, not counting
// those taken.
func (l *Ledger) Remaining(key string) int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if b, ok := l.keys[key]; ok {
		return b.remaining
	}
	return 0
}

// Takes returns how many times TakeUses was called.
func (l *Ledger) Takes() int64 { return l.takes.Load() }

// Fail makes every TakeUses return err, or, with nil, work again.
func (l *Ledger) Fail(err error) {
	if err == nil {
		l.fail.Store(nil)
		return
	}
	l.fail.Store(&err)
}
