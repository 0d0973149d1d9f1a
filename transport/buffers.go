package transport

// bufferPool recycles the 32 KiB buffers ReverseProxy copies response bodies
// through; without one it allocates a fresh buffer for every request, which
// the garbage collector then has to clear and sweep.
//
// It is a free list on a buffered channel rather than package sync's Pool or a
// locked slice: the channel is the only shared thing, Get and Put never
// block (an empty list allocates, a full one drops the buffer), and no
// goroutine owns anything longer than one copy.
type bufferPool chan []byte

const bufferSize = 32 << 10

// newBufferPool keeps up to n idle buffers.
func newBufferPool(n int) bufferPool { return make(bufferPool, n) }

func (p bufferPool) Get() []byte {
	select {
	case b := <-p:
		return b
	default:
		return make([]byte, bufferSize)
	}
}

func (p bufferPool) Put(b []byte) {
	if cap(b) < bufferSize {
		return
	}
	select {
	case p <- b[:bufferSize]:
	default:
	}
}
