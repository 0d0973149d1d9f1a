package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/hashicorp/go-hclog"
)

// IdleConns lets a new client in at the connection cap (--max-conns) by
// closing an idle keep-alive connection, as nginx does with its "reusable
// connections" (ngx_drain_connections) when worker_connections run out.
// Without it, a cap filled by idle keep-alive clients locks new clients
// out until the idle timeout frees a slot.
//
// A connection is idle between requests: HTTP/1.x after a response, with
// no request read yet; HTTP/2 with no stream open (net/http's StateIdle).
// A connection with a request in flight (StateActive), a hijacked one
// (a WebSocket or other tunnel) and a new one that has not sent its first
// request (StateNew: the request head timeout bounds it) are never closed.
// When the limit listener finds every slot taken it asks for room
// (reclaim): the connection idle the longest is closed at once, which
// frees its slot. If none is idle, the listener waits as before, and the
// first connection to become idle while it waits is closed for it.
//
// A client may send a request on its idle connection just as it is
// closed; as with any keep-alive connection closed by a server (RFC 9112,
// section 9.3.1), clients retry such a request if it is idempotent. Taking
// the longest idle first makes that unlikely.
//
// Its goroutine, Run, owns every connection's state: net/http's goroutines
// report each change by ConnState, the limit listener's Accept asks for
// room by message, and the admin API asks for the count by message. The
// owner (the edge in package main) starts Run before the Frontend serves
// and cancels its context after the Frontend has shut down; once Run has
// ended, ConnState and the listener's requests return at once (at the cap
// new connections then simply wait).
type IdleConns struct {
	// events carries every connection's changes to Run, which takes them
	// in batches (see Run); full wakes Run when a change finds it full.
	events  chan connEvent
	full    chan struct{} // capacity 1
	wants   chan want     // the listener's reclaim
	unwants chan struct{} // the listener got its slot: stop closing for it
	counts  chan chan uint64
	stopped chan struct{} // closed by Run on its way out
	log     hclog.Logger
}

// IdleConnsOptions configures an IdleConns.
type IdleConnsOptions struct {
	// Logger gets a warning, at most once a minute, when idle connections
	// were closed to make room. nil: no logging.
	Logger hclog.Logger
}

// NewIdleConns returns an IdleConns whose Run has not started.
func NewIdleConns(o IdleConnsOptions) *IdleConns {
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
	return &IdleConns{
		events: make(chan connEvent, eventBatch), full: make(chan struct{}, 1),
		wants: make(chan want), unwants: make(chan struct{}),
		counts: make(chan chan uint64), stopped: make(chan struct{}), log: o.Logger,
	}
}

// eventBatch is how many connection changes wait in events before Run
// takes them: every request makes two (active, then idle), and Run wakes
// once per eventBatch of them, not once per change, unless the listener
// needs room (see Run).
const eventBatch = 4096

// want is the limit listener's request for room.
type want struct {
	reply  chan<- bool     // whether a slot was freed; capacity 1
	closed <-chan struct{} // the listener's: closed, it waits no more
}

// connEvent is one ConnState call.
type connEvent struct {
	c     net.Conn // as net/http knows it
	state http.ConnState
}

// idleConn is one tracked connection. The idle ones form a list, oldest
// (idle the longest) first.
type idleConn struct {
	close      func() error // closes the connection under every layer above the cap
	idle       bool         // in the idle list
	prev, next *idleConn
}

// idleList is a doubly linked list of idle connections, in the order they
// became idle.
type idleList struct {
	head, tail *idleConn
	n          int
}

func (l *idleList) push(e *idleConn) {
	e.idle, e.prev, e.next = true, l.tail, nil
	if l.tail != nil {
		l.tail.next = e
	} else {
		l.head = e
	}
	l.tail = e
	l.n++
}

func (l *idleList) remove(e *idleConn) {
	if !e.idle {
		return
	}
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		l.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		l.tail = e.prev
	}
	e.idle, e.prev, e.next = false, nil, nil
	l.n--
}

