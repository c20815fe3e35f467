// Package replaytest checks that an implementation of
// [httpsig.NonceStore] behaves as the verifier needs: [Run] is the behavioural
// suite that every store in [github.com/signet-dev/signet/replay] passes,
// driven by the manual clock of [testtime.Clock]. A store's tests call it
// as
//
//	func TestConformance(t *testing.T) {
//		replaytest.Run(t, replaytest.Harness{
//			New: func(t *testing.T, now func() time.Time) httpsig.NonceStore {
//				return memory.New(memory.Options{Now: now})
//			},
//		})
//	}
package replaytest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signet-dev/signet/httpsig"
	"github.com/signet-dev/signet/internal/testtime"
)

// A Harness tells [Run] how to make the store under test.
type Harness struct {
	// New returns a new, empty store that reads the current time from now.
	// Stores made for different tests must not share entries. New registers
	// whatever clean-up the store needs with t.Cleanup.
	New func(t *testing.T, now func() time.Time) httpsig.NonceStore

	// RealTimeExpiry reports that the store forgets entries by a clock of its
	// own, such as a Redis server's, and uses now only to work out how long
	// to hold them. The expiry test then lets RealTimeTTL of real time pass,
	// and the tests that depend on the exact instant of expiry are skipped.
	RealTimeExpiry bool

	// Resolution is how long after its until a store may still hold a
	// pair, if it counts time coarsely: holding a pair longer is safe, as
	// the verifier refuses its signature by then. The tests of expiry then
	// look for the pair to be forgotten that much later.
	Resolution time.Duration
}

// RealTimeTTL is how long the expiry test holds a pair in a store with
// [Harness.RealTimeExpiry], and so about how long it waits.
const RealTimeTTL = 150 * time.Millisecond

// Run runs the suite against the stores h makes, one subtest per behaviour.
func Run(t *testing.T, h Harness) {
	tests := []struct {
		name     string
		run      func(t *testing.T, h Harness)
		fakeTime bool // needs a store that expires entries by the injected clock
	}{
		{name: "FirstUseThenReplay", run: testFirstUseThenReplay},
		{name: "DistinctPairs", run: testDistinctPairs},
		{name: "Unambiguous", run: testUnambiguous},
		{name: "OddValues", run: testOddValues},
		{name: "Expiry", run: testExpiry},
		{name: "HeldThroughUntil", run: testHeldThroughUntil, fakeTime: true},
		{name: "RefusalChangesNothing", run: testRefusalChangesNothing, fakeTime: true},
		{name: "PastUntilNotStored", run: testPastUntilNotStored},
		{name: "HeldRefusedPastUntil", run: testHeldRefusedPastUntil},
		{name: "ConcurrentSamePair", run: testConcurrentSamePair},
		{name: "ConcurrentDistinctPairs", run: testConcurrentDistinctPairs},
		{name: "WindowEdge", run: testWindowEdge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.fakeTime && h.RealTimeExpiry {
				t.Skip("replaytest: the store expires entries by its own clock")
			}
			tt.run(t, h)
		})
	}
}

// start is where each test's clock begins: any fixed instant will do, since
// stores must work from the clock they are given.
var start = time.Date(2030, time.January, 2, 3, 4, 5, 0, time.UTC)

type fixture struct {
	t     *testing.T
	clock *testtime.Clock
	store httpsig.NonceStore
}

func newFixture(t *testing.T, h Harness) *fixture {
	t.Helper()
	clock := testtime.NewClock(start)
	return &fixture{t: t, clock: clock, store: h.New(t, clock.Now)}
}

// remember calls Remember for a signature created now, which every store
// can vouch for.
func (f *fixture) remember(keyID, nonce string, ttl time.Duration) error {
	now := f.clock.Now()
	return f.store.Remember(f.t.Context(), keyID, nonce, now, now.Add(ttl))
}

func (f *fixture) accept(keyID, nonce string, ttl time.Duration) {
	f.t.Helper()
	if err := f.remember(keyID, nonce, ttl); err != nil {
		f.t.Fatalf("Remember(%q, %q) = %v, want nil", abbrev(keyID), abbrev(nonce), err)
	}
}

