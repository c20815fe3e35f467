package redis

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/signet-dev/signet/httpsig"
	"github.com/signet-dev/signet/internal/testenv"
	"github.com/signet-dev/signet/internal/testtime"
)

// fastStore returns a store on the server at u, checking that its calls
// take the fast path.
func fastStore(t *testing.T, u string, opts Options) *Store {
	t.Helper()
	s := newTestStore(t, u, opts)
	if s.fast == nil {
		t.Fatalf("a store on %s does not take the fast path", u)
	}
	return s
}

// fastAddr returns the address of the store's fast connection as Redis
// sees it, for CLIENT KILL.
func fastAddr(s *Store) string {
	s.fast.mu.Lock()
	c := s.fast.cur
	s.fast.mu.Unlock()
	if c == nil {
		return ""
	}
	<-c.ready
	if c.nc == nil {
		return ""
	}
	return c.nc.LocalAddr().String()
}

// A call is a Remember to check: replay is whether its pair is recorded
// already.
type call struct {
	nonce  string
	replay bool
	err    error
}

// check checks what a call returned: a new pair is never a replay, a
// recorded one is never new; with mayFail, a call may fail (closed).
func (c call) check(t *testing.T, mayFail bool) {
	t.Helper()
	switch {
	case c.err == nil && c.replay:
		t.Errorf("Remember of recorded pair %s = nil, want ErrReplayed", c.nonce)
	case errors.Is(c.err, httpsig.ErrReplayed) && !c.replay:
		t.Errorf("Remember of new pair %s = %v, want nil", c.nonce, c.err)
	case c.err != nil && !errors.Is(c.err, httpsig.ErrReplayed) && !mayFail:
		t.Errorf("Remember of pair %s = %v", c.nonce, c.err)
	}
}

// TestFastConcurrent has many goroutines call at once, on pairs new and
// recorded, and on pairs that others call on at the same moment: each
// must get its own answer, and of each pair called on by several, one
// call alone records it.
func TestFastConcurrent(t *testing.T) {
	u := requireRedis(t)
	// The server is shared, and may be slow now and then.
	s := fastStore(t, u, Options{Timeout: 5 * time.Second})
	ctx := t.Context()
	now := time.Now()
	until := now.Add(time.Minute)
	const recorded = 100
	for i := range recorded {
		if err := s.Remember(ctx, "sk_1", "old-"+strconv.Itoa(i), now, until); err != nil {
			t.Fatal(err)
		}
	}
	const (
		goroutines = 64
		calls      = 200
		shared     = 500 // pairs each called on by every goroutine's turn
	)
	var winners [shared]atomic.Int32
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 1))
			for i := range calls {
				var c call
				var sh int
				switch rng.IntN(4) {
				case 0:
					c = call{nonce: "old-" + strconv.Itoa(rng.IntN(recorded)), replay: true}
				case 1:
					// A pair whose time has passed: the store only looks
					// for it (EXISTS), and finds none.
					c.nonce = fmt.Sprintf("gone-%d-%d", g, i)
					if err := s.Remember(ctx, "sk_1", c.nonce, now, now.Add(-time.Second)); err != nil {
						t.Errorf("Remember of a pair whose time has passed = %v", err)
					}
					continue
				case 2:
					sh = rng.IntN(shared)
					err := s.Remember(ctx, "sk_1", "shared-"+strconv.Itoa(sh), now, until)
					switch {
					case err == nil:
						winners[sh].Add(1)
					case !errors.Is(err, httpsig.ErrReplayed):
						t.Errorf("Remember of shared pair %d = %v", sh, err)
					}
					continue
				default:
					c.nonce = fmt.Sprintf("new-%d-%d", g, i)
				}
				c.err = s.Remember(ctx, "sk_1", c.nonce, now, until)
				c.check(t, false)
			}
		})
	}
	wg.Wait()
	for i := range winners {
		if n := winners[i].Load(); n > 1 {
			t.Errorf("shared pair %d was recorded by %d calls", i, n)
		}
	}
}

