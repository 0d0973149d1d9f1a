package actors

import (
	"fmt"
	"math/bits"
	"math/rand/v2"
	"testing"
	"testing/synctest"
	"time"
)

// Failure-rate ejection tests: a backend that fails FailureRate percent of
// its last Window requests is ejected, its failures interleaved with
// successes or not, exactly as a streak of failures ejects it.

// Rate settings for these tests, over ejectionConfig's streak settings
// (3 in a row, 10s, 20s, 25s ...): half of the last 10 requests.
const (
	rateThreshold = 50
	rateWindow    = 10
)

// rateConfig is ejectionConfig with failure-rate ejection on as well.
func rateConfig(t *testing.T, raws ...string) (Config, *logBuffer) {
	t.Helper()
	cfg, logs := ejectionConfig(t, newSwitchProbe().Probe, raws...)
	cfg.Ejection.FailureRate, cfg.Ejection.Window = rateThreshold, rateWindow
	return cfg, logs
}

// pattern is n answers that repeat p, a letter each: F a failed
// exchange, B a 502 the backend sent, S a 200, C a client gone.
func pattern(p string, n int) []answer {
	byLetter := map[byte]answer{'F': failed, 'B': badGateway, 'S': ok200, 'C': clientGone}
	out := make([]answer, n)
	for i := range out {
		out[i] = byLetter[p[i%len(p)]]
	}
	return out
}

// alternate is n answers, failed first, then ok200, and so on.
func alternate(n int) []answer { return pattern("FS", n) }

// wantEjectedStatus is wantEjected by Status alone, without the picks.
func wantEjectedStatus(t *testing.T, s *Selector, name string, d time.Duration, total uint64) {
	t.Helper()
	st := fullStatusOf(t, s, name)
	if st.State != "ejected" || !st.EjectedUntil.Equal(time.Now().Add(d)) || st.Ejections != total {
		t.Errorf("%s: state %q, ejected until %v from now, %d ejections; want ejected for %v, %d ejections",
			name, st.State, time.Until(st.EjectedUntil), st.Ejections, d, total)
	}
}

func TestEjectionFailureRate(t *testing.T) {
	tests := []struct {
		name    string
		results []answer
		eject   bool
	}{
		{"a backend failing every other request is ejected once it has served the window",
			alternate(rateWindow), true},
		{"below the minimum volume no rate ejects, however high",
			alternate(rateWindow - 1), false},
		{"a backend failing two requests in five is never ejected at 50%",
			pattern("FSBSS", 10*rateWindow), false},
		{"a backend failing one request in three is never ejected at 50%",
			pattern("BSS", 10*rateWindow), false},
		{"clients that went away count towards neither the rate nor the volume",
			append(alternate(rateWindow-1), pattern("C", 5)...), false},
		{"clients that went away do not break the pattern",
			pattern("FCSC", 2*rateWindow), true},
		{"failures long gone slide out of the window",
			append(append(alternate(rateWindow-2), ok200, ok200), pattern("BSS", 4*rateWindow)...), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cfg, logs := rateConfig(t, urlA, urlB)
				s, _ := startSelector(t, cfg)
				synctest.Wait()
				for _, r := range tt.results {
					hit(t, s, urlA, r)
				}
				if !tt.eject {
					// By Status alone: picks that succeed would change A's rate.
					wantNotEjected(t, s, urlA, 0)
					if n := logs.count("backend ejected"); n != 0 {
						t.Errorf("%d %q lines, want none:\n%s", n, "backend ejected", logs)
					}
					return
				}
				wantEjected(t, s, urlA, ejectTime, 1)
				want := fmt.Sprintf(`reason="%d gateway failures in the last %d requests"`, rateWindow/2, rateWindow)
				if n := logs.count("backend ejected", "backend="+urlA, want); n != 1 {
					t.Errorf("%d %q lines for A saying %s, want 1:\n%s", n, "backend ejected", want, logs)
				}
				wantIn(t, s, urlB, 0)
			})
		})
	}
}

