package redis

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/signet-dev/signet/httpsig"
	"github.com/signet-dev/signet/internal/testenv"
	"github.com/signet-dev/signet/internal/testtime"
	"github.com/signet-dev/signet/replay"
)

// A gatewayClock is a gateway's clock, real time moved forward by the test,
// so that it need not wait out the skew after a loss.
type gatewayClock struct{ offset atomic.Int64 }

func (c *gatewayClock) Now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *gatewayClock) Advance(d time.Duration) { c.offset.Add(int64(d)) }

// losses records the horizons a store reports through OnLoss.
type losses struct {
	mu       sync.Mutex
	horizons []time.Time
}

func (l *losses) record(h time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.horizons = append(l.horizons, h)
}

func (l *losses) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.horizons)
}

// lossFixture is a gateway, as far as nonces go: a verifier on a Redis store
// on a private server, and a client signing requests.
type lossFixture struct {
	t        *testing.T
	redis    *testenv.RedisServer
	clock    *gatewayClock
	skew     time.Duration
	key      *httpsig.HMACKey
	losses   *losses
	stores   []*Store
	verifier []*httpsig.Verifier
}

func newLossFixture(t *testing.T, gateways int, redisArgs ...string) *lossFixture {
	f := &lossFixture{
		t:      t,
		redis:  testenv.StartRedis(t, redisArgs...),
		clock:  &gatewayClock{},
		skew:   5 * time.Second,
		losses: &losses{},
	}
	key, err := httpsig.NewHMACKey(bytes.Repeat([]byte{9}, 32))
	if err != nil {
		t.Fatal(err)
	}
	f.key = key
	for range gateways {
		s := newTestStore(t, f.redis.URL(), Options{KeyPrefix: DefaultKeyPrefix, MaxSkew: f.skew, OnLoss: f.losses.record})
		s.now = f.clock.Now
		f.stores = append(f.stores, s)
		f.verifier = append(f.verifier, &httpsig.Verifier{
			Policy: httpsig.Policy{MaxSkew: f.skew},
			Keys:   httpsig.KeyMap{"sk_loss": key},
			Nonces: s,
			Now:    f.clock.Now,
		})
	}
	// A new Redis is a loss: wait out its horizon, as a first deployment
	// does.
	f.clock.Advance(f.skew + time.Second)
	return f
}

type signed struct {
	req  *http.Request
	body []byte
}

func (f *lossFixture) sign() signed {
	f.t.Helper()
	body := []byte(`{"customer":42}`)
	req, err := http.NewRequestWithContext(f.t.Context(), http.MethodPost, "https://api.example.com/v1/orders?customer=42", bytes.NewReader(body))
	if err != nil {
		f.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	signer := httpsig.Signer{Key: f.key, KeyID: "sk_loss", Now: f.clock.Now}
	if err := signer.SignRequest(req, body); err != nil {
		f.t.Fatal(err)
	}
	return signed{req, body}
}

// verify verifies r through gateway g, retrying while the store cannot
// answer (it is reconnecting to a restarted Redis), and returns the
// verifier's answer.
func (f *lossFixture) verify(g int, r signed) error {
	f.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := f.verifier[g].VerifyRequest(r.req, r.body)
		var ve *httpsig.VerifyError
		if err == nil || errors.As(err, &ve) || time.Now().After(deadline) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (f *lossFixture) accept(g int, r signed, what string) {
	f.t.Helper()
	if err := f.verify(g, r); err != nil {
		f.t.Fatalf("%s: Verify = %v, want it accepted", what, err)
	}
}

// refuse checks that r is refused as replayed, as unvouched for if
// unvouched is set.
func (f *lossFixture) refuse(g int, r signed, unvouched bool, what string) {
	f.t.Helper()
	err := f.verify(g, r)
	var ve *httpsig.VerifyError
	if !errors.As(err, &ve) || ve.Reason != httpsig.ReasonReplayed {
		f.t.Fatalf("%s: Verify = %v, want it refused as replayed", what, err)
	}
	if errors.Is(err, replay.ErrUnvouched) != unvouched {
		f.t.Fatalf("%s: Verify = %v; want unvouched for: %v", what, err, unvouched)
	}
}

func (f *lossFixture) admin() rueidis.Client {
	f.t.Helper()
	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{f.redis.Addr()}, DisableCache: true})
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(c.Close)
	return c
}

// waitLosses waits for the stores to have reported from min to max losses
// in all: each store that finds a loss reports it once.
func (f *lossFixture) waitLosses(min, max int) {
	f.t.Helper()
	testtime.Eventually(f.t, 5*time.Second, func() error {
		if n := f.losses.count(); n < min {
			return fmt.Errorf("stores reported %d losses, want %d", n, min)
		}
		return nil
	})
	time.Sleep(50 * time.Millisecond) // for a report too many to show
	if got := f.losses.count(); got > max {
		f.t.Fatalf("stores reported %d losses, want at most %d", got, max)
	}
}

