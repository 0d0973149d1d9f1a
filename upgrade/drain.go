package upgrade

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
)

// ErrDrainerStopped is returned by Drain once the Drainer's Run has ended.
var ErrDrainerStopped = errors.New("drainer stopped")

// A Drainer lets a process that has handed its sockets over finish its
// client connections without breaking a request, as HAProxy's
// idle-close-on-response does. http.Server.Shutdown closes idle keep-alive
// connections at once, and a client may have sent its next request on one
// just then: a POST lost that way cannot be retried by the client. So from
// Drain on, every response carries "Connection: close": a busy connection
// closes after the request it serves, an idle one after the next request
// it gets (or when its client closes it, or when the grace period ends).
// Drain's channel is closed when no connection is left.
//
// Its goroutine, Run, owns the count of open connections; net/http's
// goroutines report openings and closings to it by ConnState, and
// handlers learn that draining has begun from a channel Run closes.
type Drainer struct {
	events   chan int           // +1 a connection opened, -1 it closed
	waits    chan chan struct{} // Drain's: closed when none is open
	draining chan struct{}      // closed by Run on the first Drain
	stopped  chan struct{}      // closed by Run on its way out
}

// NewDrainer returns a Drainer; start its Run before the servers.
func NewDrainer() *Drainer {
	return &Drainer{
		events: make(chan int), waits: make(chan chan struct{}),
		draining: make(chan struct{}), stopped: make(chan struct{}),
	}
}

// Run counts connections until ctx ends. Start it under the owner's
// WaitGroup, with a context that outlives the servers' shutdown.
func (d *Drainer) Run(ctx context.Context) {
	defer close(d.stopped)
	open, draining := 0, false
	var waiting []chan struct{}
	for {
		select {
		case <-ctx.Done():
			return
		case n := <-d.events:
			open += n
		case w := <-d.waits:
			if !draining {
				close(d.draining)
				draining = true
			}
			waiting = append(waiting, w)
		}
		if open == 0 && len(waiting) > 0 {
			for _, w := range waiting {
				close(w)
			}
			waiting = waiting[:0]
		}
	}
}

// ConnState is for http.Server.ConnState: it counts the server's
// connections. A hijacked connection (a WebSocket) leaves the count: its
// handler owns it.
func (d *Drainer) ConnState(_ net.Conn, s http.ConnState) {
	n := 0
	switch s {
	case http.StateNew:
		n = 1
	case http.StateClosed, http.StateHijacked:
		n = -1
	default:
		return
	}
	select {
	case d.events <- n:
	case <-d.stopped:
	}
}

// Handler wraps h so that, once draining, every response asks the client
// to close the connection, and net/http closes it after the response. The
// question is asked when the response's header goes out, so a request
// that was in flight when draining began gets it too.
func (d *Drainer) Handler(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(&closingWriter{ResponseWriter: w, draining: d.draining}, r)
	})
}

// closingWriter adds "Connection: close" to a response whose header goes
// out once draining has begun. It passes Flush and Hijack through, and
// Unwrap for http.ResponseController.
type closingWriter struct {
	http.ResponseWriter
	draining    <-chan struct{}
	wroteHeader bool
}

// header decides, once, just before the final header is written.
func (w *closingWriter) header(code int) {
	if w.wroteHeader || code < 200 {
		return // 1xx informational responses come first
	}
	w.wroteHeader = true
	if code == http.StatusSwitchingProtocols {
		return
	}
	select {
	case <-w.draining:
		w.Header().Set("Connection", "close")
	default:
	}
}

func (w *closingWriter) WriteHeader(code int) {
	w.header(code)
	w.ResponseWriter.WriteHeader(code)
}

func (w *closingWriter) Write(p []byte) (int, error) {
	w.header(http.StatusOK)
	return w.ResponseWriter.Write(p)
}

func (w *closingWriter) Flush() {
	w.header(http.StatusOK)
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *closingWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	w.wroteHeader = true
	return http.NewResponseController(w.ResponseWriter).Hijack()
}

func (w *closingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Drain starts draining and returns a channel that is closed once no
// connection is open. Close the listeners after calling it.
func (d *Drainer) Drain(ctx context.Context) (<-chan struct{}, error) {
	w := make(chan struct{})
	select {
	case d.waits <- w:
		return w, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-d.stopped:
		return nil, ErrDrainerStopped
	}
}
