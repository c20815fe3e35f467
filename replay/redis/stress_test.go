package redis

import (
	"bufio"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/signet-dev/signet/internal/testenv"
)

// An echoServer answers the fast path's commands so that every reply
// names the call it answers: SET NX GET of a sentinel returns the horizon
// the call sent, and the pair's command finds a key recorded if it
// starts with "old". It answers in pieces, late, and now and then closes
// the connection halfway through a reply.
type echoServer struct {
	ln    net.Listener
	conns atomic.Int32
	cuts  atomic.Int32 // connections closed halfway through a reply
	cut   atomic.Bool  // whether to cut connections at all
}

func startEcho(t *testing.T, cut bool) *echoServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &echoServer{ln: ln}
	e.cut.Store(cut)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var open []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, nc := range open {
			nc.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			open = append(open, nc)
			mu.Unlock()
			seed := uint64(e.conns.Add(1))
			wg.Go(func() {
				defer nc.Close()
				e.serve(nc, rand.New(rand.NewPCG(seed, 7)))
			})
		}
	})
	return e
}

func (e *echoServer) serve(nc net.Conn, rng *rand.Rand) {
	r := bufio.NewReader(nc)
	for {
		args, err := readCommand(r)
		if err != nil {
			return
		}
		var answer string
		switch {
		case len(args) == 2 && args[0] == "EXISTS":
			answer = ":0\r\n"
			if strings.HasPrefix(args[1], "old") {
				answer = ":1\r\n"
			}
		case len(args) == 6 && args[0] == "SET" && args[3] == "NX" && args[4] == "PX":
			answer = "+OK\r\n"
			if strings.HasPrefix(args[1], "old") {
				answer = "$-1\r\n"
			}
		case len(args) == 5 && args[0] == "SET" && args[3] == "NX" && args[4] == "GET":
			answer = "$" + strconv.Itoa(len(args[2])) + "\r\n" + args[2] + "\r\n"
		default:
			answer = "-ERR unexpected command\r\n"
		}
		// Answer at once if more commands are waiting; otherwise now and
		// then late, in pieces, or cut short.
		if r.Buffered() > 0 && rng.IntN(2) == 0 {
			if _, err := nc.Write([]byte(answer)); err != nil {
				return
			}
			continue
		}
		switch n := rng.IntN(1000); {
		case n < 10 && e.cut.Load():
			nc.Write([]byte(answer[:rng.IntN(len(answer))]))
			e.cuts.Add(1)
			return
		case n < 300:
			time.Sleep(time.Duration(rng.IntN(2000)) * time.Microsecond)
		case n < 500:
			for len(answer) > 0 {
				k := 1 + rng.IntN(len(answer))
				if _, err := nc.Write([]byte(answer[:k])); err != nil {
					return
				}
				answer = answer[k:]
				time.Sleep(time.Duration(rng.IntN(300)) * time.Microsecond)
			}
			continue
		}
		if _, err := nc.Write([]byte(answer)); err != nil {
			return
		}
	}
}

// readCommand reads a command, an array of bulk strings.
func readCommand(r *bufio.Reader) ([]string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	n, err := strconv.Atoi(strings.TrimSuffix(line[1:], "\r\n"))
	if err != nil || line[0] != '*' {
		return nil, errors.New("not an array")
	}
	args := make([]string, n)
	for i := range args {
		line, err := r.ReadString('\n')
		if err != nil {
			return nil, err
		}
		l, err := strconv.Atoi(strings.TrimSuffix(line[1:], "\r\n"))
		if err != nil || line[0] != '$' {
			return nil, errors.New("not a bulk string")
		}
		b := make([]byte, l+2)
		if _, err := io.ReadFull(r, b); err != nil {
			return nil, err
		}
		args[i] = string(b[:l])
	}
	return args, nil
}

// TestFastStress has many goroutines call at once, with contexts that end
// at every moment (some ended before the call, some cancelled rather than
// expired, some short, some long), on a server that answers late, in
// pieces, and cuts connections halfway through a reply. Every call that
// returns nil must have its own replies; a call whose context is long
// never times out (the reading is never lost); every call returns by its
// deadline; and once the storm is over a call succeeds on one connection.
func TestFastStress(t *testing.T) {
	for _, cut := range []bool{false, true} {
		name := "NoCuts"
		if cut {
			name = "Cuts"
		}
		t.Run(name, func(t *testing.T) { stress(t, cut, 1500*time.Millisecond) })
	}
}