// TestLoss captures requests that two gateways accepted, has Redis lose its
// data, and checks that the captures are refused by both, while requests
// signed once the skew has passed are accepted.
func TestLoss(t *testing.T) {
	tests := []struct {
		name string
		lose func(f *lossFixture)
	}{
		{name: "RestartWithoutPersistence", lose: func(f *lossFixture) { f.redis.Restart() }},
		{name: "Flushall", lose: func(f *lossFixture) {
			a := f.admin()
			if err := a.Do(context.Background(), a.B().Flushall().Build()).Error(); err != nil {
				f.t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newLossFixture(t, 2)
			f.waitLosses(1, 1) // the first store found a new Redis

			var captured []signed
			for i := range 20 {
				r := f.sign()
				f.accept(i%2, r, "first use")
				f.refuse((i+1)%2, r, false, "replay before the loss")
				captured = append(captured, r)
			}
			inSkew := f.sign() // created just before the loss, not yet used

			tt.lose(f)
			for i, r := range captured {
				f.refuse(i%2, r, true, "replay after the loss")
			}
			f.waitLosses(2, 3)
			f.refuse(0, inSkew, true, "request created within the skew before the loss")

			// created is a whole second: a little more than the skew.
			f.clock.Advance(f.skew + time.Second)
			for g := range 2 {
				r := f.sign()
				f.accept(g, r, "request created after the loss")
				f.refuse(1-g, r, false, "its replay")
			}
			for i, r := range captured {
				f.refuse(i%2, r, true, "replay once the skew has passed")
			}
		})
	}
}

// TestRestartWithPersistence restarts a Redis that persists every write:
// nothing is lost, so the captures are refused as plain replays and new
// requests pass at once.
func TestRestartWithPersistence(t *testing.T) {
	f := newLossFixture(t, 1, "--appendonly", "yes", "--appendfsync", "always")
	f.waitLosses(1, 1)
	var captured []signed
	for range 20 {
		r := f.sign()
		f.accept(0, r, "first use")
		captured = append(captured, r)
	}
	f.redis.Restart()
	for _, r := range captured {
		f.refuse(0, r, false, "replay after the restart")
	}
	f.accept(0, f.sign(), "request right after the restart")
	f.waitLosses(1, 1)
}

// TestPartialLoss removes one sentinel and its pairs, as a cluster node
// that lost its data would for its slots: only signatures in that tag are
// refused as unvouched for, and the other sentinels keep their horizons.
func TestPartialLoss(t *testing.T) {
	f := newLossFixture(t, 1)
	f.waitLosses(1, 1)
	s := f.stores[0]
	ctx := context.Background()
	created := f.clock.Now()
	until := created.Add(time.Minute)
	nonces := map[int]string{} // tag → a nonce in it
	for i := 0; len(nonces) < 2; i++ {
		n := "n-" + time.Duration(i).String()
		if _, tag := s.key("sk_1", n); nonces[tag] == "" {
			nonces[tag] = n
			if err := s.Remember(ctx, "sk_1", n, created, until); err != nil {
				t.Fatal(err)
			}
		}
	}
	var lostTag, keptTag int
	first := true
	for tag := range nonces {
		if first {
			lostTag = tag
		} else {
			keptTag = tag
		}
		first = false
	}
	key, _ := s.key("sk_1", nonces[lostTag])
	a := f.admin()
	if err := a.Do(ctx, a.B().Del().Key(s.sentinels[lostTag], key).Build()).Error(); err != nil {
		t.Fatal(err)
	}

	if err := s.Remember(ctx, "sk_1", nonces[lostTag], created, until); !errors.Is(err, replay.ErrUnvouched) {
		t.Errorf("pair of the lost tag = %v, want ErrUnvouched", err)
	}
	if err := s.Remember(ctx, "sk_1", nonces[keptTag], created, until); !errors.Is(err, httpsig.ErrReplayed) || errors.Is(err, replay.ErrUnvouched) {
		t.Errorf("pair of another tag = %v, want ErrReplayed", err)
	}
	f.waitLosses(2, 2)
	// The other tags kept their horizons: a new pair created now passes.
	for i := 0; i < 50; i++ {
		n := "new-" + time.Duration(i).String()
		if _, tag := s.key("sk_1", n); tag == lostTag {
			continue
		}
		if err := s.Remember(ctx, "sk_1", n, f.clock.Now(), until); err != nil {
			t.Fatalf("new pair in a tag that lost nothing = %v, want nil", err)
		}
	}
}

// TestNewReportsNewRedis checks that New on an empty Redis reports a loss,
// and another New, once the sentinels are there, does not.
func TestNewReportsNewRedis(t *testing.T) {
	r := testenv.StartRedis(t)
	l := &losses{}
	before := time.Now()
	newTestStore(t, r.URL(), Options{KeyPrefix: "p:", MaxSkew: 10 * time.Second, OnLoss: l.record})
	if l.count() != 1 || l.horizons[0].Before(before.Add(10*time.Second)) {
		t.Fatalf("New on an empty Redis reported %v, want one horizon 10 s ahead", l.horizons)
	}
	newTestStore(t, r.URL(), Options{KeyPrefix: "p:", OnLoss: l.record})
	if l.count() != 1 {
		t.Fatalf("New on a Redis with sentinels reported %v", l.horizons[1:])
	}
}

// TestInit prepares a new Redis, on which the first store then vouches for
// requests at once; Init leaves a horizon that is there alone.
func TestInit(t *testing.T) {
	r := testenv.StartRedis(t)
	ctx := context.Background()
	n, err := Init(ctx, r.URL(), Options{KeyPrefix: "p:"})
	if err != nil || n != tags {
		t.Fatalf("Init on a new Redis = %d, %v; want %d sentinels set", n, err, tags)
	}
	l := &losses{}
	s := newTestStore(t, r.URL(), Options{KeyPrefix: "p:", MaxSkew: 10 * time.Second, OnLoss: l.record})
	now := time.Now()
	if err := s.Remember(ctx, "sk_1", "n-1", now.Add(-time.Minute), now.Add(time.Minute)); err != nil {
		t.Errorf("Remember after Init = %v, want nil", err)
	}
	if l.count() != 0 {
		t.Errorf("New after Init reported a loss")
	}

	// A loss found by a store stands: Init does not undo it.
	if err := s.client.Do(ctx, s.client.B().Flushall().Build()).Error(); err != nil {
		t.Fatal(err)
	}
	if err := s.Remember(ctx, "sk_1", "n-2", now, now.Add(time.Minute)); !errors.Is(err, replay.ErrUnvouched) {
		t.Fatalf("Remember after a flush = %v, want ErrUnvouched", err)
	}
	s.Close() // waits for the sentinels to be set again
	if n, err := Init(ctx, r.URL(), Options{KeyPrefix: "p:"}); err != nil || n != 0 {
		t.Errorf("Init after a store found the loss = %d, %v; want 0 sentinels set", n, err)
	}

	// A Redis that lost part of its sentinels (a Cluster node restarted
	// empty) lost part of its nonces: Init refuses to vouch for them.
	if err := delKeys(ctx, r.URL(), "p:{000}", "p:{3ff}"); err != nil {
		t.Fatal(err)
	}
	if n, err := Init(ctx, r.URL(), Options{KeyPrefix: "p:"}); !errors.Is(err, ErrPartlyPrepared) || n != 0 {
		t.Errorf("Init on a Redis missing 2 sentinels = %d, %v; want ErrPartlyPrepared", n, err)
	}
}

// delKeys deletes keys through a client of its own.
func delKeys(ctx context.Context, url string, keys ...string) error {
	co, err := rueidis.ParseURL(url)
	if err != nil {
		return err
	}
	c, err := rueidis.NewClient(co)
	if err != nil {
		return err
	}
	defer c.Close()
	return c.Do(ctx, c.B().Del().Key(keys...).Build()).Error()
}

// TestLossFoundWhenPairFails has the pair's command fail (the store's user
// may not write pairs) while its sentinel is gone: the call fails closed,
// and the loss it found, setting the sentinel, is still reported.
func TestLossFoundWhenPairFails(t *testing.T) {
	r := testenv.StartRedis(t)
	ctx := context.Background()
	a, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{r.Addr()}, DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	// The user may touch the sentinels, p:{000} to p:{3ff}, and no pair.
	if err := a.Do(ctx, a.B().AclSetuser().Username("sentinels").Rule("on", ">pw", "~p:{???}", "+@all").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	l := &losses{}
	s := newTestStore(t, "redis://sentinels:pw@"+r.Addr(), Options{KeyPrefix: "p:", OnLoss: l.record})
	if l.count() != 1 {
		t.Fatalf("New on an empty Redis reported %d losses, want 1", l.count())
	}
	_, tag := s.key("sk_1", "n-1")
	if err := a.Do(ctx, a.B().Del().Key(s.sentinels[tag]).Build()).Error(); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	err = s.Remember(ctx, "sk_1", "n-1", now, now.Add(time.Minute))
	if err == nil || errors.Is(err, httpsig.ErrReplayed) || errors.Is(err, replay.ErrUnvouched) {
		t.Fatalf("Remember with a pair it may not write = %v, want an error", err)
	}
	testtime.Eventually(t, 5*time.Second, func() error {
		if n := l.count(); n != 2 {
			return fmt.Errorf("%d losses reported, want 2", n)
		}
		return nil
	})
	if n, err := a.Do(ctx, a.B().Exists().Key(s.sentinels[tag]).Build()).AsInt64(); err != nil || n != 1 {
		t.Errorf("EXISTS of the sentinel = %d, %v; want it set again", n, err)
	}
}
