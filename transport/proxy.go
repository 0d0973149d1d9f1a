package transport

import (
	"errors"
	"net"
	"net/http"
	"net/http/httputil"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/roundhouse/roundhouse/actors"
	"github.com/roundhouse/roundhouse/internal/accesslog"
)

// Config describes a Proxy. Every zero field takes the default named in its
// comment. Either Router is set, or Selector and Transport are.
type Config struct {
	// Router, if not nil, gives each request the current routing table:
	// its pools and the routes to them. nil: one pool, "default", made of
	// Selector, Transport, Retries, RetryAfter, Key, StickySecret and
	// RequestTimeout, whose meaning Pool documents.
	Router *Router

	Selector  *actors.Selector
	Transport http.RoundTripper // the one shared transport (see New)
	// Retries is how many other backends a request may try after a failure
	// that is safe to retry (see Proxy). 0: none.
	Retries int
	// RetryAfter is the Retry-After of a 503, rounded up to seconds; 0: 1s.
	RetryAfter time.Duration
	Logger     hclog.Logger // proxy errors; nil: none
	// AccessLog gets one line per request (see logAccess); nil: none.
	AccessLog *accesslog.Logger
	// Key says what request key the selector's policy chooses by (see
	// actors.Keyed); the zero value means none, and picks take the
	// selector's ready offer.
	Key actors.KeySpec
	// StickySecret keys the sticky cookie's values when Key is a cookie.
	StickySecret []byte
	// RetryBuffer is how many bytes of an idempotent request's body are
	// kept so that it can be resent after a backend that received it
	// failed; a larger body is streamed and not resent. 0: none kept.
	RetryBuffer int
	// RequestTimeout bounds a whole request, response body included;
	// exceeded before the response starts: 504. 0: no limit.
	RequestTimeout time.Duration
	// TrustedProxies are the peers whose X-Forwarded-* and Forwarded
	// headers are kept and appended to (see forwarded.go); nil: nobody's.
	TrustedProxies TrustedProxies
	// MaxBody caps a request body in bytes: 413 beyond (see admit.go);
	// 0: no cap.
	MaxBody int64
	// BodyTimeout bounds the wait for each read of a request body: a
	// client that sends nothing for that long gets 408 and its connection
	// is closed. 0: no limit.
	BodyTimeout time.Duration
	// Tunnels counts upgraded connections (WebSockets) so that shutdown
	// can wait for them; give the Frontend the same one. nil: not counted.
	Tunnels *Tunnels
	// Limiter limits each client's request rate (429 beyond); nil: no limit.
	Limiter *RateLimiter
	// RequestIDHeader names the header that carries each request's ID to
	// the backend and back to the client (see requestid.go), normally
	// X-Request-ID. "": no request IDs.
	RequestIDHeader string
}

// Proxy is the http.Handler that balances requests. Each request runs
// through these stages on the handler goroutine net/http gives it;
// ServeHTTP calls them in this order, and each is a method below:
//
//  1. begin makes the exchange, the request's state across attempts: its
//     recorder, request ID and replayable body (exchange.go);
//  2. admit answers the requests the balancer refuses itself (admit.go);
//  3. route takes the current routing table from the Router and finds the
//     request's pool (route.go): with routes, a path that climbs above
//     the root gets 400 and a request no route matches 404; from here on
//     the request speaks to its pool's selector alone, and is sent through
//     its pool's transport;
//  4. pick takes a backend from the pool's selector (none UP: 503 with
//     Retry-After); route calls it, so that a pool a reload stopped
//     meanwhile can be routed around;
//  5. forward sends the request through the pool's transport (send, in
//     forwarder.go), streaming the response and flushing event streams
//     as they arrive (its hooks are in hooks.go);
//  6. retry, after a failure that is safe to retry, reports it and picks
//     another backend, for forward to try;
//  7. answer tells the client of a failure nothing could save;
//  8. end reports the outcome to the selector, which ends the in-flight
//     count and, for a connection that could not be made, marks the
//     backend DOWN; logs the request; and releases what begin took.
//
// A failed attempt moves to another backend, up to Retries times, when that
// cannot duplicate work: when no connection could be made (any method, since
// nothing was sent, and no byte of the body was read), or when the exchange
// broke before response headers for an idempotent method whose body was kept
// whole (RetryBuffer) or never read, or when the backend sent no response
// headers within the transport's ResponseHeaderTimeout (a per-try timeout,
// as nginx's proxy_next_upstream timeout and Envoy's per_try_timeout), on
// the same conditions. Either way the next backend receives the body whole.
// Otherwise the client gets 502, or 504 when the backend sent no headers in
// time. The whole-request timeout (RequestTimeout) is never retried. A
// client that goes away cancels the backend request and is logged as 499.
type Proxy struct {
	router      *Router // nil: every request goes to table's one pool
	table       *Table  // without a router
	retryBuffer int
	rp          *httputil.ReverseProxy // for requests with a body or an upgrade (see send)
	buffers     bufferPool             // the response copy's, shared with rp
	log         hclog.Logger
	access      *accesslog.Logger
	trusted     TrustedProxies
	maxBody     int64
	bodyTimeout time.Duration
	tunnels     *Tunnels
	limiter     *RateLimiter
	idHeader    string // canonical; "" when request IDs are off
}

