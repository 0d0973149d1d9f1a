package actors

import (
	"slices"
	"testing"
	"testing/synctest"
	"time"
)

// Outlier detection tests: a backend whose probes pass but whose requests
// keep failing is ejected for a while. Requests are aimed at one backend
// with hit, and fake time moves only when the test sleeps, so every
// ejection's length is exact.

// Ejection settings for these tests: eject after 3 gateway failures in a
// row, for 10s, 20s, 25s (the cap), 25s, ...
const (
	ejectAfter = 3
	ejectTime  = 10 * time.Second
	ejectMax   = 25 * time.Second
)

// ejectionConfig is testConfig over raws with ejection on (ejectAfter,
// ejectTime, ejectMax; MaxPercent 50) and an info logger.
func ejectionConfig(t *testing.T, probe ProbeFunc, raws ...string) (Config, *logBuffer) {
	t.Helper()
	cfg := testConfig(t, probe, raws...)
	cfg.Ejection = Ejection{After: ejectAfter, Time: ejectTime, MaxTime: ejectMax}
	logger, logs := newLogger()
	cfg.Logger = logger
	return cfg, logs
}

// answer is what a backend did with one attempt: an outcome and a status, to script reports.
type answer struct {
	outcome Outcome
	status  int
}

var (
	failed     = answer{Failed, 0}
	badGateway = answer{Success, 502}
	ok200      = answer{Success, 200}
	clientGone = answer{ClientGone, 0}
)

// hit sends one request to the backend called name, whatever the policy's
// turn (it picks with every other backend excluded), and reports r for it.
// It fails the test if that backend cannot be picked.
func hit(t *testing.T, s *Selector, name string, r answer) {
	t.Helper()
	var target *Backend
	var others []*Backend
	for _, b := range backendsOf(t, s) {
		if b.Name == name {
			target = b
		} else {
			others = append(others, b)
		}
	}
	b, err := s.PickFor(t.Context(), "", others)
	if err != nil || b != target {
		t.Fatalf("pick of %s = %v, %v", name, b, err)
	}
	s.Report(Report{Backend: b, Outcome: r.outcome, Status: r.status})
	synctest.Wait() // Report is buffered: let the selector take it in
}

// hits calls hit n times with the same answer.
func hits(t *testing.T, s *Selector, name string, r answer, n int) {
	t.Helper()
	for range n {
		hit(t, s, name, r)
	}
}

// fullStatusOf returns everything Status says about the backend called name.
func fullStatusOf(t *testing.T, s *Selector, name string) BackendStatus {
	t.Helper()
	all, err := s.Status(t.Context())
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	for _, st := range all {
		if st.Name == name {
			return st
		}
	}
	t.Fatalf("Status has no backend %s", name)
	return BackendStatus{}
}

// picked reports whether any of n picks (each reported as a success) went
// to the backend called name.
func picked(t *testing.T, s *Selector, name string, n int) bool {
	t.Helper()
	return slices.Contains(pickNames(t, s, n), name)
}

// wantEjected checks that the backend called name has been ejected for
// exactly d from now, that picks avoid it, and that its ejections so far
// number total.
func wantEjected(t *testing.T, s *Selector, name string, d time.Duration, total uint64) {
	t.Helper()
	st := fullStatusOf(t, s, name)
	if st.State != "ejected" || !st.Up || !st.EjectedUntil.Equal(time.Now().Add(d)) || st.Ejections != total {
		t.Errorf("%s: state %q, up %v, ejected until %v from now, %d ejections; want ejected, up, for %v, %d ejections",
			name, st.State, st.Up, time.Until(st.EjectedUntil), st.Ejections, d, total)
	}
	if picked(t, s, name, 6) {
		t.Errorf("%s was picked while ejected", name)
	}
}

