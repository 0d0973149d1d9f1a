package transport

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/sourcegraph/conc"

	"github.com/roundhouse/roundhouse/actors"
	"github.com/roundhouse/roundhouse/demo"
	"github.com/roundhouse/roundhouse/internal/accesslog"
	"github.com/roundhouse/roundhouse/internal/logbatch"
	"github.com/roundhouse/roundhouse/internal/procstat"
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
// /bytes?n=65536; -parallel sends from 8 × GOMAXPROCS goroutines at once
// (b.RunParallel); -accesslog turns the access log on, as "serve" does by
// default: through a logbatch.Writer, as in main.go, to io.Discard. Compare
// runs with benchstat:
//
//	go test -run=NONE -bench=Proxy -benchmem -count=10 ./transport > new.txt
func BenchmarkProxy(b *testing.B) {
	const small, big = "/", "/bytes?n=65536"
	b.Run("small", func(b *testing.B) { benchSerial(b, newBenchSetup(b, false).proxy+small) })
	b.Run("small-parallel", func(b *testing.B) { benchParallel(b, newBenchSetup(b, false).proxy+small) })
	b.Run("small-accesslog", func(b *testing.B) { benchSerial(b, newBenchSetup(b, true).proxy+small) })
	b.Run("64KiB", func(b *testing.B) { benchSerial(b, newBenchSetup(b, false).proxy+big) })
	b.Run("64KiB-parallel", func(b *testing.B) { benchParallel(b, newBenchSetup(b, false).proxy+big) })
	b.Run("direct-small", func(b *testing.B) { benchSerial(b, newBenchSetup(b, false).direct+small) })
	b.Run("direct-small-parallel", func(b *testing.B) { benchParallel(b, newBenchSetup(b, false).direct+small) })
	b.Run("direct-64KiB", func(b *testing.B) { benchSerial(b, newBenchSetup(b, false).direct+big) })
}

// benchSetup is a running balancer in front of 3 demo backends.
type benchSetup struct {
	proxy  string // the balancer's base URL
	direct string // the first backend's base URL
}

// benchClient keeps enough idle connections for any RunParallel fan-out,
// so no request pays for a dial after the first round.
var benchClient = &http.Client{Transport: &http.Transport{
	Proxy:               nil,
	MaxIdleConnsPerHost: 1024,
	DisableCompression:  true,
}}

// newBenchSetup starts 3 demo backends, a selector, a Proxy over a fresh
// shared transport and a front server; b.Cleanup stops all of it in the
// reverse order, closing idle connections, so goleak finds nothing.
func newBenchSetup(b *testing.B, accessLog bool) *benchSetup {
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
	if accessLog {
		// Stopped after the front server (cleanups run last first), as
		// runServe stops its log writer after everything that logs.
		out := logbatch.New(io.Discard, 0)
		wg.Go(func() { _ = out.Run(ctx) })
		cfg.AccessLog = accesslog.New(accesslog.Options{Name: "roundhouse.access", Output: out})
	}
	front := httptest.NewServer(NewProxy(cfg))
	b.Cleanup(front.Close)
	b.Cleanup(benchClient.CloseIdleConnections)
	return &benchSetup{proxy: front.URL, direct: urls[0].URL.String()}
}

func benchSerial(b *testing.B, target string) {
	b.ReportAllocs()
	get(b, target) // dial outside the timed loop
	cpu := startCPU(b)
	for b.Loop() {
		get(b, target)
	}
	cpu.report(b)
}

func benchParallel(b *testing.B, target string) {
	b.ReportAllocs()
	get(b, target)
	b.SetParallelism(8) // 8 × GOMAXPROCS clients, so the balancer sees concurrency
	b.ResetTimer()
	cpu := startCPU(b)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if !get(b, target) {
				return
			}
		}
	})
	cpu.report(b)
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
func get(b *testing.B, target string) bool {
	resp, err := benchClient.Get(target)
	if err != nil {
		b.Errorf("GET %s: %v", target, err)
		return false
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		b.Errorf("GET %s: status %d, body: %v", target, resp.StatusCode, err)
		return false
	}
	return true
}
