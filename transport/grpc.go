package transport

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// gRPC. A gRPC call is an HTTP/2 POST whose content-type is
// application/grpc (or application/grpc+proto, +json, ...); its status is
// not the HTTP status but the grpc-status and grpc-message trailers (or
// headers, in a "trailers-only" response). Roundhouse forwards such calls
// like any request (every call is a pick; trailers pass both ways; TE:
// trailers reaches the backend, as ReverseProxy keeps it; responses of
// unknown length, as gRPC's are, are flushed at once), and changes three
// things for them:
//
//   - the balancer's own errors are trailers-only responses, as Envoy
//     sends them: HTTP 200, content-type application/grpc, and the
//     grpc-status and grpc-message headers (grpcCodeFor says which
//     status), because a gRPC client reports a bare 502 or 503 as
//     "Unavailable: unexpected HTTP status code" and drops our reason;
//   - a response that breaks off after it began (the backend's stream
//     was reset, its connection died) ends with grpc-status 14
//     UNAVAILABLE in the trailers, or 4 DEADLINE_EXCEEDED when the
//     request's deadline ran out, instead of a reset stream, which
//     clients report as 13 INTERNAL;
//   - grpc-timeout, the client's deadline, bounds the request like the
//     pool's request timeout (the shorter of the two wins).

// gRPC status codes (google.golang.org/grpc/codes), the ones the balancer
// sends.
const (
	grpcCancelled         = 1
	grpcUnknown           = 2
	grpcPermissionDenied  = 7
	grpcDeadlineExceeded  = 4
	grpcResourceExhausted = 8
	grpcUnimplemented     = 12
	grpcInternal          = 13
	grpcUnavailable       = 14
	grpcUnauthenticated   = 16
)

// isGRPC reports whether r is a gRPC call: its content-type is
// application/grpc, alone or with a +suffix or parameters (not
// application/grpc-web, whose framing differs).
func isGRPC(r *http.Request) bool {
	ct := r.Header.Get("Content-Type")
	const base = "application/grpc"
	if len(ct) < len(base) || !strings.EqualFold(ct[:len(base)], base) {
		return false
	}
	return len(ct) == len(base) || ct[len(base)] == '+' || ct[len(base)] == ';'
}

// grpcCodeFor is the gRPC status that stands for an HTTP status the
// balancer answers with itself: gRPC's own mapping (doc/http-grpc-status-
// mapping.md) where it fits, and Envoy's choices where the balancer knows
// better (a timeout is DEADLINE_EXCEEDED, a refused body RESOURCE_EXHAUSTED).
// A 503 for every busy backend is RESOURCE_EXHAUSTED too: writeError says
// so itself, since 503 alone is UNAVAILABLE.
func grpcCodeFor(code int) int {
	switch code {
	case http.StatusBadGateway, http.StatusServiceUnavailable:
		return grpcUnavailable
	case http.StatusGatewayTimeout, http.StatusRequestTimeout:
		return grpcDeadlineExceeded
	case http.StatusTooManyRequests, http.StatusRequestEntityTooLarge:
		return grpcResourceExhausted
	case http.StatusNotFound, http.StatusMethodNotAllowed:
		return grpcUnimplemented // no route: no such service here
	case http.StatusBadRequest:
		return grpcInternal
	}
	return grpcUnknown
}

// grpcError writes a trailers-only gRPC response: HTTP 200 with the status
// in the headers and no body. The recorder logs it as 200; end reads the
// gRPC status back for the log and the metrics.
func grpcError(w *recorder, status int, msg string) {
	h := w.Header()
	h.Set("Content-Type", "application/grpc")
	h.Set("Grpc-Status", strconv.Itoa(status))
	h.Set("Grpc-Message", grpcEncodeMessage(msg))
	w.WriteHeader(http.StatusOK)
}