// wantNotEjected checks, from Status alone, that the backend called name
// is UP and not ejected, and has been ejected total times so far.
func wantNotEjected(t *testing.T, s *Selector, name string, total uint64) {
	t.Helper()
	st := fullStatusOf(t, s, name)
	if st.State != "up" || !st.EjectedUntil.IsZero() || st.Ejections != total {
		t.Errorf("%s: state %q, ejected until %v, %d ejections; want up, not ejected, %d ejections",
			name, st.State, st.EjectedUntil, st.Ejections, total)
	}
}

// wantIn is wantNotEjected, and checks that picks reach the backend again.
// Those picks succeed, so they end its failure streak.
func wantIn(t *testing.T, s *Selector, name string, total uint64) {
	t.Helper()
	wantNotEjected(t, s, name, total)
	if !picked(t, s, name, 6) {
		t.Errorf("%s was not picked although in rotation", name)
	}
}

func TestEjectionStreak(t *testing.T) {
	tests := []struct {
		name    string
		results []answer
		eject   bool
	}{
		{"three failed exchanges in a row eject the backend", []answer{failed, failed, failed}, true},
		{"three 502, 503 and 504 responses in a row eject the backend",
			[]answer{badGateway, {Success, 503}, {Success, 504}}, true},
		{"failed exchanges and gateway statuses count together", []answer{failed, {Success, 503}, failed}, true},
		{"two failures in a row are not enough", []answer{failed, failed}, false},
		{"a success resets the streak", []answer{failed, failed, ok200, failed, failed}, false},
		{"a 500 the backend sent resets the streak", []answer{failed, failed, {Success, 500}, failed, failed}, false},
		{"a 404 resets the streak", []answer{badGateway, badGateway, {Success, 404}, badGateway, badGateway}, false},
		{"a client that went away neither counts nor resets", []answer{failed, failed, clientGone, failed}, true},
		{"a client that went away alone changes nothing", []answer{clientGone, clientGone, clientGone, clientGone}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cfg, logs := ejectionConfig(t, newSwitchProbe().Probe, urlA, urlB)
				s, _ := startSelector(t, cfg)
				synctest.Wait()
				for _, r := range tt.results {
					hit(t, s, urlA, r)
				}
				if tt.eject {
					wantEjected(t, s, urlA, ejectTime, 1)
					if n := logs.count("backend ejected", "backend="+urlA); n != 1 {
						t.Errorf("%d %q lines for A, want 1:\n%s", n, "backend ejected", logs)
					}
				} else {
					wantIn(t, s, urlA, 0)
					if n := logs.count("backend ejected"); n != 0 {
						t.Errorf("%d %q lines, want none:\n%s", n, "backend ejected", logs)
					}
				}
				if n := logs.count("backend ejected"); n > 1 {
					t.Errorf("%d %q lines, want at most 1:\n%s", n, "backend ejected", logs)
				}
				wantIn(t, s, urlB, 0)
			})
		})
	}
}

func TestEjectionFailedConnectionsCount(t *testing.T) {
	// A failed connection also takes the backend DOWN at once, so /status
	// says "down" first; the ejection is there all the same.
	synctest.Test(t, func(t *testing.T) {
		cfg, logs := ejectionConfig(t, newSwitchProbe().Probe, urlA, urlB)
		s, _ := startSelector(t, cfg)
		synctest.Wait()
		hits(t, s, urlA, failed, 2)
		hit(t, s, urlA, answer{ConnectFailed, 0})
		st := fullStatusOf(t, s, urlA)
		if st.State != "down" || st.Up || st.Ejections != 1 || !st.EjectedUntil.Equal(time.Now().Add(ejectTime)) {
			t.Errorf("status %+v, want down and ejected for %v", st, ejectTime)
		}
		if n := logs.count("backend ejected", "backend="+urlA); n != 1 {
			t.Errorf("%d %q lines for A, want 1:\n%s", n, "backend ejected", logs)
		}
	})
}

func TestEjectionOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg, logs := ejectionConfig(t, newSwitchProbe().Probe, urlA, urlB)
		cfg.Ejection = Ejection{}
		s, _ := startSelector(t, cfg)
		synctest.Wait()
		hits(t, s, urlA, failed, 20)
		hits(t, s, urlA, badGateway, 20)
		wantIn(t, s, urlA, 0)
		if n := logs.count("backend ejected"); n != 0 {
			t.Errorf("%d %q lines with ejection off, want none:\n%s", n, "backend ejected", logs)
		}
	})
}

func TestEjectionReturn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg, logs := ejectionConfig(t, newSwitchProbe().Probe, urlA, urlB)
		s, _ := startSelector(t, cfg)
		synctest.Wait()
		hits(t, s, urlA, failed, ejectAfter)
		wantEjected(t, s, urlA, ejectTime, 1)

		advance(ejectTime - time.Nanosecond)
		wantEjected(t, s, urlA, time.Nanosecond, 1)
		if n := logs.count("backend returned"); n != 0 {
			t.Errorf("%d %q lines before the ejection is over, want none:\n%s", n, "backend returned", logs)
		}

		advance(time.Nanosecond)
		wantIn(t, s, urlA, 1)
		if n := logs.count("backend returned", "backend="+urlA); n != 1 {
			t.Errorf("%d %q lines for A, want 1:\n%s", n, "backend returned", logs)
		}

		// Long after, nothing more is logged: one line per transition.
		advance(10 * ejectMax)
		for _, msg := range []string{"backend ejected", "backend returned"} {
			if n := logs.count(msg); n != 1 {
				t.Errorf("%d %q lines, want 1:\n%s", n, msg, logs)
			}
		}
	})
}

func TestEjectionBackoff(t *testing.T) {
	t.Run("each ejection lasts one Time longer up to MaxTime", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			cfg, logs := ejectionConfig(t, newSwitchProbe().Probe, urlA, urlB)
			s, _ := startSelector(t, cfg)
			synctest.Wait()
			// The backend fails again as soon as it is back every time.
			for i, d := range []time.Duration{ejectTime, 2 * ejectTime, ejectMax, ejectMax, ejectMax} {
				hits(t, s, urlA, failed, ejectAfter)
				wantEjected(t, s, urlA, d, uint64(i+1))
				advance(d - time.Nanosecond)
				if st := fullStatusOf(t, s, urlA); st.State != "ejected" {
					t.Fatalf("ejection %d: state %q a nanosecond before its end, want ejected", i+1, st.State)
				}
				advance(time.Nanosecond)
				if st := fullStatusOf(t, s, urlA); st.State != "up" {
					t.Fatalf("ejection %d: state %q after %v, want up", i+1, st.State, d)
				}
			}
			for _, msg := range []string{"backend ejected", "backend returned"} {
				if n := logs.count(msg, "backend="+urlA); n != 5 {
					t.Errorf("%d %q lines for A, want 5:\n%s", n, msg, logs)
				}
			}
		})
	})

	tests := []struct {
		name string
		// stays[i] is how long the backend stays in after its i-th
		// ejection before failing again.
		stays []time.Duration
		want  []time.Duration // each ejection's length
	}{
		{"staying in as long as the last ejection starts again from Time",
			[]time.Duration{0, 2 * ejectTime}, []time.Duration{ejectTime, 2 * ejectTime, ejectTime}},
		{"staying in a little less than the last ejection keeps the multiplier",
			[]time.Duration{0, 2*ejectTime - time.Nanosecond}, []time.Duration{ejectTime, 2 * ejectTime, ejectMax}},
		{"staying in as long as a capped ejection starts again from Time",
			[]time.Duration{0, 0, ejectMax}, []time.Duration{ejectTime, 2 * ejectTime, ejectMax, ejectTime}},
		{"after a fresh start the multiplier grows again",
			[]time.Duration{ejectTime, 0}, []time.Duration{ejectTime, ejectTime, 2 * ejectTime}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cfg, _ := ejectionConfig(t, newSwitchProbe().Probe, urlA, urlB)
				s, _ := startSelector(t, cfg)
				synctest.Wait()
				for i, d := range tt.want {
					if i > 0 {
						advance(tt.stays[i-1])
					}
					hits(t, s, urlA, failed, ejectAfter)
					wantEjected(t, s, urlA, d, uint64(i+1))
					advance(d)
					if st := fullStatusOf(t, s, urlA); st.State != "up" {
						t.Fatalf("ejection %d: state %q after %v, want up", i+1, st.State, d)
					}
				}
			})
		})
	}
}