// TestFastConnectionKilled kills the fast connection (CLIENT KILL) again
// and again while many calls are under way: calls fail or answer right,
// and every call answered nil did record its pair; once the killing
// stops, calls succeed.
func TestFastConnectionKilled(t *testing.T) {
	r := testenv.StartRedis(t)
	s := fastStore(t, r.URL(), Options{KeyPrefix: "p:"})
	a, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{r.Addr()}, DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ctx := t.Context()
	now := time.Now()
	until := now.Add(time.Minute)
	const recorded = 50
	for i := range recorded {
		if err := s.Remember(ctx, "sk_1", "old-"+strconv.Itoa(i), now, until); err != nil {
			t.Fatal(err)
		}
	}

	stopKilling := killFastConns(ctx, a, s)
	var mu sync.Mutex
	var answered []call
	var wg sync.WaitGroup
	deadline := time.Now().Add(1500 * time.Millisecond)
	for g := range 16 {
		wg.Go(func() {
			for i := 0; time.Now().Before(deadline); i++ {
				c := call{nonce: fmt.Sprintf("new-%d-%d", g, i)}
				if i%3 == 0 {
					c = call{nonce: "old-" + strconv.Itoa(rand.IntN(recorded)), replay: true}
				}
				c.err = s.Remember(ctx, "sk_1", c.nonce, now, until)
				mu.Lock()
				answered = append(answered, c)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	kills := stopKilling()

	var ok, failed int
	for _, c := range answered {
		c.check(t, true)
		switch {
		case c.err == nil:
			ok++
			key, _ := s.key("sk_1", c.nonce)
			if n, err := a.Do(ctx, a.B().Exists().Key(key).Build()).AsInt64(); err != nil || n != 1 {
				t.Errorf("Remember of %s = nil, but its pair is not in Redis (EXISTS = %d, %v)", c.nonce, n, err)
			}
		case !errors.Is(c.err, httpsig.ErrReplayed):
			failed++
		}
	}
	t.Logf("%d connections killed; %d calls: %d recorded a pair, %d failed", kills, len(answered), ok, failed)
	if kills < 10 || failed == 0 || ok == 0 {
		t.Fatalf("the test did not test: %d kills, %d calls failed, %d succeeded", kills, failed, ok)
	}
	for i := range 20 {
		c := call{nonce: "after-" + strconv.Itoa(i)}
		c.err = s.Remember(ctx, "sk_1", c.nonce, now, until)
		c.check(t, false)
	}
}

// TestFastServerKilled kills the server while calls are under way: they
// fail, quickly, until it is back, and then succeed.
func TestFastServerKilled(t *testing.T) {
	r := testenv.StartRedis(t, "--appendonly", "yes", "--appendfsync", "always")
	const timeout = 300 * time.Millisecond
	s := fastStore(t, r.URL(), Options{KeyPrefix: "p:", Timeout: timeout})
	ctx := t.Context()
	now := time.Now()
	until := now.Add(time.Minute)
	if err := s.Remember(ctx, "sk_1", "before", now, until); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var killed atomic.Bool
	var afterKill atomic.Int32
	for g := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				wasKilled := killed.Load()
				c := call{nonce: fmt.Sprintf("new-%d-%d", g, i)}
				began := time.Now()
				c.err = s.Remember(ctx, "sk_1", c.nonce, now, until)
				if took := time.Since(began); took > timeout+300*time.Millisecond {
					t.Errorf("Remember took %v, timeout %v", took, timeout)
				}
				c.check(t, true)
				if wasKilled {
					if c.err == nil {
						t.Errorf("Remember of %s with Redis killed = nil", c.nonce)
					}
					if afterKill.Add(1) > 50 {
						return
					}
				}
			}
		})
	}
	time.Sleep(200 * time.Millisecond)
	r.Kill()
	killed.Store(true)
	wg.Wait()
	r.Restart()
	recovers(t, s, "before", now, until)
}

