package transport

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptrace"
)

// An h2c backend that answers the first stream of every new connection
// with a GOAWAY below it (or that fails a stream in any other way net/http's
// HTTP/2 client counts as "never processed": REFUSED_STREAM, a connection
// unusable before the stream opened) would otherwise keep a request
// without a body inside http.Transport for a long time or for good. The
// HTTP/2 client resends such a request itself: at once the first time,
// then after 1, 2, 4, ... 32 s on any pooled connection; and when it finds
// none (ErrNoCachedConn), http.Transport dials a fresh one and starts
// again, round after round, with no end but the request's context. The
// client waits for the request timeout (for ever without one), and the
// backend gets a new connection every millisecond or so. A request with a
// body comes back at the first refusal (net/http cannot resend it: h2c
// attempts get no GetBody, see rewrite), so only bodyless ones loop.

// errGoneAwayAgain is the cause with which boundConns ends an attempt;
// recordError then counts the attempt as refused (see refusedStream).
var errGoneAwayAgain = errors.New("http2: backend refused the request's stream on every connection tried: never processed")

// h2cTriesPerAttempt is how many connections one h2c attempt may ask for,
// and how many times it may be sent on one: the first, and once more for
// net/http's ordinary recovery when the connection it took had gone away
// (a pooled one the backend had just sent a GOAWAY on).
const h2cTriesPerAttempt = 2

// boundConns returns ctx for an h2c attempt, and the function that ends
// that context, which the attempt's owner calls when the attempt is over
// (the request's own context ending also ends it). The context is
// cancelled with cause errGoneAwayAgain at http.Transport's third ask for a
// connection for the request (httptrace's GetConn, before any dial), or at
// the HTTP/2 client's third try to send it (GotConn, which it calls before
// the stream starts; a context cancelled by then stops the stream before
// its HEADERS are written). Every earlier try failed in a way net/http
// resends at once, so no backend processed the request, and another may
// take it.
func boundConns(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	// Counters safe from any goroutine: a send that would block is one
	// too many.
	asks, tries := make(chan struct{}, h2cTriesPerAttempt), make(chan struct{}, h2cTriesPerAttempt)
	count := func(c chan struct{}) {
		select {
		case c <- struct{}{}:
		default:
			cancel(errGoneAwayAgain)
		}
	}
	trace := &httptrace.ClientTrace{
		GetConn: func(string) { count(asks) },
		GotConn: func(httptrace.GotConnInfo) { count(tries) },
	}
	return httptrace.WithClientTrace(ctx, trace), func() { cancel(nil) }
}

// goneAwayAgain reports whether boundConns ended the attempt of out, the
// outbound request.
func goneAwayAgain(out *http.Request) bool {
	return errors.Is(context.Cause(out.Context()), errGoneAwayAgain)
}