func TestEjectionMaxPercent(t *testing.T) {
	t.Run("with four backends up and 50% at most two are ejected at once", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			probe := newSwitchProbe()
			cfg, logs := ejectionConfig(t, probe.Probe, urlA, urlB, urlC, "http://127.0.0.1:8084")
			s, _ := startSelector(t, cfg)
			synctest.Wait()
			hits(t, s, urlA, failed, ejectAfter)
			advance(time.Second)
			hits(t, s, urlB, failed, ejectAfter)
			wantEjected(t, s, urlA, ejectTime-time.Second, 1)
			wantEjected(t, s, urlB, ejectTime, 1)
			advance(time.Second)
			// Checked by Status alone: a pick that succeeds would end
			// C's streak.
			hits(t, s, urlC, failed, 2*ejectAfter)
			wantNotEjected(t, s, urlC, 0)
			if n := logs.count("backend ejected"); n != 2 {
				t.Errorf("%d %q lines, want 2:\n%s", n, "backend ejected", logs)
			}

			// A returns; C's streak goes on, and its next failure ejects
			// it, B still being out.
			advance(ejectTime - 2*time.Second)
			wantNotEjected(t, s, urlA, 1)
			hit(t, s, urlC, failed)
			wantEjected(t, s, urlC, ejectTime, 1)
			wantEjected(t, s, urlB, time.Second, 1)
			// Two are out again: A's failures now are not enough.
			hits(t, s, urlA, failed, ejectAfter)
			wantIn(t, s, urlA, 1)
			if n := logs.count("backend ejected"); n != 3 {
				t.Errorf("%d %q lines, want 3:\n%s", n, "backend ejected", logs)
			}
		})
	})

	t.Run("a single backend is never ejected", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			cfg, logs := ejectionConfig(t, newSwitchProbe().Probe, urlA)
			cfg.Ejection.MaxPercent = 99
			s, _ := startSelector(t, cfg)
			synctest.Wait()
			hits(t, s, urlA, failed, 10*ejectAfter)
			wantIn(t, s, urlA, 0)
			if n := logs.count("backend ejected"); n != 0 {
				t.Errorf("%d %q lines, want none:\n%s", n, "backend ejected", logs)
			}
		})
	})

	t.Run("with three backends up and 50% only one is ejected", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			cfg, _ := ejectionConfig(t, newSwitchProbe().Probe, urlA, urlB, urlC)
			s, _ := startSelector(t, cfg)
			synctest.Wait()
			hits(t, s, urlA, failed, ejectAfter)
			hits(t, s, urlB, failed, ejectAfter)
			wantEjected(t, s, urlA, ejectTime, 1)
			wantNotEjected(t, s, urlB, 0)
		})
	})

	t.Run("down backends do not count towards the base", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			probe := newSwitchProbe()
			urlD := "http://127.0.0.1:8084"
			probe.set(urlC, errRefused)
			probe.set(urlD, errRefused)
			cfg, _ := ejectionConfig(t, probe.Probe, urlA, urlB, urlC, urlD)
			cfg.Monitor.Fall = 1
			s, _ := startSelector(t, cfg)
			synctest.Wait() // the first probes take C and D down
			if st := fullStatusOf(t, s, urlD); st.Up {
				t.Fatalf("D is up, want down")
			}
			// Two of four are UP: 50% of them is one.
			hits(t, s, urlA, failed, ejectAfter)
			hits(t, s, urlB, failed, ejectAfter)
			wantEjected(t, s, urlA, ejectTime, 1)
			wantIn(t, s, urlB, 0)
		})
	})
}