// TestFastServerHangs stops the server (SIGSTOP), longer than the time
// after which a connection with overdue replies is dropped: calls fail at
// their timeout, and succeed once it goes on.
func TestFastServerHangs(t *testing.T) {
	r := testenv.StartRedis(t)
	const timeout = 200 * time.Millisecond
	s := fastStore(t, r.URL(), Options{KeyPrefix: "p:", Timeout: timeout})
	ctx := t.Context()
	now := time.Now()
	until := now.Add(time.Minute)
	if err := s.Remember(ctx, "sk_1", "before", now, until); err != nil {
		t.Fatal(err)
	}
	r.Hang()
	resumed := false
	defer func() {
		if !resumed {
			r.Resume()
		}
	}()
	hangEnds := time.Now().Add(max(time.Second, 5*timeout) + 500*time.Millisecond)
	var wg sync.WaitGroup
	var calls atomic.Int32
	for g := range 8 {
		wg.Go(func() {
			for i := 0; time.Now().Before(hangEnds); i++ {
				began := time.Now()
				err := s.Remember(ctx, "sk_1", fmt.Sprintf("new-%d-%d", g, i), now, until)
				took := time.Since(began)
				calls.Add(1)
				failsClosed(t, "Remember with Redis stopped", err)
				if took > timeout+300*time.Millisecond {
					t.Errorf("Remember with Redis stopped took %v; timeout %v", took, timeout)
				}
			}
		})
	}
	// A call that hangs would hold this up past the hang: end it then.
	waited := make(chan struct{})
	go func() { wg.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(time.Until(hangEnds) + 2*time.Second):
		t.Error("calls still under way 2 s after the end of the hang")
	}
	r.Resume()
	resumed = true
	<-waited
	t.Logf("%d calls failed while Redis was stopped", calls.Load())
	recovers(t, s, "before", now, until)
}

// TestFastAuth checks that the fast connection logs in and selects the
// database as the URL says, and that a wrong password fails New, and calls
// once the password changes.
func TestFastAuth(t *testing.T) {
	r := testenv.StartRedis(t)
	ctx := t.Context()
	// testenv checks the server with a PING before any AUTH: set the
	// password once it runs.
	a, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{r.Addr()}, DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Do(ctx, a.B().ConfigSet().ParameterValue().ParameterValue("requirepass", "pw").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	a.Close()
	a, err = rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{r.Addr()}, Password: "pw", DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if err := a.Do(ctx, a.B().AclSetuser().Username("gw").Rule("on", ">gwpw", "~*", "+@all").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		url string
		db  int
	}{
		{"redis://:pw@" + r.Addr() + "/2", 2},
		{"redis://gw:gwpw@" + r.Addr() + "/3", 3},
		{"redis://gw:gwpw@" + r.Addr() + "?db=5", 5},
	} {
		s := fastStore(t, tt.url, Options{KeyPrefix: "p:"})
		now := time.Now()
		until := now.Add(time.Minute)
		nonce := "n-" + strconv.Itoa(tt.db)
		if err := s.Remember(ctx, "sk_1", nonce, now, until); err != nil {
			t.Fatalf("%s: Remember = %v", tt.url, err)
		}
		key, _ := s.key("sk_1", nonce)
		for db := range 6 {
			c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{r.Addr()}, Password: "pw", SelectDB: db, DisableCache: true})
			if err != nil {
				t.Fatal(err)
			}
			n, err := c.Do(ctx, c.B().Exists().Key(key).Build()).AsInt64()
			c.Close()
			want := int64(0)
			if db == tt.db {
				want = 1
			}
			if n != want || err != nil {
				t.Errorf("%s: EXISTS in db %d = %d, %v; want %d", tt.url, db, n, err, want)
			}
		}
		if err := s.Remember(ctx, "sk_1", nonce, now, until); !errors.Is(err, httpsig.ErrReplayed) {
			t.Errorf("%s: replay = %v, want ErrReplayed", tt.url, err)
		}
	}

	if s, err := New("redis://:wrong@"+r.Addr(), Options{KeyPrefix: "p:"}); err == nil {
		s.Close()
		t.Fatal("New with a wrong password succeeded")
	}

	// The password changes under a running store: its next connection
	// cannot log in, and calls fail.
	s := fastStore(t, "redis://gw:gwpw@"+r.Addr(), Options{KeyPrefix: "p:"})
	now := time.Now()
	until := now.Add(time.Minute)
	if err := s.Remember(ctx, "sk_1", "n-2", now, until); err != nil {
		t.Fatal(err)
	}
	if err := a.Do(ctx, a.B().AclSetuser().Username("gw").Rule("resetpass", ">other").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	if err := a.Do(ctx, a.B().ClientKill().Addr(fastAddr(s)).Build()).Error(); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		err := s.Remember(ctx, "sk_1", "n-3-"+strconv.Itoa(i), now, until)
		failsClosed(t, "Remember after the password changed", err)
		t.Log(err)
	}
	failsClosed(t, "replay after the password changed", s.Remember(ctx, "sk_1", "n-2", now, until))
}

