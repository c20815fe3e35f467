package memory

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signet-dev/signet/httpsig"
	"github.com/signet-dev/signet/internal/testtime"
	"github.com/signet-dev/signet/replay/replaytest"
)

func TestConformance(t *testing.T) {
	replaytest.Run(t, replaytest.Harness{
		New: func(t *testing.T, now func() time.Time) httpsig.NonceStore {
			return New(Options{Now: now})
		},
		Resolution: resolution,
	})
}

// resolution is how long after its until a store may hold a pair: it
// counts in whole seconds, rounding until up and the time down.
const resolution = 2 * time.Second

var epoch = time.Date(2030, time.January, 1, 0, 0, 0, 0, time.UTC)

func TestDefaults(t *testing.T) {
	s := New(Options{})
	if got := s.Cap(); got != DefaultMaxEntries {
		t.Errorf("Cap of a zero Options store = %d, want %d", got, DefaultMaxEntries)
	}
	ctx := context.Background()
	if err := s.Remember(ctx, "sk_1", "n-1", time.Now(), time.Now().Add(time.Minute)); err != nil {
		t.Fatalf("Remember = %v", err)
	}
	if err := s.Remember(ctx, "sk_1", "n-1", time.Now(), time.Now().Add(time.Minute)); !errors.Is(err, httpsig.ErrReplayed) {
		t.Fatalf("second Remember = %v, want ErrReplayed", err)
	}
}

func TestShardCount(t *testing.T) {
	tests := []struct {
		maxEntries, procs, want int
	}{
		{maxEntries: DefaultMaxEntries, procs: 1, want: 8},
		{maxEntries: DefaultMaxEntries, procs: 2, want: 16},
		{maxEntries: DefaultMaxEntries, procs: 3, want: 32},
		{maxEntries: DefaultMaxEntries, procs: 16, want: 128},
		{maxEntries: DefaultMaxEntries, procs: 1000, want: maxShards},
		{maxEntries: 1000, procs: 64, want: 1},
		{maxEntries: 2048, procs: 64, want: 2},
		{maxEntries: 5000, procs: 64, want: 4},
		{maxEntries: 1, procs: 2, want: 1},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d/%d", tt.maxEntries, tt.procs), func(t *testing.T) {
			if got := shardCount(tt.maxEntries, tt.procs); got != tt.want {
				t.Errorf("shardCount(%d, %d) = %d, want %d", tt.maxEntries, tt.procs, got, tt.want)
			}
		})
	}
}

// TestFull fills a store of one shard and checks that it refuses new pairs
// rather than forget live ones, keeps refusing replays, and takes new pairs
// again once the old ones expire.
func TestFull(t *testing.T) {
	for _, maxEntries := range []int{1, 1000, 2047} {
		t.Run(strconv.Itoa(maxEntries), func(t *testing.T) {
			clock := testtime.NewClock(epoch)
			s := New(Options{MaxEntries: maxEntries, Now: clock.Now})
			ctx := context.Background()
			until := clock.Now().Add(time.Minute)
			for i := range maxEntries {
				if err := s.Remember(ctx, "sk_1", strconv.Itoa(i), time.Now(), until); err != nil {
					t.Fatalf("Remember #%d = %v, want nil", i, err)
				}
			}
			if got := s.Len(); got != maxEntries {
				t.Fatalf("Len = %d, want %d", got, maxEntries)
			}

			err := s.Remember(ctx, "sk_1", "one-too-many", time.Now(), until)
			if !errors.Is(err, ErrFull) || errors.Is(err, httpsig.ErrReplayed) {
				t.Fatalf("Remember when full = %v, want ErrFull", err)
			}
			for i := range maxEntries {
				if err := s.Remember(ctx, "sk_1", strconv.Itoa(i), time.Now(), until); !errors.Is(err, httpsig.ErrReplayed) {
					t.Fatalf("replay #%d when full = %v, want ErrReplayed", i, err)
				}
			}

			clock.Advance(time.Minute + resolution)
			if err := s.Remember(ctx, "sk_1", "one-too-many", time.Now(), clock.Now().Add(time.Minute)); err != nil {
				t.Fatalf("Remember after expiry = %v, want nil", err)
			}
			for i := range maxEntries - 1 {
				if err := s.Remember(ctx, "sk_1", "again-"+strconv.Itoa(i), time.Now(), clock.Now().Add(time.Minute)); err != nil {
					t.Fatalf("Remember #%d after expiry = %v, want nil", i, err)
				}
				if got := s.Len(); got > maxEntries {
					t.Fatalf("Len = %d, over MaxEntries %d", got, maxEntries)
				}
			}
		})
	}
}

