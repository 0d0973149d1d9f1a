package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/http/httputil"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/roundhouse/roundhouse/actors"
	"github.com/roundhouse/roundhouse/internal/accesslog"
)

// Config describes a Proxy. Every zero field takes the default named in its
// comment; Selector and Transport are required.
type Config struct {
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

// Proxy is the http.Handler that balances requests. For each request, on the
// handler goroutine net/http gives it, it
//
//  1. takes a pick from the selector (none UP: 503 with Retry-After);
//  2. forwards through httputil.ReverseProxy and the shared transport,
//     streaming the response and flushing event streams as they arrive;
//  3. reports the outcome to the selector, which ends the in-flight count
//     and, for a connection that could not be made, marks the backend DOWN.
//
// A failed attempt moves to another backend, up to Retries times, when that
// cannot duplicate work: when no connection could be made (any method, since
// nothing was sent, and no byte of the body was read), or when the exchange
// broke before response headers for an idempotent method whose body was kept
// whole (RetryBuffer) or never read. Either way the next backend receives
// the body whole. Otherwise the client gets 502, or 504 when the backend
// sent no headers in time. A client that goes away cancels the backend
// request and is logged as 499.
type Proxy struct {
	sel         *actors.Selector
	retryBuffer int
	timeout     time.Duration
	key         actors.KeySpec
	secret      []byte
	rp          *httputil.ReverseProxy
	retries     int
	retryAfter  string
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
		sel: cfg.Selector, key: cfg.Key, secret: cfg.StickySecret,
		retries: max(cfg.Retries, 0), log: cfg.Logger, access: cfg.AccessLog,
		retryBuffer: max(cfg.RetryBuffer, 0), timeout: cfg.RequestTimeout,
		trusted: cfg.TrustedProxies, maxBody: max(cfg.MaxBody, 0), bodyTimeout: max(cfg.BodyTimeout, 0),
		tunnels: cfg.Tunnels, limiter: cfg.Limiter,
	}
	if cfg.RequestIDHeader != "" {
		p.idHeader = http.CanonicalHeaderKey(cfg.RequestIDHeader)
	}
	if p.log == nil {
		p.log = hclog.NewNullLogger()
	}
	secs := int64((max(cfg.RetryAfter, time.Second) + time.Second - 1) / time.Second)
	p.retryAfter = strconv.FormatInt(secs, 10)
	p.rp = &httputil.ReverseProxy{
		Rewrite:        p.rewrite,
		Transport:      cfg.Transport,
		ErrorHandler:   recordError,
		ModifyResponse: p.modifyResponse,
		ErrorLog:       p.log.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}),
		BufferPool:     newBufferPool(256),
		// FlushInterval 0: ReverseProxy already flushes at once for
		// text/event-stream and for responses of unknown length.
	}
	return p
}

// failure classifies why an attempt failed.
type failure int

const (
	noFailure     failure = iota
	connectFailed         // no connection: nothing was sent
	broken                // the exchange broke after sending began
	timedOut              // no response headers in time
	clientGone            // the client cancelled
	noBackend             // nothing eligible to try
	badBody               // the client's request body was malformed
	bodyTooLarge          // the client's request body passed MaxBody
	bodyTimedOut          // the client sent nothing of its body for BodyTimeout
	overloaded            // the balancer ran out of file descriptors
)

