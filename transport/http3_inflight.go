package transport

import (
	"context"
	"net/http"
	"time"
)

// inFlight counts the HTTP/3 requests being served, so that a process
// that has handed its UDP socket over can close its QUIC connections as
// soon as none is busy (see HTTP3.HandOver). Its goroutine, run, owns the
// count; handlers report their start and end by message.
type inFlight struct {
	begin, end chan struct{}
	idle       chan idleWait // see whenIdleFor
	stopped    chan struct{} // closed by run on its way out
}

func newInFlight() *inFlight {
	return &inFlight{begin: make(chan struct{}), end: make(chan struct{}),
		idle: make(chan idleWait), stopped: make(chan struct{})}
}

// idleWait is a whenIdleFor call: done is closed once no request has been
// in flight for d.
type idleWait struct {
	d    time.Duration
	done chan struct{}
}

// run counts until ctx ends. While a whenIdleFor waits, a timer runs
// whenever nothing is in flight; a request stops it.
func (f *inFlight) run(ctx context.Context) {
	defer close(f.stopped)
	n := 0
	var waiting *idleWait // at most one: HTTP3's shutdown is the only caller
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-f.begin:
			n++
			timer.Stop()
		case <-f.end:
			n--
		case w := <-f.idle:
			waiting = &w
		case <-timer.C:
			close(waiting.done)
			waiting = nil
			continue
		case <-ctx.Done():
			return
		}
		if n == 0 && waiting != nil {
			timer.Reset(waiting.d)
		}
	}
}

// handler wraps h so that each request is counted while it is served.
func (f *inFlight) handler(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case f.begin <- struct{}{}:
		case <-f.stopped:
		}
		defer func() {
			select {
			case f.end <- struct{}{}:
			case <-f.stopped:
			}
		}()
		h.ServeHTTP(w, r)
	})
}

// whenIdleFor returns a channel closed once no request has been in flight
// for d (or the count has stopped). One call at a time.
func (f *inFlight) whenIdleFor(d time.Duration) <-chan struct{} {
	w := idleWait{d: d, done: make(chan struct{})}
	select {
	case f.idle <- w:
	case <-f.stopped:
		close(w.done)
	}
	return w.done
}
