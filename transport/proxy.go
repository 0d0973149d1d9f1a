package transport

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/roundhouse/roundhouse/actors"
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
	AccessLog  hclog.Logger // one line per request; nil: none
	// TrustedProxies are the peers whose X-Forwarded-* and Forwarded
	// headers are kept and appended to (see forwarded.go); nil: nobody's.
	TrustedProxies TrustedProxies
	// MaxBody caps a request body in bytes: 413 beyond (see admit.go);
	// 0: no cap.
	MaxBody int64
	// Tunnels counts upgraded connections (WebSockets) so that shutdown
	// can wait for them; give the Frontend the same one. nil: not counted.
	Tunnels *Tunnels
	// Limiter limits each client's request rate (429 beyond); nil: no limit.
	Limiter *RateLimiter
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
// nothing was sent), or when the exchange broke before response headers for
// an idempotent method. Either way only if no byte of the request body has
// been read, so the next backend receives the body whole. Otherwise the
// client gets 502, or 504 when the backend sent no headers in time. A client
// that goes away cancels the backend request and is logged as 499.
type Proxy struct {
	sel        *actors.Selector
	rp         *httputil.ReverseProxy
	retries    int
	retryAfter string
	log        hclog.Logger
	access     hclog.Logger
	trusted    TrustedProxies
	maxBody    int64
	tunnels    *Tunnels
	limiter    *RateLimiter
}

// NewProxy returns the balancing handler.
func NewProxy(cfg Config) *Proxy {
	p := &Proxy{sel: cfg.Selector, retries: max(cfg.Retries, 0), log: cfg.Logger, access: cfg.AccessLog,
		trusted: cfg.TrustedProxies, maxBody: max(cfg.MaxBody, 0),
		tunnels: cfg.Tunnels, limiter: cfg.Limiter}
	if p.log == nil {
		p.log = hclog.NewNullLogger()
	}
	secs := int64((max(cfg.RetryAfter, time.Second) + time.Second - 1) / time.Second)
	p.retryAfter = strconv.FormatInt(secs, 10)
	p.rp = &httputil.ReverseProxy{
		Rewrite:      p.rewrite,
		Transport:    cfg.Transport,
		ErrorHandler: recordError,
		ErrorLog:     p.log.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}),
		BufferPool:   newBufferPool(256),
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
)

// exchange is one client request's state across attempts. It lives in the
// request's context so the ReverseProxy hooks can reach it; all of them run
// on the handler goroutine, the exchange's only user.
type exchange struct {
	backend *actors.Backend   // the current attempt's backend
	tried   []*actors.Backend // every backend attempted so far
	body    *replayableBody   // nil when the request has no body
	http1   bool              // the client speaks HTTP/1.x
	fail    failure           // the last attempt's failure
	err     error
}

type exchangeKey struct{}

func exchangeOf(r *http.Request) *exchange { return r.Context().Value(exchangeKey{}).(*exchange) }

// ServeHTTP balances one request; see Proxy.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &recorder{ResponseWriter: w, tunnels: p.tunnels}
	defer rec.endTunnel()
	ex := &exchange{http1: r.ProtoMajor == 1}
	if r.Body != nil && r.Body != http.NoBody {
		ex.body = &replayableBody{ReadCloser: r.Body, limit: p.maxBody}
		// The wrapper ignores Close so a failed attempt cannot end the body;
		// closing the real one when the exchange ends makes any late Read by
		// a transport goroutine fail instead of racing the server's next
		// request on this connection.
		defer r.Body.Close()
		defer linger(w, rec) // before the Close above
		r.Body = ex.body
		// A backend may answer while the upload is still arriving (an echo,
		// an early error): keep reading the body after the response starts.
		_ = http.NewResponseController(w).EnableFullDuplex()
	}
	r = r.WithContext(context.WithValue(r.Context(), exchangeKey{}, ex))
	defer p.logAccess(r, rec, ex, start)
	if !p.admit(rec, r) {
		return
	}

	b, err := p.sel.Pick(r.Context())
	for {
		switch {
		case err != nil && r.Context().Err() != nil:
			ex.fail, ex.err = clientGone, err
			panic(http.ErrAbortHandler) // see below
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
		p.log.Debug("retrying on another backend", "backend", b.Name, "error", ex.err)
		b, err = p.sel.PickExcept(r.Context(), ex.tried)
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

// attempt forwards the request to b and reports the outcome, even if the
// ReverseProxy panics (it aborts a response whose body copy failed).
func (p *Proxy) attempt(w *recorder, r *http.Request, ex *exchange, b *actors.Backend) {
	ex.backend, ex.fail, ex.err = b, noFailure, nil
	ex.tried = append(ex.tried, b)
	start := time.Now()
	defer func() {
		p.sel.Report(actors.Report{
			Backend: b, Outcome: ex.fail.outcome(), Status: w.status,
			Duration: time.Since(start), Err: ex.err,
		})
	}()
	p.rp.ServeHTTP(w, r)
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
	case out.Context().Err() != nil:
		ex.fail = clientGone
	case errors.As(err, &op) && op.Op == "dial", isTLSHandshakeFailure(err):
		ex.fail = connectFailed
	case errors.As(err, &ne) && ne.Timeout():
		ex.fail = timedOut
	default:
		ex.fail = broken
	}
}

// retryable reports whether another backend may take the request.
func (p *Proxy) retryable(r *http.Request, ex *exchange) bool {
	if len(ex.tried) > p.retries || !ex.body.untouched() {
		return false
	}
	switch ex.fail {
	case connectFailed:
		return true
	case broken:
		return idempotent(r)
	}
	return false
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
	case clientGone, badBody, bodyTooLarge:
		return actors.ClientGone
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
		if len(ex.tried) == 0 {
			w.Header().Set("Retry-After", p.retryAfter)
			code, msg = http.StatusServiceUnavailable, "no healthy backend"
		} else {
			code, msg = http.StatusBadGateway, "backend failed and no other backend could take the request"
		}
	case timedOut:
		code, msg = http.StatusGatewayTimeout, "backend sent no response headers in time"
	case badBody:
		w.closeConn = w.closeConn || ex.http1 // the body's framing is broken
		code, msg = http.StatusBadRequest, "malformed request body"
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

// logAccess writes the request's access log line.
func (p *Proxy) logAccess(r *http.Request, w *recorder, ex *exchange, start time.Time) {
	if p.access == nil {
		return
	}
	status := w.status
	if ex.fail == clientGone && !w.written() {
		status = 499
	}
	backend := "-"
	if ex.backend != nil {
		backend = ex.backend.Name
	}
	args := []any{
		// The path as escaped on the wire: a request cannot put line
		// breaks or terminal controls into the log.
		"method", r.Method, "path", r.URL.EscapedPath(), "client", r.RemoteAddr,
		"backend", backend, "status", status, "duration", time.Since(start), "bytes", w.bytes,
	}
	if len(ex.tried) > 1 {
		args = append(args, "attempts", len(ex.tried))
	}
	if ex.err != nil {
		args = append(args, "error", ex.err)
	}
	p.access.Info("request", args...)
}