// exchange is one client request's state across attempts. It lives in the
// request's context so the ReverseProxy hooks can reach it; all of them run
// on the handler goroutine, the exchange's only user.
type exchange struct {
	client context.Context // the client request's own context
	id     string          // the request's ID; "" when request IDs are off
	// remote (http.Request.RemoteAddr) and local (the address the client
	// connected to; nil: unknown) are for an outgoing PROXY header. Set
	// before the exchange is shared and never written again, so transport
	// goroutines may read them.
	remote   string
	local    net.Addr
	key      string            // the request's key for the policy; "" if none
	secure   bool              // the client connection is TLS
	backend  *actors.Backend   // the current attempt's backend
	tried    []*actors.Backend // every backend attempted so far
	body     *replayableBody   // nil when the request has no body
	http1    bool              // the client speaks HTTP/1.x
	fail     failure           // the last attempt's failure
	err      error
	respBody responseBody       // the current attempt's response body, once it has one
	rec      recorder           // the client's ResponseWriter, as ReverseProxy gets it
	triedBuf [3]*actors.Backend // tried's first backends, without an allocation
	// gotConn, for an attempt at an https backend, receives once the
	// transport has a connection for it (httptrace's GotConn, which may
	// fire on a transport goroutine); nil for other attempts.
	gotConn   chan struct{}
	askedConn chan struct{} // likewise, httptrace's GetConn
	// attemptStart is when the current attempt began; reported says
	// whether its outcome has gone to the selector yet.
	attemptStart time.Time
	reported     bool
}

type exchangeKey struct{}

func exchangeOf(r *http.Request) *exchange { return r.Context().Value(exchangeKey{}).(*exchange) }

// ServeHTTP balances one request; see Proxy.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	ex := &exchange{secure: r.TLS != nil, http1: r.ProtoMajor == 1}
	ex.rec = recorder{ResponseWriter: w, tunnels: p.tunnels}
	rec := &ex.rec // one allocation for both
	ex.tried = ex.triedBuf[:0]
	defer rec.endTunnel()
	ex.remote = r.RemoteAddr
	ex.local, _ = r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if p.idHeader != "" {
		ex.id = requestID(r, p.idHeader, p.trusted)
		// To the backend (ReverseProxy copies the request's header) and
		// back to the client: one array for both values (p.idHeader is
		// canonical), each slice capped so that neither can grow into the
		// other.
		ids := []string{ex.id, ex.id}
		r.Header[p.idHeader] = ids[0:1:1]
		rec.Header()[p.idHeader] = ids[1:2:2]
	}
	if r.Body != nil && r.Body != http.NoBody {
		keep := 0
		if idempotent(r) {
			keep = p.retryBuffer
		}
		ex.body = newReplayableBody(r.Body, keep, p.maxBody)
		if p.bodyTimeout > 0 {
			ex.body.timeout, ex.body.lease = p.bodyTimeout, make(chan *http.ResponseController, 1)
			ex.body.lease <- http.NewResponseController(w)
		}
		// The wrapper ignores Close so a failed attempt cannot end the body;
		// closing the real one when the exchange ends makes any late Read by
		// a transport goroutine fail instead of racing the server's next
		// request on this connection.
		defer r.Body.Close()
		defer linger(w, rec)                                 // before the Close above
		defer ex.body.reclaim(http.NewResponseController(w)) // before linger
		r.Body = ex.body
		// A backend may answer while the upload is still arriving (an echo,
		// an early error): keep reading the body after the response starts.
		_ = http.NewResponseController(w).EnableFullDuplex()
	}
	ex.client = r.Context()
	ctx := context.WithValue(ex.client, exchangeKey{}, ex)
	if p.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, p.timeout)
		defer cancel()
	}
	r = r.WithContext(ctx)
	defer p.finish(r, rec, ex, start)
	if !p.admit(rec, r) {
		return
	}

	b, err := p.pick(r, ex)
	for {
		switch {
		case err != nil && ex.client.Err() != nil:
			ex.fail, ex.err = clientGone, err
			panic(http.ErrAbortHandler) // see below
		case err != nil && r.Context().Err() != nil: // the request timeout
			ex.fail, ex.err = timedOut, err
			p.writeError(rec, ex)
			return
		case err != nil || b == nil:
			if ex.fail == noFailure {
				ex.fail, ex.err = noBackend, err
			}
			p.writeError(rec, ex)
			return
		}
		p.attempt(rec, r, ex, b)
		if ex.fail == noFailure || !p.retryable(r, ex) {
			break
		}
		// Report the failure now, for passive health. The retry's pick may
		// reach the selector first (reports are buffered), but it excludes
		// every backend already tried, so it cannot land here again.
		p.sel.Report(actors.Report{
			Backend: b, Outcome: ex.fail.outcome(), Method: r.Method,
			Duration: time.Since(ex.attemptStart), Err: ex.err, Attempt: len(ex.tried) - 1,
		})
		ex.reported = true
		p.log.Debug("retrying on another backend", p.logArgs(ex, "backend", b.Name, "error", ex.err)...)
		b, err = p.sel.PickFor(r.Context(), ex.key, ex.tried)
	}
	if ex.fail != noFailure && !rec.written() {
		p.writeError(rec, ex)
	}
	if ex.fail == clientGone && !rec.written() {
		// Nothing to tell a client that has gone. If its connection is in
		// fact still open, abort it rather than let net/http send an empty
		// 200 for a request that was never served.
		panic(http.ErrAbortHandler)
	}
}

