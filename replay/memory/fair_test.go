package memory

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/signet-dev/signet/httpsig"
	"github.com/signet-dev/signet/internal/testtime"
)

// TestFairShare has one keyid flood the store: it must be refused with
// ErrKeyFull at about three quarters of the store, while other keyids still
// get through, up to the full store.
func TestFairShare(t *testing.T) {
	for _, maxEntries := range []int{4000, 1 << 16} {
		t.Run(strconv.Itoa(maxEntries), func(t *testing.T) {
			clock := testtime.NewClock(epoch)
			s := New(Options{MaxEntries: maxEntries, Now: clock.Now})
			ctx := context.Background()
			until := clock.Now().Add(time.Minute)
			remember := func(keyID string, i int) error {
				return s.Remember(ctx, keyID, "n-"+strconv.Itoa(i), clock.Now(), until)
			}
			// Other keyids have a few entries when the flood begins.
			for _, k := range []string{"sk_a", "sk_b"} {
				for i := range 10 {
					if err := remember(k, i); err != nil {
						t.Fatalf("Remember(%s) = %v", k, err)
					}
				}
			}
			flooded := 0
			for ; ; flooded++ {
				err := remember("sk_flood", flooded)
				if errors.Is(err, ErrKeyFull) {
					break
				}
				if err != nil {
					t.Fatalf("flood #%d: Remember = %v, want nil until ErrKeyFull", flooded, err)
				}
			}
			if !errors.Is(remember("sk_flood", flooded), ErrFull) {
				t.Error("ErrKeyFull does not wrap ErrFull")
			}
			if lo, hi := maxEntries*6/10, maxEntries*3/4; flooded < lo || flooded > hi {
				t.Errorf("the flooding keyid got %d entries before ErrKeyFull; want between %d and %d", flooded, lo, hi)
			}
			// Its replays are still refused as such.
			if err := remember("sk_flood", 0); !errors.Is(err, httpsig.ErrReplayed) {
				t.Errorf("replay by the flooding keyid = %v, want ErrReplayed", err)
			}

			// The others, old and new, still get through, until the store
			// is full.
			others := 0
			for i := 10; ; i++ {
				err := remember("sk_other_"+strconv.Itoa(i%50), i)
				if err != nil {
					if !errors.Is(err, ErrFull) || errors.Is(err, ErrKeyFull) {
						t.Fatalf("another keyid: Remember = %v, want nil until ErrFull", err)
					}
					break
				}
				others++
			}
			if others < maxEntries/5 {
				t.Errorf("other keyids got %d entries once one keyid was refused; want at least %d", others, maxEntries/5)
			}
			t.Logf("flooding keyid: %d entries; others after it: %d; store: %d of %d", flooded, others, s.Len(), s.Cap())

			// Once the flood's entries expire, it may come back.
			clock.Advance(time.Minute + resolution)
			if err := remember("sk_flood", -1); err != nil {
				t.Errorf("flooding keyid after expiry: Remember = %v, want nil", err)
			}
		})
	}
}

// TestOneKeyFillsAll checks that a keyid alone in the store may fill it:
// a deployment with one client is not held to a share.
func TestOneKeyFillsAll(t *testing.T) {
	const maxEntries = 4000
	clock := testtime.NewClock(epoch)
	s := New(Options{MaxEntries: maxEntries, Now: clock.Now})
	until := clock.Now().Add(time.Minute)
	n := 0
	for ; ; n++ {
		err := s.Remember(context.Background(), "sk_only", strconv.Itoa(n), clock.Now(), until)
		if err != nil {
			if !errors.Is(err, ErrFull) || errors.Is(err, ErrKeyFull) {
				t.Fatalf("Remember #%d = %v, want nil until ErrFull", n, err)
			}
			break
		}
	}
	if n < s.Cap()*9/10 {
		t.Errorf("a lone keyid got %d entries of %d", n, s.Cap())
	}
}
