package redis

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/redis/rueidis"

	"github.com/signet-dev/signet/internal/peek"
)

// A pipe is the fast path of Remember on a single server: the calls of
// every goroutine share one connection, and whoever calls does the
// writing and reading itself ("flat combining"), rather than hand its
// commands to a writer goroutine and wait for a reader goroutine, as
// rueidis does: a call that meets no other makes no hand-off at all, and
// calls that arrive while one writes are written together next, so that
// Redis reads and answers them in one go.
//
// A caller appends its commands to the connection's write buffer and
// itself to a queue, in one critical section, so that the order of the
// queue is the order of the commands on the wire. If no one is writing,
// and no one reading or fewer than deferAt calls awaiting replies, it
// becomes the writer: it writes what the buffer holds, with one write,
// and again while others append. Then, if no one is reading, it becomes
// the reader: it reads the replies in order and hands each waiter ahead
// of it its own, until its own are in; it then hands the reading on to
// the first waiter still waiting, if any. A waiter whose context ends
// leaves: its replies, when they come, are read and dropped. The commands
// of the calls that come while deferAt calls or more await replies wait
// in the buffer, and the reader writes them, all in one write, as soon as
// replies come in, or its wait ends, before it hands the reading on or
// leaves: Redis then reads more commands at a time, and both sides make
// fewer system calls a call, for a wait of up to one round trip. A call's
// stall is counted from when its commands were written.
//
// Any doubt about which reply answers which command ends the connection:
// an I/O error, a reply that is not of a kind its command answers, a
// reply overdue by stall. Every waiter on it then fails, and the next
// call dials a new one. No call is retried once its commands may have
// been written.
type pipe struct {
	addr        string
	dialer      net.Dialer
	tls         *tls.Config
	hello       []byte // AUTH and SELECT, sent on each new connection
	hellos      int    // commands in hello
	timeout     time.Duration
	dialTimeout time.Duration
	stall       time.Duration // a reply overdue by this much ends the connection
	idle        time.Duration // a connection unused this long is checked first
	queueMax    int           // maxQueue, smaller in tests

	mu     sync.Mutex
	cur    *conn // nil before the first call
	closed bool
}

// newPipe returns the fast path for the client made from co, or nil
// where it does not apply: anything but a plain single server, reached
// over TCP (with TLS for rediss://), whose URL asked for nothing the pipe
// does not do.
func newPipe(client rueidis.Client, co rueidis.ClientOption, timeout, stall time.Duration) *pipe {
	if client.Mode() != rueidis.ClientModeStandalone || len(co.InitAddress) != 1 ||
		co.DialCtxFn != nil || co.DialFn != nil ||
		co.ClientName != "" || co.Sentinel.MasterSet != "" || co.AuthCredentialsFn != nil ||
		co.Standalone.EnableRedirect || len(co.Standalone.ReplicaAddress) > 0 || co.ReplicaOnly {
		return nil
	}
	p := &pipe{
		addr:        co.InitAddress[0],
		dialer:      co.Dialer,
		tls:         co.TLSConfig, // rediss://, with the server's name and skip_verify
		timeout:     timeout,
		dialTimeout: co.Dialer.Timeout,
		stall:       stall,
		idle:        idleCheck,
		queueMax:    maxQueue,
	}
	// As rueidis does on a server that speaks RESP2 only.
	switch {
	case co.Username != "":
		p.hello = appendCommand(p.hello, []byte("AUTH"), []byte(co.Username), []byte(co.Password))
		p.hellos++
	case co.Password != "":
		p.hello = appendCommand(p.hello, []byte("AUTH"), []byte(co.Password))
		p.hellos++
	}
	if co.SelectDB != 0 {
		p.hello = appendCommand(p.hello, []byte("SELECT"), fmt.Appendf(nil, "%d", co.SelectDB))
		p.hellos++
	}
	return p
}

var (
	errClosed = errors.New("redis: store closed")
	errBusy   = errors.New("redis: too many calls waiting for Redis")
)

// idleCheck is how long a connection is idle before a call checks that
// the server has not closed it.
const idleCheck = time.Second

// deferAt is how many calls must be awaiting their replies for a call
// that comes to leave its commands to the reader, rather than write them
// at once. Behind a lone call, a call would wait a round trip for company
// that seldom comes at such a load, and the wait costs more than the
// write it saves (in tools/loadbench with 4 connections, 8% more CPU a
// request when every call waited).
const deferAt = 2

