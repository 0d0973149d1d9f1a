// Package yardstick holds the proxies Roundhouse is measured against, in
// bench/run.sh (through the bench/baseline command) and in the transport
// package's BenchmarkProxy, so that both measure the same code.
//
// They are yardsticks, not part of Roundhouse, and do not follow its rules:
// they balance with an atomic round-robin counter shared by every handler
// goroutine, the cheapest pick there is, recycle copy buffers in a
// sync.Pool, and have no health checks, retries or logs.
package yardstick

import (
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// Transport is the yardsticks' shared Transport, tuned the usual way:
// no proxy from the environment, a large idle pool per host, no
// transparent compression.
func Transport() *http.Transport {
	return &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 3 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 1024,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
}

// Plain is what a Go programmer gets from the standard library alone: an
// httputil.ReverseProxy with Rewrite (SetURL, the client's Host, and
// SetXForwarded) over tr, round-robin over backends. With pool false it
// sets no BufferPool, so ReverseProxy allocates a 32 KiB buffer for every
// response, as bench/baseline did until session 4.
func Plain(backends []*url.URL, tr http.RoundTripper, pool bool) http.Handler {
	var next atomic.Uint64
	rp := &httputil.ReverseProxy{
		Transport: tr,
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(backends[(next.Add(1)-1)%uint64(len(backends))])
			pr.Out.Host = pr.In.Host
			pr.SetXForwarded()
		},
	}
	if pool {
		rp.BufferPool = buffers
	}
	return rp
}

// Floor is the least a proxy built on net/http's server and a shared
// http.Transport can do per request, and so the lowest cost any of them
// can reach: a shallow copy of the request pointed at the next backend,
// one RoundTrip, the response header assigned key by key, and one pooled
// copy of the body. It is not a correct proxy (no hop-by-hop header
// handling, no forwarding headers, no trailers, 1xx or upgrades, a bare
// 502 on any error); it exists to show how much of a proxy's cost is
// net/http's.
func Floor(backends []*url.URL, tr http.RoundTripper) http.Handler {
	var next atomic.Uint64
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b := backends[(next.Add(1)-1)%uint64(len(backends))]
		out := *r
		u := *r.URL
		u.Scheme, u.Host = b.Scheme, b.Host
		out.URL, out.RequestURI = &u, ""
		resp, err := tr.RoundTrip(&out)
		if err != nil {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		h := w.Header()
		for k, v := range resp.Header {
			h[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		buf := buffers.Get()
		defer buffers.Put(buf)
		// Hide the ResponseWriter's ReadFrom, which would allocate its own
		// 32 KiB buffer for a body that is not a file.
		_, _ = io.CopyBuffer(struct{ io.Writer }{w}, resp.Body, buf)
	})
}

// buffers recycles 32 KiB copy buffers for both yardsticks.
var buffers = &bufferPool{pool: sync.Pool{New: func() any { return new([32 << 10]byte) }}}

// bufferPool is an httputil.BufferPool of 32 KiB arrays held by pointer,
// so that Put does not allocate.
type bufferPool struct{ pool sync.Pool }

func (b *bufferPool) Get() []byte { return b.pool.Get().(*[32 << 10]byte)[:] }

func (b *bufferPool) Put(p []byte) {
	if len(p) == 32<<10 {
		b.pool.Put((*[32 << 10]byte)(p))
	}
}