// Run tracks the connections until ctx is done, then returns nil. The
// connections it tracked stay open.
func (ic *IdleConns) Run(ctx context.Context) error {
	defer close(ic.stopped)
	conns := map[net.Conn]*idleConn{}
	var idle idleList
	var (
		wanting  bool            // the listener waits for a slot: close the next idle connection
		wantGone <-chan struct{} // the waiting listener's closed: then it waits no more
		closed   uint64          // connections closed to make room, ever
		unlogged int             // of which not yet logged
		logged   time.Time       // when the last warning went out
	)
	reclaim := func() bool {
		e := idle.head
		if e == nil {
			return false
		}
		idle.remove(e)
		_ = e.close() // frees the slot now; net/http's read fails and it reports StateClosed
		closed++
		unlogged++
		if time.Since(logged) >= time.Minute {
			ic.log.Warn("connection limit reached; closed idle keep-alive connections to make room",
				"closed", unlogged, "idle_left", idle.n)
			logged, unlogged = time.Now(), 0
		}
		return true
	}
	apply := func(ev connEvent) {
		e := conns[ev.c]
		switch ev.state {
		case http.StateNew:
			if e == nil {
				conns[ev.c] = &idleConn{close: closerOf(ev.c)}
			}
		case http.StateActive:
			if e != nil {
				idle.remove(e)
			}
		case http.StateIdle:
			if e != nil && !e.idle {
				idle.push(e) // closed by settle if the listener waits
			}
		case http.StateHijacked, http.StateClosed:
			if e != nil {
				idle.remove(e)
				delete(conns, ev.c)
			}
		}
	}
	// drain applies the changes waiting in events, until it finds none:
	// also those of ConnState calls that found it full and wait for room
	// (each receive lets one in), which happened before Run looked.
	drain := func() {
		for {
			select {
			case ev := <-ic.events:
				apply(ev)
			default:
				return
			}
		}
	}
	// settle takes every change waiting, then, if the listener waits for
	// a slot, closes the connection idle the longest, if one is: not one
	// whose next request began after its StateIdle, a change still in
	// the buffer.
	settle := func() {
		drain()
		if wanting {
			wanting = !reclaim()
		}
	}
	for {
		// Changes wait in events until it fills or the listener asks for
		// room, when Run takes them all first: the state is only read
		// then, so it need not be current before. While the listener
		// waits for a slot, Run takes each change as it comes, to close
		// the first connection that becomes idle.
		var each <-chan connEvent
		var gone <-chan struct{}
		if wanting {
			each, gone = ic.events, wantGone
		}
		select {
		case ev := <-each:
			apply(ev)
			settle()
		case <-ic.full:
			settle()
		case w := <-ic.wants:
			drain()
			freed := reclaim()
			wanting, wantGone = !freed, w.closed
			w.reply <- freed // buffered
		case <-ic.unwants:
			wanting = false
		case <-gone: // closed (a hand-over, shutdown) without its unwant
			wanting = false
		case reply := <-ic.counts:
			reply <- closed // buffered
		case <-ctx.Done():
			return nil
		}
	}
}

// ConnState is for http.Server.ConnState (NewFrontend sets it when
// FrontendOptions.IdleConns is set): it reports c's change to Run.
//
// The change waits in a buffer, so this wakes nobody, except when the
// buffer is full: then it wakes Run to take them all, and waits for room.
func (ic *IdleConns) ConnState(c net.Conn, s http.ConnState) {
	ev := connEvent{c: c, state: s}
	select {
	case ic.events <- ev:
		return
	default:
	}
	select {
	case ic.full <- struct{}{}:
	default: // Run has been woken already
	}
	select {
	case ic.events <- ev:
	case <-ic.stopped:
	}
}

// reclaim asks Run to close the connection idle the longest, and reports
// whether it did (its slot is then free). If none is idle, Run closes the
// next one to become idle, until unwant or until closed, the listener's,
// is closed; closed also ends this wait.
func (ic *IdleConns) reclaim(closed <-chan struct{}) bool {
	reply := make(chan bool, 1)
	select {
	case ic.wants <- want{reply: reply, closed: closed}:
	case <-ic.stopped:
		return false
	case <-closed:
		return false
	}
	select {
	case freed := <-reply:
		return freed
	case <-ic.stopped:
		return false
	case <-closed:
		return false
	}
}

// unwant tells Run that the listener has its slot.
func (ic *IdleConns) unwant(closed <-chan struct{}) {
	select {
	case ic.unwants <- struct{}{}:
	case <-ic.stopped:
	case <-closed:
	}
}

// errIdleConnsStopped is Reclaimed's answer once Run has returned.
var errIdleConnsStopped = errors.New("idle connection tracker stopped")

// Reclaimed returns how many idle connections were closed to make room,
// for the roundhouse_idle_connections_reclaimed_total metric.
func (ic *IdleConns) Reclaimed(ctx context.Context) (uint64, error) {
	reply := make(chan uint64, 1)
	select {
	case ic.counts <- reply:
	case <-ic.stopped:
		return 0, errIdleConnsStopped
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	select {
	case n := <-reply:
		return n, nil
	case <-ic.stopped:
		return 0, errIdleConnsStopped
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// closerOf returns what closes c from below the layers that may block on
// a close: the limit listener's connection under TLS (whose Close writes
// an alert) and the framing guard. Closing there never waits, gives the
// slot back at once, and net/http, whose read fails, closes the rest.
// A connection of another shape is closed as it is.
func closerOf(c net.Conn) func() error {
	for {
		switch v := c.(type) {
		case *limitConn:
			return v.Close
		case *tlsGuardConn:
			c = v.tls
		case *guardConn:
			c = v.Conn
		case *tls.Conn:
			c = v.NetConn()
		default:
			return c.Close
		}
	}
}