func TestEjectionFailureRateThresholds(t *testing.T) {
	// Over a window of 10, a rate of r% ejects at ceil(r/10) failures.
	tests := []struct {
		rate, fails int
		eject       bool
	}{
		{50, 5, true}, {50, 4, false}, {41, 5, true}, {41, 4, false},
		{10, 1, true}, {100, 10, true}, {100, 9, false},
	}
	for _, tt := range tests {
		eject := map[bool]string{true: "ejects", false: "does not eject"}[tt.eject]
		t.Run(fmt.Sprintf("%d failures in %d at %d%% %s", tt.fails, rateWindow, tt.rate, eject), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cfg, _ := rateConfig(t, urlA, urlB)
				cfg.Ejection.After, cfg.Ejection.FailureRate = 0, tt.rate // no streak ejection
				s, _ := startSelector(t, cfg)
				synctest.Wait()
				hits(t, s, urlA, ok200, rateWindow-tt.fails)
				hits(t, s, urlA, failed, tt.fails)
				if tt.eject {
					wantEjected(t, s, urlA, ejectTime, 1)
				} else {
					wantNotEjected(t, s, urlA, 0)
				}
			})
		})
	}
}

func TestEjectionFailureRateOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg, logs := rateConfig(t, urlA, urlB)
		cfg.Ejection.FailureRate = 0
		s, _ := startSelector(t, cfg)
		synctest.Wait()
		for _, r := range alternate(10 * rateWindow) {
			hit(t, s, urlA, r)
		}
		wantIn(t, s, urlA, 0)
		// The streak rule still works on its own.
		hits(t, s, urlA, failed, ejectAfter)
		wantEjected(t, s, urlA, ejectTime, 1)
		if n := logs.count("backend ejected", "consecutive gateway failures"); n != 1 {
			t.Errorf("%d streak ejections, want 1:\n%s", n, logs)
		}
	})
}

func TestEjectionFailureRateReturn(t *testing.T) {
	// An ejection for a rate ends, and repeats, as one for a streak does:
	// the same timer, the same backoff, the same log lines. The window
	// starts again empty each time.
	synctest.Test(t, func(t *testing.T) {
		cfg, logs := rateConfig(t, urlA, urlB)
		s, _ := startSelector(t, cfg)
		synctest.Wait()
		for i, d := range []time.Duration{ejectTime, 2 * ejectTime, ejectMax} {
			for _, r := range alternate(rateWindow - 1) {
				hit(t, s, urlA, r)
			}
			wantNotEjected(t, s, urlA, uint64(i))
			hit(t, s, urlA, ok200)
			wantEjected(t, s, urlA, d, uint64(i+1))
			advance(d - time.Nanosecond)
			if st := fullStatusOf(t, s, urlA); st.State != "ejected" {
				t.Fatalf("ejection %d: state %q a nanosecond before its end, want ejected", i+1, st.State)
			}
			advance(time.Nanosecond)
			wantNotEjected(t, s, urlA, uint64(i+1))
		}
		for _, msg := range []string{"backend ejected", "backend returned"} {
			if n := logs.count(msg, "backend="+urlA); n != 3 {
				t.Errorf("%d %q lines for A, want 3:\n%s", n, msg, logs)
			}
		}
		// Mixed: a streak after a rate continues the same backoff.
		advance(time.Second)
		hits(t, s, urlA, failed, ejectAfter)
		wantEjected(t, s, urlA, ejectMax, 4)
	})
}

func TestEjectionFailureRateMaxPercent(t *testing.T) {
	t.Run("with three backends up and 50% only one is ejected for its rate", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			cfg, logs := rateConfig(t, urlA, urlB, urlC)
			s, _ := startSelector(t, cfg)
			synctest.Wait()
			for _, r := range alternate(rateWindow) {
				hit(t, s, urlA, r)
				hit(t, s, urlB, r)
			}
			// By Status alone: picks that succeed would change B's rate.
			wantEjectedStatus(t, s, urlA, ejectTime, 1)
			wantNotEjected(t, s, urlB, 0)
			if n := logs.count("backend ejected"); n != 1 {
				t.Errorf("%d %q lines, want 1:\n%s", n, "backend ejected", logs)
			}
			// Once A is back, B's window, still full and failing, ejects
			// it at its next report.
			advance(ejectTime)
			wantNotEjected(t, s, urlA, 1)
			hit(t, s, urlB, failed)
			wantEjected(t, s, urlB, ejectTime, 1)
		})
	})

	t.Run("a single backend is never ejected for its rate", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			cfg, logs := rateConfig(t, urlA)
			cfg.Ejection.MaxPercent = 99
			s, _ := startSelector(t, cfg)
			synctest.Wait()
			for _, r := range alternate(5 * rateWindow) {
				hit(t, s, urlA, r)
			}
			wantIn(t, s, urlA, 0)
			if n := logs.count("backend ejected"); n != 0 {
				t.Errorf("%d %q lines, want none:\n%s", n, "backend ejected", logs)
			}
		})
	})
}

