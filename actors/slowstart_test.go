package actors

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// Slow start tests: a backend that comes back gets a share of traffic that
// grows over Config.SlowStart. Two backends of equal weight share picks by
// smooth weighted round-robin; the test takes picksPerSecond picks evenly
// spread over each second of fake time and compares the returning
// backend's share with the ramp's.

const (
	slowStart      = 10 * time.Second
	picksPerSecond = 100
)

// slowStartConfig is testConfig over A and B, weight 1 each, balanced by
// weighted round-robin with the given slow start; health changes on the
// first failed or passing probe.
func slowStartConfig(t *testing.T, probe ProbeFunc, ramp time.Duration) Config {
	t.Helper()
	cfg := testConfig(t, probe, urlA, urlB)
	cfg.Policy = &WeightedRoundRobin{}
	cfg.SlowStart = ramp
	cfg.Monitor.Rise, cfg.Monitor.Fall = 2, 1
	return cfg
}

// shares takes picks for the given number of seconds of fake time, each
// reported at once as a success, and returns name's share of each second's
// picks.
func rampShares(t *testing.T, s *Selector, name string, seconds int) []float64 {
	t.Helper()
	out := make([]float64, seconds)
	for sec := range seconds {
		n := 0
		for range picksPerSecond {
			if pickNames(t, s, 1)[0] == name {
				n++
			}
			time.Sleep(time.Second / picksPerSecond)
		}
		out[sec] = float64(n) / picksPerSecond
	}
	return out
}

// rampShares is the share each second should have while a backend of
// weight 1 ramps up next to one at full weight 1: at time x into the ramp
// its weight is x/SlowStart of the other's, so its share is w/(w+1),
// averaged over the second's picks.
func expectedShares(seconds int, ramp time.Duration) []float64 {
	out := make([]float64, seconds)
	for sec := range seconds {
		sum := 0.0
		for i := range picksPerSecond {
			at := time.Duration(sec)*time.Second + time.Duration(i)*time.Second/picksPerSecond
			w := 1.0
			if at < ramp {
				w = max(0.01, float64(at)/float64(ramp))
			}
			sum += w / (w + 1)
		}
		out[sec] = sum / picksPerSecond
	}
	return out
}

// checkRamp compares got, a share per second, with the ramp: each second
// within tolerance of rampShares, never falling by more than a few picks
// from one second to the next, and an even split once the ramp is over.
func checkRamp(t *testing.T, got []float64, ramp time.Duration) {
	t.Helper()
	const tolerance = 0.04
	want := expectedShares(len(got), ramp)
	bad := false
	for i := range got {
		if math.Abs(got[i]-want[i]) > tolerance {
			bad = true
		}
		if i > 0 && got[i] < got[i-1]-0.03 {
			bad = true
		}
		if time.Duration(i)*time.Second >= ramp && math.Abs(got[i]-0.5) > 0.01 {
			bad = true
		}
	}
	if bad {
		t.Errorf("shares per second after the start of the ramp:\n%s", table(got, want))
	}
}

// checkEven checks that every second's share is an even split.
func checkEven(t *testing.T, got []float64) {
	t.Helper()
	for i := range got {
		if math.Abs(got[i]-0.5) > 0.01 {
			t.Errorf("shares per second: %v, want 0.5 from the start", got)
			return
		}
	}
}

func table(got, want []float64) string {
	var b strings.Builder
	for i := range got {
		fmt.Fprintf(&b, "  second %2d: got %.2f, want %.2f\n", i, got[i], want[i])
	}
	return b.String()
}

func TestSlowStart(t *testing.T) {
	t.Run("a backend that comes back up ramps up its share over SlowStart", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			probe := newSwitchProbe()
			s, _ := startSelector(t, slowStartConfig(t, probe.Probe, slowStart))
			synctest.Wait()
			probe.set(urlB, errRefused)
			advance(testInterval) // B goes down
			probe.set(urlB, nil)
			advance(2 * testInterval) // two passes: B is up again, now
			if st := fullStatusOf(t, s, urlB); !st.Up || !st.Changed.Equal(time.Now()) {
				t.Fatalf("B's status %+v, want up since now", st)
			}
			checkRamp(t, rampShares(t, s, urlB, 13), slowStart)
		})
	})

	t.Run("a backend back from ejection ramps up its share over SlowStart", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			cfg := slowStartConfig(t, newSwitchProbe().Probe, slowStart)
			cfg.Ejection = Ejection{After: 1, Time: 30 * time.Second}
			s, _ := startSelector(t, cfg)
			synctest.Wait()
			hit(t, s, urlB, failed)
			advance(30 * time.Second)
			if st := fullStatusOf(t, s, urlB); st.State != "up" {
				t.Fatalf("B's state %q, want up after its ejection", st.State)
			}
			checkRamp(t, rampShares(t, s, urlB, 13), slowStart)
		})
	})

	t.Run("a backend added at runtime ramps up its share over SlowStart", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			cfg := slowStartConfig(t, newSwitchProbe().Probe, slowStart)
			cfg.Backends = cfg.Backends[:1]
			s, _ := startSelector(t, cfg)
			synctest.Wait()
			advance(time.Minute)
			if _, err := s.Add(t.Context(), BackendConfig{URL: parseURLs(t, urlB)[0], Weight: 1}); err != nil {
				t.Fatalf("Add: %v", err)
			}
			checkRamp(t, rampShares(t, s, urlB, 13), slowStart)
		})
	})

	t.Run("a backend added by a reload ramps up its share over SlowStart", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			cfg := slowStartConfig(t, newSwitchProbe().Probe, slowStart)
			full := cfg
			cfg.Backends = cfg.Backends[:1]
			s, _ := startSelector(t, cfg)
			synctest.Wait()
			advance(time.Minute)
			if err := s.Reconfigure(t.Context(), full); err != nil {
				t.Fatalf("Reconfigure: %v", err)
			}
			checkRamp(t, rampShares(t, s, urlB, 13), slowStart)
		})
	})

	t.Run("the backends given to New start at full weight", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s, _ := startSelector(t, slowStartConfig(t, newSwitchProbe().Probe, slowStart))
			checkEven(t, rampShares(t, s, urlB, 3))
		})
	})

	t.Run("with SlowStart zero a backend that comes back up gets its full share at once", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			probe := newSwitchProbe()
			s, _ := startSelector(t, slowStartConfig(t, probe.Probe, 0))
			synctest.Wait()
			probe.set(urlB, errRefused)
			advance(testInterval)
			probe.set(urlB, nil)
			advance(2 * testInterval)
			if st := fullStatusOf(t, s, urlB); !st.Up {
				t.Fatalf("B's status %+v, want up", st)
			}
			checkEven(t, rampShares(t, s, urlB, 3))
		})
	})
}
