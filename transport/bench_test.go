package transport

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/sourcegraph/conc"

	"github.com/roundhouse/roundhouse/actors"
	"github.com/roundhouse/roundhouse/bench/yardstick"
	"github.com/roundhouse/roundhouse/demo"
	"github.com/roundhouse/roundhouse/internal/accesslog"
	"github.com/roundhouse/roundhouse/internal/logbatch"
	"github.com/roundhouse/roundhouse/internal/procstat"
	"github.com/roundhouse/roundhouse/routing"
)

// BenchmarkProxy sends full requests through the balancer: a client with
// keep-alive connections → an httptest server running the Proxy → the real
// selector goroutine (round-robin over 3 backends) → the shared transport →
// 3 loopback demo backends. Everything runs in this process, so ns/op and
// allocs/op include the client's and the backends' work; the direct-*
// variants measure that part alone (the client straight to one backend),
// and the difference is the balancer's own cost.
//
// Variants: small is GET / (a ~130-byte response), 64KiB is GET
// /bytes?n=65536, 128B the same request for 128 bytes (against 64KiB, the
// cost of copying the body: 64KiB's proxy-allocs/op less 128B's is the
// allocations per 64 KiB copied); -parallel sends from 8 × GOMAXPROCS goroutines at once
// (b.RunParallel); -accesslog turns the access log on, as "serve" does by
// default: through a logbatch.Writer, as in main.go, to io.Discard; -router
// sends through a Router with one pool and no routes (what "serve" runs
// for a configuration without routes), and -100routes through a Router
// with 100 routes (see benchRoutes), where the request matches only the
// last. Against small, they measure the routing cost per request: the
// router hop (one channel receive) and the match. plain-* send through a
// plain, tuned httputil.ReverseProxy instead (yardstick.Plain, which
// bench/run.sh measures as "baseline") in front of the same backends, and
// floor-* through yardstick.Floor, the least any proxy on net/http's server
// and Transport can do: the balancer's cost lies between the two.
//
// Besides allocs/op, which counts the client's and the backend's
// allocations too, each variant that goes through a proxy reports
// proxy-allocs/op: allocs/op less the allocations of the same request
// sent straight to a backend, measured just before in the same process
// (what the proxy's process would allocate, plus the backend's parsing of
// the headers the proxy adds). Compare runs with benchstat:
//
//	go test -run=NONE -bench=Proxy -benchmem -count=10 ./transport > new.txt
func BenchmarkProxy(b *testing.B) {
	const small, big, tiny = "/", "/bytes?n=65536", "/bytes?n=128"
	router, routes := benchOptions{router: true}, benchOptions{router: true, routes: 100}
	plain, floor := benchOptions{plain: true}, benchOptions{floor: true}
	serial := func(o benchOptions, path string) func(*testing.B) {
		return func(b *testing.B) { benchSerial(b, newBenchSetup(b, o), path) }
	}
	parallel := func(o benchOptions, path string) func(*testing.B) {
		return func(b *testing.B) { benchParallel(b, newBenchSetup(b, o), path) }
	}
	b.Run("small", serial(benchOptions{}, small))
	b.Run("small-router", serial(router, small))
	b.Run("small-100routes", serial(routes, small))
	b.Run("small-parallel", parallel(benchOptions{}, small))
	b.Run("small-parallel-router", parallel(router, small))
	b.Run("small-parallel-100routes", parallel(routes, small))
	b.Run("small-accesslog", serial(benchOptions{accessLog: true}, small))
	b.Run("64KiB", serial(benchOptions{}, big))
	b.Run("128B", serial(benchOptions{}, tiny))
	b.Run("64KiB-parallel", parallel(benchOptions{}, big))
	b.Run("plain-small", serial(plain, small))
	b.Run("plain-small-parallel", parallel(plain, small))
	b.Run("plain-64KiB", serial(plain, big))
	b.Run("floor-small", serial(floor, small))
	b.Run("floor-small-parallel", parallel(floor, small))
	b.Run("floor-64KiB", serial(floor, big))
	b.Run("direct-small", serial(benchOptions{direct: true}, small))
	b.Run("direct-small-parallel", parallel(benchOptions{direct: true}, small))
	b.Run("direct-64KiB", serial(benchOptions{direct: true}, big))
}

// benchOptions says how newBenchSetup's balancer is set up; the zero
// value is today's single pool without a Router, as Config.Selector gives.
type benchOptions struct {
	accessLog bool // as "serve" by default; false: no access log
	router    bool // a Router with one pool, "default"
	routes    int  // with router: benchRoutes(routes); 0: no routes
	plain     bool // through yardstick.Plain instead of the balancer
	floor     bool // through yardstick.Floor instead of the balancer
	direct    bool // straight to the first backend
}