func stress(t *testing.T, cut bool, length time.Duration) {
	e := startEcho(t, cut)
	const timeout = 2 * time.Second
	p := &pipe{
		addr:        e.ln.Addr().String(),
		timeout:     timeout,
		dialTimeout: time.Second,
		stall:       timeout, // replies come within milliseconds
		idle:        idleCheck,
		queueMax:    maxQueue,
	}
	defer p.close()

	var horizon atomic.Int64
	var ok, ctxErr, failed, long atomic.Int32
	end := time.Now().Add(length)
	var wg sync.WaitGroup
	for g := range 24 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 3))
			for i := 0; time.Now().Before(end); i++ {
				h := horizon.Add(1)
				key := "new-" + strconv.Itoa(g) + "-" + strconv.Itoa(i)
				old := rng.IntN(3) == 0
				if old {
					key = "old-" + strconv.Itoa(g)
				}
				ttl := int64(60000)
				if rng.IntN(4) == 0 {
					ttl = -1 // EXISTS
				}
				var ctx context.Context
				var cancel context.CancelFunc
				patient := false
				switch rng.IntN(10) {
				case 0: // ended before the call
					ctx, cancel = context.WithDeadline(context.Background(), time.Now().Add(-time.Millisecond))
				case 1: // cancelled, not expired
					ctx, cancel = context.WithTimeout(context.Background(), time.Minute)
					time.AfterFunc(time.Duration(rng.IntN(2000))*time.Microsecond, cancel)
				case 2: // short
					ctx, cancel = context.WithTimeout(context.Background(), time.Duration(rng.IntN(3000))*time.Microsecond)
				case 3: // ends with others' at once: a reader's and its successor's
					ctx, cancel = context.WithDeadline(context.Background(), time.Now().Truncate(time.Millisecond).Add(time.Millisecond))
				case 4:
					ctx, cancel = context.WithTimeout(context.Background(), timeout)
					patient = true
				default:
					ctx, cancel = context.WithTimeout(context.Background(), 200*time.Millisecond)
				}
				deadline, _ := ctx.Deadline()
				if d := time.Now().Add(timeout); deadline.After(d) {
					deadline = d // a cancelled call's reader may read on till its timeout
				}
				pair, sentinel, err := p.remember(ctx, key, ttl, "sentinel", h)
				cancel()
				if late := time.Since(deadline); late > time.Second {
					t.Errorf("call returned %v after its deadline (%v)", late, err)
				}
				switch {
				case err == nil:
					ok.Add(1)
					if sentinel.kind != kindString || sentinel.str != strconv.FormatInt(h, 10) {
						t.Errorf("call %d got sentinel reply %v", h, sentinel)
					}
					if want := wantPair(ttl, old); pair != want {
						t.Errorf("call %d on %s (ttl %d) got pair reply %v, want %v", h, key, ttl, pair, want)
					}
				case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
					ctxErr.Add(1)
					if patient {
						t.Errorf("call %d with a long context = %v", h, err)
					}
				case errors.Is(err, errFailed):
					failed.Add(1)
					if !cut {
						t.Errorf("call %d = %v, with no connection cut", h, err)
					}
				default:
					t.Errorf("call %d = %v", h, err)
				}
				if patient {
					long.Add(1)
				}
			}
		})
	}
	wg.Wait()
	t.Logf("%d calls: %d answered, %d gave up, %d failed (%d long); %d connections, %d cut",
		horizon.Load(), ok.Load(), ctxErr.Load(), failed.Load(), long.Load(), e.conns.Load(), e.cuts.Load())
	if ok.Load() == 0 || ctxErr.Load() == 0 || cut && (e.cuts.Load() == 0 || failed.Load() == 0) {
		t.Error("the test did not test")
	}

	e.cut.Store(false)
	// The storm over, calls succeed: nobody holds the reading, and the
	// replies of the calls that left are read and dropped. The first may
	// fail, closed: the last cut may have come while no call was there to
	// see it, and a call written on a dead connection is not retried.
	firstAfterStorm(t, func(ctx context.Context) error {
		_, _, err := p.remember(ctx, "new-after", 1000, "sentinel", horizon.Add(1))
		return err
	}, timeout)
	for i := range 5 {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		h := horizon.Add(1)
		_, sentinel, err := p.remember(ctx, "new-after-"+strconv.Itoa(i), 1000, "sentinel", h)
		cancel()
		if err != nil || sentinel.str != strconv.FormatInt(h, 10) {
			t.Fatalf("call after the storm = %v, %v", sentinel, err)
		}
	}
	p.mu.Lock()
	c := p.cur
	p.mu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := len(c.queue) - c.qh; n != 0 || c.reading || c.writing {
		t.Errorf("after the storm, an idle connection has %d calls queued, reading %v, writing %v", n, c.reading, c.writing)
	}
}

