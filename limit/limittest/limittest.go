// Package limittest checks that a store of limits behaves as a gateway
// needs: [Run] is the behavioural suite that every back end of
// [github.com/signet-dev/signet/limit] passes, as a [limit.Limiter] and a
// [limit.Counter], driven by the manual clock of [testtime.Clock] and a
// [Ledger] kept in memory. A back end's tests call it as
//
//	func TestConformance(t *testing.T) {
//		limittest.Run(t, limittest.Harness{
//			New: func(t *testing.T, now func() time.Time, l limit.Ledger) limittest.Store {
//				return memory.New(memory.Options{Now: now, Ledger: l})
//			},
//		})
//	}
package limittest

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signet-dev/signet/internal/testtime"
	"github.com/signet-dev/signet/limit"
)

// A Store is what the suite tests: a limiter and a counter in one.
type Store interface {
	limit.Limiter
	limit.Counter
}

// A Harness tells [Run] how to make the store under test.
type Harness struct {
	// New returns a new, empty store that reads the current time from now
	// and takes uses from ledger, [DefaultBatch] at a time beyond what a
	// request needs. Stores made for different tests must not share
	// state. New registers whatever clean-up the store needs with
	// t.Cleanup.
	New func(t *testing.T, now func() time.Time, ledger limit.Ledger) Store
}

// DefaultBatch is the batch of uses a store under test takes from its
// ledger: the suite's counts of calls to the ledger rely on it.
const DefaultBatch = 10

// Run runs the suite against the stores h makes, one subtest per
// behaviour.
func Run(t *testing.T, h Harness) {
	tests := []struct {
		name string
		run  func(t *testing.T, f *fixture)
	}{
		{"BurstThenRefuse", testBurstThenRefuse},
		{"RefusalSpendsNothing", testRefusalSpendsNothing},
		{"SteadyRate", testSteadyRate},
		{"IdleKeyIsFresh", testIdleKeyIsFresh},
		{"Cost", testCost},
		{"Invalid", testInvalid},
		{"KeysApart", testKeysApart},
		{"RateChanged", testRateChanged},
		{"FineInterval", testFineInterval},
		{"ConcurrentAllow", testConcurrentAllow},
		{"UsesSpendDown", testUsesSpendDown},
		{"UsesSetAgain", testUsesSetAgain},
		{"UsesCallerBehind", testUsesCallerBehind},
		{"UsesRefill", testUsesRefill},
		{"UsesLapseAtRefill", testUsesLapseAtRefill},
		{"UsesUnlimited", testUsesUnlimited},
		{"UsesReport", testUsesReport},
		{"UsesCost", testUsesCost},
		{"UsesLedgerDown", testUsesLedgerDown},
		{"UsesConcurrent", testUsesConcurrent},
		{"RatesAndUsesApart", testRatesAndUsesApart},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := testtime.NewClock(start)
			ledger := NewLedger(clock.Now)
			tt.run(t, &fixture{t: t, clock: clock, ledger: ledger, store: h.New(t, clock.Now, ledger)})
		})
	}
}

// start is where each test's clock begins: an instant with microseconds,
// 56 minutes into an hour, so that tests cross hours and days.
var start = time.Date(2030, time.January, 2, 23, 56, 5, 123456000, time.UTC)

type fixture struct {
	t      *testing.T
	clock  *testtime.Clock
	ledger *Ledger
	store  Store
}

// The rate most tests use: one request every 6 s, 5 at once.
var tenPerMinute = limit.Rate{N: 10, Per: time.Minute, Burst: 5}

func (f *fixture) allow(key string, r limit.Rate, cost int) limit.Decision {
	f.t.Helper()
	d, err := f.store.Allow(f.t.Context(), key, r, cost)
	if err != nil {
		f.t.Fatalf("Allow(%q, %+v, %d) = %v", abbrev(key), r, cost, err)
	}
	return d
}

