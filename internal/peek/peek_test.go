package peek_test

import (
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/signet-dev/signet/internal/peek"
)

// TestIdle checks what Idle finds on a real loopback connection: nothing
// while the other end is silent, ErrUnasked once it writes (and the byte
// is still there to read), io.EOF once it closes; and that it allocates
// nothing on the way (the gateway peeks before every reuse; under the
// race detector sync.Pool drops items at random, so not counted there).
func TestIdle(t *testing.T) {
	if !peek.Supported {
		t.Skip("peek is not supported on this system")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	other, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := c.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	if err := peek.Idle(raw); err != nil {
		t.Fatalf("silent connection: %v", err)
	}
	if n := testing.AllocsPerRun(100, func() { peek.Idle(raw) }); n != 0 && !raceEnabled {
		t.Errorf("Idle allocates %v times a call", n)
	}
	other.Write([]byte("x"))
	eventually(t, func() bool { return errors.Is(peek.Idle(raw), peek.ErrUnasked) })
	b := make([]byte, 1)
	if n, err := c.Read(b); n != 1 || b[0] != 'x' {
		t.Fatalf("the byte peeked at was taken: read %d, %v", n, err)
	}
	other.Close()
	eventually(t, func() bool { return peek.Idle(raw) == io.EOF })
}

func eventually(t *testing.T, cond func() bool) {
	t.Helper()
	for range 200 {
		if cond() {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("condition never met")
}
