// Command baseline is the plain, tuned httputil.ReverseProxy that
// bench/run.sh measures Roundhouse against: what a Go programmer gets from
// the standard library alone, with the Transport tuned the usual way (one
// shared Transport, Proxy nil, a large idle pool per host).
//
// It is a yardstick, not part of Roundhouse, and it does not follow
// Roundhouse's rules: it balances with an atomic round-robin counter shared
// by every handler goroutine, the cheapest pick there is, it recycles its
// 32 KiB copy buffers in a sync.Pool, and it has no health checks, retries
// or access log. (Until session 4 it had no buffer pool: ReverseProxy then
// allocates a 32 KiB buffer for every response, which cost it 15-25 µs of
// CPU per request in garbage collection and made Roundhouse look cheaper
// than a plain proxy; see bench/PROFILE.md.)
//
//	baseline --listen 127.0.0.1:18086 --backend http://127.0.0.1:18081 --backend ...
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

type backendList []*url.URL

func (l *backendList) String() string { return fmt.Sprint(*l) }

func (l *backendList) Set(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	if u.Scheme == "" || u.Host == "" {
		return fmt.Errorf("want http://host:port, got %q", s)
	}
	*l = append(*l, u)
	return nil
}

func main() {
	listen := flag.String("listen", "127.0.0.1:18086", "`address` to accept client connections on")
	var backends backendList
	flag.Var(&backends, "backend", "backend `URL` (repeatable)")
	pool := flag.Bool("buffer-pool", true, "recycle the 32 KiB copy buffers (false: ReverseProxy allocates one per response, as this yardstick did until session 4)")
	flag.Parse()
	if len(backends) == 0 {
		fmt.Fprintln(os.Stderr, "baseline: give at least one --backend")
		os.Exit(2)
	}

	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 3 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 1024,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	var next atomic.Uint64 // shared by all handlers: fine for a yardstick, not allowed in Roundhouse
	rp := &httputil.ReverseProxy{
		Transport: tr,
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(backends[(next.Add(1)-1)%uint64(len(backends))])
			pr.Out.Host = pr.In.Host
			pr.SetXForwarded()
		},
	}
	if *pool {
		rp.BufferPool = &buffers{pool: sync.Pool{New: func() any { return new([32 << 10]byte) }}}
	}
	srv := &http.Server{Addr: *listen, Handler: rp, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second}
	log.Fatal(srv.ListenAndServe())
}

// buffers is the plain proxy's httputil.BufferPool: 32 KiB arrays in a
// sync.Pool, held by pointer so that Put does not allocate.
type buffers struct{ pool sync.Pool }

func (b *buffers) Get() []byte { return b.pool.Get().(*[32 << 10]byte)[:] }

func (b *buffers) Put(p []byte) {
	if len(p) == 32<<10 {
		b.pool.Put((*[32 << 10]byte)(p))
	}
}