// want checks a decision against the one expected.
func (f *fixture) want(what string, got, want limit.Decision) {
	f.t.Helper()
	if got != want {
		f.t.Fatalf("%s: got %s, want %s", what, show(got), show(want))
	}
}

func show(d limit.Decision) string {
	verdict := "refused"
	if d.Allowed {
		verdict = "allowed"
	}
	return fmt.Sprintf("%s remaining=%d reset=%v retry-after=%v", verdict, d.Remaining, d.Reset, d.RetryAfter)
}

func abbrev(s string) string {
	if len(s) > 40 {
		return fmt.Sprintf("%s…(%d bytes)", s[:20], len(s))
	}
	return s
}

func testBurstThenRefuse(t *testing.T, f *fixture) {
	for i := range 5 {
		f.want(fmt.Sprintf("request %d", i+1), f.allow("k", tenPerMinute, 1), limit.Decision{
			Allowed: true, Remaining: int64(4 - i), Reset: time.Duration(i+1) * 6 * time.Second,
		})
	}
	f.want("request 6", f.allow("k", tenPerMinute, 1), limit.Decision{
		Allowed: false, Remaining: 0, Reset: 30 * time.Second, RetryAfter: 6 * time.Second,
	})
}

func testRefusalSpendsNothing(t *testing.T, f *fixture) {
	for range 5 {
		f.allow("k", tenPerMinute, 1)
	}
	for range 3 {
		f.want("over the burst", f.allow("k", tenPerMinute, 1), limit.Decision{Reset: 30 * time.Second, RetryAfter: 6 * time.Second})
	}
	f.clock.Advance(6*time.Second - time.Microsecond)
	f.want("a microsecond early", f.allow("k", tenPerMinute, 1), limit.Decision{
		Reset: 24*time.Second + time.Microsecond, RetryAfter: time.Microsecond,
	})
	f.clock.Advance(time.Microsecond)
	f.want("on time", f.allow("k", tenPerMinute, 1), limit.Decision{Allowed: true, Reset: 30 * time.Second})
	f.want("then", f.allow("k", tenPerMinute, 1), limit.Decision{Reset: 30 * time.Second, RetryAfter: 6 * time.Second})
}

// testSteadyRate sends a request every second for an hour: exactly the
// burst plus one per interval pass, the most that GCRA lets through.
func testSteadyRate(t *testing.T, f *fixture) {
	allowed := 0
	const step = time.Second
	const span = time.Hour
	for range span / step {
		if f.allow("k", tenPerMinute, 1).Allowed {
			allowed++
		}
		f.clock.Advance(step)
	}
	// Requests at 0, step, …, span-step: the last at span-step.
	want := 5 + int((span-step)/(6*time.Second))
	if allowed != want {
		t.Fatalf("%d requests passed in an hour at 10/min with a burst of 5; want %d", allowed, want)
	}
}

func testIdleKeyIsFresh(t *testing.T, f *fixture) {
	var last limit.Decision
	for range 4 {
		last = f.allow("k", tenPerMinute, 1)
	}
	f.clock.Advance(last.Reset)
	f.want("after Reset, a report", f.allow("k", tenPerMinute, 0), limit.Decision{Allowed: true, Remaining: 5})
	for i := range 5 {
		if !f.allow("k", tenPerMinute, 1).Allowed {
			t.Fatalf("request %d of a full burst after Reset refused", i+1)
		}
	}
}

func testCost(t *testing.T, f *fixture) {
	f.want("cost 3", f.allow("k", tenPerMinute, 3), limit.Decision{Allowed: true, Remaining: 2, Reset: 18 * time.Second})
	f.want("cost 3 again", f.allow("k", tenPerMinute, 3), limit.Decision{Remaining: 2, Reset: 18 * time.Second, RetryAfter: 6 * time.Second})
	f.want("cost 0 reports", f.allow("k", tenPerMinute, 0), limit.Decision{Allowed: true, Remaining: 2, Reset: 18 * time.Second})
	f.want("cost 2", f.allow("k", tenPerMinute, 2), limit.Decision{Allowed: true, Remaining: 0, Reset: 30 * time.Second})
	f.want("cost 0 on a spent burst", f.allow("k", tenPerMinute, 0), limit.Decision{Allowed: true, Remaining: 0, Reset: 30 * time.Second})
	f.want("cost 0 of a new key", f.allow("new", tenPerMinute, 0), limit.Decision{Allowed: true, Remaining: 5})
	f.want("cost 5 of a new key", f.allow("new2", tenPerMinute, 5), limit.Decision{Allowed: true, Remaining: 0, Reset: 30 * time.Second})
}

