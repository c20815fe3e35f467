package gateway

import (
	"net"
	"net/http"
	"testing"
	"time"
)

// connWriter is a ResponseWriter whose write deadline is that of a real
// TCP connection, as net/http's is, and which writes nothing.
type connWriter struct {
	h    http.Header
	conn net.Conn
}

func (w *connWriter) Header() http.Header                { return w.h }
func (w *connWriter) Write(p []byte) (int, error)        { return len(p), nil }
func (w *connWriter) WriteHeader(int)                    {}
func (w *connWriter) SetWriteDeadline(t time.Time) error { return w.conn.SetWriteDeadline(t) }

// BenchmarkInFlight is the cost the in-flight limit and the write timeout
// add to a request that writes a header and a body: compare limited (both)
// and limited-no-deadline with bare in the same run. On a busy machine
// compare CPU time (-benchtime Nx under time), not ns/op.
func BenchmarkInFlight(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	w := &connWriter{h: http.Header{}, conn: conn}
	r, _ := http.NewRequest("GET", "/", nil)
	body := []byte("ok")
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(200)
		w.Write(body)
	})
	l := newInFlight(DefaultMaxInFlight, DefaultWriteTimeout)
	for _, bc := range []struct {
		name string
		h    http.Handler
	}{
		{"bare", app},
		{"limited", l.handler(app, nil, nil)},
		{"limited-no-deadline", newInFlight(DefaultMaxInFlight, 0).handler(app, nil, nil)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				bc.h.ServeHTTP(w, r)
			}
		})
	}
}
