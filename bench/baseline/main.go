// Command baseline is the plain, tuned httputil.ReverseProxy that
// bench/run.sh measures Roundhouse against: what a Go programmer gets from
// the standard library alone, with the Transport tuned the usual way (one
// shared Transport, Proxy nil, a large idle pool per host).
//
// It serves bench/yardstick's Plain (or, with --floor, its Floor: the
// least any proxy on net/http's server and Transport can do). Both are
// yardsticks, not part of Roundhouse, and do not follow its rules.
// (Until session 4 it had no buffer pool: ReverseProxy then
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
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/roundhouse/roundhouse/bench/yardstick"
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
	floor := flag.Bool("floor", false, "serve yardstick.Floor instead: the least a proxy on net/http's server and Transport can do (not a correct proxy)")
	pool := flag.Bool("buffer-pool", true, "recycle the 32 KiB copy buffers (false: ReverseProxy allocates one per response, as this yardstick did until session 4)")
	flag.Parse()
	if len(backends) == 0 {
		fmt.Fprintln(os.Stderr, "baseline: give at least one --backend")
		os.Exit(2)
	}

	tr := yardstick.Transport()
	handler := yardstick.Plain(backends, tr, *pool)
	if *floor {
		handler = yardstick.Floor(backends, tr)
	}
	srv := &http.Server{Addr: *listen, Handler: handler, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second}
	log.Fatal(srv.ListenAndServe())
}