// maxQueue bounds the calls waiting on a connection, those that left
// included: beyond, Redis is far behind, and a call fails at once.
const maxQueue = 1 << 16

// remember sends Remember's two commands, the pair's (SET NX PX ttl, in
// milliseconds, or EXISTS if ttl is negative) and then the sentinel's (SET
// NX GET), and returns their replies.
func (p *pipe) remember(ctx context.Context, key string, ttl int64, sentinel string, horizon int64) (pair, sentinelReply reply, err error) {
	w := waiters.Get().(*waiter)
	b := w.cmd[:0]
	if ttl >= 0 {
		b = append(b, "*6\r\n$3\r\nSET\r\n"...)
		b = appendBulk(b, key)
		b = append(b, "$1\r\n1\r\n$2\r\nNX\r\n$2\r\nPX\r\n"...)
		b = appendBulkInt(b, ttl)
		w.expect[0] = kindStatus | kindNil | kindError // +OK, or nil
	} else {
		b = append(b, "*2\r\n$6\r\nEXISTS\r\n"...)
		b = appendBulk(b, key)
		w.expect[0] = kindInt | kindError
	}
	b = append(b, "*5\r\n$3\r\nSET\r\n"...)
	b = appendBulk(b, sentinel)
	b = appendBulkInt(b, horizon)
	b = append(b, "$2\r\nNX\r\n$3\r\nGET\r\n"...)
	w.expect[1] = kindString | kindNil | kindError // $horizon, or nil
	w.cmd, w.n = b, 2
	if err := p.do(ctx, w); err != nil {
		return pair, sentinelReply, err
	}
	pair, sentinelReply = w.replies[0], w.replies[1]
	if pair.kind == kindStatus {
		pair.kind = kindString
	}
	w.replies = [2]reply{}
	waiters.Put(w)
	return pair, sentinelReply, nil
}

// do sends w's commands and waits for their replies; on an error, w may
// still be in a queue and is not to be used again.
func (p *pipe) do(ctx context.Context, w *waiter) error {
	for try := 0; ; try++ {
		c, err := p.get(ctx)
		if err != nil {
			return err
		}
		sent, err := c.do(ctx, w)
		if !sent && errors.Is(err, errFailed) && try == 0 {
			// The connection failed before this call wrote anything:
			// take the next one, once.
			continue
		}
		return err
	}
}

// get returns the current connection, once dialled, or dials one.
func (p *pipe) get(ctx context.Context) (*conn, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, errClosed
	}
	c := p.cur
	if c == nil || c.dead.Load() {
		c = &conn{p: p, ready: make(chan struct{})}
		p.cur = c
		// The dial goes on if the call that started it gives up: the
		// calls after it need it.
		go c.dial()
	}
	p.mu.Unlock()
	select {
	case <-c.ready:
	default:
		select {
		case <-c.ready:
		case <-ctx.Done():
			return nil, fmt.Errorf("redis: connect: %w", ctx.Err())
		}
	}
	if c.dialErr != nil {
		return nil, c.dialErr
	}
	return c, nil
}

// close closes the connection; calls then fail.
func (p *pipe) close() {
	p.mu.Lock()
	p.closed = true
	c := p.cur
	p.mu.Unlock()
	if c == nil {
		return
	}
	<-c.ready
	if c.dialErr == nil {
		c.mu.Lock()
		c.fail(errClosed)
		c.mu.Unlock()
	}
}

// A conn is one connection of a pipe.
type conn struct {
	p       *pipe
	ready   chan struct{} // closed once dialled, or failed to
	nc      net.Conn      // set before ready is closed
	dialErr error         // likewise
	dead    atomic.Bool   // failed: the pipe dials another

	mu      sync.Mutex
	err     error  // why it failed, a wrapped errFailed
	out     []byte // commands to write
	spare   []byte // a buffer for out, once written
	writing bool   // a caller is writing out
	reading bool   // a waiter has the reading
	queue   []*waiter
	qh      int       // the head of queue: the next reply is its
	next    int       // queue[qh:next] holds no waiter still queued (handOn)
	unsent  int       // queue[unsent:] has its commands in out, not yet written
	last    time.Time // when a call last came

	// The reader's, handed on with the reading.
	in   []byte // read: in[r:] is not yet parsed
	r    int
	got  [2]reply // replies read for the head of queue
	ngot int
}

