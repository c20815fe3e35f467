//go:build linux || darwin || freebsd || netbsd || openbsd

package redis

import (
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"time"
)

// checkIdle returns an error if the server closed nc or sent something
// unasked, without waiting: MSG_PEEK and MSG_DONTWAIT. No reader may be
// reading nc.
func checkIdle(nc net.Conn) error {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	// A deadline past would fail the read before it is tried.
	nc.SetReadDeadline(time.Time{})
	var n int
	var rerr error
	if err := rc.Read(func(fd uintptr) bool {
		var b [1]byte
		n, _, rerr = syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		return true
	}); err != nil {
		return err
	}
	switch {
	case errors.Is(rerr, syscall.EAGAIN) || errors.Is(rerr, syscall.EWOULDBLOCK) || errors.Is(rerr, syscall.EINTR):
		return nil
	case rerr != nil:
		return rerr
	case n == 0:
		return fmt.Errorf("closed by the server: %w", io.EOF)
	}
	return fmt.Errorf("%w: the server sent a reply to no command", errProtocol)
}
