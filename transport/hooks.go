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
	"strings"

	"github.com/roundhouse/roundhouse/actors"
)

// The hooks of an attempt (see forwarder.go): rewrite prepares the
// outbound request, the transport sends it, and then either
// modifyResponse sees the response before it goes to the client, or
// recordError sees why there is none. They run on the handler goroutine
// and get the exchange as an argument; for the requests that go through
// httputil.ReverseProxy, which calls its hooks with nothing but the
// request, the *Hook adapters find it in the request's context (see
// exchangeKey).

func (p *Proxy) rewriteHook(pr *httputil.ProxyRequest) { p.rewrite(exchangeOf(pr.In), pr) }

func (p *Proxy) modifyResponseHook(resp *http.Response) error {
	return p.modifyResponse(exchangeOf(resp.Request), resp)
}

func recordErrorHook(_ http.ResponseWriter, out *http.Request, err error) {
	exchangeOf(out).recordError(out, err)
}

// rewrite targets the attempt's backend. The client's Host header is kept
// (as HAProxy, Caddy and Traefik do); the forwarded headers are set by
// setForwarded, since the client's own were dropped before (for the fast
// path, prepareHeader did both, once per exchange).
func (p *Proxy) rewrite(ex *exchange, pr *httputil.ProxyRequest) {
	pr.SetURL(ex.backend.URL)
	pr.Out.Host = pr.In.Host
	if !ex.lean() { // the fast path's prepareHeader set them, once
		setForwarded(pr, p.trusted)
		if ex.route != "" { // routed: the prefix is what the route stripped
			setForwardedPrefix(pr, p.trusted, ex.prefix)
		}
		if p.idHeader != "" {
			// begin's (read only), even if the client's Connection named
			// its header and ReverseProxy dropped it.
			pr.Out.Header[p.idHeader] = pr.In.Header[p.idHeader]
		}
	}
	dropH2CUpgrade(pr)
	forwardTrailers(pr)
	ex.responded = nil
	if ex.body != nil && !ex.http1 && pr.Out.Body != nil {
		ex.responded = make(chan struct{})
		pr.Out.Body = &streamBody{ReadCloser: pr.Out.Body, src: ex.body.src, responded: ex.responded}
	}
	if ex.body != nil && pr.Out.URL.Scheme != "h2c" {
		// Lets http.Transport resend on a fresh connection when a pooled one
		// turns out dead before any byte was written. Not for h2c: with
		// it, net/http would resend a refused stream (see refusedStream)
		// to the same backend, with a backoff of a second and more after
		// the first; without it, the refusal comes back here, and the
		// request goes to another backend at once.
		pr.Out.GetBody = ex.body.rewind
	}
	if pr.Out.URL.Scheme == "h2c" {
		if pr.Out.Body != nil {
			pr.Out.Body = attemptBody{ReadCloser: pr.Out.Body, responded: ex.responded} // see attemptBody
		}
		var ctx context.Context
		ctx, ex.endAttempt = boundConns(pr.Out.Context())
		pr.Out = pr.Out.WithContext(ctx)
	}
	if ex.backend.ProxyProtocol != 0 {
		// The backend, for backendTransport, and the PROXY header's
		// addresses, for the dial goroutine.
		ctx := actors.WithBackend(withHeaderAddrs(pr.Out.Context(), pr.In), ex.backend)
		pr.Out = pr.Out.WithContext(ctx)
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

// recordError writes nothing: it classifies the attempt's failure, and
// forward (a retry) or answer (an error response) acts on it. The
// client's read error comes from the body's writer by message
// (replayableBody.failure).
func (ex *exchange) recordError(out *http.Request, err error) {
	ex.err = err
	var op *net.OpError
	var ne net.Error
	switch {
	case ex.body != nil && ex.body.failure() != nil:
		// Before the context: net/http cancels the request's context on
		// any error reading the connection, a malformed body included.
		ex.fail = bodyFailure(ex.body.failure())
	case ex.client.Err() != nil:
		ex.fail = clientGone
	case errors.Is(err, errGoneAwayAgain): // the https bound, in Transport.RoundTrip
		ex.fail = refused
	case goneAwayAgain(out): // the h2c bound, on the attempt's context
		ex.fail, ex.err = refused, fmt.Errorf("%w (%w)", errGoneAwayAgain, err)
	case out.Context().Err() != nil: // the request timeout
		ex.fail = timedOut
	case outOfDescriptors(err):
		// The balancer's own fault, not the backend's (see fdlimit.go):
		// no passive health mark, no retry.
		ex.fail = overloaded
	case refusedStream(err):
		ex.fail = refused
	case errors.As(err, &op) && op.Op == "dial", isTLSHandshakeFailure(err), ex.noConnection():
		ex.fail = connectFailed
	case errors.As(err, &ne) && ne.Timeout():
		// The request's context is live, so this timeout is the attempt's
		// own: the transport's ResponseHeaderTimeout (dial and TLS
		// handshake timeouts are connection failures, above).
		ex.fail = headerTimedOut
	default:
		ex.fail = broken
	}
}

// refusedStream reports whether err says that an HTTP/2 backend refused
// the request's stream before processing it: RST_STREAM with
// REFUSED_STREAM (RFC 9113 §8.7), or a GOAWAY whose last stream ID is
// below the stream's. The backend never saw the request, so it may go to
// another backend whatever its method. net/http's HTTP/2 errors are
// unexported types and values, so this matches their text: a StreamError
// names its code ("stream error: stream ID 3; REFUSED_STREAM"), the
// GOAWAY one reads "http2: Transport received Server's graceful shutdown
// GOAWAY", and either may come wrapped in "cannot retry err [...]" when
// net/http itself declined to resend the body (see rewrite). A GOAWAY
// that closed the connection under streams it may have processed reads
// otherwise ("server sent GOAWAY and closed the connection") and is not
// matched. Last, http.Transport's "cannot rewind body after connection
// loss" says that it would itself have resent the request on a fresh
// connection, because the one it chose could take no new stream (it had
// gone away), had it a GetBody: nothing was processed either. So does
// ReverseProxy's "invalid Read on closed Body": the HTTP/2 transport
// closed the body when it gave up a stream on a connection that could
// take no new one (before reading any of it), then resent the request
// itself on another connection, whose read of that closed body failed.
func refusedStream(err error) bool {
	s := err.Error()
	return strings.Contains(s, "REFUSED_STREAM") || strings.Contains(s, "graceful shutdown GOAWAY") ||
		strings.Contains(s, "cannot rewind body after connection loss") ||
		strings.Contains(s, "invalid Read on closed Body")
}

// modifyResponse pins the client to the backend that answered when the
// policy is sticky and the request's cookie named another (or none).
//
// With request IDs on, it also drops the backend's own copy of the ID
// header: the client gets ours, set before the response began, once.
//
// It also watches the response body (see responseBody), except a switch
// of protocols, whose body ReverseProxy needs as it is.
func (p *Proxy) modifyResponse(ex *exchange, resp *http.Response) error {
	if ex.responded != nil {
		close(ex.responded) // no retry now: a Close of the body may reach the client's
		ex.responded = nil
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		ex.respBody = responseBody{ReadCloser: resp.Body, ex: ex}
		resp.Body = &ex.respBody
	} else if !switchAsked(resp) {
		// ReverseProxy refuses it too, but then never closes the backend
		// connection, which is the caller's after a 101; refused here,
		// the body (the connection) is closed. The client gets 502.
		return errSwitchNotAsked
	}
	if p.idHeader != "" {
		resp.Header.Del(p.idHeader)
	}
	if ex.pool.Key.Kind != actors.KeyCookie {
		return nil
	}
	token := actors.StickyToken(ex.pool.StickySecret, ex.backend)
	if token == ex.key {
		return nil
	}
	c := &http.Cookie{
		Name: ex.pool.Key.Name, Value: token, Path: "/",
		HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: ex.secure,
	}
	resp.Header.Add("Set-Cookie", c.String())
	return nil
}

var errSwitchNotAsked = errors.New("backend switched protocols, which the request did not ask for")

// switchAsked reports whether a 101 switches to the protocol its request
// asked for, by ReverseProxy's rule: an Upgrade header, with "upgrade" in
// Connection, naming the same protocol on both sides, compared in ASCII
// as ReverseProxy compares them (with strings.EqualFold, "webſocket"
// passed here for "websocket", and ReverseProxy then refused the 101
// without closing the backend's connection).
func switchAsked(resp *http.Response) bool {
	asked := upgradeOf(resp.Request.Header)
	return asked != "" && asciiEqualFold(asked, upgradeOf(resp.Header))
}

// upgradeOf is h's Upgrade header when its Connection header lists
// "upgrade"; "" otherwise.
func upgradeOf(h http.Header) string {
	if !hasToken(h["Connection"], "upgrade") {
		return ""
	}
	return h.Get("Upgrade")
}

// responseBody is a backend's response body on its way to the client. A
// read that fails (the backend reset, the request timeout) cuts the
// response short after its status went out: send (or ReverseProxy) then
// aborts the handler, and nothing else would tell the access log. It is
// read on the handler goroutine, the exchange's.
type responseBody struct {
	io.ReadCloser
	ex *exchange
}

func (b *responseBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF && b.ex.err == nil {
		b.ex.err = fmt.Errorf("response cut short: %w", err)
		// The backend's doing, unless a context ended the read: the
		// client left, or the whole-request timeout cut a long answer
		// (a limit set here, not the backend's failing); or unless the
		// client's own body failed (past MaxBody, stalled, malformed),
		// which ended the upload and with it the exchange.
		if b.ex.fail == noFailure && b.ex.client.Err() == nil &&
			!errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) &&
			!b.ex.clientBodyFailed() {
			b.ex.fail = bodyCut
		}
	}
	return n, err
}

// clientBodyFailed reports whether reading the client's request body
// failed in a way that is the client's fault (see bodyFailure), which
// cuts a response that had begun: the balancer, not the backend, ended
// the exchange. An HTTP/2 client's body that reads as malformed is not
// counted: streamBody closes it after the backend's stream broke (that
// close is the only way an HTTP/2 body of ours fails with badBody), so
// it follows the backend's failure rather than causing it.
func (ex *exchange) clientBodyFailed() bool {
	if ex.body == nil || ex.body.failure() == nil {
		return false
	}
	return bodyFailure(ex.body.failure()) != badBody || ex.http1
}