// errFailed is wrapped by the errors of a failed connection.
var errFailed = errors.New("redis: connection lost")

const (
	readSize = 4 << 10  // the read buffer's first size
	maxKeep  = 64 << 10 // larger buffers are dropped once written
)

func (c *conn) dial() {
	defer close(c.ready)
	p := c.p
	ctx, cancel := context.WithTimeout(context.Background(), p.dialTimeout)
	defer cancel()
	var nc net.Conn
	var err error
	if p.tls != nil {
		d := tls.Dialer{NetDialer: &p.dialer, Config: p.tls}
		nc, err = d.DialContext(ctx, "tcp", p.addr)
	} else {
		nc, err = p.dialer.DialContext(ctx, "tcp", p.addr)
	}
	if err == nil && p.hellos > 0 {
		if err = handshake(ctx, nc, p.hello, p.hellos); err != nil {
			nc.Close()
		}
	}
	if err != nil {
		c.dialErr = fmt.Errorf("redis: connect: %w", err)
		c.dead.Store(true)
		return
	}
	c.nc = nc
	c.in = make([]byte, 0, readSize)
	c.last = time.Now()
}

// handshake sends hello, n commands each answered by OK.
func handshake(ctx context.Context, nc net.Conn, hello []byte, n int) error {
	deadline, _ := ctx.Deadline()
	nc.SetDeadline(deadline)
	defer nc.SetDeadline(time.Time{})
	if _, err := nc.Write(hello); err != nil {
		return err
	}
	var in []byte
	buf := make([]byte, 512)
	for n > 0 {
		r, used, err := parseReply(in)
		if err != nil {
			return err
		}
		if used == 0 {
			k, err := nc.Read(buf)
			if err != nil {
				return err
			}
			in = append(in, buf[:k]...)
			continue
		}
		in = in[used:]
		n--
		switch {
		case r.kind == kindError:
			return r.err
		case r.kind != kindStatus || r.str != "OK":
			return fmt.Errorf("%w: %v answered to AUTH or SELECT", errProtocol, r)
		}
	}
	if len(in) > 0 {
		return fmt.Errorf("%w: more replies than commands", errProtocol)
	}
	return nil
}

// A waiter is a call on a conn.
type waiter struct {
	cmd     []byte  // its commands
	n       int     // how many
	expect  [2]kind // the kinds of reply each may have
	replies [2]reply
	sent    time.Time

	// Under the conn's mu.
	state  waitState
	parked bool  // waiting on wake
	err    error // why the call failed, once done
	wake   chan struct{}
}

type waitState uint8

const (
	queued    waitState = iota
	reader              // has the reading
	done                // replies in, or err set
	abandoned           // its caller left; its replies are to be dropped
)

var waiters = sync.Pool{New: func() any {
	return &waiter{wake: make(chan struct{}, 1)}
}}

// do writes w's commands and waits for their replies, and reports whether
// it wrote them. It returns with w done, or with w's caller gone.
func (c *conn) do(ctx context.Context, w *waiter) (sent bool, err error) {
	w.state, w.err = queued, nil
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return false, c.err
	}
	if len(c.queue)-c.qh >= c.p.queueMax {
		if !c.reading && !c.writing {
			// Every call queued has left, and no one reads their
			// replies, nor will: a call that queued would read them,
			// but none may. End the connection, rather than refuse
			// every call on it from now on.
			c.fail(fmt.Errorf("%w: %d calls left unread", errFailed, len(c.queue)-c.qh))
			c.mu.Unlock()
			return false, c.err
		}
		c.mu.Unlock()
		return false, errBusy
	}
	now := time.Now()
	w.sent = now // until it is written
	if c.qh == len(c.queue) && !c.writing && now.Sub(c.last) > c.p.idle {
		// Redis may have closed the connection while it was idle
		// (restarted, or its timeout setting): find out before writing,
		// rather than fail the call after. Through TLS it cannot tell
		// (the server may send session tickets): the call then fails.
		if err := checkIdle(c.nc); err != nil {
			c.fail(fmt.Errorf("%w: %w", errFailed, err))
			c.mu.Unlock()
			return false, c.err
		}
	}
	c.last = now
	c.out = append(c.out, w.cmd...)
	c.queue = append(c.queue, w)
	if !c.writing && (!c.reading || c.unsent-c.qh < deferAt) {
		c.flush()
	}
	// Otherwise the writer writes w's commands, or the reader does once it
	// has read some of the replies it waits for (or before it leaves): they
	// then go with those of the calls that come meanwhile, in one write,
	// which Redis reads in one go.
	return true, c.await(ctx, w)
}

