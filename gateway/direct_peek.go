//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package gateway

import "syscall"

const livenessSupported = true

// alive reports whether an idle connection is still open and silent: a
// peek that does not wait finds nothing to read yet. End of stream (the
// upstream closed it), an error, or bytes nobody asked for mean it is not
// to be used.
func alive(raw syscall.RawConn) bool {
	if raw == nil {
		return false
	}
	var buf [1]byte
	ok := false
	err := raw.Read(func(fd uintptr) bool {
		_, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		ok = err == syscall.EAGAIN || err == syscall.EWOULDBLOCK
		return true // never wait
	})
	return err == nil && ok
}
