package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/signet-dev/signet/httpsig"
	"github.com/signet-dev/signet/internal/testenv"
	"github.com/signet-dev/signet/internal/testtime"
	"github.com/signet-dev/signet/replay"
	"github.com/signet-dev/signet/replay/replaytest"
)

func TestClusterConformance(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Redis Cluster")
	}
	c := testenv.StartRedisCluster(t)
	prefixes := 0
	replaytest.Run(t, replaytest.Harness{
		New: func(t *testing.T, now func() time.Time) httpsig.NonceStore {
			prefixes++
			s := newTestStore(t, c.URL(), Options{KeyPrefix: "t" + strconv.Itoa(prefixes) + ":"})
			s.now = now
			return s
		},
		RealTimeExpiry: true,
	})
}

// TestClusterLoss has one master of a cluster restart without its data:
// the pairs in its slots are refused as unvouched for, the others as plain
// replays, and two stores agree.
func TestClusterLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Redis Cluster")
	}
	c := testenv.StartRedisCluster(t)
	var l losses
	clock := &gatewayClock{}
	stores := make([]*Store, 2)
	for i := range stores {
		stores[i] = newTestStore(t, c.URL(), Options{KeyPrefix: DefaultKeyPrefix, MaxSkew: 5 * time.Second, OnLoss: l.record})
		stores[i].now = clock.Now
	}
	if l.count() != 1 {
		t.Fatalf("a new cluster gave %d loss reports, want 1", l.count())
	}
	clock.Advance(6 * time.Second)
	ctx := context.Background()
	created := clock.Now()
	until := created.Add(time.Minute)
	var nonces []string
	for i := range 300 {
		n := "n-" + strconv.Itoa(i)
		if err := stores[i%2].Remember(ctx, "sk_1", n, created, until); err != nil {
			t.Fatalf("Remember = %v", err)
		}
		if err := stores[(i+1)%2].Remember(ctx, "sk_1", n, created, until); !errors.Is(err, httpsig.ErrReplayed) {
			t.Fatalf("the other store: Remember = %v, want ErrReplayed", err)
		}
		nonces = append(nonces, n)
	}

	lostNode := c.Nodes[2]
	lostNode.Restart() // no persistence: its slots come back empty
	c.WaitOK()

	unvouched, replays := 0, 0
	for i, n := range nonces {
		var err error
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			err = stores[i%2].Remember(ctx, "sk_1", n, created, until)
			if errors.Is(err, httpsig.ErrReplayed) || err == nil || time.Now().After(deadline) {
				break
			}
		}
		switch {
		case errors.Is(err, replay.ErrUnvouched):
			unvouched++
		case errors.Is(err, httpsig.ErrReplayed):
			replays++
		default:
			t.Fatalf("pair %s after the loss: Remember = %v, want it refused", n, err)
		}
	}
	t.Logf("after one master of three lost its data: %d pairs refused as unvouched for, %d as replays", unvouched, replays)
	if unvouched < len(nonces)/6 || replays < len(nonces)/3 {
		t.Errorf("%d unvouched for, %d replays: want about a third and two thirds", unvouched, replays)
	}

	testtime.Eventually(t, 5*time.Second, func() error {
		if n := l.count(); n < 2 {
			return fmt.Errorf("the loss was not reported (%d reports)", n)
		}
		return nil
	})
	if l.count() < 2 {
		t.Errorf("the loss was not reported")
	}
	clock.Advance(6 * time.Second)
	for i := range 50 {
		if err := stores[i%2].Remember(ctx, "sk_1", "new-"+strconv.Itoa(i), clock.Now(), clock.Now().Add(time.Minute)); err != nil {
			t.Fatalf("new pair after the loss = %v, want nil", err)
		}
	}
}