func TestEjectionFailureRateHealthChange(t *testing.T) {
	// DOWN and UP again by its probes, a backend starts with an empty
	// window, as with a streak of none.
	synctest.Test(t, func(t *testing.T) {
		probe := newSwitchProbe()
		cfg, _ := ejectionConfig(t, probe.Probe, urlA, urlB)
		cfg.Ejection.FailureRate, cfg.Ejection.Window = rateThreshold, rateWindow
		cfg.Monitor.Fall, cfg.Monitor.Rise = 1, 1
		s, _ := startSelector(t, cfg)
		synctest.Wait()
		for _, r := range alternate(rateWindow - 1) {
			hit(t, s, urlA, r)
		}
		probe.set(urlA, errRefused)
		advance(cfg.Monitor.Interval)
		if st := fullStatusOf(t, s, urlA); st.Up {
			t.Fatalf("A is up after a failed probe with Fall 1")
		}
		probe.set(urlA, nil)
		advance(cfg.Monitor.Interval)
		hit(t, s, urlA, ok200) // would have filled the window at 5 of 10
		wantNotEjected(t, s, urlA, 0)
		for _, r := range alternate(rateWindow - 1) {
			hit(t, s, urlA, r)
		}
		wantEjected(t, s, urlA, ejectTime, 1)
	})
}

func TestFailureWindow(t *testing.T) {
	// The ring against a plain list of the last outcomes, over windows of
	// one word, of a word and a bit, and of several words, with a change
	// of size halfway.
	for _, sizes := range [][2]int{{1, 3}, {7, 64}, {64, 65}, {130, 50}} {
		t.Run(fmt.Sprintf("sizes %d then %d", sizes[0], sizes[1]), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(sizes[0]), uint64(sizes[1])))
			var w failureWindow
			var last []bool
			for i := range 1000 {
				size := sizes[0]
				if i >= 500 {
					size = sizes[1]
				}
				if i == 500 {
					last = nil // a new size starts empty
				}
				failed := rng.IntN(3) == 0
				w.add(failed, size)
				last = append(last, failed)
				if len(last) > size {
					last = last[1:]
				}
				fails := 0
				for _, f := range last {
					if f {
						fails++
					}
				}
				ones := 0
				for _, x := range w.bits {
					ones += bits.OnesCount64(x)
				}
				if w.fails != fails || ones != fails || w.n != len(last) || w.full() != (len(last) == size) {
					t.Fatalf("after %d outcomes: fails %d, bits set %d, held %d, full %v; want %d, %d, %d, %v",
						i+1, w.fails, ones, w.n, w.full(), fails, fails, len(last), len(last) == size)
				}
				if i == 250 || i == 750 {
					w.reset()
					last = nil
				}
			}
		})
	}
	t.Run("the zero window is empty and not full", func(t *testing.T) {
		var w failureWindow
		w.reset() // no storage yet: nothing to clear
		if w.full() || w.fails != 0 || w.n != 0 {
			t.Errorf("zero window: full %v, fails %d, held %d; want not full, 0, 0", w.full(), w.fails, w.n)
		}
	})
}

func TestEjectionFailureRateReconfigure(t *testing.T) {
	t.Run("a new window size starts every window again, empty", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			cfg, _ := rateConfig(t, urlA, urlB)
			s, _ := startSelector(t, cfg)
			synctest.Wait()
			for _, r := range alternate(rateWindow - 1) {
				hit(t, s, urlA, r)
			}
			cfg.Ejection.Window = 2 * rateWindow
			if err := s.Reconfigure(t.Context(), cfg); err != nil {
				t.Fatal(err)
			}
			// A window of 20 from here: the 9 outcomes before do not count.
			for _, r := range alternate(2*rateWindow - 1) {
				hit(t, s, urlA, r)
			}
			wantNotEjected(t, s, urlA, 0)
			hit(t, s, urlA, ok200)
			wantEjectedStatus(t, s, urlA, ejectTime, 1)
		})
	})
	t.Run("a rate turned on by a reload judges from then on", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			cfg, _ := rateConfig(t, urlA, urlB)
			cfg.Ejection.FailureRate = 0
			s, _ := startSelector(t, cfg)
			synctest.Wait()
			for _, r := range alternate(4 * rateWindow) {
				hit(t, s, urlA, r)
			}
			wantNotEjected(t, s, urlA, 0)
			cfg.Ejection.FailureRate = rateThreshold
			if err := s.Reconfigure(t.Context(), cfg); err != nil {
				t.Fatal(err)
			}
			for _, r := range alternate(rateWindow) {
				hit(t, s, urlA, r)
			}
			wantEjectedStatus(t, s, urlA, ejectTime, 1)
		})
	})
}