// grpcEndBroken ends a gRPC response that broke off after its headers
// went out (ReverseProxy aborted it) with a status in the trailers: 4
// DEADLINE_EXCEEDED when the request's deadline ran out, 14 UNAVAILABLE
// otherwise (see the comment above). It reports whether it could: the
// client speaks HTTP/2 (the only way to send trailers after a body of
// unknown length) and the response is gRPC; otherwise the handler aborts,
// and the client sees its stream reset.
func (p *Proxy) grpcEndBroken(ex *exchange, r *http.Request) bool {
	h := ex.rec.Header()
	if ex.http1 || !strings.HasPrefix(h.Get("Content-Type"), "application/grpc") {
		return false
	}
	if grpcStatusOf(h) >= 0 {
		return true // the backend's own status reached the client
	}
	status, msg := grpcUnavailable, "backend stream broke off"
	if r.Context().Err() != nil && ex.client.Err() == nil {
		status, msg = grpcDeadlineExceeded, "backend did not answer in time"
	}
	h.Set(http.TrailerPrefix+"Grpc-Status", strconv.Itoa(status))
	h.Set(http.TrailerPrefix+"Grpc-Message", grpcEncodeMessage(msg))
	return true
}

// grpcStatusOf returns the gRPC status a response carried, from its
// trailers or, trailers-only, its headers; -1 when it carries none.
func grpcStatusOf(h http.Header) int {
	v := h.Get("Grpc-Status")
	if v == "" {
		v = h.Get(http.TrailerPrefix + "Grpc-Status")
	}
	if v == "" {
		return -1
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return -1
	}
	return n
}

// grpcStatusAtEnd is the gRPC status a gRPC call ended with, as its
// client reads it, for the log and the metrics: the grpc-status the
// client got (the backend's or ours), or else 1 CANCELLED when the client
// left (status 499), or else what gRPC clients make of the HTTP status
// (grpcCodeForHTTP).
func grpcStatusAtEnd(w *recorder, status int) int {
	if s := grpcStatusOf(w.Header()); s >= 0 {
		return s
	}
	if status == 499 {
		return grpcCancelled
	}
	return grpcCodeForHTTP(status)
}

// grpcCodeForHTTP is the status a gRPC client reports for a response with
// this HTTP status and no grpc-status (gRPC's doc/http-grpc-status-
// mapping.md): what a non-gRPC answer from a backend means to it.
func grpcCodeForHTTP(code int) int {
	switch code {
	case http.StatusBadRequest:
		return grpcInternal
	case http.StatusUnauthorized:
		return grpcUnauthenticated
	case http.StatusForbidden:
		return grpcPermissionDenied
	case http.StatusNotFound:
		return grpcUnimplemented
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return grpcUnavailable
	}
	return grpcUnknown
}

// grpcEncodeMessage percent-encodes msg as grpc-message wants: every byte
// outside printable ASCII, and '%' itself.
func grpcEncodeMessage(msg string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(msg); i++ {
		c := msg[i]
		if c >= ' ' && c <= '~' && c != '%' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// grpcTimeout reads a grpc-timeout header: at most 8 digits and a unit
// (H, M, S, m, u, n). ok is false when r has none or it is malformed (it
// is then ignored, as grpc-go's server would refuse it anyway).
func grpcTimeout(r *http.Request) (d time.Duration, ok bool) {
	v := r.Header.Get("Grpc-Timeout")
	if len(v) < 2 || len(v) > 9 {
		return 0, false
	}
	n, err := strconv.ParseInt(v[:len(v)-1], 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	var unit time.Duration
	switch v[len(v)-1] {
	case 'H':
		unit = time.Hour
	case 'M':
		unit = time.Minute
	case 'S':
		unit = time.Second
	case 'm':
		unit = time.Millisecond
	case 'u':
		unit = time.Microsecond
	case 'n':
		unit = time.Nanosecond
	default:
		return 0, false
	}
	if n > int64(1<<63-1)/int64(unit) {
		return 1<<63 - 1, true
	}
	return time.Duration(n) * unit, true
}
