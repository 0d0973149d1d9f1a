package actors

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/roundhouse/roundhouse/internal/procstat"
)

// benchSelector runs a selector over three backends whose fake probes always
// pass; it is stopped when the benchmark ends.
func benchSelector(b *testing.B) *Selector {
	b.Helper()
	s, _ := startSelector(b, testConfig(b, newSwitchProbe().Probe, urlA, urlB, urlC))
	return s
}

// BenchmarkSelectorPick measures one handler's round trip: take the offered
// pick, then report it.
func BenchmarkSelectorPick(b *testing.B) {
	s := benchSelector(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		be, err := s.Pick(ctx)
		if err != nil || be == nil {
			b.Fatalf("Pick = %v, %v", be, err)
		}
		s.Report(Report{Backend: be})
	}
}

// BenchmarkSelectorPickOnly measures the offer exchange alone, the number
// DESIGN.md's pick-cost table quotes. Nothing is reported, so the in-flight
// count just grows; a real handler must always report.
func BenchmarkSelectorPickOnly(b *testing.B) {
	s := benchSelector(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if be, err := s.Pick(ctx); err != nil || be == nil {
			b.Fatalf("Pick = %v, %v", be, err)
		}
	}
}

// BenchmarkSelectorPickParallel is BenchmarkSelectorPick with handlers on
// every P contending for the one selector goroutine.
func BenchmarkSelectorPickParallel(b *testing.B) {
	s := benchSelector(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			be, err := s.Pick(ctx)
			if err != nil || be == nil {
				b.Errorf("Pick = %v, %v", be, err)
				return
			}
			s.Report(Report{Backend: be})
		}
	})
}

// BenchmarkSelectorPickExcept measures a retry's pick: a request with its
// own reply channel rather than the standing offer.
func BenchmarkSelectorPickExcept(b *testing.B) {
	s := benchSelector(b)
	ctx := context.Background()
	tried := backendsOf(b, s)[:1]
	b.ReportAllocs()
	for b.Loop() {
		be, err := s.PickFor(ctx, "", tried)
		if err != nil || be == nil {
			b.Fatalf("PickExcept = %v, %v", be, err)
		}
		s.Report(Report{Backend: be})
	}
}

func BenchmarkRoundRobinChoose(b *testing.B) {
	for _, n := range []int{3, 64} {
		b.Run(fmt.Sprintf("%d backends, every other one down", n), func(b *testing.B) {
			cands := make([]Candidate, n)
			for i := range cands {
				cands[i] = Candidate{Eligible: i%2 == 0, Weight: 1}
			}
			var rr RoundRobin
			b.ReportAllocs()
			for b.Loop() {
				rr.Taken(cands, rr.Choose(cands, ""))
			}
		})
	}
}

// benchKey is the request key a benchmark pick carries for policy on s:
// a client address, a header value, or the cookie that pins to the second
// backend.
func benchKey(tb testing.TB, s *Selector, policy Policy) string {
	switch KeyOf(policy).Kind {
	case KeyClientIP:
		return "203.0.113.7"
	case KeyHeader:
		return "user-42"
	case KeyCookie:
		return StickyToken(benchSecret, backendsOf(tb, s)[1])
	}
	return ""
}

var benchSecret = []byte("a benchmark secret, 16+ bytes")

// BenchmarkPick measures one handler's pick and report for every policy
// through the real selector loop, as the proxy makes them: the standing
// offer (Pick) for the policies that need nothing from the request,
// PickFor with the request's key (a channel round trip with a reply
// channel) for the keyed ones. picks/s is one handler's rate.
func BenchmarkPick(b *testing.B) {
	for _, spec := range everyPolicy {
		b.Run(spec, func(b *testing.B) {
			policy, err := NewPolicy(spec, benchSecret, 1)
			if err != nil {
				b.Fatal(err)
			}
			cfg := testConfig(b, newSwitchProbe().Probe, urlA, urlB, urlC)
			cfg.Policy = policy
			s, _ := startSelector(b, cfg)
			ctx := context.Background()
			key := benchKey(b, s, policy)
			pick := s.Pick
			if KeyOf(policy).Kind != KeyNone {
				pick = func(ctx context.Context) (*Backend, error) { return s.PickFor(ctx, key, nil) }
			}
			b.ReportAllocs()
			for b.Loop() {
				be, err := pick(ctx)
				if err != nil || be == nil {
					b.Fatalf("pick = %v, %v", be, err)
				}
				s.Report(Report{Backend: be, Outcome: Success, Status: 200})
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "picks/s")
		})
	}
}

