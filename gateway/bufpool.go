package gateway

import "sync"

// copyBufferSize is the size of the buffers of bufferPool.
const copyBufferSize = 32 << 10

// bufferPool lends httputil.ReverseProxy the buffers it copies response
// bodies through, which it would otherwise make anew, 32 KiB, for every
// request. It pools pointers to arrays, which a slice converts to without
// allocating: a *[]byte would cost an allocation on every Put.
type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte {
	if buf, ok := b.p.Get().(*[copyBufferSize]byte); ok {
		return buf[:]
	}
	return new([copyBufferSize]byte)[:]
}

// Put takes back a buffer of Get (any other, shorter than
// copyBufferSize, is left to the garbage collector).
func (b *bufferPool) Put(buf []byte) {
	if cap(buf) >= copyBufferSize {
		b.p.Put((*[copyBufferSize]byte)(buf[:copyBufferSize]))
	}
}