// TestFullSharded fills a store of many shards until one shard is full: the
// store must have taken nearly MaxEntries pairs, and forgotten none. Once
// they expire, it fills again.
func TestFullSharded(t *testing.T) {
	const maxEntries = 1 << 16
	clock := testtime.NewClock(epoch)
	s := New(Options{MaxEntries: maxEntries, Now: clock.Now})
	if len(s.shards) < 2 {
		t.Fatalf("store has %d shards; the test needs several", len(s.shards))
	}
	ctx := context.Background()
	for _, keyID := range []string{"sk_1", "sk_2"} {
		until := clock.Now().Add(time.Minute)
		taken := 0
		for {
			err := s.Remember(ctx, keyID, strconv.Itoa(taken), time.Now(), until)
			if errors.Is(err, ErrFull) {
				break
			}
			if err != nil {
				t.Fatalf("Remember #%d = %v", taken, err)
			}
			taken++
		}
		if taken < maxEntries*9/10 || taken > maxEntries {
			t.Errorf("store took %d pairs before ErrFull; want between 90%% and 100%% of %d", taken, maxEntries)
		}
		if got := s.Len(); got > maxEntries {
			t.Errorf("Len = %d, over MaxEntries %d", got, maxEntries)
		}
		for i := range taken {
			if err := s.Remember(ctx, keyID, strconv.Itoa(i), time.Now(), until); !errors.Is(err, httpsig.ErrReplayed) {
				t.Fatalf("replay #%d = %v, want ErrReplayed", i, err)
			}
		}
		clock.Advance(time.Minute + resolution)
	}
}

// TestExpiryOrder remembers pairs for random lengths of time and checks each
// is held exactly until its own time, whatever the order of insertion.
func TestExpiryOrder(t *testing.T) {
	const n = 2000
	clock := testtime.NewClock(epoch)
	s := New(Options{MaxEntries: n, Now: clock.Now})
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	ttls := make([]time.Duration, n)
	for i := range ttls {
		ttls[i] = time.Duration(1+rng.IntN(1000)) * time.Second
		if err := s.Remember(ctx, "sk_1", strconv.Itoa(i), time.Now(), clock.Now().Add(ttls[i])); err != nil {
			t.Fatalf("Remember #%d = %v", i, err)
		}
	}
	for elapsed := 100 * time.Second; elapsed <= 1100*time.Second; elapsed += 100 * time.Second {
		clock.Advance(100 * time.Second)
		for i, ttl := range ttls {
			if ttl < 0 {
				continue // accepted again already; now held until far later
			}
			err := s.Remember(ctx, "sk_1", strconv.Itoa(i), time.Now(), clock.Now().Add(time.Hour*24))
			switch {
			case ttl >= elapsed && !errors.Is(err, httpsig.ErrReplayed):
				t.Fatalf("at %v, pair held for %v: Remember = %v, want ErrReplayed", elapsed, ttl, err)
			case ttl < elapsed && err != nil:
				t.Fatalf("at %v, pair held for %v: Remember = %v, want nil", elapsed, ttl, err)
			case ttl < elapsed:
				ttls[i] = -1
			}
		}
		if got := s.Len(); got > n {
			t.Fatalf("Len = %d, over MaxEntries %d", got, n)
		}
	}
}

