//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package gateway

import "syscall"

// Without a way to check idle connections, the direct transport is not
// used.
const livenessSupported = false

func alive(syscall.RawConn) bool { return false }