// flush writes out until it is empty; c.mu is held, and released while
// writing. A caller that finds no one reading, or fewer than deferAt
// calls awaiting replies, writes its commands itself; otherwise the
// reader writes them: before it waits for replies, so that
// it never waits while commands wait to be written, and before it hands
// the reading on or leaves. The commands of the calls that come while it
// waits are thus written when the replies it waited for come in, or when
// its deadline ends the wait, and no later.
func (c *conn) flush() {
	c.writing = true
	for len(c.out) > 0 && c.err == nil {
		b := c.out
		c.out, c.spare = c.spare[:0], nil
		// A call's stall is counted from when its commands were written.
		now := time.Now()
		for _, v := range c.queue[c.unsent:] {
			v.sent = now
		}
		c.unsent = len(c.queue)
		c.mu.Unlock()
		c.nc.SetWriteDeadline(now.Add(c.p.timeout))
		_, err := c.nc.Write(b)
		c.mu.Lock()
		if cap(b) <= maxKeep {
			c.spare = b
		}
		if err != nil {
			c.fail(fmt.Errorf("%w: write: %w", errFailed, err))
		}
	}
	c.writing = false
}

// await waits for w's replies, reading them if it gets the reading;
// c.mu is held, and released on return.
func (c *conn) await(ctx context.Context, w *waiter) error {
	for {
		switch {
		case w.state == done:
			c.mu.Unlock()
			return w.err
		case w.state == reader || !c.reading:
			w.state, c.reading = reader, true
			c.mu.Unlock()
			if err := c.read(ctx, w); err != nil {
				c.mu.Unlock()
				return err
			}
		default:
			w.parked = true
			c.mu.Unlock()
			select {
			case <-w.wake:
				c.mu.Lock()
			case <-ctx.Done():
				c.mu.Lock()
				if !w.parked {
					// Woken meanwhile: see what for.
					<-w.wake
					continue
				}
				w.parked = false
				w.state = abandoned
				c.mu.Unlock()
				return ctx.Err()
			}
		}
	}
}

// wake wakes w if it waits; c.mu is held.
func (c *conn) wake(w *waiter) {
	if w.parked {
		w.parked = false
		w.wake <- struct{}{}
	}
}

// read reads replies, with the reading held by w, until w's are in, and
// returns nil, or until w's caller gives up, and returns why. It is
// called without c.mu, and returns with it held.
func (c *conn) read(ctx context.Context, w *waiter) error {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(c.p.timeout)
	}
	var rerr error
	for {
		c.mu.Lock()
		if c.err == nil {
			if err := c.deliver(); err != nil {
				c.fail(err)
			}
		}
		if c.err != nil { // w is done too
			return nil
		}
		if w.state == done {
			if c.flushOut() {
				c.handOn()
			}
			return nil
		}
		if rerr != nil {
			if !errors.Is(rerr, os.ErrDeadlineExceeded) {
				c.fail(fmt.Errorf("%w: read: %w", errFailed, rerr))
				return nil
			}
			if overdue := time.Since(c.queue[c.qh].sent); overdue > c.p.stall {
				c.fail(fmt.Errorf("%w: no reply for %v", errFailed, overdue.Round(time.Millisecond)))
				return nil
			}
			// The replies read so far stay in c.in for the next reader.
			if !c.flushOut() {
				return nil
			}
			c.leave(w)
			return context.DeadlineExceeded
		}
		if err := ctx.Err(); err != nil {
			if !c.flushOut() {
				return nil
			}
			c.leave(w)
			return err
		}
		if !c.flushOut() {
			return nil
		}
		c.mu.Unlock()
		rerr = c.fill(deadline)
	}
}

// flushOut writes the commands waiting to be written, unless a writer is
// at it, and reports whether the connection still stands; c.mu is held,
// and released while writing. Called by the reader.
func (c *conn) flushOut() bool {
	if len(c.out) > 0 && !c.writing {
		c.flush()
	}
	return c.err == nil
}

