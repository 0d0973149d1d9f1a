package transport

import (
	"errors"
	"io"
	"net/http"
	"time"
)

// replayableBody wraps a client's request body for the whole exchange, across
// attempts, so that a retry can send it again:
//
//   - http.Transport closes a request body when an attempt fails; the
//     wrapper ignores that Close (net/http's server closes the real body
//     after the handler returns), so a body that no attempt has read is
//     still intact for the next backend;
//   - for requests that are safe to repeat it also keeps the bytes it has
//     read, up to keep, so that even a body already sent to a backend that
//     then failed can be sent again, whole, to another.
//
// A positive max caps the body: the read that would pass it returns the
// bytes up to the cap and errBodyTooLarge. The body is counted as it
// streams, never buffered beyond keep.
//
// A positive timeout bounds the wait for each read's bytes (nginx's
// client_body_timeout): before every read from the client it moves the
// request's read deadline timeout ahead, and clears it after the read, so
// that nothing waits under it between reads (over HTTP/2 the deadline is a
// timer that would fire on its own) and nothing that reads the connection
// later inherits it. A client that stalls makes the read fail with
// os.ErrDeadlineExceeded.
//
// The deadline is set through the request's http.ResponseController,
// which must not be used once the handler has returned, while the
// transport's writer may still be reading the body (a backend that answered
// early). So the controller moves by message: lease holds it while no read
// is in progress; a read takes it and gives it back; reclaim, on the
// handler goroutine before it returns, takes it for good.
//
// Shared memory, by convention. The body's fields have no owner goroutine
// and no channel guards them: two goroutines take turns with them, and
// net/http's transport decides the turns. This type relies on that order,
// which net/http's code keeps but its documentation does not promise
// (http.RoundTripper only promises to Close the body, "possibly after
// RoundTrip returns"; Close here does nothing):
//
//   - During an attempt the transport's writer reads the body: for HTTP/1
//     the connection's writeLoop goroutine, for HTTP/2 the stream's own
//     goroutine (doRequest). RoundTrip hands it the request, so all the
//     handler goroutine did before (wrapBody, rewind) is visible to it.
//   - Between attempts the handler goroutine reads and writes the fields:
//     retryable looks at read and lost, rewind resets pos. It does so only after RoundTrip returned an error, and
//     RoundTrip waits for the writer first: for HTTP/1, persistConn's
//     roundTrip waits for writeLoop to end before returning any error
//     (mapRoundTripError; the response header timeout only starts after
//     the write finished); for HTTP/2, RoundTrip waits for the stream's
//     goroutine to end (cs.donec) when the stream is aborted. GetBody
//     (rewind), which the transport calls to resend on a fresh
//     connection, runs inside RoundTrip on the handler goroutine, after
//     the same wait.
//   - A response may arrive while the writer is still reading (a backend
//     that answers before the upload ends). The attempt is then never
//     retried, and the handler touches the body only through lease (a
//     channel, below) and by closing the real body in release, which
//     makes the writer's next Read fail.
//   - For HTTP/2, when the request's context ends (the client went away,
//     the request timeout, or a failed read of the client's connection,
//     since net/http's server then cancels the request's context before
//     that read returns), RoundTrip returns as soon as it has asked for the
//     body to be closed, and the writer may still be inside Read. The
//     order does not hold then, so the one thing the handler wants to know
//     at that moment, the client's read error, moves by message: Read
//     sends it on failed (capacity 1, sent once), and recordError takes it
//     with failure. The outcome is then clientGone or timedOut, never
//     retried, so no other field is looked at. Against an HTTP/2 backend,
//     a body whose read fails on the connection (BodyTimeout's deadline,
//     the framing guard) may so be logged as 499, where an HTTP/1 backend
//     gives 408 or 400: the error had not been sent yet.
type replayableBody struct {
	src     io.ReadCloser
	timeout time.Duration                 // for each read; 0: none
	lease   chan *http.ResponseController // capacity 1: the controller, while no read holds it
	keep    int                           // bytes kept for replay; 0 keeps none
	max     int64                         // bytes allowed; 0: no limit
	kept    []byte                        // every byte read from src so far, while replayable
	pos     int                           // the current attempt's position within kept
	read    int64                         // bytes read from src
	lost    bool                          // bytes were read that are not kept: no replay
	err     error                         // the first read error other than io.EOF, the client's fault; the writer's
	failed  chan error                    // capacity 1: err, sent once by the writer, for failure
	seen    error                         // what failure took from failed; the handler's
}

func newReplayableBody(src io.ReadCloser, keep int, max int64) *replayableBody {
	return &replayableBody{src: src, keep: keep, max: max, failed: make(chan error, 1)}
}

// failure returns the client's read error (not io.EOF) once the writer has
// sent it, nil before; the handler goroutine's.
func (b *replayableBody) failure() error {
	if b.seen == nil {
		select {
		case b.seen = <-b.failed:
		default:
		}
	}
	return b.seen
}