// BenchmarkChoose measures a policy's own decision, Choose then Taken,
// without the selector: the part of a pick that grows with the backends.
func BenchmarkChoose(b *testing.B) {
	for _, spec := range everyPolicy {
		for _, n := range []int{3, 64} {
			b.Run(fmt.Sprintf("%s/%d backends", spec, n), func(b *testing.B) {
				policy, err := NewPolicy(spec, benchSecret, 1)
				if err != nil {
					b.Fatal(err)
				}
				cands := make([]Candidate, n)
				for i := range cands {
					cands[i] = Candidate{Backend: newBackend(b, testURL(i)), Eligible: true, Weight: 1 + i%3, InFlight: i % 5}
				}
				key := ""
				switch KeyOf(policy).Kind {
				case KeyClientIP, KeyHeader:
					key = "203.0.113.7"
				case KeyCookie:
					key = StickyToken(benchSecret, cands[n/2].Backend)
				}
				b.ReportAllocs()
				for b.Loop() {
					policy.Taken(cands, policy.Choose(cands, key))
				}
			})
		}
	}
}

// BenchmarkSelector256 measures pick and report from 256 handler
// goroutines at once, as net/http runs them at 256 connections (see
// benchHandlers). Run it with -cpu 1,2: the goroutine count stays 256. "tight"
// reports at once; "yield" lets the other goroutines run between pick and
// report, as the forwarding does. ns/op is per request, all goroutines
// together; cpu-ns/op is the process's CPU time per request, steadier on a
// shared machine.
func BenchmarkSelector256(b *testing.B) {
	for _, v := range []struct {
		name  string
		yield bool
	}{{"tight", false}, {"yield", true}} {
		b.Run(v.name, func(b *testing.B) {
			s := benchSelector(b)
			b.SetParallelism(max(1, 256/runtime.GOMAXPROCS(0)))
			benchHandlers(b, s, func() {
				if v.yield {
					runtime.Gosched()
				}
			})
		})
	}
}

// BenchmarkSelectorFew is BenchmarkSelector256 at light load: 2 or 16
// handlers, each of which works for 10 µs and waits for 20 µs (a sleep,
// as for the network) between pick and report. Its cpu-ns/op is mostly
// that work; compare runs to see what the selector adds when it is not
// busy (its yield, for one, must cost nothing here).
func BenchmarkSelectorFew(b *testing.B) {
	for _, n := range []int{2, 16} {
		b.Run(fmt.Sprintf("%d handlers", n), func(b *testing.B) {
			s := benchSelector(b)
			b.SetParallelism(max(1, n/runtime.GOMAXPROCS(0)))
			benchHandlers(b, s, func() {
				spin(5 * time.Microsecond)
				time.Sleep(20 * time.Microsecond)
				spin(5 * time.Microsecond)
			})
		})
	}
}

// benchHandlers runs b.RunParallel's goroutines as handlers on s: each
// takes a pick with a context of its own that can be cancelled (so that
// its Done channel is real, as a request's is), calls between, and
// reports a final outcome as the proxy does. It reports the process's CPU
// time per request as cpu-ns/op.
func benchHandlers(b *testing.B, s *Selector, between func()) {
	b.ReportAllocs()
	start, err := procstat.CPU()
	if err != nil {
		b.Fatal(err)
	}
	b.RunParallel(func(pb *testing.PB) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		for pb.Next() {
			be, err := s.Pick(ctx)
			if err != nil || be == nil {
				b.Errorf("Pick = %v, %v", be, err)
				return
			}
			between()
			s.Report(Report{Backend: be, Final: true, Method: "GET", Proto: "HTTP/1.1", Status: 200, Duration: time.Millisecond})
		}
	})
	end, err := procstat.CPU()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(end-start)/float64(b.N), "cpu-ns/op")
}

// spin keeps the CPU busy for d, as a handler's own work does.
func spin(d time.Duration) {
	for start := time.Now(); time.Since(start) < d; {
	}
}
