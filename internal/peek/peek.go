//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

// Package peek tells whether an idle connection is still open and silent,
// without waiting and without taking a byte from it: a pooled connection
// that the other end closed, or on which it sent something unasked, is
// not to be used again.
package peek

import (
	"errors"
	"io"
	"sync"
	"syscall"
)

// Supported reports whether Idle can tell on this system.
const Supported = true

// ErrUnasked is the error of Idle for a connection with bytes to read.
var ErrUnasked = errors.New("bytes nobody asked for")

// Idle peeks at the connection of raw (MSG_PEEK and MSG_DONTWAIT) and
// returns nil if it has nothing to read yet, io.EOF if the other end
// closed it, ErrUnasked if bytes wait, or the error of the peek. No one
// else may be reading the connection, and its read deadline must not have
// passed (the peek would then fail with a timeout).
func Idle(raw syscall.RawConn) error {
	p := peekers.Get().(*peeker)
	defer peekers.Put(p)
	if err := raw.Read(p.fn); err != nil {
		return err
	}
	switch {
	case p.err == syscall.EAGAIN || p.err == syscall.EWOULDBLOCK:
		return nil
	case p.err != nil:
		return p.err
	case p.n == 0:
		return io.EOF
	}
	return ErrUnasked
}

// A peeker is the function Idle hands RawConn.Read, made once with what
// it writes to: a closure made for each call would be an allocation per
// call. RawConn.Read returns only once fn has returned, so a peeker is
// back in the pool only when nothing uses it.
type peeker struct {
	buf [1]byte
	n   int
	err error
	fn  func(fd uintptr) bool
}

var peekers = sync.Pool{New: func() any {
	p := new(peeker)
	p.fn = p.peek
	return p
}}

func (p *peeker) peek(fd uintptr) bool {
	for {
		p.n, _, p.err = syscall.Recvfrom(int(fd), p.buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		if p.err != syscall.EINTR {
			return true // never wait
		}
	}
}
