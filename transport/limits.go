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
// HAProxy's maxconn; they are served as soon as others close.
//
// Accept is called by one goroutine (http.Server's Serve loop), which owns
// warned; a connection's Close may run on any goroutine.
type limitListener struct {
	net.Listener
	slots   chan struct{} // one value per open connection
	closed  chan struct{} // closed by Close
	closing chan struct{} // holds the one right to close closed
	log     hclog.Logger
	warned  time.Time // when Accept last logged that the cap was reached
}

func newLimitListener(ln net.Listener, n int, log hclog.Logger) *limitListener {
	l := &limitListener{
		Listener: ln, slots: make(chan struct{}, n),
		closed: make(chan struct{}), closing: make(chan struct{}, 1), log: log,
	}
	l.closing <- struct{}{}
	return l
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.slots <- struct{}{}:
	default:
		if time.Since(l.warned) > time.Minute {
			l.warned = time.Now()
			l.log.Warn("connection limit reached; new connections wait", "max_conns", cap(l.slots))
		}
		select {
		case l.slots <- struct{}{}:
		case <-l.closed:
			return nil, net.ErrClosed
		}
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	lc := &limitConn{Conn: c, slots: l.slots, release: make(chan struct{}, 1)}
	lc.release <- struct{}{}
	return lc, nil
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
