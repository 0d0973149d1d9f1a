package transport

import (
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

// ReverseProxy's hooks: what forward's one call to ReverseProxy.ServeHTTP
// runs, in this order: rewrite prepares the outbound request, the
// transport sends it, and then either modifyResponse sees the response
// before ReverseProxy copies it to the client, or recordError sees why
// there is none. They run on the handler goroutine, and find the
// exchange in the request's context (see exchangeKey).

// rewrite targets the attempt's backend. The client's Host header is kept
// (as HAProxy, Caddy and Traefik do); the forwarded headers are set by
// setForwarded, since ReverseProxy drops any the client sent.
func (p *Proxy) rewrite(pr *httputil.ProxyRequest) {
	ex := exchangeOf(pr.In)
	pr.SetURL(ex.backend.URL)
	pr.Out.Host = pr.In.Host
	setForwarded(pr, p.trusted)
	if ex.route != "" { // routed: the prefix is what the route stripped
		setForwardedPrefix(pr, p.trusted, ex.prefix)
	}
	dropH2CUpgrade(pr)
	forwardTrailers(pr)
	if ex.body != nil {
		// Lets http.Transport resend on a fresh connection when a pooled one
		// turns out dead before any byte was written.
		pr.Out.GetBody = ex.body.rewind
	}
	if ex.backend.ProxyProtocol != 0 {
		// The PROXY header's addresses, for the dial goroutine.
		pr.Out = pr.Out.WithContext(withHeaderAddrs(pr.Out.Context(), pr.In))
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

// recordError is the ReverseProxy's ErrorHandler. It writes nothing: it
// classifies the failure, and forward (a retry) or answer (an error
// response) acts on it. It reads the body's err, which the transport's
// writer sets: see replayableBody for why that is ordered.
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
		// The request's context is live, so this timeout is the attempt's
		// own: the transport's ResponseHeaderTimeout (dial and TLS
		// handshake timeouts are connection failures, above).
		ex.fail = headerTimedOut
	default:
		ex.fail = broken
	}
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