// leave has w's caller give up while it has the reading; c.mu is held.
func (c *conn) leave(w *waiter) {
	w.state = abandoned
	c.handOn()
}

// handOn hands the reading to the first waiter still waiting, if any;
// c.mu is held. Waiters that left before it have their replies read by
// it, or by the next caller if none is waiting. It looks from c.next on:
// a waiter that stopped being queued never is again, and while Redis
// hangs thousands of calls may have left, which each hand-on would
// otherwise scan again, under the lock.
func (c *conn) handOn() {
	for i := max(c.next, c.qh); i < len(c.queue); i++ {
		if v := c.queue[i]; v.state == queued {
			c.next = i + 1
			v.state = reader
			c.wake(v)
			return
		}
	}
	c.next = len(c.queue)
	c.reading = false
}

// fill reads more into c.in, waiting until deadline at most.
func (c *conn) fill(deadline time.Time) error {
	if c.r > 0 {
		n := copy(c.in, c.in[c.r:])
		c.in, c.r = c.in[:n], 0
	}
	if len(c.in) == cap(c.in) {
		// parseReply fails on a reply of more than maxReply bytes, so
		// that this is bounded.
		c.in = append(c.in, make([]byte, readSize)...)[:len(c.in)]
	}
	c.nc.SetReadDeadline(deadline)
	n, err := c.nc.Read(c.in[len(c.in):cap(c.in)])
	c.in = c.in[:len(c.in)+n]
	if n > 0 && err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		err = nil // parse what came first
	}
	return err
}

// deliver parses the replies read and hands them to their waiters; c.mu
// is held.
func (c *conn) deliver() error {
	for {
		r, n, err := parseReply(c.in[c.r:])
		if err != nil || n == 0 {
			return err
		}
		if c.qh == c.unsent {
			// Past the calls written (which may be all of the queue).
			return fmt.Errorf("%w: a reply to no command", errProtocol)
		}
		c.r += n
		h := c.queue[c.qh]
		if r.kind&h.expect[c.ngot] == 0 {
			return fmt.Errorf("%w: %v in answer to command %d of a call", errProtocol, r, c.ngot+1)
		}
		c.got[c.ngot] = r
		if c.ngot++; c.ngot < h.n {
			continue
		}
		c.queue[c.qh] = nil
		c.qh++
		if c.qh == len(c.queue) {
			c.queue, c.qh, c.next, c.unsent = c.queue[:0], 0, 0, 0
		} else if c.qh >= 64 && c.qh*2 >= len(c.queue) {
			n := copy(c.queue, c.queue[c.qh:])
			clear(c.queue[n:])
			c.next = max(c.next-c.qh, 0)
			c.unsent -= c.qh
			c.queue, c.qh = c.queue[:n], 0
		}
		if h.state != abandoned {
			h.replies, h.state = c.got, done
			c.wake(h)
		}
		c.got, c.ngot = [2]reply{}, 0
	}
}

// fail closes the connection for err, failing every call on it; c.mu is
// held.
func (c *conn) fail(err error) {
	if c.err != nil {
		return
	}
	if !errors.Is(err, errFailed) {
		err = fmt.Errorf("%w: %w", errFailed, err)
	}
	c.err = err
	c.dead.Store(true)
	c.nc.Close()
	for _, w := range c.queue[c.qh:] {
		if w.state != abandoned {
			w.state, w.err = done, err
			c.wake(w)
		}
	}
	// in stays: a reader may be reading into it still.
	c.queue, c.qh, c.unsent, c.reading = nil, 0, 0, false
	c.out, c.spare = nil, nil
}

// checkIdle returns an error if the server closed nc or sent something
// unasked, without waiting. No reader may be reading nc. Through TLS
// (no syscall.Conn) it cannot tell.
func checkIdle(nc net.Conn) error {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	// A deadline past would fail the peek before it is tried.
	nc.SetReadDeadline(time.Time{})
	switch err := peek.Idle(rc); {
	case err == io.EOF:
		return fmt.Errorf("closed by the server: %w", io.EOF)
	case err == peek.ErrUnasked:
		return fmt.Errorf("%w: the server sent a reply to no command", errProtocol)
	default:
		return err
	}
}
