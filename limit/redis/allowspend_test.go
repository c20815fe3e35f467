package redis

import (
	"strconv"
	"testing"
	"time"

	"github.com/signet-dev/signet/internal/testenv"
	"github.com/signet-dev/signet/limit"
	"github.com/signet-dev/signet/limit/limittest"
)

// allowSpend checks AllowSpend on the store at u: a rate's refusal spends
// no use, uses held in Redis are spent in the same call, the ledger is
// asked when they run out, and exhausted uses refuse after the rate passed.
func allowSpend(t *testing.T, u, prefix string) {
	ledger := limittest.NewLedger(time.Now)
	s := newTestStore(t, u, Options{KeyPrefix: prefix, Ledger: ledger, Batch: 2})
	ctx := t.Context()
	for i := range 20 {
		key := limit.ForKey("sk_" + strconv.Itoa(i)) // spread over slots
		set := ledger.Set(key, 5, limit.Rate{})
		r := limit.Rate{N: 1, Per: time.Hour, Burst: 3}
		for j := range 3 {
			rd, ud, err := s.AllowSpend(ctx, key, r, set, 1)
			if err != nil {
				t.Fatal(err)
			}
			if !rd.Allowed || !ud.Allowed || ud.Remaining != int64(4-j) || rd.Remaining != int64(2-j) {
				t.Fatalf("%s request %d: rate %+v uses %+v", key, j, rd, ud)
			}
		}
		rd, ud, err := s.AllowSpend(ctx, key, r, set, 1)
		if err != nil || rd.Allowed || rd.RetryAfter <= 0 || ud != (limit.Decision{}) {
			t.Fatalf("%s over the rate: rate %+v uses %+v %v", key, rd, ud, err)
		}
		if d, err := s.Spend(ctx, key, set, 0); err != nil || d.Remaining != 2 {
			t.Fatalf("%s: uses after the refusal %+v %v, want 2 left", key, d, err)
		}
		// Exhausted uses refuse a request the rate lets through, once the
		// ledger was asked for more.
		key2 := limit.ForKey("pk_" + strconv.Itoa(i))
		set2 := ledger.Set(key2, 5, limit.Rate{})
		big := limit.Rate{N: 1000, Per: time.Second}
		for j := range 5 {
			if _, ud, err := s.AllowSpend(ctx, key2, big, set2, 1); err != nil || !ud.Allowed {
				t.Fatalf("%s use %d: %+v %v", key2, j, ud, err)
			}
		}
		rd, ud, err = s.AllowSpend(ctx, key2, big, set2, 1)
		if err != nil || !rd.Allowed || ud.Allowed || ud.Remaining != 0 {
			t.Fatalf("%s exhausted: rate %+v uses %+v %v", key2, rd, ud, err)
		}
	}
}

func TestAllowSpend(t *testing.T) {
	allowSpend(t, testenv.RequireRedis(t), testenv.RedisPrefix(t))
}

func TestAllowSpendCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Redis Cluster")
	}
	c := testenv.StartRedisCluster(t)
	allowSpend(t, c.URL(), "as:")
}
