package memory

import (
	"context"
	"errors"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/signet-dev/signet/internal/testtime"
	"github.com/signet-dev/signet/limit"
	"github.com/signet-dev/signet/limit/limittest"
)

func TestConformance(t *testing.T) {
	limittest.Run(t, limittest.Harness{
		New: func(t *testing.T, now func() time.Time, l limit.Ledger) limittest.Store {
			return New(Options{Now: now, Ledger: l, Batch: limittest.DefaultBatch})
		},
	})
}

// TestFull fills a small store with keys that spent part of their burst:
// it refuses new keys with ErrFull rather than forget one, goes on
// deciding for the keys it holds, and takes new keys again once the old
// are back at a full burst.
func TestFull(t *testing.T) {
	clock := testtime.NewClock(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))
	s := New(Options{MaxKeys: 2 * shardCount, Now: clock.Now})
	r := limit.Rate{N: 1, Per: time.Minute}
	ctx := t.Context()
	// Enough keys that every shard fills.
	held, full := 0, 0
	for i := range 20 * shardCount {
		switch _, err := s.Allow(ctx, "k"+strconv.Itoa(i), r, 1); {
		case err == nil:
			held++
		case errors.Is(err, ErrFull):
			full++
		default:
			t.Fatalf("Allow = %v, want nil or ErrFull", err)
		}
	}
	if held != 2*shardCount {
		t.Fatalf("the store took %d keys and refused %d; want it to take %d", held, full, 2*shardCount)
	}
	if s.Len() != held || s.Cap() != 2*shardCount {
		t.Fatalf("Len, Cap = %d, %d; want %d, %d", s.Len(), s.Cap(), held, 2*shardCount)
	}
	if d, err := s.Allow(ctx, "k0", r, 1); err != nil || d.Allowed {
		t.Fatalf("a key held by a full store: Allow = %+v, %v; want it refused, over its burst", d, err)
	}
	if d, err := s.Allow(ctx, "never seen", r, 0); err != nil || !d.Allowed || d.Remaining != 1 {
		t.Fatalf("a report on a new key in a full store: Allow = %+v, %v; want a full burst", d, err)
	}
	clock.Advance(time.Minute - time.Microsecond)
	for i := range 10 {
		if _, err := s.Allow(ctx, "new"+strconv.Itoa(i), r, 1); !errors.Is(err, ErrFull) {
			t.Fatalf("before any key is back at a full burst: Allow = %v, want ErrFull", err)
		}
	}
	clock.Advance(time.Microsecond + sweepGap)
	// The same keys again: each shard forgets its two, which are back at a
	// full burst, and takes two.
	taken := 0
	for i := range 20 * shardCount {
		if _, err := s.Allow(ctx, "k"+strconv.Itoa(i), r, 1); err == nil {
			taken++
		}
	}
	if taken != held {
		t.Fatalf("once the keys held were back at a full burst, the store took %d keys; want %d", taken, held)
	}
}

// TestFullOfUses checks that uses held are never forgotten to make room,
// and uses that lapsed are.
func TestFullOfUses(t *testing.T) {
	clock := testtime.NewClock(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))
	ledger := limittest.NewLedger(clock.Now)
	s := New(Options{MaxKeys: shardCount, Now: clock.Now, Ledger: ledger})
	ctx := t.Context()
	sets := map[string]time.Time{}
	for i := range 20 * shardCount {
		key := "sk_" + strconv.Itoa(i)
		set := ledger.Set(key, 100, limit.Rate{N: 100, Per: time.Hour})
		switch _, err := s.Spend(ctx, key, set, 1); {
		case err == nil:
			sets[key] = set
		case !errors.Is(err, ErrFull):
			t.Fatalf("Spend = %v, want nil or ErrFull", err)
		}
	}
	if len(sets) != shardCount {
		t.Fatalf("the store took the uses of %d keys; want %d", len(sets), shardCount)
	}
	clock.Advance(10 * time.Minute)
	if _, err := s.Allow(ctx, "rate", limit.Rate{N: 1, Per: time.Second}, 1); !errors.Is(err, ErrFull) {
		t.Fatalf("a store full of uses held: Allow = %v, want ErrFull", err)
	}
	for key, set := range sets {
		if d, err := s.Spend(ctx, key, set, 1); err != nil || !d.Allowed || d.Remaining != 98 {
			t.Fatalf("%s in a full store: Spend = %+v, %v; want its uses, 98 left", key, d, err)
		}
	}
	clock.Advance(time.Hour) // every key's uses lapse at the refill
	if _, err := s.Allow(ctx, "rate", limit.Rate{N: 1, Per: time.Second}, 1); err != nil {
		t.Fatalf("once the uses held lapsed: Allow = %v, want room", err)
	}
}

func TestAllowDoesNotAllocate(t *testing.T) {
	s := New(Options{})
	r := limit.Rate{N: 1_000_000, Per: time.Second}
	ctx := context.Background()
	s.Allow(ctx, "sk_1", r, 1)
	if n := testing.AllocsPerRun(1000, func() { s.Allow(ctx, "sk_1", r, 1) }); n != 0 {
		t.Errorf("Allow of a key held: %v allocations, want 0", n)
	}
	ledger := limittest.NewLedger(time.Now)
	s = New(Options{Ledger: ledger, Batch: 1 << 20})
	set := ledger.Set("sk_1", 1<<30, limit.Rate{})
	s.Spend(ctx, "sk_1", set, 1)
	if n := testing.AllocsPerRun(1000, func() { s.Spend(ctx, "sk_1", set, 1) }); n != 0 {
		t.Errorf("Spend of uses held: %v allocations, want 0", n)
	}
}

func BenchmarkAllow(b *testing.B) {
	s := New(Options{})
	r := limit.Rate{N: 1 << 40, Per: time.Second}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		s.Allow(ctx, "k:sk_live_1", r, 1)
	}
}

// BenchmarkAllowParallel decides for 10,000 keys from every core.
func BenchmarkAllowParallel(b *testing.B) {
	s := New(Options{})
	r := limit.Rate{N: 1 << 40, Per: time.Second}
	keys := make([]string, 10_000)
	for i := range keys {
		keys[i] = limit.ForKey("sk_" + strconv.Itoa(i))
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := rand.IntN(len(keys))
		for pb.Next() {
			s.Allow(ctx, keys[i%len(keys)], r, 1)
			i++
		}
	})
}

func BenchmarkSpend(b *testing.B) {
	ledger := limittest.NewLedger(time.Now)
	s := New(Options{Ledger: ledger, Batch: 1000})
	set := ledger.Set("sk_1", 1<<40, limit.Rate{})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		s.Spend(ctx, "sk_1", set, 1)
	}
}

// BenchmarkClock is the floor under Allow: the reading of the monotonic
// clock that each decision needs.
func BenchmarkClock(b *testing.B) {
	start := time.Now()
	var sink int64
	for b.Loop() {
		sink += time.Since(start).Microseconds()
	}
	_ = sink
}
