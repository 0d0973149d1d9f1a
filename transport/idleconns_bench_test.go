package transport

import (
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/sourcegraph/conc"
)

// BenchmarkFrontendAtACap measures what tracking connection states for
// IdleConns costs per request: keep-alive GETs to a Frontend capped at
// 10,000 connections (the default) whose handler answers "ok" at once, with
// an IdleConns (as serve runs it) and without (the cap alone, as before).
// Two ConnState messages (active, idle) per HTTP/1.1 request reach the
// IdleConns goroutine; against a bare handler that is the worst case, and
// a proxied request costs 20-40 µs more. -parallel sends from 8 ×
// GOMAXPROCS goroutines. cpu-ns/op is the process's CPU time per request
// (client and server both), steadier than sec/op on a shared machine.
// Compare the two with benchstat:
//
//	go test -run=NONE -bench=FrontendAtACap -benchmem -count=10 ./transport
func BenchmarkFrontendAtACap(b *testing.B) {
	for _, idle := range []bool{false, true} {
		name := "cap"
		if idle {
			name = "cap-idleconns"
		}
		b.Run(name, func(b *testing.B) { benchFrontend(b, idle, false) })
		b.Run(name+"-parallel", func(b *testing.B) { benchFrontend(b, idle, true) })
	}
}

func benchFrontend(b *testing.B, idle, parallel bool) {
	b.ReportAllocs()
	ctx, cancel := context.WithCancel(context.Background())
	var actorsWG conc.WaitGroup
	b.Cleanup(func() { cancel(); actorsWG.Wait() })
	o := FrontendOptions{MaxConns: 10000}
	if idle {
		o.IdleConns = NewIdleConns(IdleConnsOptions{})
		actorsWG.Go(func() { _ = o.IdleConns.Run(ctx) })
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	front := NewFrontend(ln, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}), o)
	var serving conc.WaitGroup
	serving.Go(func() { _ = front.Serve() })
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = front.Shutdown(ctx)
		serving.Wait()
	})
	b.Cleanup(benchClient.CloseIdleConnections)
	url := "http://" + ln.Addr().String() + "/"
	get(b, url)
	b.ResetTimer()
	cpu := startCPU(b)
	if !parallel {
		for b.Loop() {
			get(b, url)
		}
		cpu.report(b)
		return
	}
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if !get(b, url) {
				return
			}
		}
	})
	cpu.report(b)
}
