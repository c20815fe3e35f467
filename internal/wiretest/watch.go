package wiretest

import (
	"bytes"
	"context"
	"net"
	"sync"
)

// Watch counts the writes made on the connections a dial function makes,
// and keeps the bytes written: for tests of how many writes a request
// costs, or of every byte that left.
type Watch struct {
	mu     sync.Mutex
	writes int
	sent   bytes.Buffer
}

// Dial wraps dial (a Transport's DialContext) so that w watches the
// connections it makes.
func (w *Watch) Dial(dial func(ctx context.Context, network, addr string) (net.Conn, error)) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return watched{c, w}, nil
	}
}

// Writes returns how many writes were made so far.
func (w *Watch) Writes() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.writes
}

// Take returns the bytes written since the last Take.
func (w *Watch) Take() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.sent.String()
	w.sent.Reset()
	return s
}

type watched struct {
	net.Conn
	w *Watch
}

func (c watched) Write(p []byte) (int, error) {
	c.w.mu.Lock()
	c.w.writes++
	c.w.sent.Write(p)
	c.w.mu.Unlock()
	return c.Conn.Write(p)
}
