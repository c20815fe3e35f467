package gateway

import "sync"

// bufferPool lends httputil.ReverseProxy the buffers it copies response
// bodies through, which it would otherwise make anew, 32 KiB, for every
// request.
type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte {
	if buf, ok := b.p.Get().(*[]byte); ok {
		return *buf
	}
	return make([]byte, 32<<10)
}

func (b *bufferPool) Put(buf []byte) { b.p.Put(&buf) }