// TestFastStressRedis is TestFastStress on a real server, whose
// connection is killed (CLIENT KILL) again and again: each call reads a
// sentinel of its own choice, whose value names it, and each pair it
// records must be in Redis.
func TestFastStressRedis(t *testing.T) {
	r := testenv.StartRedis(t)
	const timeout = 2 * time.Second
	s := fastStore(t, r.URL(), Options{KeyPrefix: "p:", Timeout: timeout})
	p := s.fast
	a, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{r.Addr()}, DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ctx := t.Context()
	const sentinels, olds = 64, 64
	for j := range sentinels {
		if err := a.Do(ctx, a.B().Set().Key("p:s:"+strconv.Itoa(j)).Value(strconv.Itoa(j*1000+7)).Build()).Error(); err != nil {
			t.Fatal(err)
		}
	}
	for j := range olds {
		if err := a.Do(ctx, a.B().Set().Key("p:old-"+strconv.Itoa(j)).Value("1").Build()).Error(); err != nil {
			t.Fatal(err)
		}
	}

	stopKilling := killFastConns(ctx, a, s)

	var mu sync.Mutex
	var recorded []string // pairs set by calls that returned nil
	var ok, ctxErr, failed atomic.Int32
	end := time.Now().Add(1500 * time.Millisecond)
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 5))
			for i := 0; time.Now().Before(end); i++ {
				j := rng.IntN(sentinels)
				key := "p:new-" + strconv.Itoa(g) + "-" + strconv.Itoa(i)
				old := rng.IntN(3) == 0
				if old {
					key = "p:old-" + strconv.Itoa(rng.IntN(olds))
				}
				ttl := int64(60000)
				if rng.IntN(4) == 0 {
					ttl = -1
				}
				var cctx context.Context
				var cancel context.CancelFunc
				patient := false
				switch rng.IntN(6) {
				case 0:
					cctx, cancel = context.WithDeadline(ctx, time.Now().Add(-time.Millisecond))
				case 1:
					cctx, cancel = context.WithTimeout(ctx, time.Minute)
					time.AfterFunc(time.Duration(rng.IntN(500))*time.Microsecond, cancel)
				case 2:
					cctx, cancel = context.WithTimeout(ctx, time.Duration(rng.IntN(1000))*time.Microsecond)
				case 3:
					cctx, cancel = context.WithTimeout(ctx, timeout)
					patient = true
				default:
					cctx, cancel = context.WithTimeout(ctx, 200*time.Millisecond)
				}
				deadline, _ := cctx.Deadline()
				if d := time.Now().Add(timeout); deadline.After(d) {
					deadline = d
				}
				pair, sentinel, err := p.remember(cctx, key, ttl, "p:s:"+strconv.Itoa(j), 1)
				cancel()
				if late := time.Since(deadline); late > time.Second {
					t.Errorf("call returned %v after its deadline (%v)", late, err)
				}
				switch {
				case err == nil:
					ok.Add(1)
					if want := strconv.Itoa(j*1000 + 7); sentinel.kind != kindString || sentinel.str != want {
						t.Errorf("call reading sentinel %d got %v, want %q", j, sentinel, want)
					}
					if ttl >= 0 && !old {
						mu.Lock()
						recorded = append(recorded, key)
						mu.Unlock()
					}
					if want := wantPair(ttl, old); pair != want {
						t.Errorf("call on %s (ttl %d) got pair reply %v, want %v", key, ttl, pair, want)
					}
				case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
					ctxErr.Add(1)
					if patient {
						t.Errorf("call with a long context = %v", err)
					}
				case errors.Is(err, errFailed):
					failed.Add(1)
				default:
					t.Errorf("call = %v", err)
				}
			}
		})
	}
	wg.Wait()
	kills := stopKilling()
	t.Logf("%d connections killed; %d calls answered, %d gave up, %d failed", kills, ok.Load(), ctxErr.Load(), failed.Load())
	if kills < 10 || ok.Load() == 0 || ctxErr.Load() == 0 || failed.Load() == 0 {
		t.Error("the test did not test")
	}
	for _, key := range recorded {
		if n, err := a.Do(ctx, a.B().Exists().Key(key).Build()).AsInt64(); err != nil || n != 1 {
			t.Errorf("SET of %s answered OK, but EXISTS = %d, %v", key, n, err)
		}
	}
	// As in TestFastStress, the first call may find the last kill.
	firstAfterStorm(t, func(cctx context.Context) error {
		_, _, err := p.remember(cctx, "p:after", 60000, "p:s:1", 1)
		return err
	}, timeout)
	for i := range 5 {
		cctx, cancel := context.WithTimeout(ctx, timeout)
		pair, sentinel, err := p.remember(cctx, "p:after-"+strconv.Itoa(i), 60000, "p:s:1", 1)
		cancel()
		if err != nil || pair.str != "OK" || sentinel.str != "1007" {
			t.Fatalf("call after the storm = %v, %v, %v", pair, sentinel, err)
		}
	}
}

// firstAfterStorm makes the first call after a storm of cuts or kills,
// which may fail closed (errFailed) on a connection that died while no
// call was on it, but in no other way.
func firstAfterStorm(t *testing.T, call func(context.Context) error, timeout time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := call(ctx); err != nil && !errors.Is(err, errFailed) {
		t.Fatalf("first call after the storm = %v", err)
	}
}
