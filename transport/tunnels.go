package transport

import (
	"bufio"
	"context"
	"errors"
	"net"
)

// Tunnels counts the open tunnels: client connections the proxy handed
// over to another protocol (a WebSocket or any HTTP/1.1 Upgrade) that are
// still relaying bytes. http.Server.Shutdown forgets a connection once it
// is hijacked, so without this count a graceful shutdown would cut every
// open WebSocket at once. Frontend.Shutdown waits on it instead, up to the
// grace period.
//
// The count belongs to one goroutine, Run, which the owner starts and
// stops with its context. Handlers tell it when a tunnel opens (Enter,
// before the connection is hijacked, so that no tunnel can slip between
// Shutdown's last look at the server and the first look here) and closes
// (Leave, when ReverseProxy.ServeHTTP returns: it relays the tunnel on the
// handler goroutine until both directions are done).
type Tunnels struct {
	enter   chan struct{}
	leave   chan struct{}
	waits   chan chan struct{} // closed by Run when no tunnel is open
	stopped chan struct{}      // closed by Run on its way out
}

// NewTunnels returns a counter that has not started yet.
func NewTunnels() *Tunnels {
	return &Tunnels{
		enter: make(chan struct{}), leave: make(chan struct{}),
		waits: make(chan chan struct{}), stopped: make(chan struct{}),
	}
}

// errTunnelsStopped is Wait's answer once Run has returned.
var errTunnelsStopped = errors.New("tunnel count stopped")

// Run keeps the count until ctx is done, then returns nil.
func (t *Tunnels) Run(ctx context.Context) error {
	defer close(t.stopped)
	open := 0
	var waiting []chan struct{}
	for {
		select {
		case <-t.enter:
			open++
		case <-t.leave:
			if open--; open == 0 {
				for _, w := range waiting {
					close(w)
				}
				waiting = nil
			}
		case w := <-t.waits:
			if open == 0 {
				close(w)
			} else {
				waiting = append(waiting, w)
			}
		case <-ctx.Done():
			return nil
		}
	}
}

// Enter counts a tunnel about to open.
func (t *Tunnels) Enter() {
	select {
	case t.enter <- struct{}{}:
	case <-t.stopped:
	}
}

// Leave counts a tunnel closed; every Enter has exactly one Leave.
func (t *Tunnels) Leave() {
	select {
	case t.leave <- struct{}{}:
	case <-t.stopped:
	}
}

// Wait returns nil once no tunnel is open, or ctx's error first.
func (t *Tunnels) Wait(ctx context.Context) error {
	idle := make(chan struct{})
	select {
	case t.waits <- idle:
	case <-ctx.Done():
		return ctx.Err()
	case <-t.stopped:
		return errTunnelsStopped
	}
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-t.stopped:
		return errTunnelsStopped
	}
}

// prefixConn is a hijacked client connection that first returns the bytes
// net/http had already buffered from it: a client may send its first
// frames right behind the upgrade request, and ReverseProxy relays from
// the connection itself, not from the buffer.
type prefixConn struct {
	net.Conn
	prefix []byte
}

// withBuffered returns c, preceded by what br holds.
func withBuffered(c net.Conn, br *bufio.Reader) net.Conn {
	n := br.Buffered()
	if n == 0 {
		return c
	}
	b, _ := br.Peek(n)
	return &prefixConn{Conn: c, prefix: append([]byte(nil), b...)}
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(p, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// CloseWrite relays a half-close: ReverseProxy passes one side's end of
// stream to the other only if both connections can half-close.
func (c *prefixConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.New("close write: not supported")
}
