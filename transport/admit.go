package transport

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"os"
	"strconv"
	"strings"
	"time"
)

// allowedMethods is the Allow header of a 405: what the balancer forwards.
const allowedMethods = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"

// admit answers, on the handler goroutine and before any backend is
// chosen, the requests the balancer refuses itself. It returns false when
// it has answered.
//
//   - CONNECT gets 405: the balancer is not a forward proxy and never opens
//     a tunnel to an address a client names. (Absolute-form targets naming
//     another host than Host never get this far: see guard.go.)
//   - A client over its rate limit (see RateLimiter) gets 429 with
//     Retry-After. The client is the peer, or the address a trusted proxy
//     names for it (see clientAddr).
//   - A request whose Content-Length passes MaxBody gets 413 at once, its
//     body unread. A body of unknown length (chunked, or HTTP/2 without
//     content-length) is counted as it streams to the backend; when it
//     passes MaxBody the backend request is aborted (the backend sees the
//     body break off, never a clean end) and the client gets 413 if no
//     response has begun, or else its connection is cut: a backend that
//     answers before reading the whole body may already have sent its
//     status, which cannot be taken back.
//   - An HTTP/1.x request with an Upgrade header is marked so that its
//     connection closes after the answer unless the backend switches
//     protocols: the framing guard stops checking a connection after an
//     upgrade request, so it must not carry another request. One whose
//     Upgrade protocol is not printable ASCII gets 400 (ReverseProxy
//     would refuse to send it).
func (p *Proxy) admit(w *recorder, r *http.Request) bool {
	if r.Method == "PRI" {
		// An HTTP/2 preface that was not taken as cleartext HTTP/2.
		return refuse(w, r, http.StatusBadRequest, "unexpected HTTP/2 connection preface")
	}
	if r.Method == http.MethodConnect {
		w.Header().Set("Allow", allowedMethods)
		return refuse(w, r, http.StatusMethodNotAllowed, "CONNECT is not supported; this is not a forward proxy")
	}
	if p.limiter != nil {
		if addr, ok := clientAddr(r, p.trusted); ok {
			// An error means the client or the limiter is gone: let it be.
			allowed, wait, err := p.limiter.Allow(r.Context(), addr)
			if err == nil && !allowed {
				w.Header().Set("Retry-After", retryAfter(wait))
				return refuse(w, r, http.StatusTooManyRequests, "rate limit exceeded")
			}
		}
	}
	if p.maxBody > 0 && r.ContentLength > p.maxBody {
		return refuse(w, r, http.StatusRequestEntityTooLarge, bodyTooLargeMsg)
	}
	if r.ProtoMajor == 1 && len(r.Header.Values("Upgrade")) > 0 {
		w.closeConn = true
	}
	if up := upgradeOf(r.Header); !isPrintASCII(up) {
		// ReverseProxy would refuse to send it ("client tried to switch
		// to invalid protocol"), and that error, taken for a broken
		// exchange, marked a failure against every backend it was
		// retried on: the client's doing.
		return refuse(w, r, http.StatusBadRequest, "invalid Upgrade protocol")
	}
	return true
}

// isPrintASCII reports whether s is printable ASCII (or empty), as
// ReverseProxy requires of an Upgrade protocol.
func isPrintASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

// refuse answers a request the balancer will not forward, and returns
// false for admit. On HTTP/1.x a request that may carry a body, or a
// CONNECT or preface whose following bytes are not requests, has its
// connection closed after the answer: the body stays unread (see linger).
func refuse(w *recorder, r *http.Request, code int, msg string) bool {
	if r.ProtoMajor == 1 && (r.ContentLength != 0 || r.Method == http.MethodConnect || r.Method == "PRI") {
		w.closeConn = true
	}
	plainError(w, code, msg)
	return false
}

const bodyTooLargeMsg = "request body larger than the limit"

// dropH2CUpgrade keeps a request for cleartext HTTP/2 (Upgrade: h2c) from
// reaching a backend, which might switch and hand the client an HTTP/2
// connection past the balancer ("h2c smuggling"). The request is forwarded
// as plain HTTP/1.1, which is what a client offering h2c falls back to.
func dropH2CUpgrade(pr *httputil.ProxyRequest) {
	if strings.EqualFold(pr.Out.Header.Get("Upgrade"), "h2c") {
		pr.Out.Header.Del("Upgrade")
		pr.Out.Header.Del("Connection")
		pr.Out.Header.Del("Http2-Settings")
	}
}

// forwardTrailers lets a request's trailer reach the backend. net/http
// fills in the values of a declared trailer (the Trailer header) only when
// the body ends, after ReverseProxy has copied the request, so the copy's
// trailer would stay empty. Sharing the map carries the values over: the
// transport reads the body to its end, and so sees them filled in, before
// it writes the trailer. (An undeclared trailer cannot be forwarded.)
func forwardTrailers(pr *httputil.ProxyRequest) {
	if len(pr.In.Trailer) > 0 {
		// net/http's server does not check the names a Trailer header
		// declares, but its transport refuses a request declaring one that
		// is not a token: drop those (they could never be sent). In place,
		// since the server fills in this very map as the trailers arrive.
		for k := range pr.In.Trailer {
			if !isToken(k) {
				delete(pr.In.Trailer, k)
			}
		}
		pr.Out.Trailer = pr.In.Trailer
	}
}

// plainError writes one of the balancer's own answers: a status and a short
// fixed reason, never anything from the request.
func plainError(w http.ResponseWriter, code int, msg string) {
	if rec, ok := w.(*recorder); ok && rec.grpc {
		grpcError(rec, grpcCodeFor(code), msg)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(strconv.Itoa(code) + " " + http.StatusText(code) + ": " + msg + "\n"))
}

// bodyFailure classifies an error reading the client's request body: one
// past MaxBody (413); a client that went away mid-upload (499, nothing to
// answer); any other error means the body itself was bad (400). None is
// the backend's fault.
func bodyFailure(err error) failure {
	var ne net.Error
	switch {
	case errors.Is(err, errBodyTooLarge):
		return bodyTooLarge
	case errors.Is(err, os.ErrDeadlineExceeded): // BodyTimeout's
		return bodyTimedOut
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.As(err, &ne):
		return clientGone
	}
	return badBody
}

// lingerTime bounds how long a connection that is closing waits for the
// unread rest of a request body.
const lingerTime = time.Second

// linger runs, in release, before a request's body is closed. Closing an
// unread body makes net/http read and discard what is left of it (up to
// 256 KiB) so that the connection can carry another request; a client
// still sending would hold the handler until it stops. linger bounds that
// wait, but only when the connection is certain to close, since a
// connection whose body is left half-read must never be reused:
//
//   - when the response carries "Connection: close", it is sent first and
//     the discarding gets lingerTime: the client sees its answer at once,
//     its unread bytes are drained so the close is a clean FIN rather than
//     a reset that could wipe out the answer, and a client that never
//     sends them holds nothing;
//   - when the handler is aborting (http.ErrAbortHandler, which net/http
//     answers by closing the connection), the discarding stops at once.
func linger(w http.ResponseWriter, rec *recorder, aborting bool) {
	switch {
	case rec.hijacked:
	case aborting:
		_ = http.NewResponseController(w).SetReadDeadline(time.Now())
	case rec.closeConn && rec.status != 0:
		rc := http.NewResponseController(w)
		_ = rc.Flush()
		_ = rc.SetReadDeadline(time.Now().Add(lingerTime))
	}
}
