package transport

import (
	"errors"
	"net"
	"time"

	"github.com/hashicorp/go-hclog"
)

// errBodyTooLarge is the request body's read error once it passes the
// proxy's MaxBody.
var errBodyTooLarge = errors.New("request body larger than the limit")

// limitListener caps the number of open client connections. Its slots
// channel is a counting semaphore: Accept puts a value in before accepting
// and the connection takes one out when it closes, so at most cap(slots)
// connections are open. At the cap, Accept waits and new connections queue
// in the kernel's accept backlog, as with nginx's worker_connections or
// HAProxy's maxconn; they are served as soon as others close. With idle
// set, Accept at the cap accepts the next connection, then asks idle to
// close the connection idle the longest for it (see IdleConns), and waits
// only if none is idle.
//
// Accept is called by one goroutine (http.Server's Serve loop, or a TLS
// listener's accept loop), which owns warned; a connection's Close may run
// on any goroutine.
type limitListener struct {
	net.Listener
	slots   chan struct{} // one value per open connection
	closed  chan struct{} // closed by Close
	closing chan struct{} // holds the one right to close closed
	idle    *IdleConns    // nil: at the cap, wait for a connection to close
	log     hclog.Logger
	warned  time.Time // when Accept last logged that the cap was reached
}

// newLimitListener caps ln at n connections; idle, if not nil, must be the
// IdleConns the server reports its connections' states to.
func newLimitListener(ln net.Listener, n int, idle *IdleConns, log hclog.Logger) *limitListener {
	l := &limitListener{
		Listener: ln, slots: make(chan struct{}, n),
		closed: make(chan struct{}), closing: make(chan struct{}, 1), idle: idle, log: log,
	}
	l.closing <- struct{}{}
	return l
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.slots <- struct{}{}:
	default:
		if l.idle != nil {
			return l.acceptAtCap()
		}
		if err := l.waitForSlot(false); err != nil {
			return nil, err
		}
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	return newLimitConn(c, l.slots), nil
}

// acceptAtCap accepts a connection while every slot is taken, and then
// makes room for it: an idle connection is closed only for a client that
// has arrived (the cap is often full of idle connections with no one
// waiting). Meanwhile it holds that one client; the others wait in the
// backlog.
func (l *limitListener) acceptAtCap() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	select {
	case l.slots <- struct{}{}: // one freed while Accept waited
	default:
		if err := l.waitForSlot(true); err != nil {
			_ = c.Close()
			return nil, err
		}
	}
	return newLimitConn(c, l.slots), nil
}

// waitForSlot takes a slot at the cap. With reclaim, it first asks idle to
// close the connection idle the longest for it, and if none is idle (so
// the first to become idle is closed for it) or the cap has no idle
// connections tracking, it waits for a slot to free, as it logs.
func (l *limitListener) waitForSlot(reclaim bool) error {
	freed := reclaim && l.idle.reclaim(l.closed)
	if !freed && time.Since(l.warned) > time.Minute {
		l.warned = time.Now()
		l.log.Warn("connection limit reached; new connections wait", "max_conns", cap(l.slots))
	}
	select {
	case l.slots <- struct{}{}:
	case <-l.closed:
		return net.ErrClosed
	}
	if reclaim && !freed {
		l.idle.unwant(l.closed)
	}
	return nil
}

// Close stops Accept, including one waiting for a slot.
func (l *limitListener) Close() error {
	select {
	case <-l.closing:
		close(l.closed)
	default:
	}
	return l.Listener.Close()
}

// newLimitConn returns c holding one of slots, which it has taken.
func newLimitConn(c net.Conn, slots chan struct{}) *limitConn {
	lc := &limitConn{Conn: c, slots: slots, release: make(chan struct{}, 1)}
	lc.release <- struct{}{}
	return lc
}

// limitConn gives its slot back when it is first closed.
type limitConn struct {
	net.Conn
	slots   chan struct{}
	release chan struct{} // holds the one right to give the slot back
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	select {
	case <-c.release:
		<-c.slots // never blocks: this connection's value is in there
	default:
	}
	return err
}

// CloseWrite half-closes the connection when the underlying one can.
func (c *limitConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.New("close write: not supported")
}
