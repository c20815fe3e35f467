//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package gateway

import (
	"sync"
	"syscall"
)

const livenessSupported = true

// alive reports whether an idle connection is still open and silent: a
// peek that does not wait finds nothing to read yet. End of stream (the
// upstream closed it), an error, or bytes nobody asked for mean it is not
// to be used.
func alive(raw syscall.RawConn) bool {
	if raw == nil {
		return false
	}
	p := peekers.Get().(*peeker)
	p.ok = false
	err := raw.Read(p.fn)
	ok := err == nil && p.ok
	peekers.Put(p)
	return ok
}

// A peeker is the function alive hands RawConn.Read, made once with what
// it writes to: a closure made for each call would be an allocation per
// request. RawConn.Read returns only once fn has returned, so a peeker is
// back in the pool only when nothing uses it.
type peeker struct {
	buf [1]byte
	ok  bool
	fn  func(fd uintptr) bool
}

var peekers = sync.Pool{New: func() any {
	p := new(peeker)
	p.fn = p.peek
	return p
}}

func (p *peeker) peek(fd uintptr) bool {
	_, _, err := syscall.Recvfrom(int(fd), p.buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	p.ok = err == syscall.EAGAIN || err == syscall.EWOULDBLOCK
	return true // never wait
}
