package redis

import (
	"net"
	"sync"
	"testing"
)

// A proxy forwards TCP connections from a loopback port to a target, and
// can cut them or hold their traffic, so that tests can take Redis away from
// a store without touching the shared server.
type proxy struct {
	t      *testing.T
	target string
	addr   string
	wg     sync.WaitGroup

	mu    sync.Mutex
	ln    net.Listener // nil while cut
	conns map[net.Conn]struct{}
	gate  chan struct{} // closed while traffic flows
}

func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("proxy: %v", err)
	}
	p := &proxy{
		t:      t,
		target: target,
		addr:   ln.Addr().String(),
		conns:  make(map[net.Conn]struct{}),
		gate:   make(chan struct{}),
	}
	close(p.gate)
	p.serve(ln)
	t.Cleanup(func() {
		p.release()
		p.cut()
		p.wg.Wait()
	})
	return p
}

func (p *proxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	p.wg.Go(func() {
		for {
			down, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", p.target)
			if err != nil {
				down.Close()
				continue
			}
			if !p.track(down, up) {
				continue
			}
			p.wg.Go(func() { p.forward(up, down) })
			p.wg.Go(func() { p.forward(down, up) })
		}
	})
}

// track records conns for cut, or closes them if the proxy was cut since
// they were accepted.
func (p *proxy) track(conns ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range conns {
		if p.ln == nil {
			c.Close()
		} else {
			p.conns[c] = struct{}{}
		}
	}
	return p.ln != nil
}

func (p *proxy) forward(dst, src net.Conn) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			gate := p.gate
			p.mu.Unlock()
			<-gate
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// cut closes the listener and every connection, as a server that went down
// would.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

// restore listens again on the same port.
func (p *proxy) restore() {
	p.t.Helper()
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		p.t.Fatalf("proxy: listen again on %s: %v", p.addr, err)
	}
	p.serve(ln)
}

// hold stops traffic, as a server that hangs would, keeping the connections
// open; release lets it flow again.
func (p *proxy) hold() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.gate:
		p.gate = make(chan struct{})
	default:
	}
}

func (p *proxy) release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.gate:
	default:
		close(p.gate)
	}
}
