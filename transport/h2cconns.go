package transport

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptrace"
)

// An h2c backend that answers the first stream of every new connection
// with a GOAWAY below it (or that cannot carry the stream for any reason
// net/http's HTTP/2 client counts as "never processed") would otherwise
// keep a request without a body inside http.Transport for good: the HTTP/2
// client resends such a request at once, finds the connection gone, and
// http.Transport dials a fresh one (ErrNoCachedConn), round after round,
// with no backoff and no end but the request's context: the client waits
// until the request timeout (for ever without one), and the backend gets
// a new connection every millisecond or so. A request with a body comes
// back at the first refusal (net/http cannot resend it: h2c attempts get
// no GetBody, see rewrite), so only bodyless ones loop.

// errGoneAwayAgain is the cause with which boundConns ends an attempt;
// recordError then counts the attempt as refused (see refusedStream).
var errGoneAwayAgain = errors.New("http2: backend went away before the request's stream on every connection tried: never processed")

// h2cConnsPerAttempt is how many times one h2c attempt may ask for a
// connection: the first, and once more for net/http's ordinary recovery
// when the connection it took had gone away (a pooled one the backend had
// just sent a GOAWAY on).
const h2cConnsPerAttempt = 2

// boundConns returns ctx for an h2c attempt: http.Transport's third ask for
// a connection for it (httptrace's GetConn, on the caller's goroutine, in
// http.Transport.getConn before any dial) cancels it with cause
// errGoneAwayAgain. Every earlier connection failed the request in a way
// net/http resends at once, so it was processed nowhere, and another
// backend may take it. The returned function ends the context; the
// attempt's owner calls it when the attempt is over (the request's own
// context ending also ends it).
func boundConns(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	asks := make(chan struct{}, h2cConnsPerAttempt) // a counter safe from any goroutine
	trace := &httptrace.ClientTrace{GetConn: func(string) {
		select {
		case asks <- struct{}{}:
		default:
			cancel(errGoneAwayAgain)
		}
	}}
	return httptrace.WithClientTrace(ctx, trace), func() { cancel(nil) }
}

// goneAwayAgain reports whether boundConns ended the attempt of out, the
// outbound request.
func goneAwayAgain(out *http.Request) bool {
	return errors.Is(context.Cause(out.Context()), errGoneAwayAgain)
}
