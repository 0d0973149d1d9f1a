package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
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

// An https:// backend that chose HTTP/2 by ALPN meets the same client
// (net/http bundles it, and hands it the TLS connection it dialled), with
// one difference: https attempts have a GetBody (see rewrite), so the
// client resends a refused request that has a body too, and only the
// body's loss (GetBody failing) ends the loop. A health probe meets it
// against either kind of backend, and used to open connections until its
// timeout.
//
// So every HTTP/2 attempt is bounded: the proxy's h2c attempts by rewrite
// (boundConns, whose context ends with the attempt), and every other
// request through Transport.RoundTrip (https:// ones, the probes', see
// sendBounded). Over TLS only tries on connections that chose h2 count:
// HTTP/1.1 has no refused stream, and http.Transport resends an HTTP/1.1
// request only after a pooled connection failed before it was written,
// however many such connections it finds.

// errGoneAwayAgain is the cause with which the bound ends an attempt;
// recordError then counts the attempt as refused (see refusedStream). Its
// text says REFUSED_STREAM and graceful shutdown GOAWAY, which
// refusedStream matches: an https attempt's error (from sendBounded) comes
// to recordError through the transport alone.
var errGoneAwayAgain = errors.New("http2: backend refused the request's stream on every connection tried " +
	"(REFUSED_STREAM, or a graceful shutdown GOAWAY below it): never processed")

// h2TriesPerAttempt is how many times one HTTP/2 attempt may be sent:
// the first, and once more for net/http's ordinary recovery when the
// connection it took had gone away (a pooled one the backend had just sent
// a GOAWAY on), on a fresh connection. So an attempt dials at most two.
const h2TriesPerAttempt = 2

// boundConns returns ctx for an h2c attempt, and the function that ends
// that context, which the attempt's owner calls when the attempt is over
// (the request's own context ending also ends it). The context is
// cancelled with cause errGoneAwayAgain when the HTTP/2 client would try
// the request a third time: at http.Transport's next ask for a connection
// after the second try (httptrace's GetConn, before any dial; the ask that
// follows a GOAWAY first finds the gone-away connection still in
// http.Transport's pool, then drops it, so asks are not counted), or at
// the third try itself (GotConn, which the HTTP/2 client calls before the
// stream starts; a context cancelled by then stops the stream before its
// HEADERS are written). It is also cancelled at a try on the connection
// of the try before: the client resends on the same connection only after
// the backend refused the stream on a connection that still takes new
// ones (REFUSED_STREAM, or PROTOCOL_ERROR from the peer), where its next
// tries would wait 1, 2, 4 ... s; a resend after a GOAWAY goes to another
// connection. Every earlier try failed in a way net/http resends, so no
// backend processed the request, and another may take it: a refused
// stream goes to another backend at once, as a request with a body that
// net/http cannot resend does.
func boundConns(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, b := bound(ctx, false)
	return ctx, b.end
}

// boundKey marks a context that bound made (its value is the *connBound):
// sendBounded leaves it as it is.
type boundKey struct{}

// connBound is one attempt's bound: the trace whose hooks count its
// tries, and the cancel of its context. The hooks run on whichever
// goroutine net/http calls them on (today the one that called RoundTrip,
// for both); the count moves between them by message, and last with it.
type connBound struct {
	trace   httptrace.ClientTrace
	cancel  context.CancelCauseFunc
	done    <-chan struct{} // the attempt's context's
	overTLS bool
	tries   chan int // capacity 1: holds the count of tries while no hook looks at it
	last    net.Conn // the last try's connection, nil before the first; only the hook holding the count touches it
}

// bound is boundConns, and with overTLS the same for an https request,
// which counts only the tries on connections that chose h2 (GotConn, which
// http.Transport also calls for each HTTP/1.1 try). One allocation each
// for the connBound, its count's channel and its two hooks, besides the
// contexts: about a microsecond and nine allocations a request in all
// (BenchmarkBound; BenchmarkHTTPSRoundTrip shows it beside a round trip).
func bound(ctx context.Context, overTLS bool) (context.Context, *connBound) {
	b := &connBound{overTLS: overTLS, tries: make(chan int, 1)}
	b.tries <- 0
	ctx, b.cancel = context.WithCancelCause(ctx)
	b.done = ctx.Done()
	b.trace.GetConn, b.trace.GotConn = b.getConn, b.gotConn
	ctx = context.WithValue(httptrace.WithClientTrace(ctx, &b.trace), boundKey{}, b)
	return ctx, b
}

// end ends the attempt's context, once the attempt is over.
func (b *connBound) end() { b.cancel(nil) }

// take takes the count, which the hook that takes it puts back before it
// returns (the channel is then empty: that send never blocks); false once
// the attempt's context has ended, when there is nothing left to count.
func (b *connBound) take() (int, bool) {
	select {
	case n := <-b.tries:
		return n, true
	case <-b.done:
		return 0, false
	}
}

func (b *connBound) getConn(string) {
	n, ok := b.take()
	if !ok {
		return
	}
	b.tries <- n
	if n >= h2TriesPerAttempt {
		b.cancel(errGoneAwayAgain)
	}
}

func (b *connBound) gotConn(info httptrace.GotConnInfo) {
	if b.overTLS && !choseH2(info.Conn) {
		return
	}
	n, ok := b.take()
	if !ok {
		return
	}
	again := b.last != nil && b.last == info.Conn
	b.last = info.Conn
	b.tries <- n + 1
	if n+1 > h2TriesPerAttempt || again {
		b.cancel(errGoneAwayAgain)
	}
}

// choseH2 reports whether c is a TLS connection on which ALPN chose h2.
func choseH2(c net.Conn) bool {
	tc, ok := c.(interface{ ConnectionState() tls.ConnectionState })
	return ok && tc.ConnectionState().NegotiatedProtocol == "h2"
}

// sendBounded sends r through rt within the bound (overTLS as bound's),
// unless r's context has one already (the proxy's h2c attempts). When the
// bound ended the attempt, the error wraps errGoneAwayAgain. After a
// response the bound's context is left to end with r's own, since the
// response's body is read under it (nothing counts any more by then: the
// trace's hooks run before the response only).
func sendBounded(rt http.RoundTripper, r *http.Request, overTLS bool) (*http.Response, error) {
	if r.Context().Value(boundKey{}) != nil {
		return rt.RoundTrip(r)
	}
	ctx, b := bound(r.Context(), overTLS)
	resp, err := rt.RoundTrip(r.WithContext(ctx))
	if err != nil {
		if errors.Is(context.Cause(ctx), errGoneAwayAgain) && !errors.Is(err, errGoneAwayAgain) {
			err = fmt.Errorf("%w (%w)", errGoneAwayAgain, err)
		}
		b.end()
		return nil, err
	}
	resp.Request = r
	return resp, nil
}

// goneAwayAgain reports whether boundConns ended the attempt of out, the
// outbound request.
func goneAwayAgain(out *http.Request) bool {
	return errors.Is(context.Cause(out.Context()), errGoneAwayAgain)
}
