package memory

import (
	"context"
	"errors"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/signet-dev/signet/httpsig"
	"github.com/signet-dev/signet/internal/testtime"
)

// TestAgainstModel drives a store and a plain map with the same random
// calls, with expiries in random order and a clock that jumps, and checks
// that the store answers as the map says: a pair held is refused, a pair
// past until plus the resolution is taken, and nothing is refused for want
// of room while the store is below its capacity. Small tables wrap around
// and shift entries back often, which is where open addressing goes wrong.
func TestAgainstModel(t *testing.T) {
	for _, maxEntries := range []int{1, 7, 300, 5000} {
		t.Run(strconv.Itoa(maxEntries), func(t *testing.T) {
			clock := testtime.NewClock(epoch)
			s := New(Options{MaxEntries: maxEntries, Now: clock.Now})
			rng := rand.New(rand.NewPCG(uint64(maxEntries), 7))
			held := map[string]time.Time{} // pair → until
			ctx := context.Background()
			fulls := 0
			calls := 200_000
			if raceEnabled {
				calls /= 5
			}
			for range calls {
				if rng.IntN(100) == 0 {
					clock.Advance(time.Duration(rng.IntN(3000)) * time.Millisecond)
				}
				now := clock.Now()
				pair := strconv.Itoa(rng.IntN(3 * maxEntries))
				keyID := "sk_" + strconv.Itoa(rng.IntN(3))
				until := now.Add(time.Duration(rng.IntN(20_000)) * time.Millisecond)
				err := s.Remember(ctx, keyID, pair, now, until)

				prev, ok := held[keyID+"/"+pair]
				switch {
				case ok && !now.After(prev):
					if !errors.Is(err, httpsig.ErrReplayed) {
						t.Fatalf("pair held until %v, now %v: Remember = %v, want ErrReplayed", prev, now, err)
					}
					continue
				case ok && now.Before(prev.Add(resolution)) && errors.Is(err, httpsig.ErrReplayed):
					continue // the pair may still be held
				case errors.Is(err, ErrFull):
					// Shards fill unevenly, and keyids over their share are
					// refused from three quarters on.
					fulls++
					if fulls%50 != 1 {
						continue // counting is slow
					}
					if live := countHeld(held, now); live < s.Cap()/2 {
						t.Fatalf("Remember = %v with %d pairs live of %d", err, live, s.Cap())
					}
					continue
				case err != nil:
					t.Fatalf("new pair: Remember = %v, want nil", err)
				}
				held[keyID+"/"+pair] = until
				if got := s.Len(); got > s.Cap() {
					t.Fatalf("Len = %d, over Cap %d", got, s.Cap())
				}
			}
			checkShards(t, s)
		})
	}
}

// countHeld returns how many pairs the store may hold at now.
func countHeld(held map[string]time.Time, now time.Time) int {
	n := 0
	for _, until := range held {
		if now.Before(until.Add(resolution)) {
			n++
		}
	}
	return n
}

// checkShards checks the invariants of each shard's table: each entry can
// be found from its home slot, the counts agree, and the load is bounded.
func checkShards(t *testing.T, s *Store) {
	t.Helper()
	for si := range s.shards {
		sh := &s.shards[si]
		n := 0
		perOwner := map[uint32]uint32{}
		for i, e := range sh.slots {
			if e.fp == 0 {
				continue
			}
			n++
			perOwner[e.key]++
			for j := sh.home(e.fp); j != i; j = sh.next(j) {
				if sh.slots[j].fp == 0 {
					t.Fatalf("shard %d: the entry at %d cannot be found from its home %d", si, i, sh.home(e.fp))
				}
			}
		}
		if n != sh.n || n > sh.limit || n > loadCap(len(sh.slots)) {
			t.Fatalf("shard %d: %d entries, n %d, limit %d, %d slots", si, n, sh.n, sh.limit, len(sh.slots))
		}
		if len(perOwner) != len(sh.byHash) {
			t.Fatalf("shard %d: %d owners in the table, %d counted", si, len(perOwner), len(sh.byHash))
		}
		for k, c := range perOwner {
			if o := sh.owners[k]; o.entries != c || sh.byHash[o.hash] != k {
				t.Fatalf("shard %d: owner %d counts %d entries, holds %d", si, k, o.entries, c)
			}
		}
	}
}