// TestFastClosed: Close closes the fast connection, and calls after it
// fail.
func TestFastClosed(t *testing.T) {
	r := testenv.StartRedis(t)
	s := fastStore(t, r.URL(), Options{KeyPrefix: "p:"})
	now := time.Now()
	if err := s.Remember(t.Context(), "sk_1", "n-1", now, now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	addr := fastAddr(s)
	s.Close()
	failsClosed(t, "Remember after Close", s.Remember(t.Context(), "sk_1", "n-2", now, now.Add(time.Minute)))
	a, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{r.Addr()}, DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	testtime.Eventually(t, 5*time.Second, func() error {
		list, err := a.Do(t.Context(), a.B().ClientList().Build()).ToString()
		if err != nil {
			return err
		}
		for _, line := range strings.Split(list, "\n") {
			if slices.Contains(strings.Fields(line), "addr="+addr) {
				return fmt.Errorf("the fast connection is still open: %s", line)
			}
		}
		return nil
	})
}

// TestFastPathScope: a cluster's store, and a URL with options the fast
// path does not do, keep rueidis.
func TestFastPathScope(t *testing.T) {
	r := testenv.StartRedis(t)
	s := newTestStore(t, r.URL()+"?client_name=gw", Options{KeyPrefix: "p:"})
	if s.fast != nil {
		t.Error("a store with client_name takes the fast path")
	}
	now := time.Now()
	if err := s.Remember(context.Background(), "sk_1", "n-1", now, now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
}

// TestFastIdleClosed: a connection that the server closed while it was
// idle (its timeout setting, a restart) is found closed before a call
// writes on it, and the call takes a new one rather than fail.
func TestFastIdleClosed(t *testing.T) {
	r := testenv.StartRedis(t)
	s := fastStore(t, r.URL(), Options{KeyPrefix: "p:"})
	s.fast.idle = 0 // check before every call that finds it idle
	a, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{r.Addr()}, DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ctx := t.Context()
	now := time.Now()
	for i := range 5 {
		addr := fastAddr(s)
		if err := a.Do(ctx, a.B().ClientKill().Addr(addr).Build()).Error(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond) // for the close to arrive
		if err := s.Remember(ctx, "sk_1", "n-"+strconv.Itoa(i), now, now.Add(time.Minute)); err != nil {
			t.Fatalf("Remember after the server closed the idle connection = %v", err)
		}
		if fastAddr(s) == addr {
			t.Fatal("the call did not take a new connection")
		}
	}
}

// killFastConns kills the connection of s's fast path through a every 5
// to 25 ms, until the function it returns is called, which returns how
// many it killed.
func killFastConns(ctx context.Context, a rueidis.Client, s *Store) (stop func() int32) {
	done := make(chan struct{})
	var kills atomic.Int32
	var killer sync.WaitGroup
	killer.Go(func() {
		for {
			select {
			case <-done:
				return
			case <-time.After(time.Duration(5+rand.IntN(20)) * time.Millisecond):
			}
			if addr := fastAddr(s); addr != "" {
				if a.Do(ctx, a.B().ClientKill().Addr(addr).Build()).Error() == nil {
					kills.Add(1)
				}
			}
		}
	})
	return func() int32 {
		close(done)
		killer.Wait()
		return kills.Load()
	}
}

// wantPair is the reply to a call's pair command: EXISTS (ttl < 0) or
// SET NX PX, for a pair that was recorded before (old) or not.
func wantPair(ttl int64, old bool) reply {
	switch {
	case ttl < 0 && old:
		return reply{kind: kindInt, n: 1}
	case ttl < 0:
		return reply{kind: kindInt, n: 0}
	case old:
		return reply{kind: kindNil}
	}
	return reply{kind: kindString, str: "OK"}
}

// recovers checks that, once Redis is back after a fault, calls succeed
// again, and the pair of sk_1 and nonce recorded before it is still there.
func recovers(t *testing.T, s *Store, nonce string, created, until time.Time) {
	t.Helper()
	ctx := t.Context()
	eventually(t, "Remember once Redis is back", func() error {
		return s.Remember(ctx, "sk_1", "after-"+strconv.Itoa(rand.IntN(1e9)), time.Now(), until)
	})
	if err := s.Remember(ctx, "sk_1", nonce, created, until); !errors.Is(err, httpsig.ErrReplayed) {
		t.Errorf("replay of a pair recorded before the fault = %v, want ErrReplayed", err)
	}
}