func (f *fixture) refuse(keyID, nonce string, ttl time.Duration) {
	f.t.Helper()
	if err := f.remember(keyID, nonce, ttl); !errors.Is(err, httpsig.ErrReplayed) {
		f.t.Fatalf("Remember(%q, %q) = %v, want ErrReplayed", abbrev(keyID), abbrev(nonce), err)
	}
}

func abbrev(s string) string {
	if len(s) > 40 {
		return fmt.Sprintf("%s…(%d bytes)", s[:32], len(s))
	}
	return s
}

const window = 5 * time.Minute

func testFirstUseThenReplay(t *testing.T, h Harness) {
	f := newFixture(t, h)
	f.accept("sk_test_1", "n-1", window)
	f.refuse("sk_test_1", "n-1", window)
	f.refuse("sk_test_1", "n-1", window)
}

func testDistinctPairs(t *testing.T, h Harness) {
	f := newFixture(t, h)
	f.accept("sk_test_1", "n-1", window)
	f.accept("sk_test_2", "n-1", window)
	f.accept("sk_test_1", "n-2", window)
	for i := range 100 {
		f.accept(fmt.Sprintf("sk_many_%d", i), "same-nonce", window)
	}
	f.refuse("sk_test_2", "n-1", window)
	f.refuse("sk_many_99", "same-nonce", window)
}

// testUnambiguous uses pairs that a store joining keyid and nonce without a
// length or an escape would confuse.
func testUnambiguous(t *testing.T, h Harness) {
	pairs := [][2]string{
		{"c"}, {"a", "bc"}, {"abc", ""}, {"", "abc"},
		{"a:b", "c"}, {"b:c"}, {"a:", "b"}, {"a", ":b"},
		{"a\x00", "b"}, {"\x00b"}, {"\x01a", "b"}, {"a", "b\x01"},
		{"a|b", "c"}, {"b|c"}, {"a%3A", "b"}, {"a", "%3Ab"},
	}
	f := newFixture(t, h)
	for _, p := range pairs {
		f.accept(p[0], p[1], window)
	}
	for _, p := range pairs {
		f.refuse(p[0], p[1], window)
	}
}

// testOddValues uses keyids and nonces a store might mishandle: empty, long,
// not UTF-8, or special to the back end.
func testOddValues(t *testing.T, h Harness) {
	pairs := []struct{ keyID, nonce string }{
		{"", ""},
		{"sk_test_1", ""},
		{"sk_test_1", strings.Repeat("n0123456789", 800)},
		{strings.Repeat("k", 4096), "n-1"},
		{"sk_ключ", "nonce-☃-日本"},
		{"sk_\xff\xfe", "\x00\x00\xff"},
		{"sk_*", "[a-z]?*"},
		{"{sk}", "{n}"},
	}
	f := newFixture(t, h)
	for _, p := range pairs {
		f.accept(p.keyID, p.nonce, window)
		f.refuse(p.keyID, p.nonce, window)
	}
}

func testExpiry(t *testing.T, h Harness) {
	f := newFixture(t, h)
	ttl := window
	if h.RealTimeExpiry {
		ttl = RealTimeTTL
	}
	began := time.Now()
	f.accept("sk_test_1", "n-1", ttl)
	f.refuse("sk_test_1", "n-1", ttl)
	f.clock.Advance(ttl + h.Resolution + time.Millisecond)
	if h.RealTimeExpiry {
		waitForgotten(f, "sk_test_1", "n-1", ttl, began)
	} else {
		f.accept("sk_test_1", "n-1", ttl)
	}
	f.refuse("sk_test_1", "n-1", ttl)
}