// TestSteadyLoad runs many windows of traffic through a store and checks that
// the number of entries and the memory they take stay flat.
func TestSteadyLoad(t *testing.T) {
	const (
		window  = 300 * time.Second
		seconds = 12 * 300 // twelve windows
	)
	perSecond := 200
	if raceEnabled {
		perSecond = 40 // the race detector makes each call ten times slower
	}
	bound := perSecond * (300 + 1 + sweepPeriod + 1)
	clock := testtime.NewClock(epoch)
	s := New(Options{MaxEntries: 1 << 17, Now: clock.Now})
	ctx := context.Background()
	var warm uint64
	peak := 0
	n := 0
	for sec := range seconds {
		for range perSecond {
			// A spread of clock skews, so that expiry times arrive out of order.
			until := clock.Now().Add(window - time.Duration(n%30)*time.Second)
			if err := s.Remember(ctx, "sk_load", strconv.Itoa(n), time.Now(), until); err != nil {
				t.Fatalf("Remember #%d = %v", n, err)
			}
			n++
		}
		clock.Advance(time.Second)
		peak = max(peak, s.Len())
		switch sec {
		case 2 * 300:
			warm = heapInUse()
		case seconds - 1:
			if got := heapInUse(); got > warm+warm/4+1<<20 {
				t.Errorf("heap in use grew from %d to %d bytes under a steady load", warm, got)
			}
		}
	}
	if peak > bound {
		t.Errorf("store held up to %d entries; want at most %d (%d a second for %v)", peak, bound, perSecond, window)
	}
	t.Logf("%d calls, peak %d entries", n, peak)
}

// maxEntryBytes bounds what TestEntrySize may measure.
const maxEntryBytes = 40

// residentBytes returns the resident set size of the process, or 0 where
// /proc does not tell it.
func residentBytes() uint64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	var size, pages uint64
	if _, err := fmt.Sscan(string(b), &size, &pages); err != nil {
		return 0
	}
	return pages * uint64(os.Getpagesize())
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// TestEntrySize measures the memory a store of a million entries takes, per
// entry: just filled, and at a steady state where each second as many
// entries expire as are added (which is what a server sees, and where the
// structures have grown and churned). The figures back the documentation of
// DefaultMaxEntries; run with -v to see them.
func TestEntrySize(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("fills a store of a million entries, and measures memory the race detector inflates")
	}
	const (
		entries = 1_000_000
		ttl     = 100 * time.Second
		rate    = entries / 100 // a second, so that ttl holds entries
	)
	clock := testtime.NewClock(epoch)
	before, rssBefore := heapInUse(), residentBytes()
	s := New(Options{MaxEntries: entries * 5 / 4, Now: clock.Now})
	ctx := context.Background()
	var nonce [8]byte
	n := 0
	remember := func() {
		binary.LittleEndian.PutUint64(nonce[:], uint64(n))
		n++
		if err := s.Remember(ctx, "sk_size", string(nonce[:]), clock.Now(), clock.Now().Add(ttl)); err != nil {
			t.Fatalf("Remember #%d = %v", n, err)
		}
	}
	second := func() {
		for range rate {
			remember()
		}
		clock.Advance(time.Second)
	}
	for range 100 { // one lifetime of an entry: the store fills
		second()
	}
	filled := float64(heapInUse()-before) / float64(s.Len())
	for range 2 * 100 { // two more: entries expire as others are added
		second()
	}
	held := s.Len()
	steady := float64(heapInUse()-before) / float64(held)
	rss := float64(residentBytes()-rssBefore) / float64(held)
	t.Logf("filled: %.1f bytes an entry; steady: %d entries held, %.1f bytes each in the heap, %.1f resident", filled, held, steady, rss)
	if steady > maxEntryBytes {
		t.Errorf("an entry takes %.1f bytes at the steady state; the documentation says at most %d", steady, maxEntryBytes)
	}
	runtime.KeepAlive(s)
}