func testInvalid(t *testing.T, f *fixture) {
	for _, tt := range []struct {
		r    limit.Rate
		cost int
	}{
		{limit.Rate{}, 1},
		{limit.Rate{N: 0, Per: time.Second}, 1},
		{limit.Rate{N: -1, Per: time.Second}, 1},
		{limit.Rate{N: 1, Per: 0}, 1},
		{limit.Rate{N: 1, Per: -time.Second}, 1},
		{limit.Rate{N: 1, Per: 400 * 24 * time.Hour}, 1},
		{limit.Rate{N: 1, Per: time.Second, Burst: -1}, 1},
		{limit.Rate{N: 1, Per: 300 * 24 * time.Hour, Burst: 100}, 1},
		{tenPerMinute, -1},
		{tenPerMinute, 6},
	} {
		d, err := f.store.Allow(t.Context(), "k", tt.r, tt.cost)
		if !errors.Is(err, limit.ErrInvalid) || d.Allowed {
			t.Errorf("Allow(%+v, cost %d) = %s, %v; want ErrInvalid", tt.r, tt.cost, show(d), err)
		}
	}
	if d := f.allow("k", tenPerMinute, 0); d.Remaining != 5 {
		t.Errorf("after invalid calls, the key reports %s; want it untouched", show(d))
	}
}

func testKeysApart(t *testing.T, f *fixture) {
	keys := []string{"", "k", "K", "k ", "ab", "a", "b", "k:x", "o:x", "\x00", "\xff\xfe", "ключ", strings.Repeat("x", 10_000), strings.Repeat("x", 10_001)}
	for _, k := range keys {
		for range 5 {
			if !f.allow(k, tenPerMinute, 1).Allowed {
				t.Fatalf("key %q: refused within its own burst; keys share state", abbrev(k))
			}
		}
	}
	for _, k := range keys {
		if f.allow(k, tenPerMinute, 1).Allowed {
			t.Fatalf("key %q: allowed over its burst", abbrev(k))
		}
	}
	for _, k := range []string{limit.ForKey("a"), limit.ForOwner("a"), limit.ForRoute("a", "b"), limit.ForRoute("ab", ""), limit.ForRoute("a", "")} {
		if !f.allow(k, limit.Rate{N: 1, Per: time.Hour}, 1).Allowed {
			t.Fatalf("key %q of one scope shares the state of another's", k)
		}
	}
}

// testRateChanged changes a key's rate: the new one applies to the time
// the key has spent, so a larger burst lets more through at once and a
// smaller one refuses until the key is back within it.
func testRateChanged(t *testing.T, f *fixture) {
	for range 5 {
		f.allow("k", tenPerMinute, 1)
	}
	bigger := limit.Rate{N: 10, Per: time.Minute, Burst: 8}
	for i := range 3 {
		if !f.allow("k", bigger, 1).Allowed {
			t.Fatalf("request %d under a burst raised from 5 to 8 refused", i+1)
		}
	}
	smaller := limit.Rate{N: 10, Per: time.Minute, Burst: 2}
	f.want("under a burst lowered to 2", f.allow("k", smaller, 1), limit.Decision{Reset: 48 * time.Second, RetryAfter: 42 * time.Second})
}