// NewProxy returns the balancing handler.
func NewProxy(cfg Config) *Proxy {
	p := &Proxy{
		router: cfg.Router, log: cfg.Logger, access: cfg.AccessLog,
		retryBuffer: max(cfg.RetryBuffer, 0),
		trusted:     cfg.TrustedProxies, maxBody: max(cfg.MaxBody, 0), bodyTimeout: max(cfg.BodyTimeout, 0),
		tunnels: cfg.Tunnels, limiter: cfg.Limiter,
	}
	if cfg.RequestIDHeader != "" {
		p.idHeader = http.CanonicalHeaderKey(cfg.RequestIDHeader)
	}
	if p.log == nil {
		p.log = hclog.NewNullLogger()
	}
	if p.router == nil {
		p.table, _ = NewTable(nil, []*Pool{NewPool(Pool{
			Name: "default", Selector: cfg.Selector, Transport: cfg.Transport,
			Key: cfg.Key, StickySecret: cfg.StickySecret, Retries: cfg.Retries,
			RetryAfter: cfg.RetryAfter, RequestTimeout: cfg.RequestTimeout,
		})})
	}
	p.buffers = newBufferPool(256)
	p.rp = &httputil.ReverseProxy{
		Rewrite:        p.rewriteHook,
		Transport:      poolTransport{},
		ErrorHandler:   recordErrorHook,
		ModifyResponse: p.modifyResponseHook,
		ErrorLog:       p.log.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}),
		BufferPool:     p.buffers,
		// FlushInterval 0: ReverseProxy already flushes at once for
		// text/event-stream and for responses of unknown length.
	}
	return p
}

// ServeHTTP balances one request; see Proxy for its stages. The exchange
// carries the request's state from one stage to the next.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ex, r := p.begin(w, r)
	defer p.end(ex, r) // also when a stage aborts the handler
	if !p.admit(&ex.rec, r) {
		return
	}
	r, b, err := p.route(ex, r)
	if r == nil {
		return
	}
	for p.forward(ex, r, b, err) {
		b, err = p.retry(ex, r)
	}
	p.answer(ex)
}

// pick takes the first pick for r from its pool: the selector's ready
// offer, or, when the policy chooses by a request key, a pick made for
// that key.
func (p *Proxy) pick(ex *exchange, r *http.Request) (*actors.Backend, error) {
	pool := ex.pool
	if pool.Key.Kind == actors.KeyNone {
		return pool.Selector.Pick(r.Context())
	}
	ex.key = requestKey(r, pool.Key)
	return pool.Selector.PickFor(r.Context(), ex.key, nil)
}

// requestKey extracts the policy's key from r; "" when r has none.
func requestKey(r *http.Request, k actors.KeySpec) string {
	switch k.Kind {
	case actors.KeyClientIP:
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			return r.RemoteAddr
		}
		return host
	case actors.KeyHeader:
		if http.CanonicalHeaderKey(k.Name) == "Host" {
			return r.Host // net/http moves Host out of the header map
		}
		return r.Header.Get(k.Name)
	case actors.KeyCookie:
		if c, err := r.Cookie(k.Name); err == nil {
			return c.Value
		}
	}
	return ""
}