// readSrc reads from the client, within the timeout if there is one.
func (b *replayableBody) readSrc(p []byte) (int, error) {
	if b.timeout <= 0 {
		return b.src.Read(p)
	}
	var rc *http.ResponseController
	select {
	case rc = <-b.lease:
	default: // the handler has taken the controller back: it has returned
		return b.src.Read(p)
	}
	_ = rc.SetReadDeadline(time.Now().Add(b.timeout)) // unsupported: no timeout
	n, err := b.src.Read(p)
	_ = rc.SetReadDeadline(time.Time{}) // between reads, nothing is the client's fault
	b.lease <- rc                       // capacity 1, empty: never blocks
	return n, err
}

// reclaim takes the controller back for good, on the handler goroutine
// before it returns (rc is the handler's own): no read deadline is set
// after that. A read in progress is cut short to hand it back; the wait is
// not given up on the request's context, since the handler must not return
// while a read may still use the controller. It is short: the deadline is
// set again every few milliseconds, in case the read set its own just
// after.
func (b *replayableBody) reclaim(rc *http.ResponseController) {
	if b == nil || b.lease == nil {
		return
	}
	for {
		select {
		case <-b.lease:
			return
		default:
		}
		_ = rc.SetReadDeadline(time.Now())
		select {
		case <-b.lease:
			return
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func (b *replayableBody) Read(p []byte) (int, error) {
	if b.pos < len(b.kept) { // replaying what an earlier attempt read
		n := copy(p, b.kept[b.pos:])
		b.pos += n
		return n, nil
	}
	if b.max > 0 && int64(len(p)) > b.max-b.read+1 {
		p = p[:b.max-b.read+1] // one byte past the cap shows it is passed
	}
	n, err := b.readSrc(p)
	if b.max > 0 && b.read+int64(n) > b.max {
		n, err = int(b.max-b.read), errBodyTooLarge
	}
	b.read += int64(n)
	if err != nil && err != io.EOF && b.err == nil {
		b.err = err
		b.failed <- err // capacity 1, sent once: never blocks
	}
	if n > 0 && !b.lost {
		if len(b.kept)+n <= b.keep {
			b.kept = append(b.kept, p[:n]...)
			b.pos = len(b.kept)
		} else {
			b.lost, b.kept, b.pos = true, nil, 0
		}
	}
	return n, err
}

// Close does nothing: the body must survive a failed attempt. The handler
// closes the real body when the whole exchange ends.
func (b *replayableBody) Close() error { return nil }

// untouched reports whether no byte has been read. A nil body is untouched.
func (b *replayableBody) untouched() bool { return b == nil || b.read == 0 }

// replayable reports whether a new attempt can send the body whole: nothing
// was read, or everything read was kept.
func (b *replayableBody) replayable() bool { return b.untouched() || !b.lost }

var errBodyConsumed = errors.New("request body already sent in part and not kept; cannot resend it")

// rewind starts the body again for a new attempt, if it can. It is also the
// outbound request's GetBody, which http.Transport calls to resend on a
// fresh connection.
func (b *replayableBody) rewind() (io.ReadCloser, error) {
	if !b.replayable() {
		return nil, errBodyConsumed
	}
	b.pos = 0
	return b, nil
}

// attemptBody is an h2c attempt's outbound body as its transport sees it:
// the body ReverseProxy hands over (its own wrapper, which it closes when
// the attempt ends, after which every Read fails; or, for a client that
// speaks HTTP/2, a streamBody around that wrapper), whose Close does
// nothing until the attempt's response has begun.
//
// net/http's HTTP/2 client closes a request's body when a stream fails,
// even one that failed before it was opened because its connection had
// gone away (a GOAWAY read between the pick of the connection and the
// stream's start), and then resends that very request, body unread, on a
// fresh connection, where the closed body's first Read fails: a request
// that no backend saw ended as a broken attempt (502, or gRPC UNAVAILABLE)
// instead of going out. Through attemptBody the resend reads the body
// (the failed stream's writer has ended by then: the client waits for it
// before it resends), and a transport goroutine that outlives the attempt
// still meets ReverseProxy's closed wrapper. Once the response has begun
// nothing is resent, and Close goes through, so that streamBody can end a
// stream whose backend died. (http:// and https:// attempts need none:
// their GetBody gives net/http a fresh body for any resend.)
type attemptBody struct {
	io.ReadCloser
	// responded is closed when the attempt's response begins (the
	// exchange's responded); nil, for a client that speaks HTTP/1.x,
	// whose Close never goes through (ReverseProxy's wrapper alone is
	// under it).
	responded <-chan struct{}
}

// Close does nothing before the response began; see attemptBody. It may
// run on any goroutine (the HTTP/2 transport closes the body from one of
// its own).
func (b attemptBody) Close() error {
	if b.responded == nil {
		return nil
	}
	select {
	case <-b.responded:
		return b.ReadCloser.Close()
	default:
		return nil
	}
}
