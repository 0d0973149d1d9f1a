package transport

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"strings"
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
//   - An HTTP/1.x request with an Upgrade header is marked so that its
//     connection closes after the answer unless the backend switches
//     protocols: the framing guard stops checking a connection after an
//     upgrade request, so it must not carry another request.
func (p *Proxy) admit(w *recorder, r *http.Request) bool {
	h1 := r.ProtoMajor == 1
	if r.Method == http.MethodConnect {
		w.closeConn = h1
		w.Header().Set("Allow", allowedMethods)
		plainError(w, http.StatusMethodNotAllowed, "CONNECT is not supported; this is not a forward proxy")
		return false
	}
	if h1 && len(r.Header.Values("Upgrade")) > 0 {
		w.closeConn = true
	}
	return true
}

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

// plainError writes one of the balancer's own answers: a status and a short
// fixed reason, never anything from the request.
func plainError(w http.ResponseWriter, code int, msg string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(strconv.Itoa(code) + " " + http.StatusText(code) + ": " + msg + "\n"))
}

// bodyFailure classifies an error reading the client's request body: a
// client that went away mid-upload is gone (499, nothing to answer); any
// other error means the body itself was bad (400). Neither is the
// backend's fault.
func bodyFailure(err error) failure {
	var ne net.Error
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.As(err, &ne) {
		return clientGone
	}
	return badBody
}
