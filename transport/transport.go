package transport

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"time"

	"github.com/roundhouse/roundhouse/internal/defaults"
)

// Options tunes the shared transport. Every zero field takes the default
// named in its comment.
type Options struct {
	DialTimeout           time.Duration // connect timeout; 0: defaults.DialTimeout
	TLSHandshakeTimeout   time.Duration // TLS handshake with an https backend; 0: defaults.TLSHandshakeTimeout
	ResponseHeaderTimeout time.Duration // wait for response headers; 0: defaults.ResponseHeaderTimeout
	IdleConnTimeout       time.Duration // idle pooled connection lifetime; 0: defaults.BackendIdleTimeout
	// MaxIdleConnsPerHost bounds the keep-alive pool per backend; 0: 1024.
	// It must exceed the concurrency one backend sees, or every response
	// beyond it closes a connection and the next request dials a new one.
	MaxIdleConnsPerHost int
	// BackendCAs verifies https:// backends; nil: the system's roots.
	BackendCAs *x509.CertPool
	// MaxResponseHeaderBytes bounds a backend's response head (status
	// line and headers); a larger one fails the attempt (502). 0: 64 KiB,
	// the same as a client's request head (FrontendOptions.MaxHeaderBytes).
	MaxResponseHeaderBytes int64
	// H2Ping is how long an HTTP/2 backend connection (h2c://, or https://
	// that chose h2) may stay silent before the transport sends it a PING;
	// one not answered within H2Ping more closes the connection, failing
	// its streams, so a black-holed connection is found within twice
	// H2Ping. 0: defaults.BackendH2Ping.
	H2Ping time.Duration
}

// Transport is the transport that every request and health probe of a
// pool shares: an *http.Transport for http:// and https:// backends, and
// a sibling tuned the same way for h2c:// backends, which speaks HTTP/2
// without TLS by prior knowledge (RFC 9113 §3.3), as gRPC services do.
// Each keeps its own connection pool; RoundTrip sends a request by its
// URL's scheme, so the proxy and the health monitors need nothing else to
// reach an h2c backend. Its fields are those of the http:// and https://
// transport (http.Transport's methods other than RoundTrip and
// CloseIdleConnections see that one alone). Safe for concurrent use.
type Transport struct {
	*http.Transport
	h2c *http.Transport
}

// New returns the shared transport. Unlike http.DefaultTransport it never
// consults proxy environment variables, keeps a keep-alive pool large
// enough for sustained load, passes Accept-Encoding through untouched,
// and bounds the dial and the wait for response headers. An https://
// backend is verified against BackendCAs for the host name in its URL,
// which is also sent as SNI; it gets TLS 1.2 or later and HTTP/2 when it
// offers h2 by ALPN (WebSocket upgrades always use HTTP/1.1). http://
// backends get HTTP/1.1, and h2c:// backends HTTP/2 over cleartext TCP,
// whatever the client spoke. Both HTTP/2 kinds are pinged when silent (see
// Options.H2Ping).
func New(o Options) *Transport {
	if o.H2Ping <= 0 {
		o.H2Ping = defaults.BackendH2Ping
	}
	t := &Transport{Transport: newHTTP(o), h2c: newHTTP(o)}
	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true) // and nothing else: prior knowledge
	t.h2c.Protocols = &protocols
	return t
}

// RoundTrip sends r through the transport its URL's scheme needs: an h2c
// request goes to the h2c transport as an http one (the scheme net/http
// knows for cleartext), and its response reports r as its request. An
// h2c or https request may try at most two connections, or two times one
// connection, when an HTTP/2 backend refuses its stream (see
// sendBounded); the error then says "never processed".
func (t *Transport) RoundTrip(r *http.Request) (*http.Response, error) {
	switch r.URL.Scheme {
	case "https":
		return sendBounded(t.Transport, r, true)
	case "h2c":
	default:
		return t.Transport.RoundTrip(r)
	}
	out, u := *r, *r.URL
	u.Scheme = "http"
	out.URL = &u
	resp, err := sendBounded(t.h2c, &out, false)
	if resp != nil {
		resp.Request = r
	}
	return resp, err
}

// CloseIdleConnections closes both transports' idle connections.
func (t *Transport) CloseIdleConnections() {
	t.Transport.CloseIdleConnections()
	t.h2c.CloseIdleConnections()
}

// newHTTP returns an *http.Transport tuned as o says, for http:// and
// https:// backends (HTTP/1.1, and HTTP/2 by ALPN on TLS).
func newHTTP(o Options) *http.Transport {
	if o.DialTimeout <= 0 {
		o.DialTimeout = defaults.DialTimeout
	}
	if o.TLSHandshakeTimeout <= 0 {
		o.TLSHandshakeTimeout = defaults.TLSHandshakeTimeout
	}
	if o.ResponseHeaderTimeout <= 0 {
		o.ResponseHeaderTimeout = defaults.ResponseHeaderTimeout
	}
	if o.IdleConnTimeout <= 0 {
		o.IdleConnTimeout = defaults.BackendIdleTimeout
	}
	if o.MaxIdleConnsPerHost <= 0 {
		o.MaxIdleConnsPerHost = 1024
	}
	if o.MaxResponseHeaderBytes <= 0 {
		o.MaxResponseHeaderBytes = 64 << 10 // net/http's own default is 10 MiB per request
	}
	if o.H2Ping <= 0 {
		o.H2Ping = defaults.BackendH2Ping
	}
	dialer := &net.Dialer{Timeout: o.DialTimeout, KeepAlive: 30 * time.Second}
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetHTTP2(true) // by ALPN, on TLS only
	return &http.Transport{
		Protocols:              &protocols,
		TLSClientConfig:        &tls.Config{RootCAs: o.BackendCAs, MinVersion: tls.VersionTLS12},
		Proxy:                  nil, // never honour HTTP_PROXY and friends
		DialContext:            dialer.DialContext,
		MaxIdleConns:           0, // no global cap; the per-host cap rules
		MaxIdleConnsPerHost:    o.MaxIdleConnsPerHost,
		IdleConnTimeout:        o.IdleConnTimeout,
		ResponseHeaderTimeout:  o.ResponseHeaderTimeout,
		MaxResponseHeaderBytes: o.MaxResponseHeaderBytes,
		TLSHandshakeTimeout:    o.TLSHandshakeTimeout,
		ExpectContinueTimeout:  time.Second,
		DisableCompression:     true, // the client's Accept-Encoding is the backend's business
		HTTP2: &http.HTTP2Config{
			// A silent connection is pinged, and closed when the ping
			// goes unanswered: a backend that vanished without a FIN
			// (black-holed, frozen) fails its streams in bounded time
			// instead of hanging them until the request timeout.
			SendPingTimeout: o.H2Ping,
			PingTimeout:     o.H2Ping,
		},
	}
}