// benchRoutes returns n routes to pool "default" in a realistic mix,
// cycling through an exact host with a prefix, a wildcard host with a
// method, and a prefix with no host, none of which the benchmark's
// requests (Host 127.0.0.1:port, GET / or /bytes) match; the last route,
// which they do match, names the host and the method. As
// routing.BenchmarkMatch's, which measures the match alone.
func benchRoutes(n int) []routing.Route {
	routes := make([]routing.Route, 0, n)
	for i := range n - 1 {
		var r routing.Route
		switch i % 3 {
		case 0:
			r = routing.Route{Hosts: []string{fmt.Sprintf("svc%d.example.com", i), fmt.Sprintf("svc%d.example.net", i)}, PathPrefix: "/v2"}
		case 1:
			r = routing.Route{Hosts: []string{fmt.Sprintf("*.wild%d.example.com", i)}, PathPrefix: "/v1", Methods: []string{"DELETE"}}
		case 2:
			r = routing.Route{PathPrefix: fmt.Sprintf("/p%d/", i)}
		}
		r.Name, r.Pool = fmt.Sprintf("r%d", i), "default"
		routes = append(routes, r)
	}
	return append(routes, routing.Route{Name: "last", Hosts: []string{"localhost", "127.0.0.1"}, Methods: []string{"GET", "HEAD"}, Pool: "default"})
}

// benchSetup is a running balancer (or plain proxy) in front of 3 demo
// backends.
type benchSetup struct {
	target string // where the benchmark sends its requests: the proxy, or the first backend (direct)
	direct string // the first backend's base URL
}

// benchClient keeps enough idle connections for any RunParallel fan-out,
// so no request pays for a dial after the first round.
var benchClient = &http.Client{Transport: &http.Transport{
	Proxy:               nil,
	MaxIdleConnsPerHost: 1024,
	DisableCompression:  true,
}}

// newBenchSetup starts 3 demo backends, a selector (and a Router, if o
// says so), a Proxy over a fresh shared transport and a front server; b.Cleanup stops all of it in the
// reverse order, closing idle connections, so goleak finds nothing.
func newBenchSetup(b testing.TB, o benchOptions) *benchSetup {
	b.Helper()
	urls := make([]actors.BackendConfig, 3)
	for i, name := range []string{"b1", "b2", "b3"} {
		srv := httptest.NewServer(demo.Handler(name))
		b.Cleanup(srv.Close)
		u, err := url.Parse(srv.URL)
		if err != nil {
			b.Fatal(err)
		}
		urls[i] = actors.BackendConfig{URL: u, Weight: 1}
	}
	tr := New(Options{})
	b.Cleanup(tr.CloseIdleConnections)
	sel, err := actors.New(actors.Config{
		Backends: urls,
		// Probes once at start, then not again during the benchmark.
		Monitor: actors.MonitorConfig{Transport: tr, Interval: time.Hour},
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg conc.WaitGroup
	wg.Go(func() { _ = sel.Run(ctx) })
	b.Cleanup(func() { cancel(); wg.Wait() })

	// As serve runs it by default: request IDs on.
	cfg := Config{Selector: sel, Transport: tr, Retries: 2, Logger: hclog.NewNullLogger(), RequestIDHeader: "X-Request-ID"}
	if o.router {
		var routes []routing.Route
		if o.routes > 0 {
			routes = benchRoutes(o.routes)
		}
		table, err := NewTable(routes, []*Pool{NewPool(Pool{Name: "default", Selector: sel, Transport: tr, Retries: 2})})
		if err != nil {
			b.Fatal(err)
		}
		cfg.Router = NewRouter(table)
		wg.Go(func() { _ = cfg.Router.Run(ctx) })
	}
	if o.plain || o.floor {
		backends := make([]*url.URL, len(urls))
		for i, u := range urls {
			backends[i] = u.URL
		}
		ytr := yardstick.Transport()
		b.Cleanup(ytr.CloseIdleConnections)
		handler := yardstick.Plain(backends, ytr, true)
		if o.floor {
			handler = yardstick.Floor(backends, ytr)
		}
		front := httptest.NewServer(handler)
		b.Cleanup(front.Close)
		b.Cleanup(benchClient.CloseIdleConnections)
		return &benchSetup{target: front.URL, direct: urls[0].URL.String()}
	}
	if o.accessLog {
		// Stopped after the front server (cleanups run last first), as
		// runServe stops its log writer after everything that logs.
		out := logbatch.New(io.Discard, 0)
		wg.Go(func() { _ = out.Run(ctx) })
		cfg.AccessLog = accesslog.New(accesslog.Options{Name: "roundhouse.access", Output: out})
	}
	front := httptest.NewServer(NewProxy(cfg))
	b.Cleanup(front.Close)
	b.Cleanup(benchClient.CloseIdleConnections)
	s := &benchSetup{target: front.URL, direct: urls[0].URL.String()}
	if o.direct {
		s.target = s.direct
	}
	return s
}

func benchSerial(b *testing.B, s *benchSetup, path string) {
	b.ReportAllocs()
	target := s.target + path
	get(b, target) // dial outside the timed loop
	direct := directAllocs(b, s, path)
	cpu := startCPU(b)
	allocs := mallocs()
	for b.Loop() {
		get(b, target)
	}
	reportProxyAllocs(b, allocs, direct)
	cpu.report(b)
}

func benchParallel(b *testing.B, s *benchSetup, path string) {
	b.ReportAllocs()
	target := s.target + path
	get(b, target)
	direct := directAllocs(b, s, path)
	b.SetParallelism(8) // 8 × GOMAXPROCS clients, so the balancer sees concurrency
	b.ResetTimer()
	cpu := startCPU(b)
	allocs := mallocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if !get(b, target) {
				return
			}
		}
	})
	reportProxyAllocs(b, allocs, direct)
	cpu.report(b)
}