// pick takes the first pick for r: the selector's ready offer, or, when the
// policy chooses by a request key, a pick made for that key.
func (p *Proxy) pick(r *http.Request, ex *exchange) (*actors.Backend, error) {
	if p.key.Kind == actors.KeyNone {
		return p.sel.Pick(r.Context())
	}
	ex.key = requestKey(r, p.key)
	return p.sel.PickFor(r.Context(), ex.key, nil)
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

// modifyResponse pins the client to the backend that answered when the
// policy is sticky and the request's cookie named another (or none).
//
// With request IDs on, it also drops the backend's own copy of the ID
// header: the client gets ours, set before the response began, once.
//
// It also watches the response body (see responseBody), except a switch
// of protocols, whose body ReverseProxy needs as it is.
func (p *Proxy) modifyResponse(resp *http.Response) error {
	ex := exchangeOf(resp.Request)
	if resp.StatusCode != http.StatusSwitchingProtocols {
		ex.respBody = responseBody{ReadCloser: resp.Body, ex: ex}
		resp.Body = &ex.respBody
	} else if !switchAsked(resp) {
		// ReverseProxy refuses it too, but then never closes the backend
		// connection, which is the caller's after a 101; refused here,
		// ReverseProxy closes it. The client gets 502.
		return errSwitchNotAsked
	}
	if p.idHeader != "" {
		resp.Header.Del(p.idHeader)
	}
	if p.key.Kind != actors.KeyCookie {
		return nil
	}
	token := actors.StickyToken(p.secret, ex.backend)
	if token == ex.key {
		return nil
	}
	c := &http.Cookie{
		Name: p.key.Name, Value: token, Path: "/",
		HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: ex.secure,
	}
	resp.Header.Add("Set-Cookie", c.String())
	return nil
}

var errSwitchNotAsked = errors.New("backend switched protocols, which the request did not ask for")

// switchAsked reports whether a 101 switches to the protocol its request
// asked for, by ReverseProxy's rule: an Upgrade header, with "upgrade" in
// Connection, naming the same protocol on both sides.
func switchAsked(resp *http.Response) bool {
	asked := upgradeOf(resp.Request.Header)
	return asked != "" && strings.EqualFold(asked, upgradeOf(resp.Header))
}

// upgradeOf is h's Upgrade header when its Connection header lists
// "upgrade"; "" otherwise.
func upgradeOf(h http.Header) string {
	for _, v := range h["Connection"] {
		for tok := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(tok), "upgrade") {
				return h.Get("Upgrade")
			}
		}
	}
	return ""
}

// responseBody is a backend's response body on its way to the client. A
// read that fails (the backend reset, the request timeout) cuts the
// response short after its status went out: ReverseProxy then aborts the
// handler, and nothing else would tell the access log. It is read on the
// handler goroutine, the exchange's.
type responseBody struct {
	io.ReadCloser
	ex *exchange
}

func (b *responseBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF && b.ex.err == nil {
		b.ex.err = fmt.Errorf("response cut short: %w", err)
	}
	return n, err
}