// testFineInterval uses a rate whose interval is not whole microseconds:
// it is rounded up, so no more than N pass per Per.
func testFineInterval(t *testing.T, f *fixture) {
	r := limit.Rate{N: 3, Per: time.Second, Burst: 1}
	f.want("first", f.allow("k", r, 1), limit.Decision{Allowed: true, Reset: 333334 * time.Microsecond})
	f.want("second", f.allow("k", r, 1), limit.Decision{Reset: 333334 * time.Microsecond, RetryAfter: 333334 * time.Microsecond})
	allowed := 1
	for range 1000 {
		f.clock.Advance(time.Millisecond)
		if f.allow("k", r, 1).Allowed {
			allowed++
		}
	}
	if allowed != 3 { // at 0, and at the first ticks after 333.334 ms and 667.334 ms
		t.Fatalf("%d requests passed in one second at 3/s, burst 1; want 3", allowed)
	}
}

func testConcurrentAllow(t *testing.T, f *fixture) {
	r := limit.Rate{N: 100, Per: time.Hour, Burst: 100}
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			for range 20 {
				d, err := f.store.Allow(t.Context(), "k", r, 1)
				if err != nil {
					t.Error(err)
					return
				}
				if d.Allowed {
					allowed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if allowed.Load() != 100 {
		t.Fatalf("%d of 400 concurrent requests passed a burst of 100", allowed.Load())
	}
}

func (f *fixture) spend(key string, set time.Time, cost int) limit.Decision {
	f.t.Helper()
	d, err := f.store.Spend(f.t.Context(), key, set, cost)
	if err != nil {
		f.t.Fatalf("Spend(%q, cost %d) = %v", key, cost, err)
	}
	return d
}

func testUsesSpendDown(t *testing.T, f *fixture) {
	set := f.ledger.Set("sk_1", 25, limit.Rate{})
	for i := range 25 {
		f.want(fmt.Sprintf("use %d", i+1), f.spend("sk_1", set, 1), limit.Decision{Allowed: true, Remaining: int64(24 - i)})
	}
	takes := f.ledger.Takes()
	if takes != 3 {
		t.Errorf("25 uses took %d calls to the ledger; want 3, taking %d at a time", takes, DefaultBatch+1)
	}
	for range 10 {
		f.want("over the budget", f.spend("sk_1", set, 1), limit.Decision{})
	}
	if n := f.ledger.Takes(); n != takes {
		t.Errorf("refusing a key whose uses are spent called the ledger %d times; want none", n-takes)
	}
	if n := f.ledger.Remaining("sk_1"); n != 0 {
		t.Errorf("the ledger has %d uses left; want 0", n)
	}
}

func testUsesSetAgain(t *testing.T, f *fixture) {
	set := f.ledger.Set("sk_1", 25, limit.Rate{})
	f.want("first use", f.spend("sk_1", set, 1), limit.Decision{Allowed: true, Remaining: 24})
	// The store holds uses taken ahead; an operator cuts the budget to 2.
	set = f.ledger.Set("sk_1", 2, limit.Rate{})
	f.want("under the new budget", f.spend("sk_1", set, 1), limit.Decision{Allowed: true, Remaining: 1})
	f.want("then", f.spend("sk_1", set, 1), limit.Decision{Allowed: true, Remaining: 0})
	f.want("then", f.spend("sk_1", set, 1), limit.Decision{})
	// And raises it again.
	set = f.ledger.Set("sk_1", 3, limit.Rate{})
	for i := range 3 {
		f.want("after a raise", f.spend("sk_1", set, 1), limit.Decision{Allowed: true, Remaining: int64(2 - i)})
	}
	f.want("then", f.spend("sk_1", set, 1), limit.Decision{})
}

// testUsesCallerBehind has callers that do not know the budget's Set, or
// know an older one, or one a microsecond off (a key record stored with
// another precision): the ledger's word stands, and the uses taken are
// spent, not dropped and taken again.
func testUsesCallerBehind(t *testing.T, f *fixture) {
	for _, tt := range []struct {
		key     string
		callers func(set time.Time) []time.Time
	}{
		{"sk_behind", func(set time.Time) []time.Time { return []time.Time{{}, set.Add(-time.Microsecond), set} }},
		{"sk_ahead", func(set time.Time) []time.Time { return []time.Time{set.Add(time.Microsecond)} }},
	} {
		set := f.ledger.Set(tt.key, 25, limit.Rate{})
		callers := tt.callers(set)
		takes := f.ledger.Takes()
		for i := range 25 {
			f.want(fmt.Sprintf("%s: use %d", tt.key, i+1), f.spend(tt.key, callers[i%len(callers)], 1), limit.Decision{Allowed: true, Remaining: int64(24 - i)})
		}
		if n := f.ledger.Takes() - takes; n != 3 {
			t.Errorf("%s: 25 uses took %d calls to the ledger; want 3", tt.key, n)
		}
		f.want(tt.key+": over the budget", f.spend(tt.key, callers[0], 1), limit.Decision{})
	}
}

func testUsesRefill(t *testing.T, f *fixture) {
	hourly := limit.Rate{N: 3, Per: time.Hour}
	set := f.ledger.Set("sk_1", 3, hourly)
	toHour := start.Truncate(time.Hour).Add(time.Hour).Sub(start) // 3m54.876544s
	for i := range 3 {
		f.want("use", f.spend("sk_1", set, 1), limit.Decision{Allowed: true, Remaining: int64(2 - i), Reset: toHour})
	}
	f.want("over the budget", f.spend("sk_1", set, 1), limit.Decision{Reset: toHour, RetryAfter: toHour})
	f.clock.Advance(toHour - time.Microsecond)
	f.want("a microsecond before the refill", f.spend("sk_1", set, 1), limit.Decision{Reset: time.Microsecond, RetryAfter: time.Microsecond})
	f.clock.Advance(time.Microsecond)
	f.want("at the refill", f.spend("sk_1", set, 1), limit.Decision{Allowed: true, Remaining: 2, Reset: time.Hour})
	f.clock.Advance(time.Minute)
	f.want("in the hour", f.spend("sk_1", set, 1), limit.Decision{Allowed: true, Remaining: 1, Reset: 59 * time.Minute})
	// One use left unspent does not carry over.
	f.clock.Advance(59 * time.Minute)
	f.want("next hour", f.spend("sk_1", set, 1), limit.Decision{Allowed: true, Remaining: 2, Reset: time.Hour})
	// A day passes without a request: one refill, not 24.
	f.clock.Advance(24 * time.Hour)
	f.want("a day later", f.spend("sk_1", set, 0), limit.Decision{Allowed: true, Remaining: 3, Reset: time.Hour})
}

// testUsesLapseAtRefill checks that uses taken ahead in one period are
// not spent in the next, which the ledger has refilled: each period lets
// through its budget and no more.
func testUsesLapseAtRefill(t *testing.T, f *fixture) {
	hourly := limit.Rate{N: 30, Per: time.Hour}
	set := f.ledger.Set("sk_1", 30, hourly)
	toHour := start.Truncate(time.Hour).Add(time.Hour).Sub(start)
	for period := range 3 {
		allowed := 0
		for range 40 {
			if f.spend("sk_1", set, 1).Allowed {
				allowed++
			}
		}
		if allowed != 30 {
			t.Fatalf("period %d: %d uses passed; want the 30 of the budget", period, allowed)
		}
		if period == 0 {
			f.clock.Advance(toHour)
		} else {
			f.clock.Advance(time.Hour)
		}
	}
	// Spend one, so that the store holds uses taken ahead, then cross
	// into the next hour.
	f.want("one use", f.spend("sk_1", set, 1), limit.Decision{Allowed: true, Remaining: 29, Reset: time.Hour})
	f.clock.Advance(time.Hour)
	f.want("after the refill", f.spend("sk_1", set, 1), limit.Decision{Allowed: true, Remaining: 29, Reset: time.Hour})
}

func testUsesUnlimited(t *testing.T, f *fixture) {
	for range 3 {
		f.want("a key with no budget", f.spend("sk_free", time.Time{}, 1), limit.Decision{Allowed: true, Remaining: limit.Unlimited})
	}
	// A budget set later applies as soon as the caller knows of it.
	set := f.ledger.Set("sk_free", 1, limit.Rate{})
	f.want("budget set", f.spend("sk_free", set, 1), limit.Decision{Allowed: true, Remaining: 0})
	f.want("then", f.spend("sk_free", set, 1), limit.Decision{})
}

func testUsesReport(t *testing.T, f *fixture) {
	set := f.ledger.Set("sk_1", 25, limit.Rate{})
	f.want("cost 0 first", f.spend("sk_1", set, 0), limit.Decision{Allowed: true, Remaining: 25})
	f.want("cost 0 again", f.spend("sk_1", set, 0), limit.Decision{Allowed: true, Remaining: 25})
	f.want("cost 1", f.spend("sk_1", set, 1), limit.Decision{Allowed: true, Remaining: 24})
}

func testUsesCost(t *testing.T, f *fixture) {
	set := f.ledger.Set("sk_1", 25, limit.Rate{})
	f.want("cost 5", f.spend("sk_1", set, 5), limit.Decision{Allowed: true, Remaining: 20})
	f.want("cost 12", f.spend("sk_1", set, 12), limit.Decision{Allowed: true, Remaining: 8})
	f.want("cost 9", f.spend("sk_1", set, 9), limit.Decision{Remaining: 8})
	f.want("cost 8", f.spend("sk_1", set, 8), limit.Decision{Allowed: true, Remaining: 0})
	if d, err := f.store.Spend(t.Context(), "sk_1", set, -1); !errors.Is(err, limit.ErrInvalid) || d.Allowed {
		t.Errorf("cost -1: Spend = %s, %v; want ErrInvalid", show(d), err)
	}
}

func testUsesLedgerDown(t *testing.T, f *fixture) {
	set := f.ledger.Set("sk_1", 25, limit.Rate{})
	down := errors.New("key store down")
	f.ledger.Fail(down)
	if d, err := f.store.Spend(t.Context(), "sk_1", set, 1); err == nil || d.Allowed {
		t.Fatalf("with the ledger down and no uses held: Spend = %s, %v; want an error", show(d), err)
	}
	f.ledger.Fail(nil)
	f.want("ledger back", f.spend("sk_1", set, 1), limit.Decision{Allowed: true, Remaining: 24})
	f.ledger.Fail(down)
	for i := range DefaultBatch {
		f.want("from the uses held", f.spend("sk_1", set, 1), limit.Decision{Allowed: true, Remaining: int64(23 - i)})
	}
	if d, err := f.store.Spend(t.Context(), "sk_1", set, 1); err == nil || d.Allowed {
		t.Fatalf("with the ledger down and the uses held spent: Spend = %s, %v; want an error", show(d), err)
	}
}

func testUsesConcurrent(t *testing.T, f *fixture) {
	set := f.ledger.Set("sk_1", 500, limit.Rate{})
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			for range 50 {
				d, err := f.store.Spend(t.Context(), "sk_1", set, 1)
				if err != nil {
					t.Error(err)
					return
				}
				if d.Allowed {
					allowed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if allowed.Load() != 500 {
		t.Fatalf("%d of 1,000 concurrent requests spent a budget of 500", allowed.Load())
	}
	f.want("after", f.spend("sk_1", set, 1), limit.Decision{})
}

func testRatesAndUsesApart(t *testing.T, f *fixture) {
	set := f.ledger.Set("x", 1, limit.Rate{})
	for range 5 {
		f.allow("x", tenPerMinute, 1)
	}
	f.want("uses of a key whose rate is spent", f.spend("x", set, 1), limit.Decision{Allowed: true})
	f.want("and its rate", f.allow("x", tenPerMinute, 1), limit.Decision{Reset: 30 * time.Second, RetryAfter: 6 * time.Second})
}