// waitForgotten waits for a store with its own clock to forget the pair it
// was given ttl for at began, and remembers it again. The store must keep
// refusing it until then, and accept it soon after.
func waitForgotten(f *fixture, keyID, nonce string, ttl time.Duration, began time.Time) {
	f.t.Helper()
	const grace = time.Second
	time.Sleep(time.Until(began.Add(ttl)))
	for {
		err := f.remember(keyID, nonce, ttl)
		if err == nil {
			return
		}
		if !errors.Is(err, httpsig.ErrReplayed) {
			f.t.Fatalf("Remember after expiry = %v, want nil", err)
		}
		if time.Since(began) > ttl+grace {
			f.t.Fatalf("pair still refused %v after it was remembered for %v", time.Since(began), ttl)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func testHeldThroughUntil(t *testing.T, h Harness) {
	f := newFixture(t, h)
	f.accept("sk_test_1", "n-1", time.Minute)
	f.clock.Advance(time.Minute)
	f.refuse("sk_test_1", "n-1", time.Minute)
	f.clock.Advance(h.Resolution + time.Nanosecond)
	f.accept("sk_test_1", "n-1", time.Minute)

	f.accept("sk_test_1", "n-0", 0)
	f.refuse("sk_test_1", "n-0", time.Minute)
}

// testRefusalChangesNothing checks that a refused call does not extend the
// time a pair is held for.
func testRefusalChangesNothing(t *testing.T, h Harness) {
	f := newFixture(t, h)
	f.accept("sk_test_1", "n-1", time.Minute)
	f.refuse("sk_test_1", "n-1", time.Hour)
	f.clock.Advance(time.Minute + h.Resolution + time.Nanosecond)
	f.accept("sk_test_1", "n-1", time.Minute)
}

// testPastUntilNotStored gives untils that have passed, by more than the
// store's resolution: the store takes the call and holds nothing.
func testPastUntilNotStored(t *testing.T, h Harness) {
	f := newFixture(t, h)
	for _, past := range []time.Duration{time.Hour, time.Second, time.Millisecond} {
		past += h.Resolution
		if err := f.remember("sk_test_1", "n-1", -past); err != nil {
			t.Fatalf("Remember with until %v ago = %v, want nil", past, err)
		}
	}
	f.accept("sk_test_1", "n-1", window)
	f.refuse("sk_test_1", "n-1", window)
}

// testHeldRefusedPastUntil checks that a pair still held is refused even by
// a call whose until has passed: the store refuses what it knows to be a
// replay, whatever the verifier thinks of the signature's age.
func testHeldRefusedPastUntil(t *testing.T, h Harness) {
	f := newFixture(t, h)
	f.accept("sk_test_1", "n-1", window)
	f.refuse("sk_test_1", "n-1", -time.Hour)
}

// testConcurrentSamePair has many goroutines race to remember one pair:
// exactly one may win.
func testConcurrentSamePair(t *testing.T, h Harness) {
	const goroutines = 50
	f := newFixture(t, h)
	created := f.clock.Now()
	until := created.Add(window)
	var (
		ready sync.WaitGroup
		done  sync.WaitGroup
		gate  = make(chan struct{})
		errs  = make([]error, goroutines)
	)
	ready.Add(goroutines)
	for i := range goroutines {
		done.Go(func() {
			ready.Done()
			<-gate
			errs[i] = f.store.Remember(context.Background(), "sk_race", "n-race", created, until)
		})
	}
	ready.Wait()
	close(gate)
	done.Wait()
	wins := 0
	for _, err := range errs {
		switch {
		case err == nil:
			wins++
		case !errors.Is(err, httpsig.ErrReplayed):
			t.Errorf("Remember = %v, want nil or ErrReplayed", err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d of %d concurrent Remember calls of one pair returned nil, want exactly 1", wins, goroutines)
	}
}

func testConcurrentDistinctPairs(t *testing.T, h Harness) {
	const (
		goroutines = 8
		each       = 200
	)
	f := newFixture(t, h)
	created := f.clock.Now()
	until := created.Add(window)
	run := func(want error) {
		var wg sync.WaitGroup
		for g := range goroutines {
			wg.Go(func() {
				for i := range each {
					keyID := fmt.Sprintf("sk_g%d", g)
					nonce := fmt.Sprintf("n-%d", i)
					err := f.store.Remember(context.Background(), keyID, nonce, created, until)
					if !errors.Is(err, want) {
						t.Errorf("Remember(%q, %q) = %v, want %v", keyID, nonce, err, want)
						return
					}
				}
			})
		}
		wg.Wait()
	}
	run(nil)
	run(httpsig.ErrReplayed)
}
