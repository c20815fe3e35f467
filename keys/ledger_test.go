package keys_test

import (
	"context"
	"testing"
	"time"

	"github.com/signet-dev/signet/keys"
	"github.com/signet-dev/signet/limit"
	"github.com/signet-dev/signet/limit/memory"
)

// ledger is the key service as the limit package's ledger of uses: the
// wiring of a gateway.
type ledger struct{ svc *keys.Service }

func (l ledger) TakeUses(ctx context.Context, key string, n int64) (limit.Grant, error) {
	g, err := l.svc.SpendUses(ctx, key, n)
	return limit.Grant(g), err
}

// TestLedger spends a key's uses through a limiter of the limit package,
// as a gateway does: the budget the key store keeps is the one enforced,
// and a new one set by an operator takes over at once.
func TestLedger(t *testing.T) {
	e := newEnv(t)
	svc := e.service(keys.Options{})
	c := mustCreate(t, svc, keys.CreateRequest{Uses: keys.Uses{Remaining: 10}})
	counter := memory.New(memory.Options{Ledger: ledger{svc}, Batch: 4, Now: e.clock.Now})
	spend := func(set time.Time) int {
		t.Helper()
		n := 0
		for range 20 {
			d, err := counter.Spend(ctx(), c.Key.ID, set, 1)
			if err != nil {
				t.Fatal(err)
			}
			if !d.Allowed {
				break
			}
			n++
		}
		return n
	}
	if n := spend(c.Key.Uses.Set); n != 10 {
		t.Errorf("a budget of 10 let %d requests through", n)
	}
	if k := mustKey(t, svc, c.Key.ID); k.Uses.Remaining != 0 {
		t.Errorf("the key store shows %d uses left", k.Uses.Remaining)
	}
	e.clock.Advance(time.Minute)
	k, err := svc.Update(ctx(), keys.UpdateRequest{ID: c.Key.ID, Uses: &keys.Uses{Remaining: 3}, Actor: "tester"})
	if err != nil {
		t.Fatal(err)
	}
	if n := spend(k.Uses.Set); n != 3 {
		t.Errorf("a new budget of 3 let %d requests through", n)
	}
	free := mustCreate(t, svc, keys.CreateRequest{})
	if d, err := counter.Spend(ctx(), free.Key.ID, time.Time{}, 1); err != nil || !d.Allowed || d.Remaining != limit.Unlimited {
		t.Errorf("a key without a budget: %+v, %v", d, err)
	}
}
