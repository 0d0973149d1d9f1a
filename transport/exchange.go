package transport

import (
	"context"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"time"

	"github.com/roundhouse/roundhouse/actors"
)

// exchange is one client request's state across its stages and attempts
// (see Proxy). begin makes it; every stage after that gets it as an
// argument; end releases what it holds. All of it is read and written on
// the handler goroutine alone, with three exceptions, each explained where
// it is: httptrace's signals on gotConn and askedConn (channels), the
// body, which the transport's writer reads during an attempt (see
// replayableBody), and the client's header, which a transport goroutine
// may write while it holds the relay token (see relayInformational).
type exchange struct {
	start  time.Time          // when the request arrived
	client context.Context    // the client request's own context
	cancel context.CancelFunc // ends the request timeout's context; nil without one
	id     string             // the request's ID; "" when request IDs are off
	key    string             // the request's key for the policy; "" if none
	secure bool               // the client connection is TLS
	http1  bool               // the client speaks HTTP/1.x
	// idempotent says whether repeating the request is harmless (see
	// idempotent), as its header said before prepareHeader changed it.
	idempotent bool
	rec        recorder // the client's ResponseWriter, as send or ReverseProxy gets it
	// pool is the pool the request's route sends it to, and route that
	// route's name ("" with no routes; noRoute with routes until one
	// matches); set by the route stage. pool is nil until then, and stays
	// nil for a request refused before it or that no route matched.
	pool   *Pool
	route  string
	prefix string          // what strip_prefix removed from the path, for X-Forwarded-Prefix
	body   *replayableBody // nil when the request has no body
	// backend is the current attempt's; tried is every backend attempted
	// so far (its first ones in triedBuf, without an allocation).
	backend  *actors.Backend
	tried    []*actors.Backend
	triedBuf [3]*actors.Backend
	fail     failure      // the last attempt's failure
	err      error        // what went wrong, for the report and the log
	respBody responseBody // the current attempt's response body, once it has one
	// responded, for an attempt whose client speaks HTTP/2, is closed
	// when the attempt's response begins (see streamBody); nil otherwise.
	responded chan struct{}
	// gotConn, for an attempt at an https backend, receives once the
	// transport has a connection for it (httptrace's GotConn, which may
	// fire on a transport goroutine); nil for other attempts.
	gotConn   chan struct{}
	askedConn chan struct{} // likewise, httptrace's GetConn
	// endAttempt ends the current h2c attempt's context (see boundConns);
	// nil for other attempts, and once called.
	endAttempt context.CancelFunc
	// attemptStart is when the current attempt began; reported says
	// whether its outcome has gone to the selector yet.
	attemptStart time.Time
	reported     bool
	// relay, for a request that takes the forwarder's fast path (see
	// lean), holds the right to write the client's header while the
	// transport has it (relayInformational); trace relays 1xx responses,
	// and the first attempt's outbound request and URL are outReq and
	// outURL. For other requests these are zero and relay is nil.
	relay  chan struct{}
	outReq http.Request
	outURL url.URL
	trace  httptrace.ClientTrace
}

// lean reports whether the request takes the forwarder's fast path: it
// has no body and asks for no protocol switch (see forwarder.go).
func (ex *exchange) lean() bool { return ex.relay != nil }

// exchangeKey is the context key under which a request that goes through
// httputil.ReverseProxy (one with a body or an upgrade: see forwarder.go)
// carries its exchange to the code ReverseProxy calls with nothing but
// the request (or its response): the hooks' adapters (rewriteHook,
// modifyResponseHook, recordErrorHook), since one ReverseProxy serves all
// requests, and poolTransport. A context value is the only per-request
// thing they see; everything else gets the exchange as an argument. Every
// reader runs on the handler goroutine.
type exchangeKey struct{}

func exchangeOf(r *http.Request) *exchange { return r.Context().Value(exchangeKey{}).(*exchange) }

// begin is the first stage: it makes r's exchange, and returns it with r
// as the later stages see it: carrying its request ID, its body wrapped
// for replay (wrapBody), and its context holding the exchange's trace
// (lean) or the exchange itself (for ReverseProxy). (The route stage adds
// the pool's request timeout.)
func (p *Proxy) begin(w http.ResponseWriter, r *http.Request) (*exchange, *http.Request) {
	ex := &exchange{start: time.Now(), client: r.Context(), secure: r.TLS != nil, http1: r.ProtoMajor == 1, idempotent: idempotent(r)}
	ex.rec = recorder{ResponseWriter: w, tunnels: p.tunnels, grpc: isGRPC(r), http10: !r.ProtoAtLeast(1, 1)}
	ex.tried = ex.triedBuf[:0]
	for k, vv := range w.Header() { // Alt-Svc, with HTTP/3
		ex.rec.keep(k, vv)
	}
	if p.idHeader != "" {
		ex.id = requestID(r, p.idHeader, p.trusted)
		// To the backend (the outbound request copies the header) and
		// back to the client: one array for both values (p.idHeader is
		// canonical), each slice capped so that neither can grow into the
		// other.
		ids := []string{ex.id, ex.id}
		r.Header[p.idHeader] = ids[0:1:1]
		ex.rec.Header()[p.idHeader] = ids[1:2:2]
		ex.rec.keep(p.idHeader, ids[1:2:2])
	}
	if hasBody(r) {
		p.wrapBody(ex, w, r)
	} else if upgradeOf(r.Header) == "" {
		ex.relay = make(chan struct{}, 1)
		ex.trace.Got1xxResponse = ex.relayInformational
		return ex, r.WithContext(httptrace.WithClientTrace(ex.client, &ex.trace))
	}
	return ex, r.WithContext(context.WithValue(ex.client, exchangeKey{}, ex))
}