// directAllocs is the allocations per request of path sent straight to
// the first backend, over 200 requests; -1 for a direct setup.
func directAllocs(b testing.TB, s *benchSetup, path string) float64 {
	if s.target == s.direct {
		return -1
	}
	get(b, s.direct+path)
	runtime.GC() // so that none runs, emptying sync.Pools, while counting
	const n = 200
	m := mallocs()
	for range n {
		get(b, s.direct+path)
	}
	return float64(mallocs()-m) / n
}

// reportProxyAllocs reports proxy-allocs/op: the allocations per request
// since start, less direct's (see BenchmarkProxy); nothing for a direct
// setup.
func reportProxyAllocs(b *testing.B, start uint64, direct float64) {
	if direct >= 0 {
		b.ReportMetric(float64(mallocs()-start)/float64(b.N)-direct, "proxy-allocs/op")
	}
}

func mallocs() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.Mallocs
}

// cpuMeter reports the process's CPU time per request as cpu-ns/op: on a
// shared machine it varies much less than ns/op, which also counts the
// time other programs had the cores.
type cpuMeter time.Duration

func startCPU(b *testing.B) cpuMeter {
	t, err := procstat.CPU()
	if err != nil {
		b.Fatal(err)
	}
	return cpuMeter(t)
}

func (m cpuMeter) report(b *testing.B) {
	t, err := procstat.CPU()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(t-time.Duration(m))/float64(b.N), "cpu-ns/op")
}

// get fetches target and reads the body, reporting failures with b.Errorf
// (safe from RunParallel's goroutines); it says whether the request worked.
func get(b testing.TB, target string) bool { return protoGet(b, benchClient, target) }

// BenchmarkRoute measures the route stage alone, the part of a request's
// cost that pools and routes add, without the pick that follows it:
// taking the current table (without a Router, a field of the Proxy; with
// one, a receive from its goroutine) and matching the request against it
// (GET http://127.0.0.1:8080/, Host with its port). Variants as
// BenchmarkProxy's: single-pool (no Router), router (one pool, no routes),
// 100routes (the request matches only the last of benchRoutes(100));
// -parallel takes the stage from 8 × GOMAXPROCS goroutines at once, all
// asking the one Router.
func BenchmarkRoute(b *testing.B) {
	for _, v := range []struct {
		name string
		o    benchOptions
	}{
		{"single-pool", benchOptions{}},
		{"router", benchOptions{router: true}},
		{"100routes", benchOptions{router: true, routes: 100}},
	} {
		b.Run(v.name, func(b *testing.B) {
			p := newRouteBench(b, v.o)
			b.ReportAllocs()
			var ex exchange
			for b.Loop() {
				routeOnce(b, p, &ex)
			}
		})
		b.Run(v.name+"-parallel", func(b *testing.B) {
			p := newRouteBench(b, v.o)
			b.ReportAllocs()
			b.SetParallelism(8)
			b.RunParallel(func(pb *testing.PB) {
				var ex exchange
				for pb.Next() {
					routeOnce(b, p, &ex)
				}
			})
		})
	}
}

// newRouteBench returns a Proxy routing as o says to one pool whose
// selector never runs (BenchmarkRoute never picks); its Router, if any,
// runs until b's cleanup.
func newRouteBench(b *testing.B, o benchOptions) *Proxy {
	b.Helper()
	if !o.router {
		return NewProxy(Config{})
	}
	var routes []routing.Route
	if o.routes > 0 {
		routes = benchRoutes(o.routes)
	}
	table, err := NewTable(routes, []*Pool{NewPool(Pool{Name: "default"})})
	if err != nil {
		b.Fatal(err)
	}
	router := NewRouter(table)
	ctx, cancel := context.WithCancel(context.Background())
	var wg conc.WaitGroup
	wg.Go(func() { _ = router.Run(ctx) })
	b.Cleanup(func() { cancel(); wg.Wait() })
	return NewProxy(Config{Router: router})
}

// routeReq is BenchmarkRoute's request; route only reads it.
var routeReq = httptest.NewRequest(http.MethodGet, "http://127.0.0.1:8080/", nil)

// routeOnce runs the route stage up to the pick, as Proxy.route does,
// for an exchange that a request would have made (each goroutine its own).
func routeOnce(b *testing.B, p *Proxy, ex *exchange) {
	t, err := p.currentTable(routeReq.Context())
	if err != nil {
		b.Error(err)
		return
	}
	if p.choose(ex, t, routeReq) == nil || ex.pool == nil {
		b.Error("GET / routed nowhere")
	}
}
