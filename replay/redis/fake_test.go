package redis

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// A fakeServer answers the calls of a pipe as a script says: the answer
// to call i on connection c is script(c, i), written at once, or a byte at
// a time if slow.
type fakeServer struct {
	ln    net.Listener
	conns atomic.Int32
	slow  time.Duration
}

func startFake(t *testing.T, script func(conn, call int) string) *fakeServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeServer{ln: ln}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			conn := int(f.conns.Add(1)) - 1
			t.Cleanup(func() { nc.Close() })
			wg.Go(func() {
				r := bufio.NewReader(nc)
				for call := 0; ; call++ {
					for range 2 {
						if _, err := readCommand(r); err != nil {
							return
						}
					}
					answer := script(conn, call)
					if before, after, ok := strings.Cut(answer, "|"); ok {
						// A pause, halfway through.
						nc.Write([]byte(before))
						time.Sleep(100 * time.Millisecond)
						answer = after
					}
					if f.slow == 0 {
						nc.Write([]byte(answer))
						continue
					}
					for i := range len(answer) {
						time.Sleep(f.slow)
						if _, err := nc.Write([]byte{answer[i]}); err != nil {
							return
						}
					}
				}
			})
		}
	})
	return f
}

func fakePipe(f *fakeServer, timeout time.Duration) *pipe {
	return &pipe{
		addr:        f.ln.Addr().String(),
		timeout:     timeout,
		dialTimeout: time.Second,
		stall:       time.Second,
		idle:        idleCheck,
		queueMax:    maxQueue,
	}
}

const good = "+OK\r\n$13\r\n1700000000000\r\n"

func callFake(p *pipe, timeout time.Duration) (pair, sentinel reply, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return p.remember(ctx, "k", 1000, "s", 1)
}

// TestFastProtocolError: a reply in doubt fails the call and closes the
// connection; the next call takes a new one.
func TestFastProtocolError(t *testing.T) {
	for _, tt := range []struct{ name, answer string }{
		{"IntegerToSET", ":1\r\n$-1\r\n"},
		{"StatusForSentinel", "+OK\r\n+OK\r\n"},
		{"Array", "*1\r\n$1\r\na\r\n$-1\r\n"},
		{"RESP3Null", "_\r\n$-1\r\n"},
		{"BadLength", "+OK\r\n$x\r\n"},
		{"TooLarge", "+OK\r\n$100000\r\n"},
		{"NoCR", "+OK\n$-1\n"},
		{"ShortBulk", "+OK\r\n$3\r\n12\r\n\r\n"},
		{"Half", "+OK\r\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := startFake(t, func(conn, call int) string {
				if conn == 0 {
					return tt.answer
				}
				return good
			})
			p := fakePipe(f, time.Second)
			defer p.close()
			_, _, err := callFake(p, 200*time.Millisecond)
			if tt.name == "Half" {
				// Half an answer, then nothing: the call times out.
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("call with half an answer = %v, want a deadline error", err)
				}
				return
			}
			if !errors.Is(err, errProtocol) || !errors.Is(err, errFailed) {
				t.Fatalf("call answered %q = %v, want a protocol error", tt.answer, err)
			}
			pair, sentinel, err := callFake(p, time.Second)
			if err != nil || pair.str != "OK" || sentinel.str != "1700000000000" {
				t.Fatalf("call on a new connection = %v, %v, %v", pair, sentinel, err)
			}
			if n := f.conns.Load(); n != 2 {
				t.Fatalf("%d connections made, want 2", n)
			}
		})
	}
}

