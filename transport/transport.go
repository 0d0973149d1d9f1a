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
}

// New returns the *http.Transport that every request and health probe
// shares. Unlike http.DefaultTransport it never consults proxy environment
// variables, keeps a keep-alive pool large enough for sustained load, passes
// Accept-Encoding through untouched, and bounds the dial and the wait for
// response headers. An https:// backend is verified against BackendCAs for
// the host name in its URL, which is also sent as SNI; it gets TLS 1.2 or
// later and HTTP/2 when it offers h2 by ALPN (WebSocket upgrades always
// use HTTP/1.1). http:// backends get HTTP/1.1.
func New(o Options) *http.Transport {
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
	}
}