// forward makes one attempt at b, the backend the last pick gave, or, when
// that pick failed (err, or no backend), records why in ex.fail. It
// reports whether the attempt failed in a way another backend may retry
// (see retryable); otherwise ex.fail says how the request ended.
//
// The attempt's outcome is reported later: by retry if another backend
// is to be tried, otherwise by end, which runs even if send panics (it
// aborts a response whose body copy failed).
func (p *Proxy) forward(ex *exchange, r *http.Request, b *actors.Backend, err error) bool {
	switch {
	case err != nil && ex.client.Err() != nil:
		ex.fail, ex.err = clientGone, err
		return false
	case err != nil && r.Context().Err() != nil: // the request timeout
		ex.fail, ex.err = timedOut, err
		return false
	case err != nil || b == nil:
		if ex.fail == noFailure { // else the last attempt's failure stands
			ex.fail, ex.err = noBackend, err
		}
		return false
	}
	ex.backend, ex.fail, ex.err, ex.reported = b, noFailure, nil, false
	ex.tried = append(ex.tried, b)
	ex.attemptStart = time.Now()
	p.send(ex, r) // rewrite, the transport, modifyResponse or recordError
	if ex.endAttempt != nil {
		ex.endAttempt()
		ex.endAttempt = nil
	}
	return ex.fail != noFailure && p.retryable(ex)
}

// retryable reports whether another backend may take the request, and if
// so starts its body again.
func (p *Proxy) retryable(ex *exchange) bool {
	if len(ex.tried) > ex.pool.Retries || ex.rec.written() {
		// Out of tries, or the client has its answer's start already (a
		// switched protocol whose tunnel then failed, say): nothing can
		// take the request again.
		return false
	}
	switch {
	case ex.fail == connectFailed && ex.body.untouched(): // nothing was sent
	case ex.fail == refused: // the backend never saw it, whatever its method
		if !ex.body.replayable() {
			return false
		}
	case ex.fail == connectFailed, ex.fail == broken, ex.fail == headerTimedOut:
		if !ex.idempotent || !ex.body.replayable() {
			return false
		}
	default:
		return false
	}
	if ex.body != nil {
		_, _ = ex.body.rewind()
	}
	return true
}

// retry reports the failed attempt now, for passive health, and picks
// another backend. The pick may reach the selector before the report
// (reports are buffered), but it excludes every backend already tried, so
// it cannot land on the failed one again.
func (p *Proxy) retry(ex *exchange, r *http.Request) (*actors.Backend, error) {
	b := ex.backend
	ex.pool.Selector.Report(actors.Report{
		Backend: b, Outcome: ex.fail.outcome(), Method: r.Method,
		Duration: time.Since(ex.attemptStart), Err: ex.err, Attempt: len(ex.tried) - 1,
	})
	ex.reported = true
	p.log.Debug("retrying on another backend", p.logArgs(ex, "backend", b.Name, "error", ex.err)...)
	return ex.pool.Selector.PickFor(r.Context(), ex.key, ex.tried)
}

// answer tells the client of a failure that nothing could save, unless it
// has been sent something final already (the response stands, or was cut
// short).
func (p *Proxy) answer(ex *exchange) {
	if ex.fail == noFailure || ex.rec.written() {
		return
	}
	if ex.fail == clientGone {
		// Nothing to tell a client that has gone; end logs it as 499. If
		// its connection is in fact still open, abort it rather than let
		// net/http send an empty 200 for a request that was never served.
		panic(http.ErrAbortHandler)
	}
	p.writeError(&ex.rec, ex)
}

