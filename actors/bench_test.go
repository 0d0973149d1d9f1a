package actors

import (
	"context"
	"fmt"
	"testing"
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
	tried := s.Backends()[:1]
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