func TestHashUnambiguous(t *testing.T) {
	s := New(Options{})
	fp := func(s *Store, keyID, nonce string) uint64 {
		_, fp := s.hash(keyID, nonce)
		return fp
	}
	if fp(s, "ab", "c") == fp(s, "a", "bc") {
		t.Error(`hash("ab", "c") == hash("a", "bc")`)
	}
	if fp(s, "a", "b") != fp(s, "a", "b") {
		t.Error("hash is not deterministic")
	}
	if fp(New(Options{}), "a", "b") == fp(s, "a", "b") {
		t.Error("two stores share a hash key")
	}
}

func TestRememberDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	var tick atomic.Int64
	// 100 µs a call: the nonces come round every 3.3 s, after their
	// entries expired; about 15,000 are live at a time.
	now := func() time.Time { return epoch.Add(time.Duration(tick.Add(100_000))) }
	s := New(Options{MaxEntries: 1 << 16, Now: now})
	nonces := makeNonces(1 << 15)
	ctx := context.Background()
	i := 0
	next := func() {
		n := nonces[i%len(nonces)]
		i++
		if err := s.Remember(ctx, "sk_alloc", n, time.Now(), now().Add(5*time.Millisecond)); err != nil {
			t.Fatalf("Remember = %v", err)
		}
	}
	for range 4 * len(nonces) {
		next() // to a steady size: maps and heaps no longer grow
	}
	if allocs := testing.AllocsPerRun(10000, next); allocs != 0 {
		t.Errorf("Remember made %v allocations, want 0", allocs)
	}
}

func makeNonces(n int) []string {
	nonces := make([]string, n)
	for i := range nonces {
		nonces[i] = fmt.Sprintf("nonce-%016x", rand.Uint64())
	}
	return nonces
}

func BenchmarkRemember(b *testing.B) {
	// The clock moves on by 20 µs a call, and each call remembers its pair
	// for a second: about 50,000 live entries at the steady state (up to
	// twice that in a store that counts in whole seconds), as a server
	// taking 50,000 requests a second with a one-second window, or 167
	// a second with the default 300 s, holds. Callers move the clock 64
	// calls at a time, so that they do not contend for it more than for the
	// store. Each has its own keyid and cycles through the nonces, which
	// come round again only long after their entries expired.
	const (
		ttl   = time.Second
		tick  = 20 * time.Microsecond
		ticks = 64
	)
	var clock atomic.Int64
	now := func() time.Time { return epoch.Add(time.Duration(clock.Load())) }
	s := New(Options{Now: now})
	nonces := makeNonces(1 << 18)
	ctx := context.Background()
	var callers atomic.Int64
	type caller struct {
		keyID string
		i     int
		_     [64]byte // keeps callers' counters off each other's cache lines
	}
	newCaller := func() func(b *testing.B) {
		c := &caller{keyID: fmt.Sprintf("sk_bench_%d", callers.Add(1))}
		return func(b *testing.B) {
			c.i++
			if c.i%ticks == 0 {
				clock.Add(int64(ticks * tick))
			}
			if err := s.Remember(ctx, c.keyID, nonces[c.i%len(nonces)], now(), now().Add(ttl)); err != nil {
				b.Fatalf("Remember = %v", err)
			}
		}
	}
	warm := newCaller()
	for range 2 * len(nonces) {
		warm(b)
	}
	b.Run("Serial", func(b *testing.B) {
		b.ReportAllocs()
		remember := newCaller()
		for b.Loop() {
			remember(b)
		}
	})
	b.Run("Parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			remember := newCaller()
			for pb.Next() {
				remember(b)
			}
		})
	})
	b.Run("Replayed", func(b *testing.B) {
		b.ReportAllocs()
		until := now().Add(time.Hour)
		nonce := makeNonces(1)[0]
		if err := s.Remember(ctx, "sk_bench", nonce, time.Now(), until); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if err := s.Remember(ctx, "sk_bench", nonce, time.Now(), until); !errors.Is(err, httpsig.ErrReplayed) {
				b.Fatalf("Remember = %v", err)
			}
		}
	})
}
