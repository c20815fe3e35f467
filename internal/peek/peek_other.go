//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package peek

import (
	"errors"
	"syscall"
)

// Supported reports whether Idle can tell on this system.
const Supported = false

// ErrUnasked is the error of Idle for a connection with bytes to read.
var ErrUnasked = errors.New("bytes nobody asked for")

// Idle cannot tell here, and returns nil.
func Idle(syscall.RawConn) error { return nil }
