package actors

import "testing"

// BenchmarkSelectorPickEjection is BenchmarkSelectorPick with outlier
// detection on, as the command runs it by default: every report feeds the
// streak count and, with a rate, the backend's failure window.
func BenchmarkSelectorPickEjection(b *testing.B) {
	for _, v := range []struct {
		name string
		e    Ejection
	}{
		{"streak", Ejection{After: 5}},
		{"streak and rate", Ejection{After: 5, FailureRate: 50, Window: 50}},
	} {
		b.Run(v.name, func(b *testing.B) {
			cfg := testConfig(b, newSwitchProbe().Probe, urlA, urlB, urlC)
			cfg.Ejection = v.e
			s, _ := startSelector(b, cfg)
			b.ReportAllocs()
			for b.Loop() {
				be, err := s.Pick(b.Context())
				if err != nil || be == nil {
					b.Fatalf("Pick = %v, %v", be, err)
				}
				s.Report(Report{Backend: be})
			}
		})
	}
}

// BenchmarkObserve is the selector's own work for one report's outlier
// detection, without the channels: a success, as most reports are.
func BenchmarkObserve(b *testing.B) {
	for _, v := range []struct {
		name string
		e    Ejection
	}{
		{"streak", Ejection{After: 5}},
		{"streak and rate", Ejection{After: 5, FailureRate: 50, Window: 50}},
	} {
		b.Run(v.name, func(b *testing.B) {
			cfg := testConfig(b, newSwitchProbe().Probe, urlA, urlB, urlC)
			cfg.Ejection = v.e
			s, err := New(cfg) // not running: this goroutine owns its state
			if err != nil {
				b.Fatal(err)
			}
			st, r := s.backends[0], Report{Backend: s.backends[0].Backend, Status: 200}
			b.ReportAllocs()
			for b.Loop() {
				s.observe(st, r)
			}
		})
	}
}