// hasBody reports whether r comes with a body. net/http's HTTP/1 server
// gives a request without one http.NoBody; its HTTP/2 server gives every
// request a body of its own type, with ContentLength 0 when the stream
// ended with the headers (or said content-length: 0, which ReverseProxy
// takes for no body too). quic-go's HTTP/3 server cannot tell: its
// ContentLength is -1 without a content-length header, so HTTP/3 requests
// go through ReverseProxy.
func hasBody(r *http.Request) bool {
	return r.Body != nil && r.Body != http.NoBody && (r.ProtoMajor != 2 || r.ContentLength != 0)
}

// wrapBody puts a replayableBody in place of r's body, for the whole
// exchange; release closes the real one.
func (p *Proxy) wrapBody(ex *exchange, w http.ResponseWriter, r *http.Request) {
	keep := 0
	if ex.idempotent || ex.rec.grpc {
		// A gRPC call is a POST, but one a backend refused unseen (a
		// refused stream, see refused) may go to another: keep its body.
		keep = p.retryBuffer
	}
	ex.body = newReplayableBody(r.Body, keep, p.maxBody)
	if p.bodyTimeout > 0 {
		ex.body.timeout, ex.body.lease = p.bodyTimeout, make(chan *http.ResponseController, 1)
		ex.body.lease <- http.NewResponseController(w)
	}
	r.Body = ex.body
	// A backend may answer while the upload is still arriving (an echo,
	// an early error): keep reading the body after the response starts.
	_ = http.NewResponseController(w).EnableFullDuplex()
}

// release gives back what begin took, in this order, once the request is
// reported and logged (aborting: the handler is aborting):
//
//  1. the request timeout's context;
//  2. the body's read-deadline controller (replayableBody.reclaim), so
//     that no transport goroutine sets a deadline after this;
//  3. the rest of the body (linger), on a connection that will close;
//  4. the real body, closed: the wrapper ignores Close so that a failed
//     attempt cannot end the body, and closing the real one makes any
//     late Read by a transport goroutine fail instead of racing the
//     server's next request on this connection;
//  5. the tunnel count, if the connection was handed over.
func (ex *exchange) release(aborting bool) {
	if ex.cancel != nil {
		ex.cancel()
	}
	if ex.body != nil {
		w := ex.rec.ResponseWriter // net/http's own, not the recorder
		ex.body.reclaim(http.NewResponseController(w))
		linger(w, &ex.rec, aborting)
		_ = ex.body.src.Close()
	}
	ex.rec.endTunnel()
}

// retryAfter is the Retry-After of a 503 for this request: its pool's, or
// one second when it has none (the routing table was not to be had).
func (ex *exchange) retryAfter() string {
	if ex.pool == nil {
		return "1"
	}
	return ex.pool.retryAfter
}

// failure classifies why an attempt failed.
type failure int

const (
	noFailure      failure = iota
	connectFailed          // no connection: nothing was sent
	broken                 // the exchange broke after sending began
	timedOut               // the whole-request timeout (RequestTimeout) ran out
	headerTimedOut         // this attempt's backend sent no response headers in time
	clientGone             // the client cancelled
	noBackend              // nothing eligible to try
	badBody                // the client's request body was malformed
	bodyTooLarge           // the client's request body passed MaxBody
	bodyTimedOut           // the client sent nothing of its body for BodyTimeout
	overloaded             // the balancer ran out of file descriptors
	refused                // an HTTP/2 backend refused the stream unseen (see refusedStream)
	bodyCut                // the response body broke off after its header went to the client
)

func (f failure) outcome() actors.Outcome {
	switch f {
	case connectFailed:
		return actors.ConnectFailed
	case broken, timedOut, headerTimedOut, bodyCut:
		return actors.Failed
	case clientGone, badBody, bodyTooLarge, bodyTimedOut, overloaded:
		return actors.ClientGone // not the backend's fault
	case refused:
		// Neither a success nor a failure of the backend's health: it is
		// at its stream limit or draining, and said so.
		return actors.ClientGone
	}
	return actors.Success
}

// idempotent reports whether repeating r is harmless (RFC 9110 §9.2.2), or
// the client said so with an Idempotency-Key header, as http.Transport honours.
func idempotent(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodPut, http.MethodDelete, http.MethodTrace:
		return true
	}
	return r.Header.Get("Idempotency-Key") != "" || r.Header.Get("X-Idempotency-Key") != ""
}
