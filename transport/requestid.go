package transport

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
)

// Request IDs. Every request the balancer forwards carries an ID in one
// header (Config.RequestIDHeader, normally X-Request-ID) to the backend,
// and the client gets the same ID back in its response, so one request can
// be followed through the logs of every hop. The balancer logs it as
// request_id in the access log line and in every other line it writes about
// the request.
//
// An ID a trusted proxy sent (a peer in TrustedProxies: it made or kept
// one upstream) is kept, as long as it is a plausible ID: 1 to 128 visible
// ASCII characters. Any other peer's ID is a claim the balancer does not
// believe, since a client could pick one to collide with another request's
// or to forge log lines; it is replaced by a new one, 16 random bytes from
// crypto/rand in hex.

// maxRequestIDLen bounds a kept ID; a longer one is replaced.
const maxRequestIDLen = 128

// requestID returns r's ID: the one in header from a trusted peer, or a new
// one.
func requestID(r *http.Request, header string, trusted TrustedProxies) string {
	if peer, ok := peerAddr(r); ok && trusted.Contains(peer) {
		if vs := r.Header.Values(header); len(vs) == 1 && plausibleID(vs[0]) {
			return vs[0]
		}
	}
	return newRequestID()
}

// newRequestID returns 16 random bytes in hex.
func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand's documentation)
	return hex.EncodeToString(b[:])
}

// plausibleID reports whether id is 1 to maxRequestIDLen visible ASCII
// characters, none a space or a quote.
func plausibleID(id string) bool {
	if id == "" || len(id) > maxRequestIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c <= ' ' || c >= 0x7f || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// logArgs returns kv with the exchange's request ID in front, for a log
// line about the request.
func (p *Proxy) logArgs(ex *exchange, kv ...any) []any {
	if ex.id == "" {
		return kv
	}
	return append([]any{"request_id", ex.id}, kv...)
}