// writeError answers the client for a failure other than clientGone.
func (p *Proxy) writeError(w *recorder, ex *exchange) {
	var code int
	var msg string
	switch ex.fail {
	case noBackend:
		switch {
		case len(ex.tried) == 0 && errors.Is(ex.err, actors.ErrBusy):
			// A connection frees up as soon as any request ends: unlike a
			// health problem, this is worth retrying at once.
			w.Header().Set("Retry-After", "1")
			code, msg = http.StatusServiceUnavailable, "every backend is busy"
			if w.grpc { // not UNAVAILABLE, which 503 stands for
				grpcError(w, grpcResourceExhausted, msg)
				return
			}
		case len(ex.tried) == 0:
			w.Header().Set("Retry-After", ex.retryAfter())
			code, msg = http.StatusServiceUnavailable, "no healthy backend"
		default:
			code, msg = http.StatusBadGateway, "backend failed and no other backend could take the request"
		}
	case overloaded:
		w.Header().Set("Retry-After", "1")
		code, msg = http.StatusServiceUnavailable, "balancer overloaded"
	case timedOut, headerTimedOut:
		code, msg = http.StatusGatewayTimeout, "backend did not answer in time"
	case badBody:
		w.closeConn = w.closeConn || ex.http1 // the body's framing is broken
		code, msg = http.StatusBadRequest, "malformed request body"
	case bodyTimedOut:
		w.closeConn = w.closeConn || ex.http1 // the rest of the body is unread
		code, msg = http.StatusRequestTimeout, "request body not received in time"
	case bodyTooLarge:
		w.closeConn = w.closeConn || ex.http1 // the rest of the body is unread
		code, msg = http.StatusRequestEntityTooLarge, bodyTooLargeMsg
	default:
		code, msg = http.StatusBadGateway, "backend failed"
	}
	plainError(w, code, msg)
}

// end is the last stage. ServeHTTP defers it, so that it runs even when
// the handler aborts (a panic with http.ErrAbortHandler: send's, when a
// response body breaks off, or answer's). It reports the outcome,
// logs the request and releases what begin took, in that order, and then
// lets an abort go on to net/http, which closes the connection.
func (p *Proxy) end(ex *exchange, r *http.Request) {
	aborting := recover()
	if aborting == http.ErrAbortHandler && ex.rec.grpc && ex.rec.written() && p.grpcEndBroken(ex, r) {
		aborting = nil // the trailers tell the client; no reset
	}
	status := ex.rec.status
	if ex.fail == clientGone && !ex.rec.written() {
		status = 499
	}
	d := time.Since(ex.start)
	p.report(ex, r, status, d)
	p.logAccess(ex, r, status, d)
	ex.release(aborting != nil)
	if aborting != nil {
		panic(aborting)
	}
}

// report sends the selector the exchange's one Final report: it ends the
// last attempt's pick, if retry has not reported it, and counts the
// request.
func (p *Proxy) report(ex *exchange, r *http.Request, status int, d time.Duration) {
	rep := actors.Report{Final: true, Method: r.Method, Proto: actors.ProtoClass(r.ProtoMajor, r.ProtoMinor), Status: status, Duration: d, GRPC: ex.rec.grpc}
	if rep.GRPC {
		rep.GRPCStatus = grpcStatusAtEnd(&ex.rec, status)
	}
	switch {
	case ex.backend != nil && !ex.reported:
		rep.Backend, rep.Outcome, rep.Err, rep.Attempt = ex.backend, ex.fail.outcome(), ex.err, len(ex.tried)-1
	case ex.backend != nil: // its failure was reported, and no other attempt followed
		rep.Last = ex.backend
	}
	if ex.pool != nil { // nil: the request never reached a pool
		ex.pool.Selector.Report(rep)
	}
}

// logAccess writes the request's access log line: the line hclog would
// write for Info("request", "method", ..., "path", ..., ...), formatted
// without it (no []any, no fmt, no lock) and handed to the log writer
// without a copy (see package accesslog).
func (p *Proxy) logAccess(ex *exchange, r *http.Request, status int, d time.Duration) {
	if p.access == nil {
		return
	}
	rec := accesslog.Record{
		// The path as escaped on the wire: a request cannot put line
		// breaks or terminal controls into the log.
		Method: r.Method, Path: r.URL.EscapedPath(), Client: r.RemoteAddr, Backend: "-",
		Status: status, Duration: d, Bytes: ex.rec.bytes,
		RequestID: ex.id, Attempts: len(ex.tried), Err: ex.err, GRPC: ex.rec.grpc,
	}
	if rec.GRPC {
		rec.GRPCStatus = grpcStatusAtEnd(&ex.rec, status)
	}
	if r.ProtoMajor == 3 { // only HTTP/3's lines say so: the others stay as they were
		rec.Proto = "HTTP/3"
	}
	if ex.backend != nil {
		rec.Backend = ex.backend.Name
	}
	if ex.route != "" { // there are routes: every line says pool= and route=
		rec.Pool, rec.Route = noRoute, ex.route
		if ex.pool != nil {
			rec.Pool = ex.pool.Name
		}
	}
	p.access.Log(&rec)
}