// attempt forwards the request to b. Its outcome is reported later: by the
// retry loop if another backend is to be tried, otherwise by finish, which
// runs even if the ReverseProxy panics (it aborts a response whose body copy
// failed).
func (p *Proxy) attempt(w *recorder, r *http.Request, ex *exchange, b *actors.Backend) {
	ex.backend, ex.fail, ex.err, ex.reported = b, noFailure, nil, false
	ex.tried = append(ex.tried, b)
	ex.attemptStart = time.Now()
	p.rp.ServeHTTP(w, r)
}

// finish ends the exchange: one Final report (ending the last attempt's
// pick, if it has not been reported, and counting the request) and the
// access log line.
func (p *Proxy) finish(r *http.Request, w *recorder, ex *exchange, start time.Time) {
	status := w.status
	if ex.fail == clientGone && !w.written() {
		status = 499
	}
	rep := actors.Report{Final: true, Method: r.Method, Status: status, Duration: time.Since(start)}
	switch {
	case ex.backend != nil && !ex.reported:
		rep.Backend, rep.Outcome, rep.Err, rep.Attempt = ex.backend, ex.fail.outcome(), ex.err, len(ex.tried)-1
	case ex.backend != nil: // its failure was reported, and no other attempt followed
		rep.Last = ex.backend
	}
	p.sel.Report(rep)
	p.logAccess(r, w, ex, status, rep.Duration)
}

// rewrite targets the attempt's backend. The client's Host header is kept
// (as HAProxy, Caddy and Traefik do); the forwarded headers are set by
// setForwarded, since ReverseProxy drops any the client sent.
func (p *Proxy) rewrite(pr *httputil.ProxyRequest) {
	ex := exchangeOf(pr.In)
	pr.SetURL(ex.backend.URL)
	pr.Out.Host = pr.In.Host
	setForwarded(pr, p.trusted)
	dropH2CUpgrade(pr)
	forwardTrailers(pr)
	if ex.body != nil {
		// Lets http.Transport resend on a fresh connection when a pooled one
		// turns out dead before any byte was written.
		pr.Out.GetBody = ex.body.rewind
	}
	ex.askedConn, ex.gotConn = nil, nil
	if pr.Out.URL.Scheme == "https" {
		// A backend that closes or resets the connection during the TLS
		// handshake fails the attempt with a bare EOF or reset, as if it
		// broke after the request was sent. The trace tells them apart:
		// the transport asked for a connection (GetConn) and never had one
		// (GotConn), so nothing was sent. (One it refused before asking,
		// an invalid header, is no connection failure.) Channels per
		// attempt, so that a late signal from an earlier attempt's dial
		// cannot speak for this one. If the transport retries a dead pooled
		// connection on a fresh one and that dial fails, GotConn has fired
		// already: only an error isTLSHandshakeFailure recognises still
		// counts as no connection then; anything else is a 502, never a
		// replay.
		asked, got := make(chan struct{}, 1), make(chan struct{}, 1)
		ex.askedConn, ex.gotConn = asked, got
		signal := func(c chan struct{}) {
			select {
			case c <- struct{}{}:
			default: // already told
			}
		}
		trace := &httptrace.ClientTrace{
			GetConn: func(string) { signal(asked) },
			GotConn: func(httptrace.GotConnInfo) { signal(got) },
		}
		pr.Out = pr.Out.WithContext(httptrace.WithClientTrace(pr.Out.Context(), trace))
	}
}

// noConnection reports whether the attempt at an https backend failed
// before the transport had a connection for it: nothing was sent.
func (ex *exchange) noConnection() bool {
	if ex.gotConn == nil {
		return false
	}
	select {
	case <-ex.askedConn: // the transport did try to get a connection
	default:
		return false // refused before that (an invalid header or trailer)
	}
	select {
	case <-ex.gotConn:
		return false
	default:
		return true
	}
}

