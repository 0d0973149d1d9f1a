package transport

import (
	"errors"
	"fmt"
	"math"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
)

// ParseSize parses a byte count such as "10MiB": a non-negative integer and
// an optional unit, B, kB (or KB), MB, GB, TB (powers of 1000) or KiB,
// MiB, GiB, TiB (powers of 1024), in any letter case. A bare number is
// bytes. Single-letter units ("10m") are refused as ambiguous.
func ParseSize(s string) (int64, error) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, fmt.Errorf("%q: want a size such as 1048576, 512KiB, 10MiB or 10MB", s)
	}
	n, err := strconv.ParseInt(s[:i], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q: too large", s)
	}
	unit, ok := sizeUnits[strings.ToLower(s[i:])]
	if !ok {
		return 0, fmt.Errorf("%q: unknown unit %q (want B, KB, MB, GB, TB, KiB, MiB, GiB or TiB)", s, s[i:])
	}
	if n > math.MaxInt64/unit {
		return 0, fmt.Errorf("%q: too large", s)
	}
	return n * unit, nil
}

var sizeUnits = map[string]int64{
	"": 1, "b": 1,
	"kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12,
	"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
}

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