// TestFastExtraReply: a reply to no command closes the connection.
func TestFastExtraReply(t *testing.T) {
	f := startFake(t, func(conn, call int) string {
		if conn == 0 {
			return good + "+OK\r\n"
		}
		return good
	})
	p := fakePipe(f, time.Second)
	defer p.close()
	for range 2 {
		if _, _, err := callFake(p, time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.conns.Load(); n != 2 {
		t.Fatalf("%d connections made, want 2: the first had an extra reply", n)
	}
}

// TestFastStall: a call gives up at its deadline and leaves the
// connection; a reply overdue by the stall time closes it.
func TestFastStall(t *testing.T) {
	never := make(chan struct{})
	defer close(never)
	f := startFake(t, func(conn, call int) string {
		if conn == 0 {
			<-never
		}
		return good
	})
	p := fakePipe(f, time.Second)
	p.stall = 300 * time.Millisecond
	defer p.close()
	began := time.Now()
	if _, _, err := callFake(p, 100*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("call = %v, want a deadline error", err)
	}
	if took := time.Since(began); took > 300*time.Millisecond {
		t.Errorf("call took %v, deadline 100 ms", took)
	}
	time.Sleep(300 * time.Millisecond)
	_, _, err := callFake(p, 100*time.Millisecond)
	if !errors.Is(err, errFailed) {
		t.Fatalf("call once the first reply was overdue = %v, want the connection failed", err)
	}
	if _, _, err := callFake(p, time.Second); err != nil {
		t.Fatalf("call on a new connection = %v", err)
	}
}

// TestFastSlowReplies has replies come a byte at a time, and callers give
// up halfway through: the replies read so far stay for the next reader,
// and every caller that stays gets its own.
func TestFastSlowReplies(t *testing.T) {
	f := startFake(t, func(conn, call int) string {
		sentinel := "$" + strconv.Itoa(len(strconv.Itoa(call))) + "\r\n" + strconv.Itoa(call) + "\r\n"
		if call%2 == 0 {
			return "$-1\r\n" + sentinel
		}
		return "+OK\r\n" + sentinel
	})
	f.slow = 100 * time.Microsecond
	p := fakePipe(f, time.Second)
	p.stall = time.Minute
	defer p.close()
	var wg sync.WaitGroup
	var mu sync.Mutex
	got := map[string]reply{} // the sentinel reply each call got, by the pair's kind
	var gaveUp atomic.Int32
	for g := range 8 {
		wg.Go(func() {
			for i := range 20 {
				timeout := 20 * time.Second
				if (g+i)%3 == 0 {
					timeout = time.Duration(1+i%5) * time.Millisecond
				}
				pair, sentinel, err := callFake(p, timeout)
				if errors.Is(err, context.DeadlineExceeded) {
					gaveUp.Add(1)
					continue
				}
				if err != nil {
					t.Errorf("call = %v", err)
					return
				}
				call, err := strconv.Atoi(sentinel.str)
				if err != nil {
					t.Errorf("sentinel reply %v", sentinel)
					return
				}
				// Even calls got nil for their pair, odd ones OK.
				if call%2 == 0 && pair.kind != kindNil || call%2 == 1 && pair.str != "OK" {
					t.Errorf("call %d got pair reply %v", call, pair)
				}
				mu.Lock()
				if _, ok := got[sentinel.str]; ok {
					t.Errorf("two calls got the replies of call %d", call)
				}
				got[sentinel.str] = pair
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	t.Logf("%d calls answered, %d gave up, on %d connections", len(got), gaveUp.Load(), f.conns.Load())
	if gaveUp.Load() == 0 || len(got) == 0 {
		t.Error("the test did not test")
	}
	if f.conns.Load() != 1 {
		t.Errorf("%d connections made, want 1", f.conns.Load())
	}
}

// TestFastReaderLeaves has the reader give up halfway through its
// replies: the next waiter reads the rest of them, drops them, and reads
// its own.
func TestFastReaderLeaves(t *testing.T) {
	f := startFake(t, func(conn, call int) string {
		if call == 0 {
			return "+OK\r\n$1|3\r\n1700000000000\r\n"
		}
		return "$-1\r\n$1\r\n7\r\n"
	})
	p := fakePipe(f, time.Second)
	defer p.close()
	if _, err := p.get(context.Background()); err != nil {
		t.Fatal(err)
	}
	first := make(chan error)
	go func() {
		_, _, err := callFake(p, 50*time.Millisecond)
		first <- err
	}()
	time.Sleep(20 * time.Millisecond) // the first call reads
	pair, sentinel, err := callFake(p, 2*time.Second)
	if err := <-first; !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("first call = %v, want a deadline error", err)
	}
	if err != nil || pair.kind != kindNil || sentinel.str != "7" {
		t.Errorf("second call = %v, %v, %v; want nil, \"7\"", pair, sentinel, err)
	}
	if n := f.conns.Load(); n != 1 {
		t.Errorf("%d connections, want 1", n)
	}
}

// TestFastQueueOfLeavers: calls that gave up leave their replies to be
// read by the calls after them; once the queue is full of them, with no
// one reading, the connection must end rather than refuse every call
// after with errBusy, for ever, though the server answers. The calls give
// up before reading (their context ended already), or while reading
// replies that are late (a server that hangs, shorter than the stall).
func TestFastQueueOfLeavers(t *testing.T) {
	for _, late := range []bool{false, true} {
		name := "Ended"
		if late {
			name = "Late"
		}
		t.Run(name, func(t *testing.T) {
			release := make(chan struct{})
			var once sync.Once
			answer := func() { once.Do(func() { close(release) }) }
			f := startFake(t, func(conn, call int) string {
				if late && conn == 0 {
					<-release
				}
				return good
			})
			defer answer()
			p := fakePipe(f, time.Second)
			p.queueMax = 64
			p.stall = time.Minute
			defer p.close()
			if _, err := p.get(context.Background()); err != nil {
				t.Fatal(err)
			}
			for range p.queueMax {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
				if !late {
					cancel()
				}
				_, _, err := p.remember(ctx, "k", 1000, "s", 1)
				cancel()
				if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("call that gives up = %v, want a context error", err)
				}
			}
			if late {
				answer() // every call, all at once
			}
			for range 3 {
				pair, sentinel, err := callFake(p, time.Second)
				if err != nil || pair.str != "OK" || sentinel.str != "1700000000000" {
					t.Fatalf("call after %d calls that gave up = %v, %v, %v", p.queueMax, pair, sentinel, err)
				}
			}
		})
	}
}

// rawServer accepts one connection of a pipe and hands it to the test,
// which plays Redis on it by hand.
func rawServer(t *testing.T) (p *pipe, server <-chan net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan net.Conn, 1)
	go func() {
		nc, err := ln.Accept()
		ln.Close()
		if err == nil {
			t.Cleanup(func() { nc.Close() })
			ch <- nc
		}
	}()
	t.Cleanup(func() { ln.Close() })
	p = fakePipe(&fakeServer{ln: ln}, time.Second)
	t.Cleanup(p.close)
	if _, err := p.get(context.Background()); err != nil {
		t.Fatal(err)
	}
	return p, ch
}

// waitConn waits until the pipe's connection has n calls queued, no
// writer and, if reading, a reader.
func waitConn(t *testing.T, p *pipe, n int, reading bool) {
	t.Helper()
	for range 2000 {
		c := p.cur
		c.mu.Lock()
		ok := len(c.queue)-c.qh == n && !c.writing && (!reading || c.reading)
		c.mu.Unlock()
		if ok {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("never %d calls queued (reading %v)", n, reading)
}

// readCommands reads n commands from r, within a second.
func readCommands(t *testing.T, nc net.Conn, r *bufio.Reader, n int) {
	t.Helper()
	nc.SetReadDeadline(time.Now().Add(time.Second))
	for i := range n {
		if _, err := readCommand(r); err != nil {
			t.Fatalf("reading command %d of %d: %v", i+1, n, err)
		}
	}
}

// TestFastBatchInFlight: a call that comes while one call awaits its
// replies is written at once; calls that come while two or more do are
// not written one by one as they come, but together, once replies have
// come, so that Redis reads them in one go.
func TestFastBatchInFlight(t *testing.T) {
	p, server := rawServer(t)
	first := make(chan error, 2)
	go func() {
		_, _, err := callFake(p, 2*time.Second)
		first <- err
	}()
	nc := <-server
	r := bufio.NewReader(nc)
	readCommands(t, nc, r, 2)
	waitConn(t, p, 1, true)
	go func() {
		_, _, err := callFake(p, 2*time.Second)
		first <- err
	}()
	readCommands(t, nc, r, 2) // behind a lone call: written at once
	const calls = 8
	errs := make(chan error, calls)
	for range calls {
		go func() {
			_, _, err := callFake(p, 2*time.Second)
			errs <- err
		}()
	}
	waitConn(t, p, 2+calls, true)
	nc.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := r.Peek(1); err == nil {
		t.Fatal("commands written while the replies of two calls were awaited")
	}
	nc.Write([]byte(good))
	// One write, read at once.
	nc.SetReadDeadline(time.Now().Add(time.Second))
	buf := make([]byte, 64<<10)
	n, err := nc.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	rb := bufio.NewReader(bytes.NewReader(buf[:n]))
	for i := range 2 * calls {
		if _, err := readCommand(rb); err != nil {
			t.Fatalf("the first read after the reply held %d commands of %d: %v", i, 2*calls, err)
		}
	}
	nc.Write([]byte(strings.Repeat(good, 1+calls)))
	for range 2 {
		if err := <-first; err != nil {
			t.Errorf("first calls = %v", err)
		}
	}
	for range calls {
		if err := <-errs; err != nil {
			t.Errorf("call = %v", err)
		}
	}
}

// TestFastQueuedWrittenWhenReaderLeaves: a call that comes while calls
// await their replies, and gives up before anyone writes its commands,
// still has them written when the reader gives up too, though no call
// comes after: no commands stay in the buffer with no one to write them.
func TestFastQueuedWrittenWhenReaderLeaves(t *testing.T) {
	p, server := rawServer(t)
	first := make(chan error, 1)
	go func() {
		_, _, err := callFake(p, 100*time.Millisecond)
		first <- err
	}()
	nc := <-server
	r := bufio.NewReader(nc)
	readCommands(t, nc, r, 2)
	waitConn(t, p, 1, true)
	giveUp := func(n int) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			_, _, err := p.remember(ctx, "k", 1000, "s", 1)
			done <- err
		}()
		waitConn(t, p, n, true)
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("call = %v, want canceled", err)
		}
	}
	giveUp(2)
	readCommands(t, nc, r, 2) // written at once
	giveUp(3)                 // waits to be written
	if err := <-first; !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("first call = %v, want a deadline error", err)
	}
	readCommands(t, nc, r, 2) // the third call's
	// The connection still serves: the three replies, then a fourth
	// call's.
	nc.Write([]byte(good + good + good))
	fourth := make(chan error, 1)
	go func() {
		_, _, err := callFake(p, 2*time.Second)
		fourth <- err
	}()
	readCommands(t, nc, r, 2)
	nc.Write([]byte(good))
	if err := <-fourth; err != nil {
		t.Fatalf("fourth call = %v", err)
	}
}

// TestFastStallFromWrite: a call whose commands waited to be written
// while the replies of others were awaited counts its stall from when
// they were written, not from when it came, so that a connection is not
// closed for the time the call spent waiting on this side.
func TestFastStallFromWrite(t *testing.T) {
	f := startFake(t, func(conn, call int) string {
		switch call {
		case 0:
			time.Sleep(250 * time.Millisecond)
		case 2:
			time.Sleep(200 * time.Millisecond)
		}
		return good
	})
	p := fakePipe(f, time.Second)
	p.stall = 300 * time.Millisecond
	defer p.close()
	if _, err := p.get(context.Background()); err != nil {
		t.Fatal(err)
	}
	first := make(chan error, 2)
	for n := range 2 {
		go func() {
			_, _, err := callFake(p, time.Second)
			first <- err
		}()
		waitConn(t, p, n+1, true)
	}
	// Written at about 250 ms, when the first reply comes; answered at
	// about 450 ms. Its deadline, at 400 ms, finds it 150 ms overdue
	// since written: not stalled.
	if _, _, err := callFake(p, 400*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("third call = %v, want a deadline error", err)
	}
	for range 2 {
		if err := <-first; err != nil {
			t.Fatalf("first calls = %v", err)
		}
	}
	if _, _, err := callFake(p, time.Second); err != nil {
		t.Fatalf("fourth call = %v", err)
	}
	if n := f.conns.Load(); n != 1 {
		t.Errorf("%d connections, want 1: the third call was not stalled", n)
	}
}
