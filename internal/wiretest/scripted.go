package wiretest

import (
	"io"
	"net"
	"net/http"
	"testing"
)

// Scripted is a loopback HTTP/1.1 server written on raw sockets, so that
// a test decides exactly what each connection gets: what is written back,
// when, and whether the connection stays open. It records the requests it
// reads, each exactly as it arrived, as [Upstream] does.
type Scripted struct {
	*listener
	received
}

// NewScripted starts a Scripted on loopback, stopped when t ends. For each
// request it reads (with http.ReadRequest, its body read to the end), it
// calls serve with the connection's number (from 1), the connection and
// the request; serve writes the answer on c, and the connection is closed
// once serve returns false or a request cannot be read. serve is called
// on the connection's own goroutine; when t ends, NewScripted waits for
// every call to return.
func NewScripted(t testing.TB, serve func(conn int, c net.Conn, req *http.Request) bool) *Scripted {
	t.Helper()
	s := &Scripted{}
	s.listener = listen(t, func(n int, c net.Conn) {
		r := newTee(c)
		for {
			req, err := http.ReadRequest(r.br)
			if err != nil {
				return
			}
			io.Copy(io.Discard, req.Body)
			s.add(r.take())
			if !serve(n, c, req) {
				return
			}
		}
	})
	return s
}