// recordError is the ReverseProxy's ErrorHandler. It writes nothing: the
// handler loop decides between a retry and an error response.
func recordError(_ http.ResponseWriter, out *http.Request, err error) {
	ex := exchangeOf(out)
	ex.err = err
	var op *net.OpError
	var ne net.Error
	switch {
	case ex.body != nil && ex.body.err != nil:
		// Before the context: net/http cancels the request's context on
		// any error reading the connection, a malformed body included.
		ex.fail = bodyFailure(ex.body.err)
	case ex.client.Err() != nil:
		ex.fail = clientGone
	case out.Context().Err() != nil: // the request timeout
		ex.fail = timedOut
	case outOfDescriptors(err):
		// The balancer's own fault, not the backend's (see fdlimit.go):
		// no passive health mark, no retry.
		ex.fail = overloaded
	case errors.As(err, &op) && op.Op == "dial", isTLSHandshakeFailure(err), ex.noConnection():
		ex.fail = connectFailed
	case errors.As(err, &ne) && ne.Timeout():
		ex.fail = timedOut
	default:
		ex.fail = broken
	}
}

// retryable reports whether another backend may take the request, and if
// so starts its body again.
func (p *Proxy) retryable(r *http.Request, ex *exchange) bool {
	if len(ex.tried) > p.retries {
		return false
	}
	switch {
	case ex.fail == connectFailed && ex.body.untouched(): // nothing was sent
	case ex.fail == connectFailed, ex.fail == broken:
		if !idempotent(r) || !ex.body.replayable() {
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

// idempotent reports whether repeating r is harmless (RFC 9110 §9.2.2), or
// the client said so with an Idempotency-Key header, as http.Transport honours.
func idempotent(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodPut, http.MethodDelete, http.MethodTrace:
		return true
	}
	return r.Header.Get("Idempotency-Key") != "" || r.Header.Get("X-Idempotency-Key") != ""
}

func (f failure) outcome() actors.Outcome {
	switch f {
	case connectFailed:
		return actors.ConnectFailed
	case broken, timedOut:
		return actors.Failed
	case clientGone, badBody, bodyTooLarge, bodyTimedOut, overloaded:
		return actors.ClientGone // not the backend's fault
	}
	return actors.Success
}

// writeError answers the client for a failure that nothing could save.
func (p *Proxy) writeError(w *recorder, ex *exchange) {
	var code int
	var msg string
	switch ex.fail {
	case clientGone:
		return // nobody to tell; logged as 499
	case noBackend:
		switch {
		case len(ex.tried) == 0 && errors.Is(ex.err, actors.ErrBusy):
			// A connection frees up as soon as any request ends: unlike a
			// health problem, this is worth retrying at once.
			w.Header().Set("Retry-After", "1")
			code, msg = http.StatusServiceUnavailable, "every backend is busy"
		case len(ex.tried) == 0:
			w.Header().Set("Retry-After", p.retryAfter)
			code, msg = http.StatusServiceUnavailable, "no healthy backend"
		default:
			code, msg = http.StatusBadGateway, "backend failed and no other backend could take the request"
		}
	case timedOut:
		code, msg = http.StatusGatewayTimeout, "backend did not answer in time"
	case overloaded:
		w.Header().Set("Retry-After", "1")
		code, msg = http.StatusServiceUnavailable, "balancer overloaded"
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
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(strconv.Itoa(code) + " " + http.StatusText(code) + ": " + msg + "\n"))
}

// logAccess writes the request's access log line: the line hclog would
// write for Info("request", "method", ..., "path", ..., ...), formatted
// without it (no []any, no fmt, no lock) and handed to the log writer
// without a copy (see package accesslog).
func (p *Proxy) logAccess(r *http.Request, w *recorder, ex *exchange, status int, d time.Duration) {
	if p.access == nil {
		return
	}
	rec := accesslog.Record{
		// The path as escaped on the wire: a request cannot put line
		// breaks or terminal controls into the log.
		Method: r.Method, Path: r.URL.EscapedPath(), Client: r.RemoteAddr, Backend: "-",
		Status: status, Duration: d, Bytes: w.bytes,
		RequestID: ex.id, Attempts: len(ex.tried), Err: ex.err,
	}
	if ex.backend != nil {
		rec.Backend = ex.backend.Name
	}
	p.access.Log(&rec)
}
