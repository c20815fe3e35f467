package redis

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/signet-dev/signet/internal/testenv"
	"github.com/signet-dev/signet/internal/testtime"
	"github.com/signet-dev/signet/limit"
	"github.com/signet-dev/signet/limit/limittest"
)

// TestAllowOwned runs the same requests through AllowOwned on one store and
// through Allow, Allow and Spend, stopping at the first refusal, on
// another, on one clock, and checks that every decision and every state
// left behind agree: key rates that refuse, an owner's rate shared by two
// keys that refuses, uses that run out and are taken from the ledger.
func TestAllowOwned(t *testing.T) {
	u := testenv.RequireRedis(t)
	clock := testtime.NewClock(time.Now())
	type side struct {
		s      *Store
		ledger *limittest.Ledger
	}
	var sides [2]side
	for i := range sides {
		l := limittest.NewLedger(clock.Now)
		s := newTestStore(t, u, Options{Ledger: l, Batch: 2})
		s.now = clock.Now
		sides[i] = side{s, l}
	}
	ctx := t.Context()
	keyRate := limit.Rate{N: 1, Per: time.Second, Burst: 4}
	ownerRate := limit.Rate{N: 2, Per: time.Second, Burst: 6}
	owner := limit.ForOwner("acme")
	keys := []string{limit.ForKey("sk_a"), limit.ForKey("sk_b")}
	sets := map[string]time.Time{}
	for _, k := range keys {
		for _, sd := range sides {
			sets[k] = sd.ledger.Set(k, 7, limit.Rate{})
		}
	}
	type decisions struct{ rate, owner, uses limit.Decision }
	sequential := func(s *Store, key string) (d decisions, err error) {
		if d.rate, err = s.Allow(ctx, key, keyRate, 1); err != nil || !d.rate.Allowed {
			return d, err
		}
		if d.owner, err = s.Allow(ctx, owner, ownerRate, 1); err != nil || !d.owner.Allowed {
			return d, err
		}
		d.uses, err = s.Spend(ctx, key, sets[key], 1)
		return d, err
	}
	refusals := map[string]int{}
	for i := range 60 {
		key := keys[i%3%2] // sk_a twice as often as sk_b
		var d decisions
		var err error
		d.rate, d.owner, d.uses, err = sides[0].s.AllowOwned(ctx, key, keyRate, owner, ownerRate, sets[key], 1)
		if err != nil {
			t.Fatalf("request %d: AllowOwned: %v", i, err)
		}
		want, err := sequential(sides[1].s, key)
		if err != nil {
			t.Fatalf("request %d: in turn: %v", i, err)
		}
		if d != want {
			t.Fatalf("request %d of %s: AllowOwned = %+v, in turn %+v", i, key, d, want)
		}
		switch {
		case !d.rate.Allowed:
			refusals["key rate"]++
		case !d.owner.Allowed:
			refusals["owner rate"]++
		case !d.uses.Allowed:
			refusals["uses"]++
		}
		clock.Advance(150 * time.Millisecond)
	}
	for _, why := range []string{"key rate", "owner rate", "uses"} {
		if refusals[why] == 0 {
			t.Errorf("no request was refused by the %s: %v", why, refusals)
		}
	}
	// The states left behind agree: a request of cost 0 reads them.
	for _, k := range append(keys, owner) {
		r := keyRate
		if k == owner {
			r = ownerRate
		}
		var got [2]string
		for i, sd := range sides {
			d, err := sd.s.Allow(ctx, k, r, 0)
			if err != nil {
				t.Fatal(err)
			}
			got[i] = fmt.Sprintf("%+v", d)
			if k != owner {
				u, err := sd.s.Spend(ctx, k, sets[k], 0)
				if err != nil {
					t.Fatal(err)
				}
				got[i] += fmt.Sprintf(" uses %+v", u)
			}
		}
		if got[0] != got[1] {
			t.Errorf("%s after AllowOwned: %s; in turn: %s", k, got[0], got[1])
		}
	}
}

func TestAllowOwnedCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Redis Cluster")
	}
	c := testenv.StartRedisCluster(t)
	s := newTestStore(t, c.URL(), Options{KeyPrefix: "ao:", Ledger: limittest.NewLedger(time.Now)})
	r := limit.Rate{N: 1, Per: time.Second}
	if _, _, _, err := s.AllowOwned(t.Context(), limit.ForKey("sk_a"), r, limit.ForOwner("acme"), r, time.Time{}, 1); !errors.Is(err, ErrCluster) || !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("AllowOwned on a Cluster = %v, want ErrCluster", err)
	}
}

// TestAllowOwnedCrossSlot runs AllowOwned through a client that takes a
// node of a Cluster for a single server, as a proxy in front of a Cluster
// would look: the node refuses the script (CROSSSLOT), and AllowOwned
// returns ErrCluster, then at once, having decided nothing.
func TestAllowOwnedCrossSlot(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Redis Cluster")
	}
	c := testenv.StartRedisCluster(t)
	client, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{c.Nodes[0].Addr()}, ForceSingleClient: true, DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	s := &Store{client: client, prefix: "ao:", timeout: 2 * time.Second, ledger: limittest.NewLedger(time.Now), batch: 2}
	defer s.Close()
	r := limit.Rate{N: 1, Per: time.Second}
	for i := range 2 {
		_, _, _, err := s.AllowOwned(t.Context(), limit.ForKey("sk_a"), r, limit.ForOwner("acme"), r, time.Time{}, 1)
		if !errors.Is(err, ErrCluster) {
			t.Fatalf("call %d: AllowOwned across slots = %v, want ErrCluster", i, err)
		}
		if !s.crossed.Load() {
			t.Fatalf("call %d: the store did not note that the server refuses scripts across slots", i)
		}
	}
}
