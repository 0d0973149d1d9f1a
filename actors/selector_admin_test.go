package actors

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/sourcegraph/conc"
)

// Tests of the runtime backend set (Add, Remove, Drain, SetEnabled,
// Reconfigure) and of the probe statistics in Status. Like selector_test.go
// they run in a synctest bubble with fake probes; the helpers there
// (startSelector, testConfig, pickNames, advance) apply. Unlike its status
// helper, fullStatus keeps every field.

// fullStatus returns s.Status, failing the test on an error.
func fullStatus(t *testing.T, s *Selector) []BackendStatus {
	t.Helper()
	st, err := s.Status(t.Context())
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	return st
}

// lookup returns the status of the backend called name, and whether there is
// one.
func lookup(t *testing.T, s *Selector, name string) (BackendStatus, bool) {
	t.Helper()
	for _, st := range fullStatus(t, s) {
		if st.Name == name {
			return st, true
		}
	}
	return BackendStatus{}, false
}

// mustLookup is lookup for a backend that must be there.
func mustLookup(t *testing.T, s *Selector, name string) BackendStatus {
	t.Helper()
	st, ok := lookup(t, s, name)
	if !ok {
		t.Fatalf("Status has no backend %s", name)
	}
	return st
}

// states returns "name=state" for every backend, in Status order.
func states(t *testing.T, s *Selector) []string {
	t.Helper()
	var out []string
	for _, st := range fullStatus(t, s) {
		out = append(out, st.Name+"="+st.State)
	}
	return out
}

// idOf is the ID the selector gives the backend at raw.
func idOf(t testing.TB, raw string) string {
	t.Helper()
	return newBackend(t, raw).ID
}

// backendConfig is raw with the given weight.
func backendConfig(t testing.TB, raw string, weight int) BackendConfig {
	t.Helper()
	return BackendConfig{URL: parseURLs(t, raw)[0], Weight: weight}
}

// withBackends is cfg with its backends replaced by raws, weight 1 each. It
// keeps cfg.Monitor as it is, Probe included: monitor settings compare equal
// only when they hold the very same ProbeFunc value.
func withBackends(t testing.TB, cfg Config, raws ...string) Config {
	t.Helper()
	cfg.Backends = configs(parseURLs(t, raws...))
	return cfg
}

// probeCounts returns how often each of names has been probed.
func probeCounts(p *switchProbe, names ...string) []int {
	out := make([]int, len(names))
	for i, name := range names {
		out[i] = p.count(name)
	}
	return out
}

// take picks once and fails the test unless it got the backend called want.
// The caller owns the pick and must report it.
func take(t *testing.T, s *Selector, want string) *Backend {
	t.Helper()
	b, err := s.Pick(t.Context())
	if err != nil || b == nil || b.Name != want {
		t.Fatalf("Pick = %v, %v; want %s", b, err, want)
	}
	return b
}

// reportAndWait reports a successful attempt on b and waits until the
// selector has taken the report in (Report is buffered).
func reportAndWait(s *Selector, b *Backend) {
	s.Report(Report{Backend: b, Outcome: Success, Status: 200})
	synctest.Wait()
}

func TestSelectorAdd(t *testing.T) {
	t.Run("Add returns the ID derived from the URL and puts the backend last in the rotation", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s, _ := startSelector(t, testConfig(t, newSwitchProbe().Probe, urlA, urlB))
			if got, want := pickNames(t, s, 2), []string{urlA, urlB}; !slices.Equal(got, want) {
				t.Fatalf("before Add: picks = %v, want %v", got, want)
			}
			id, err := s.Add(t.Context(), backendConfig(t, urlC, 1))
			if err != nil {
				t.Fatalf("Add: %v", err)
			}
			if want := idOf(t, urlC); id != want {
				t.Errorf("Add returned ID %q, want %q (backendFor's)", id, want)
			}
			if got, want := states(t, s), []string{urlA + "=up", urlB + "=up", urlC + "=up"}; !slices.Equal(got, want) {
				t.Errorf("states = %v, want %v", got, want)
			}
			if st := mustLookup(t, s, urlC); st.ID != id || st.Weight != 1 || !st.Up {
				t.Errorf("C's status = %+v, want ID %q, weight 1, up", st, id)
			}
			// The rotation was about to wrap to A; C is now in between.
			want := []string{urlC, urlA, urlB, urlC, urlA, urlB}
			if got := pickNames(t, s, 6); !slices.Equal(got, want) {
				t.Errorf("after Add: picks = %v, want %v", got, want)
			}
		})
	})

	t.Run("a new backend's monitor probes it at once and then every interval", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			probe := newSwitchProbe()
			s, _ := startSelector(t, testConfig(t, probe.Probe, urlA))
			advance(testInterval / 2)
			if _, err := s.Add(t.Context(), backendConfig(t, urlB, 1)); err != nil {
				t.Fatalf("Add: %v", err)
			}
			synctest.Wait()
			if got := probe.count(urlB); got != 1 {
				t.Errorf("probes of the new backend right after Add: %d, want 1", got)
			}
			if got := mustLookup(t, s, urlB); got.Probes != 1 || got.LastProbe != time.Now() {
				t.Errorf("status after the first probe: %+v, want 1 probe, now", got)
			}
			advance(testInterval)
			if got := probe.count(urlB); got != 2 {
				t.Errorf("probes of the new backend one interval later: %d, want 2", got)
			}
		})
	})

	t.Run("a backend added with weight 0 or disabled is not picked", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s, _ := startSelector(t, testConfig(t, newSwitchProbe().Probe, urlA))
			if _, err := s.Add(t.Context(), backendConfig(t, urlB, 0)); err != nil {
				t.Fatalf("Add standby: %v", err)
			}
			disabled := backendConfig(t, urlC, 1)
			disabled.Disabled = true
			if _, err := s.Add(t.Context(), disabled); err != nil {
				t.Fatalf("Add disabled: %v", err)
			}
			if got, want := states(t, s), []string{urlA + "=up", urlB + "=up", urlC + "=disabled"}; !slices.Equal(got, want) {
				t.Errorf("states = %v, want %v", got, want)
			}
			if got, want := pickNames(t, s, 3), []string{urlA, urlA, urlA}; !slices.Equal(got, want) {
				t.Errorf("picks = %v, want %v", got, want)
			}
		})
	})

	tests := []struct {
		name    string
		bc      func(t *testing.T) BackendConfig
		wantErr error  // matched with errors.Is, if set
		wantMsg string // contained in the error, if set
	}{
		{"adding a configured backend again fails with ErrDuplicateBackend",
			func(t *testing.T) BackendConfig { return backendConfig(t, urlA, 1) }, ErrDuplicateBackend, urlA},
		{"adding a backend without a host fails",
			func(t *testing.T) BackendConfig { return backendConfig(t, "http:///x", 1) }, nil, "missing host"},
		{"adding a backend without a URL fails",
			func(*testing.T) BackendConfig { return BackendConfig{Weight: 1} }, nil, "missing host"},
		{"adding a backend with a negative weight fails",
			func(t *testing.T) BackendConfig { return backendConfig(t, urlC, -1) }, nil, "weight -1: want 0 to 1000"},
	}
	for _, tt := range tests {
		t.Run(tt.name+" and changes nothing", func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				probe := newSwitchProbe()
				s, _ := startSelector(t, testConfig(t, probe.Probe, urlA, urlB))
				synctest.Wait()
				pickNames(t, s, 1) // A; B is next
				synctest.Wait()
				before := fullStatus(t, s)
				id, err := s.Add(t.Context(), tt.bc(t))
				if err == nil || id != "" {
					t.Fatalf("Add = %q, %v; want an error", id, err)
				}
				if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
					t.Errorf("Add error %v, want one that Is %v", err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantMsg) {
					t.Errorf("Add error %q, want it to contain %q", err, tt.wantMsg)
				}
				synctest.Wait()
				if got := fullStatus(t, s); !slices.Equal(got, before) {
					t.Errorf("Status after a failed Add:\n%+v\nwant as before:\n%+v", got, before)
				}
				if got, want := probeCounts(probe, urlA, urlB, urlC), []int{1, 1, 0}; !slices.Equal(got, want) {
					t.Errorf("probe calls = %v, want %v (no monitor started)", got, want)
				}
				if got, want := pickNames(t, s, 3), []string{urlB, urlA, urlB}; !slices.Equal(got, want) {
					t.Errorf("picks = %v, want %v", got, want)
				}
			})
		})
	}
}

func TestSelectorRemove(t *testing.T) {
	t.Run("an idle backend is gone at once and its monitor stops", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			probe := newSwitchProbe()
			cfg := testConfig(t, probe.Probe, urlA, urlB, urlC)
			logger, logs := newLogger()
			cfg.Logger = logger
			s, _ := startSelector(t, cfg)
			synctest.Wait()
			if err := s.Remove(t.Context(), idOf(t, urlB)); err != nil {
				t.Fatalf("Remove: %v", err)
			}
			if got, want := states(t, s), []string{urlA + "=up", urlC + "=up"}; !slices.Equal(got, want) {
				t.Errorf("states = %v, want %v", got, want)
			}
			if got, want := pickNames(t, s, 4), []string{urlA, urlC, urlA, urlC}; !slices.Equal(got, want) {
				t.Errorf("picks = %v, want %v", got, want)
			}
			advance(3 * testInterval)
			if got, want := probeCounts(probe, urlA, urlB, urlC), []int{4, 1, 4}; !slices.Equal(got, want) {
				t.Errorf("probe calls = %v, want %v (B's monitor stopped)", got, want)
			}
			if n := logs.count("backend removed", "backend="+urlB); n != 1 {
				t.Errorf("%d %q lines for B, want 1:\n%s", n, "backend removed", logs)
			}

			// Added again, B has the same ID, starts afresh at the end and
			// is probed at once.
			id, err := s.Add(t.Context(), backendConfig(t, urlB, 1))
			if err != nil || id != idOf(t, urlB) {
				t.Fatalf("Add = %q, %v; want %q", id, err, idOf(t, urlB))
			}
			synctest.Wait()
			if got, want := states(t, s), []string{urlA + "=up", urlC + "=up", urlB + "=up"}; !slices.Equal(got, want) {
				t.Errorf("after adding B again: states = %v, want %v", got, want)
			}
			if st := mustLookup(t, s, urlB); st.Probes != 1 || st.Requests != 0 {
				t.Errorf("after adding B again: status %+v, want 1 probe, no requests", st)
			}
		})
	})

	t.Run("a backend with requests in flight drains and goes after its last report", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			probe := newSwitchProbe()
			s, _ := startSelector(t, testConfig(t, probe.Probe, urlA, urlB, urlC))
			synctest.Wait()
			first, second := take(t, s, urlA), take(t, s, urlB)
			third := take(t, s, urlC)
			fourth := take(t, s, urlA)
			reportAndWait(s, second)
			reportAndWait(s, third)
			if err := s.Remove(t.Context(), idOf(t, urlA)); err != nil {
				t.Fatalf("Remove: %v", err)
			}
			st := mustLookup(t, s, urlA)
			if st.State != "draining" || st.InFlight != 2 {
				t.Errorf("A's status = %+v, want draining with 2 in flight", st)
			}
			if got, want := pickNames(t, s, 4), []string{urlB, urlC, urlB, urlC}; !slices.Equal(got, want) {
				t.Errorf("picks while A drains = %v, want %v", got, want)
			}
			if b, err := s.PickFor(t.Context(), "", []*Backend{second, third}); b != nil || err != nil {
				t.Errorf("PickFor excluding B and C = %v, %v; want nil: A takes no new requests", b, err)
			}

			s.Report(Report{Backend: first, Outcome: Failed, Err: errRefused})
			synctest.Wait()
			st = mustLookup(t, s, urlA)
			if st.State != "draining" || st.InFlight != 1 || st.Requests != 1 || st.Failures != 1 {
				t.Errorf("after one of two reports: A's status = %+v, want draining, 1 in flight, 1 request, 1 failure", st)
			}
			reportAndWait(s, fourth)
			if st, ok := lookup(t, s, urlA); ok {
				t.Errorf("after the last report: A is still there: %+v", st)
			}
			calls := probe.count(urlA)
			advance(3 * testInterval)
			if got := probe.count(urlA); got != calls {
				t.Errorf("A was probed %d more times after it went, want none", got-calls)
			}
		})
	})

	t.Run("a disabled backend with requests in flight shows as draining while it goes", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s, _ := startSelector(t, testConfig(t, newSwitchProbe().Probe, urlA, urlB))
			held := take(t, s, urlA)
			if err := s.SetEnabled(t.Context(), idOf(t, urlA), false); err != nil {
				t.Fatalf("SetEnabled(false): %v", err)
			}
			if err := s.Remove(t.Context(), idOf(t, urlA)); err != nil {
				t.Fatalf("Remove: %v", err)
			}
			if st := mustLookup(t, s, urlA); st.State != "draining" || st.InFlight != 1 {
				t.Errorf("A's status = %+v, want draining with 1 in flight", st)
			}
			reportAndWait(s, held)
			if _, ok := lookup(t, s, urlA); ok {
				t.Error("after the last report: A is still there")
			}
		})
	})

	t.Run("removing an unknown ID fails with ErrUnknownBackend", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s, _ := startSelector(t, testConfig(t, newSwitchProbe().Probe, urlA))
			for _, id := range []string{"", "nope", idOf(t, urlB), urlA} {
				if err := s.Remove(t.Context(), id); !errors.Is(err, ErrUnknownBackend) {
					t.Errorf("Remove(%q) = %v, want %v", id, err, ErrUnknownBackend)
				}
			}
			if got, want := states(t, s), []string{urlA + "=up"}; !slices.Equal(got, want) {
				t.Errorf("states = %v, want %v", got, want)
			}
		})
	})

	for _, inFlight := range []bool{false, true} {
		name := "removing an idle backend twice fails the second time"
		if inFlight {
			name = "removing a draining backend again fails"
		}
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s, _ := startSelector(t, testConfig(t, newSwitchProbe().Probe, urlA, urlB))
				if inFlight {
					b := take(t, s, urlA)
					t.Cleanup(func() { s.Report(Report{Backend: b}) })
				}
				if err := s.Remove(t.Context(), idOf(t, urlA)); err != nil {
					t.Fatalf("first Remove: %v", err)
				}
				if err := s.Remove(t.Context(), idOf(t, urlA)); !errors.Is(err, ErrUnknownBackend) {
					t.Errorf("second Remove = %v, want %v", err, ErrUnknownBackend)
				}
				for _, enable := range []bool{false, true} {
					if err := s.SetEnabled(t.Context(), idOf(t, urlA), enable); !errors.Is(err, ErrUnknownBackend) {
						t.Errorf("SetEnabled(%v) after Remove = %v, want %v", enable, err, ErrUnknownBackend)
					}
				}
				if err := s.Drain(t.Context(), idOf(t, urlA)); !errors.Is(err, ErrUnknownBackend) {
					t.Errorf("Drain after Remove = %v, want %v", err, ErrUnknownBackend)
				}
			})
		})
	}

	t.Run("adding a backend again while it drains takes it back", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			probe := newSwitchProbe()
			s, _ := startSelector(t, testConfig(t, probe.Probe, urlA, urlB, urlC))
			synctest.Wait()
			held := take(t, s, urlA)
			if err := s.Remove(t.Context(), idOf(t, urlA)); err != nil {
				t.Fatalf("Remove: %v", err)
			}
			id, err := s.Add(t.Context(), backendConfig(t, urlA, 2))
			if err != nil {
				t.Fatalf("Add while A drains: %v", err)
			}
			if id != idOf(t, urlA) {
				t.Errorf("Add returned %q, want A's ID %q", id, idOf(t, urlA))
			}
			// Added again, A goes to the end like any added backend, keeps
			// its in-flight count and takes the new weight.
			if got, want := states(t, s), []string{urlB + "=up", urlC + "=up", urlA + "=up"}; !slices.Equal(got, want) {
				t.Errorf("states = %v, want %v", got, want)
			}
			if st := mustLookup(t, s, urlA); st.InFlight != 1 || st.Weight != 2 {
				t.Errorf("A's status = %+v, want 1 in flight, weight 2", st)
			}
			reportAndWait(s, held)
			st := mustLookup(t, s, urlA)
			if st.InFlight != 0 || st.Requests != 1 {
				t.Errorf("after the report: A's status = %+v, want kept, 1 request, none in flight", st)
			}
			if got := pickNames(t, s, 6); !slices.Contains(got, urlA) {
				t.Errorf("picks = %v, want A among them", got)
			}
			if got := probe.count(urlA); got != 1 {
				t.Errorf("A probed %d times, want 1 (its monitor kept running, no new one)", got)
			}
		})
	})
}

func TestSelectorDrain(t *testing.T) {
	t.Run("a draining backend takes no new requests, finishes the ones in flight and stays until enabled", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			cfg := testConfig(t, newSwitchProbe().Probe, urlA, urlB, urlC)
			logger, logs := newLogger()
			cfg.Logger = logger
			s, _ := startSelector(t, cfg)
			held := take(t, s, urlA)
			if err := s.Drain(t.Context(), idOf(t, urlA)); err != nil {
				t.Fatalf("Drain: %v", err)
			}
			if st := mustLookup(t, s, urlA); st.State != "draining" || !st.Up || st.InFlight != 1 {
				t.Errorf("A's status = %+v, want draining, up, 1 in flight", st)
			}
			if got, want := pickNames(t, s, 4), []string{urlB, urlC, urlB, urlC}; !slices.Equal(got, want) {
				t.Errorf("picks while A drains = %v, want %v", got, want)
			}
			s.Report(Report{Backend: held, Outcome: Failed, Err: errRefused})
			synctest.Wait()
			st := mustLookup(t, s, urlA)
			if st.State != "draining" || st.InFlight != 0 || st.Requests != 1 || st.Failures != 1 {
				t.Errorf("after its last report: A's status = %+v, want still draining, 1 request, 1 failure", st)
			}
			advance(testInterval)
			if got, want := states(t, s), []string{urlA + "=draining", urlB + "=up", urlC + "=up"}; !slices.Equal(got, want) {
				t.Errorf("states = %v, want %v", got, want)
			}
			if err := s.Drain(t.Context(), idOf(t, urlA)); err != nil {
				t.Errorf("draining again = %v, want nil", err)
			}
			if err := s.SetEnabled(t.Context(), idOf(t, urlA), true); err != nil {
				t.Fatalf("SetEnabled(true): %v", err)
			}
			if st := mustLookup(t, s, urlA); st.State != "up" {
				t.Errorf("after SetEnabled(true): A's state %q, want up", st.State)
			}
			if got, want := pickNames(t, s, 3), []string{urlA, urlB, urlC}; !slices.Equal(got, want) {
				t.Errorf("picks after the drain ended = %v, want %v", got, want)
			}
			if n := logs.count("backend draining", "backend="+urlA, "in_flight=1"); n != 1 {
				t.Errorf("%d %q lines for A with 1 in flight, want 1:\n%s", n, "backend draining", logs)
			}
		})
	})

	t.Run("draining an unknown ID fails with ErrUnknownBackend", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s, _ := startSelector(t, testConfig(t, newSwitchProbe().Probe, urlA))
			if err := s.Drain(t.Context(), idOf(t, urlB)); !errors.Is(err, ErrUnknownBackend) {
				t.Errorf("Drain = %v, want %v", err, ErrUnknownBackend)
			}
			if err := s.SetEnabled(t.Context(), "nope", true); !errors.Is(err, ErrUnknownBackend) {
				t.Errorf("SetEnabled = %v, want %v", err, ErrUnknownBackend)
			}
		})
	})

	t.Run("a drained backend that goes down shows as draining and comes back down when enabled", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			probe := newSwitchProbe()
			cfg := testConfig(t, probe.Probe, urlA, urlB)
			cfg.Monitor.Fall = 1
			s, _ := startSelector(t, cfg)
			if err := s.Drain(t.Context(), idOf(t, urlA)); err != nil {
				t.Fatalf("Drain: %v", err)
			}
			probe.set(urlA, errRefused)
			advance(testInterval)
			if st := mustLookup(t, s, urlA); st.State != "draining" || st.Up {
				t.Errorf("A's status = %+v, want draining and not up", st)
			}
			if err := s.SetEnabled(t.Context(), idOf(t, urlA), true); err != nil {
				t.Fatalf("SetEnabled(true): %v", err)
			}
			if st := mustLookup(t, s, urlA); st.State != "down" {
				t.Errorf("after SetEnabled(true): A's state %q, want down", st.State)
			}
			if got, want := pickNames(t, s, 2), []string{urlB, urlB}; !slices.Equal(got, want) {
				t.Errorf("picks = %v, want %v", got, want)
			}
		})
	})
}

func TestSelectorSetEnabled(t *testing.T) {
	t.Run("a disabled backend gets no picks but is still probed, and its health changes are logged", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			probe := newSwitchProbe()
			cfg := testConfig(t, probe.Probe, urlA, urlB, urlC)
			cfg.Monitor.Fall, cfg.Monitor.Rise = 1, 1
			logger, logs := newLogger()
			cfg.Logger = logger
			s, _ := startSelector(t, cfg)
			synctest.Wait()
			if err := s.SetEnabled(t.Context(), idOf(t, urlB), false); err != nil {
				t.Fatalf("SetEnabled(false): %v", err)
			}
			if st := mustLookup(t, s, urlB); st.State != "disabled" || !st.Up {
				t.Errorf("B's status = %+v, want disabled and up", st)
			}
			if got, want := pickNames(t, s, 4), []string{urlA, urlC, urlA, urlC}; !slices.Equal(got, want) {
				t.Errorf("picks with B disabled = %v, want %v", got, want)
			}
			probe.set(urlB, errRefused)
			advance(testInterval)
			st := mustLookup(t, s, urlB)
			if st.State != "disabled" || st.Up || st.Probes != 2 || st.ProbeFailures != 1 {
				t.Errorf("after a failed probe: B's status = %+v, want disabled, down, 2 probes, 1 failure", st)
			}
			probe.set(urlB, nil)
			advance(testInterval)
			if st := mustLookup(t, s, urlB); st.State != "disabled" || !st.Up || st.Probes != 3 {
				t.Errorf("after a passing probe: B's status = %+v, want disabled, up, 3 probes", st)
			}
			for _, msg := range []string{"backend down", "backend up"} {
				if n := logs.count(msg, "backend="+urlB); n != 1 {
					t.Errorf("%d %q lines for B, want 1:\n%s", n, msg, logs)
				}
			}
			if n := logs.count("backend disabled", "backend="+urlB); n != 1 {
				t.Errorf("%d %q lines for B, want 1:\n%s", n, "backend disabled", logs)
			}

			if err := s.SetEnabled(t.Context(), idOf(t, urlB), true); err != nil {
				t.Fatalf("SetEnabled(true): %v", err)
			}
			if got, want := states(t, s), []string{urlA + "=up", urlB + "=up", urlC + "=up"}; !slices.Equal(got, want) {
				t.Errorf("states = %v, want %v", got, want)
			}
			if got := pickNames(t, s, 6); !slices.Equal(got, []string{urlA, urlB, urlC, urlA, urlB, urlC}) {
				t.Errorf("picks with B enabled again = %v, want A B C A B C", got)
			}
		})
	})

	t.Run("a disabled backend keeps the requests it had in flight", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s, _ := startSelector(t, testConfig(t, newSwitchProbe().Probe, urlA, urlB))
			held := take(t, s, urlA)
			if err := s.SetEnabled(t.Context(), idOf(t, urlA), false); err != nil {
				t.Fatalf("SetEnabled(false): %v", err)
			}
			if st := mustLookup(t, s, urlA); st.InFlight != 1 {
				t.Errorf("A's status = %+v, want 1 in flight", st)
			}
			reportAndWait(s, held)
			if st := mustLookup(t, s, urlA); st.InFlight != 0 || st.Requests != 1 || st.State != "disabled" {
				t.Errorf("A's status = %+v, want disabled, 1 request, none in flight", st)
			}
		})
	})

	t.Run("a backend configured disabled starts out of rotation and is probed", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			probe := newSwitchProbe()
			cfg := testConfig(t, probe.Probe, urlA, urlB)
			cfg.Backends[0].Disabled = true
			s, _ := startSelector(t, cfg)
			synctest.Wait()
			if got, want := states(t, s), []string{urlA + "=disabled", urlB + "=up"}; !slices.Equal(got, want) {
				t.Errorf("states = %v, want %v", got, want)
			}
			if got, want := pickNames(t, s, 2), []string{urlB, urlB}; !slices.Equal(got, want) {
				t.Errorf("picks = %v, want %v", got, want)
			}
			if got := probe.count(urlA); got != 1 {
				t.Errorf("A probed %d times at start, want 1", got)
			}
			if err := s.SetEnabled(t.Context(), idOf(t, urlA), true); err != nil {
				t.Fatalf("SetEnabled(true): %v", err)
			}
			if got, want := pickNames(t, s, 2), []string{urlA, urlB}; !slices.Equal(got, want) {
				t.Errorf("picks after enabling A = %v, want %v", got, want)
			}
		})
	})

	t.Run("disabling twice and enabling an enabled backend are no-ops", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s, _ := startSelector(t, testConfig(t, newSwitchProbe().Probe, urlA, urlB))
			id := idOf(t, urlA)
			for _, enable := range []bool{true, false, false} {
				if err := s.SetEnabled(t.Context(), id, enable); err != nil {
					t.Fatalf("SetEnabled(%v): %v", enable, err)
				}
			}
			if got, want := states(t, s), []string{urlA + "=disabled", urlB + "=up"}; !slices.Equal(got, want) {
				t.Errorf("states = %v, want %v", got, want)
			}
		})
	})
}

func TestSelectorStandby(t *testing.T) {
	// A and B have weight 1; S (urlC) is a standby with weight 0.
	type op struct {
		do   string // "disable", "enable", "drain" or "down" (probes fail)
		name string
	}
	tests := []struct {
		name  string
		ops   []op
		picks []string
	}{
		{"a standby gets no picks while a weighted backend is in rotation",
			nil, []string{urlA, urlB, urlA, urlB}},
		{"one weighted backend left in rotation keeps the standby idle",
			[]op{{"disable", urlA}}, []string{urlB, urlB, urlB}},
		{"the standby takes over when every weighted backend is disabled",
			[]op{{"disable", urlA}, {"disable", urlB}}, []string{urlC, urlC, urlC}},
		{"the standby takes over when every weighted backend drains",
			[]op{{"drain", urlA}, {"drain", urlB}}, []string{urlC, urlC}},
		{"the standby takes over when one weighted backend is disabled and the other down",
			[]op{{"disable", urlA}, {"down", urlB}}, []string{urlC, urlC}},
		{"a disabled standby does not take over",
			[]op{{"disable", urlC}, {"disable", urlA}, {"disable", urlB}}, []string{"none", "none"}},
		{"a draining standby does not take over",
			[]op{{"drain", urlC}, {"drain", urlA}, {"down", urlB}}, []string{"none", "none"}},
		{"an enabled standby takes over again",
			[]op{{"disable", urlC}, {"disable", urlA}, {"disable", urlB}, {"enable", urlC}}, []string{urlC, urlC}},
		{"an enabled weighted backend takes back from the standby",
			[]op{{"disable", urlA}, {"disable", urlB}, {"enable", urlB}}, []string{urlB, urlB}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				probe := newSwitchProbe()
				cfg := testConfig(t, probe.Probe, urlA, urlB, urlC)
				cfg.Backends[2].Weight = 0
				cfg.Monitor.Fall = 1
				s, _ := startSelector(t, cfg)
				synctest.Wait()
				for _, o := range tt.ops {
					var err error
					switch o.do {
					case "disable", "enable":
						err = s.SetEnabled(t.Context(), idOf(t, o.name), o.do == "enable")
					case "drain":
						err = s.Drain(t.Context(), idOf(t, o.name))
					case "down":
						probe.set(o.name, errRefused)
						advance(testInterval)
					}
					if err != nil {
						t.Fatalf("%s %s: %v", o.do, o.name, err)
					}
				}
				if got := pickNames(t, s, len(tt.picks)); !slices.Equal(got, tt.picks) {
					t.Errorf("picks = %v, want %v", got, tt.picks)
				}
				if st := mustLookup(t, s, urlC); st.Weight != 0 {
					t.Errorf("standby's weight %d, want 0", st.Weight)
				}
			})
		})
	}
}

func TestSelectorReconfigure(t *testing.T) {
	t.Run("new backends start and are probed at once, missing idle ones go at once", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			probe := newSwitchProbe()
			cfg := testConfig(t, probe.Probe, urlA, urlB)
			logger, logs := newLogger()
			cfg.Logger = logger
			s, _ := startSelector(t, cfg)
			synctest.Wait()
			if err := s.Reconfigure(t.Context(), withBackends(t, cfg, urlA, urlC, urlB)); err != nil {
				t.Fatalf("Reconfigure: %v", err)
			}
			synctest.Wait()
			if got, want := probeCounts(probe, urlA, urlB, urlC), []int{1, 1, 1}; !slices.Equal(got, want) {
				t.Errorf("probe calls = %v, want %v (only C's new monitor probed)", got, want)
			}
			want := []string{urlA, urlC, urlB, urlA, urlC, urlB}
			if got := pickNames(t, s, 6); !slices.Equal(got, want) {
				t.Errorf("picks = %v, want %v", got, want)
			}
			if err := s.Reconfigure(t.Context(), withBackends(t, cfg, urlC)); err != nil {
				t.Fatalf("second Reconfigure: %v", err)
			}
			if got, want := states(t, s), []string{urlC + "=up"}; !slices.Equal(got, want) {
				t.Errorf("states = %v, want %v", got, want)
			}
			advance(2 * testInterval)
			if got, want := probeCounts(probe, urlA, urlB, urlC), []int{1, 1, 3}; !slices.Equal(got, want) {
				t.Errorf("probe calls = %v, want %v (A's and B's monitors stopped)", got, want)
			}
			if n := logs.count("backend added", "backend="+urlC); n != 1 {
				t.Errorf("%d %q lines for C, want 1:\n%s", n, "backend added", logs)
			}
			if n := logs.count("backend removed"); n != 2 {
				t.Errorf("%d %q lines, want 2:\n%s", n, "backend removed", logs)
			}
		})
	})

	t.Run("a missing backend with requests in flight drains and goes after its last report", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			probe := newSwitchProbe()
			cfg := testConfig(t, probe.Probe, urlA, urlB, urlC)
			s, _ := startSelector(t, cfg)
			held := take(t, s, urlA)
			if err := s.Reconfigure(t.Context(), withBackends(t, cfg, urlB, urlC)); err != nil {
				t.Fatalf("Reconfigure: %v", err)
			}
			if got, want := states(t, s), []string{urlB + "=up", urlC + "=up", urlA + "=draining"}; !slices.Equal(got, want) {
				t.Errorf("states = %v, want %v (the leaving backend last)", got, want)
			}
			// The position, 1 after A's pick, now points at C.
			if got, want := pickNames(t, s, 4), []string{urlC, urlB, urlC, urlB}; !slices.Equal(got, want) {
				t.Errorf("picks = %v, want %v", got, want)
			}
			if err := s.Remove(t.Context(), idOf(t, urlA)); !errors.Is(err, ErrUnknownBackend) {
				t.Errorf("Remove of the leaving backend = %v, want %v", err, ErrUnknownBackend)
			}
			reportAndWait(s, held)
			if got, want := states(t, s), []string{urlB + "=up", urlC + "=up"}; !slices.Equal(got, want) {
				t.Errorf("after the last report: states = %v, want %v", got, want)
			}
			calls := probe.count(urlA)
			advance(2 * testInterval)
			if got := probe.count(urlA); got != calls {
				t.Errorf("A probed %d more times after it went, want none", got-calls)
			}
		})
	})

	t.Run("a leaving backend listed again stays", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			cfg := testConfig(t, newSwitchProbe().Probe, urlA, urlB)
			s, _ := startSelector(t, cfg)
			held := take(t, s, urlA)
			if err := s.Remove(t.Context(), idOf(t, urlA)); err != nil {
				t.Fatalf("Remove: %v", err)
			}
			if err := s.Reconfigure(t.Context(), cfg); err != nil {
				t.Fatalf("Reconfigure: %v", err)
			}
			reportAndWait(s, held)
			if got, want := states(t, s), []string{urlA + "=up", urlB + "=up"}; !slices.Equal(got, want) {
				t.Errorf("states = %v, want %v", got, want)
			}
		})
	})

	t.Run("the rotation follows the new configuration order", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			cfg := testConfig(t, newSwitchProbe().Probe, urlA, urlB, urlC)
			s, _ := startSelector(t, cfg)
			if got, want := pickNames(t, s, 3), []string{urlA, urlB, urlC}; !slices.Equal(got, want) {
				t.Fatalf("before: picks = %v, want %v", got, want)
			}
			if err := s.Reconfigure(t.Context(), withBackends(t, cfg, urlC, urlB, urlA)); err != nil {
				t.Fatalf("Reconfigure: %v", err)
			}
			if got, want := states(t, s), []string{urlC + "=up", urlB + "=up", urlA + "=up"}; !slices.Equal(got, want) {
				t.Errorf("states = %v, want %v", got, want)
			}
			if got, want := pickNames(t, s, 6), []string{urlC, urlB, urlA, urlC, urlB, urlA}; !slices.Equal(got, want) {
				t.Errorf("after: picks = %v, want %v", got, want)
			}
		})
	})

	t.Run("weights and Disabled take the new values and an operator's drain or disable ends", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			cfg := testConfig(t, newSwitchProbe().Probe, urlA, urlB, urlC)
			s, _ := startSelector(t, cfg)
			if err := s.Drain(t.Context(), idOf(t, urlA)); err != nil {
				t.Fatal(err)
			}
			if err := s.SetEnabled(t.Context(), idOf(t, urlB), false); err != nil {
				t.Fatal(err)
			}
			next := withBackends(t, cfg, urlA, urlB, urlC)
			next.Backends[0].Weight = 5
			next.Backends[2].Disabled = true
			if err := s.Reconfigure(t.Context(), next); err != nil {
				t.Fatalf("Reconfigure: %v", err)
			}
			var got []string
			for _, st := range fullStatus(t, s) {
				got = append(got, fmt.Sprintf("%s=%s/%d", st.Name, st.State, st.Weight))
			}
			want := []string{urlA + "=up/5", urlB + "=up/1", urlC + "=disabled/1"}
			if !slices.Equal(got, want) {
				t.Errorf("states = %v, want %v", got, want)
			}
			if got, want := pickNames(t, s, 4), []string{urlA, urlB, urlA, urlB}; !slices.Equal(got, want) {
				t.Errorf("picks = %v, want %v", got, want)
			}
		})
	})

	t.Run("kept backends keep their health and counters", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			probe := newSwitchProbe()
			probe.set(urlB, errRefused)
			cfg := testConfig(t, probe.Probe, urlA, urlB)
			cfg.Monitor.Fall = 1
			s, _ := startSelector(t, cfg)
			synctest.Wait() // B goes down
			b := take(t, s, urlA)
			s.Report(Report{Backend: b, Outcome: Failed, Err: errRefused})
			b = take(t, s, urlA)
			reportAndWait(s, b)
			advance(testInterval / 2)
			before := fullStatus(t, s)
			if before[1].Up || before[1].Changed.IsZero() || before[0].Requests != 2 {
				t.Fatalf("setup: status %+v, want B down, A with 2 requests", before)
			}
			if err := s.Reconfigure(t.Context(), withBackends(t, cfg, urlB, urlA)); err != nil {
				t.Fatalf("Reconfigure: %v", err)
			}
			synctest.Wait()
			got := fullStatus(t, s)
			if want := []BackendStatus{before[1], before[0]}; !slices.Equal(got, want) {
				t.Errorf("Status after Reconfigure:\n%+v\nwant as before, reordered:\n%+v", got, want)
			}
		})
	})

	t.Run("unchanged monitor settings leave the monitors running as they were", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			probe := newSwitchProbe()
			cfg := testConfig(t, probe.Probe, urlA, urlB)
			s, _ := startSelector(t, cfg)
			advance(testInterval / 2)
			next := withBackends(t, cfg, urlB, urlA)
			next.Backends[0].Weight = 3
			next.Backends[1].Disabled = true
			if err := s.Reconfigure(t.Context(), next); err != nil {
				t.Fatalf("Reconfigure: %v", err)
			}
			synctest.Wait()
			if got, want := probeCounts(probe, urlA, urlB), []int{1, 1}; !slices.Equal(got, want) {
				t.Errorf("probe calls right after Reconfigure = %v, want %v (no restart)", got, want)
			}
			advance(testInterval / 2) // the original schedule: one interval after start
			if got, want := probeCounts(probe, urlA, urlB), []int{2, 2}; !slices.Equal(got, want) {
				t.Errorf("probe calls at the next tick = %v, want %v", got, want)
			}
		})
	})

	t.Run("a check read again, equal but made anew, leaves the monitors running", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			probe := newSwitchProbe()
			check := func() HTTPCheck { // what a reload parses from the same file
				return HTTPCheck{Path: "/ready", Expect: StatusRanges{{200, 204}}, Body: regexp.MustCompile("^ok"),
					Host: "health.example", Header: http.Header{"X-Probe": {"1"}}, Port: 9000}
			}
			cfg := testConfig(t, probe.Probe, urlA, urlB)
			cfg.Monitor.Check = check()
			s, _ := startSelector(t, cfg)
			advance(testInterval / 2)
			next := withBackends(t, cfg, urlA, urlB)
			next.Monitor.Check = check()
			if err := s.Reconfigure(t.Context(), next); err != nil {
				t.Fatalf("Reconfigure: %v", err)
			}
			synctest.Wait()
			if got, want := probeCounts(probe, urlA, urlB), []int{1, 1}; !slices.Equal(got, want) {
				t.Errorf("probe calls right after Reconfigure = %v, want %v (no restart)", got, want)
			}
		})
	})

	monitorChanges := []struct {
		name     string
		change   func(m *MonitorConfig, other ProbeFunc)
		newProbe bool // the change swaps in other
	}{
		{"a new interval", func(m *MonitorConfig, _ ProbeFunc) { m.Interval = 2 * testInterval }, false},
		{"a new timeout", func(m *MonitorConfig, _ ProbeFunc) { m.Timeout = 2 * time.Second }, false},
		{"a new rise", func(m *MonitorConfig, _ ProbeFunc) { m.Rise = 3 }, false},
		{"a new fall", func(m *MonitorConfig, _ ProbeFunc) { m.Fall = 5 }, false},
		{"a new path", func(m *MonitorConfig, _ ProbeFunc) { m.Check.Path = "/ready" }, false},
		{"a new expected status", func(m *MonitorConfig, _ ProbeFunc) { m.Check.Expect = StatusRanges{{200, 200}} }, false},
		{"a new body pattern", func(m *MonitorConfig, _ ProbeFunc) { m.Check.Body = regexp.MustCompile("^ok$") }, false},
		{"a new Host header", func(m *MonitorConfig, _ ProbeFunc) { m.Check.Host = "health.example" }, false},
		{"a new header", func(m *MonitorConfig, _ ProbeFunc) { m.Check.Header = http.Header{"X-Probe": {"1"}} }, false},
		{"a new probe port", func(m *MonitorConfig, _ ProbeFunc) { m.Check.Port = 9000 }, false},
		{"a new transport", func(m *MonitorConfig, _ ProbeFunc) { m.Transport = &unusedTransport{} }, false},
		{"a new probe function", func(m *MonitorConfig, other ProbeFunc) {
			m.Probe = func(ctx context.Context, b *Backend) error { return other(ctx, b) }
		}, true},
	}
	for _, tc := range monitorChanges {
		t.Run(tc.name+" restarts the monitors, which probe at once", func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				probe, other := newSwitchProbe(), newSwitchProbe()
				calls := func() []int { // of both probes, per backend
					return slicesAdd(probeCounts(probe, urlA, urlB), probeCounts(other, urlA, urlB))
				}
				cfg := testConfig(t, probe.Probe, urlA, urlB)
				s, _ := startSelector(t, cfg)
				advance(testInterval / 2)
				next := withBackends(t, cfg, urlA, urlB)
				tc.change(&next.Monitor, other.Probe)
				if err := s.Reconfigure(t.Context(), next); err != nil {
					t.Fatalf("Reconfigure: %v", err)
				}
				synctest.Wait()
				if got, want := calls(), []int{2, 2}; !slices.Equal(got, want) {
					t.Errorf("probe calls right after Reconfigure = %v, want %v (each monitor restarted)", got, want)
				}
				interval := next.Monitor.Interval
				advance(interval - time.Nanosecond)
				if got, want := calls(), []int{2, 2}; !slices.Equal(got, want) {
					t.Errorf("probe calls just before the new monitors' next tick = %v, want %v (the old ones stopped)", got, want)
				}
				advance(time.Nanosecond)
				if got, want := calls(), []int{3, 3}; !slices.Equal(got, want) {
					t.Errorf("probe calls at the new monitors' next tick = %v, want %v", got, want)
				}
				wantOther := []int{0, 0}
				if tc.newProbe {
					wantOther = []int{2, 2}
				}
				if got := probeCounts(other, urlA, urlB); !slices.Equal(got, wantOther) {
					t.Errorf("calls of the other probe function = %v, want %v", got, wantOther)
				}
			})
		})
	}

	t.Run("a kept DOWN backend whose monitor restarts stays DOWN until rise passes", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			probe := newSwitchProbe()
			probe.set(urlB, errRefused)
			cfg := testConfig(t, probe.Probe, urlA, urlB)
			cfg.Monitor.Fall = 1
			s, _ := startSelector(t, cfg)
			synctest.Wait()
			if st := mustLookup(t, s, urlB); st.State != "down" {
				t.Fatalf("setup: B's state %q, want down", st.State)
			}
			probe.set(urlB, nil)
			next := withBackends(t, cfg, urlA, urlB)
			next.Monitor.Rise = 3
			if err := s.Reconfigure(t.Context(), next); err != nil {
				t.Fatalf("Reconfigure: %v", err)
			}
			synctest.Wait() // the new monitor's first probe passes
			for pass := 1; pass < 3; pass++ {
				if st := mustLookup(t, s, urlB); st.State != "down" {
					t.Errorf("after %d passing probes: B's state %q, want down until 3", pass, st.State)
				}
				if got, want := pickNames(t, s, 2), []string{urlA, urlA}; !slices.Equal(got, want) {
					t.Errorf("after %d passing probes: picks = %v, want %v", pass, got, want)
				}
				advance(testInterval)
			}
			if st := mustLookup(t, s, urlB); st.State != "up" || st.Reason != "3 consecutive passing probes" {
				t.Errorf("after 3 passing probes: B's status %+v, want up after 3 passing probes", st)
			}
		})
	})

	t.Run("probe counters survive a monitor restart", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			probe := newSwitchProbe()
			probe.set(urlA, errRefused)
			cfg := testConfig(t, probe.Probe, urlA)
			s, _ := startSelector(t, cfg)
			advance(2 * testInterval) // three probes, all failing
			if st := mustLookup(t, s, urlA); st.Probes != 3 || st.ProbeFailures != 3 {
				t.Fatalf("setup: status %+v, want 3 probes, 3 failures", st)
			}
			probe.set(urlA, nil)
			next := withBackends(t, cfg, urlA)
			next.Monitor.Interval = 2 * testInterval
			if err := s.Reconfigure(t.Context(), next); err != nil {
				t.Fatalf("Reconfigure: %v", err)
			}
			synctest.Wait()
			st := mustLookup(t, s, urlA)
			if st.Probes != 4 || st.ProbeFailures != 3 || st.LastProbeError != "" || st.LastProbe != time.Now() {
				t.Errorf("after the restarted monitor's first probe: status %+v, want 4 probes, 3 failures, passing now", st)
			}
			advance(next.Monitor.Interval)
			if st := mustLookup(t, s, urlA); st.Probes != 5 || st.ProbeFailures != 3 {
				t.Errorf("after its second probe: status %+v, want 5 probes, 3 failures", st)
			}
		})
	})

	t.Run("a nil policy keeps the current one and a new one takes over", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			policy := &recordingPolicy{}
			cfg := testConfig(t, newSwitchProbe().Probe, urlA, urlB)
			cfg.Policy = policy
			s, _ := startSelector(t, cfg)
			pickNames(t, s, 1) // A
			if err := s.Reconfigure(t.Context(), withBackends(t, Config{Monitor: cfg.Monitor}, urlA, urlB)); err != nil {
				t.Fatalf("Reconfigure with a nil policy: %v", err)
			}
			if got, want := pickNames(t, s, 3), []string{urlB, urlA, urlB}; !slices.Equal(got, want) {
				t.Errorf("picks = %v, want %v (the position kept)", got, want)
			}
			synctest.Wait() // the selector calls Taken after handing out a pick
			policy.mu.Lock()
			if want := []int{0, 1, 0, 1}; !slices.Equal(policy.taken, want) {
				t.Errorf("the kept policy saw Taken %v, want %v", policy.taken, want)
			}
			policy.mu.Unlock()

			next := withBackends(t, cfg, urlA, urlB)
			next.Policy = First{}
			if err := s.Reconfigure(t.Context(), next); err != nil {
				t.Fatalf("Reconfigure with a new policy: %v", err)
			}
			if got, want := pickNames(t, s, 3), []string{urlA, urlA, urlA}; !slices.Equal(got, want) {
				t.Errorf("picks = %v, want %v (First)", got, want)
			}
			synctest.Wait()
			policy.mu.Lock()
			if n := len(policy.taken); n != 4 {
				t.Errorf("the replaced policy saw %d Taken calls, want still 4", n)
			}
			policy.mu.Unlock()
		})
	})

	invalid := []struct {
		name     string
		backends func(t *testing.T) []BackendConfig
		wantErr  error
		wantMsg  string
	}{
		{"a backend listed twice",
			func(t *testing.T) []BackendConfig {
				return []BackendConfig{backendConfig(t, urlC, 1), backendConfig(t, urlB, 1), backendConfig(t, urlC, 2)}
			}, ErrDuplicateBackend, urlC},
		{"a backend without a host",
			func(t *testing.T) []BackendConfig {
				return []BackendConfig{backendConfig(t, urlC, 1), backendConfig(t, "http:///x", 1)}
			}, nil, "missing host"},
		{"a backend without a URL",
			func(t *testing.T) []BackendConfig { return []BackendConfig{backendConfig(t, urlC, 1), {Weight: 1}} },
			nil, "missing host"},
		{"a negative weight",
			func(t *testing.T) []BackendConfig {
				return []BackendConfig{backendConfig(t, urlC, 1), backendConfig(t, urlB, -2)}
			}, nil, "weight -2: want 0 to 1000"},
		{"another PROXY protocol version for a running backend",
			func(t *testing.T) []BackendConfig {
				b := backendConfig(t, urlB, 1)
				b.ProxyProtocol = 2
				return []BackendConfig{backendConfig(t, urlC, 1), b}
			}, nil, "PROXY protocol version 0 → 2 cannot change"},
	}
	for _, tt := range invalid {
		t.Run("a configuration with "+tt.name+" is refused and changes nothing", func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				probe := newSwitchProbe()
				cfg := testConfig(t, probe.Probe, urlA, urlB)
				s, _ := startSelector(t, cfg)
				pickNames(t, s, 1) // A; B is next
				if err := s.Drain(t.Context(), idOf(t, urlA)); err != nil {
					t.Fatal(err)
				}
				advance(testInterval / 2)
				before := fullStatus(t, s)
				bad := Config{
					Backends: tt.backends(t),
					Policy:   First{},
					Monitor:  MonitorConfig{Probe: probe.Probe, Interval: time.Second},
				}
				err := s.Reconfigure(t.Context(), bad)
				if err == nil {
					t.Fatal("Reconfigure = nil, want an error")
				}
				if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
					t.Errorf("Reconfigure = %v, want an error that Is %v", err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantMsg) {
					t.Errorf("Reconfigure = %q, want it to contain %q", err, tt.wantMsg)
				}
				synctest.Wait()
				if got := fullStatus(t, s); !slices.Equal(got, before) {
					t.Errorf("Status after a refused Reconfigure:\n%+v\nwant as before:\n%+v", got, before)
				}
				if got, want := probeCounts(probe, urlA, urlB, urlC), []int{1, 1, 0}; !slices.Equal(got, want) {
					t.Errorf("probe calls = %v, want %v (no monitor started or restarted)", got, want)
				}
				// Still round robin, still draining A.
				if got, want := pickNames(t, s, 2), []string{urlB, urlB}; !slices.Equal(got, want) {
					t.Errorf("picks = %v, want %v", got, want)
				}
				if m, err := s.Metrics(t.Context()); err != nil || m.Reloads != 0 {
					t.Errorf("Metrics = %d reloads, %v; want 0", m.Reloads, err)
				}
				// Added later, a backend still gets the old monitor settings.
				if _, err := s.Add(t.Context(), backendConfig(t, urlC, 1)); err != nil {
					t.Fatal(err)
				}
				advance(testInterval / 2)
				if got, want := probeCounts(probe, urlA, urlB, urlC), []int{2, 2, 1}; !slices.Equal(got, want) {
					t.Errorf("probe calls = %v, want %v (every 10s, not every 1s)", got, want)
				}
			})
		})
	}

	t.Run("Reloads counts successful reconfigurations only", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			cfg := testConfig(t, newSwitchProbe().Probe, urlA)
			s, _ := startSelector(t, cfg)
			bad := withBackends(t, cfg, urlA, urlA)
			for i, c := range []Config{cfg, bad, withBackends(t, cfg, urlB), bad, bad, cfg} {
				err := s.Reconfigure(t.Context(), c)
				if wantErr := i == 1 || i == 3 || i == 4; (err != nil) != wantErr {
					t.Fatalf("Reconfigure %d = %v, want an error: %v", i, err, wantErr)
				}
			}
			m, err := s.Metrics(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if m.Reloads != 3 {
				t.Errorf("Reloads = %d, want 3", m.Reloads)
			}
		})
	})

	t.Run("Reconfigure returns ErrStopped once the selector has stopped", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			cfg := testConfig(t, newSwitchProbe().Probe, urlA)
			s, stop := startSelector(t, cfg)
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			if err := s.Reconfigure(t.Context(), cfg); !errors.Is(err, ErrStopped) {
				t.Errorf("Reconfigure = %v, want %v", err, ErrStopped)
			}
			if _, err := s.Add(t.Context(), backendConfig(t, urlB, 1)); !errors.Is(err, ErrStopped) {
				t.Errorf("Add = %v, want %v", err, ErrStopped)
			}
			if _, err := s.Metrics(t.Context()); !errors.Is(err, ErrStopped) {
				t.Errorf("Metrics = %v, want %v", err, ErrStopped)
			}
		})
	})
}

// hookWriter is a log output that runs hook, once, in the goroutine that
// logs the first line containing match, before that call to the logger
// returns. hclog holds its lock meanwhile, so hook must not log.
type hookWriter struct {
	match string
	hook  func()
	once  sync.Once
}

func (w *hookWriter) Write(p []byte) (int, error) {
	if strings.Contains(string(p), w.match) {
		w.once.Do(w.hook)
	}
	return len(p), nil
}

func TestSelectorIgnoresRestartedMonitorsLastWord(t *testing.T) {
	// Reconfigure restarts A's monitor while the old one is between a
	// probe that makes fall and its send of DOWN: it has looked at its
	// context, found it live, and will offer DOWN on the health channel
	// while its context is done. select picks among ready cases at random,
	// so the DOWN may get through. The new monitor started believing A UP,
	// as the selector had it; if the selector took the old DOWN, the two
	// disagree, and passing probes never bring A back.
	//
	// The test's logger runs the Reconfigure in that gap: the old monitor
	// logs each probe's result (at trace level) right after its context
	// check. Then it waits until the selector is idle and the new monitor
	// is busy probing, so both of the old monitor's cases are ready.
	for try := range 20 {
		failed := false
		synctest.Test(t, func(t *testing.T) {
			var (
				s      *Selector
				cfg    Config
				ready  = make(chan struct{}) // s is set
				hooked = make(chan struct{})
			)
			failOnce := func(context.Context, *Backend) error { return errRefused }
			slowPass := func(ctx context.Context, _ *Backend) error {
				select { // keeps the new monitor durably blocked, and off the log
				case <-time.After(time.Second):
				case <-ctx.Done():
				}
				return nil
			}
			out := &hookWriter{match: errRefused.Error(), hook: func() {
				<-ready
				next := cfg
				next.Monitor.Probe = slowPass
				if err := s.Reconfigure(context.Background(), next); err != nil {
					t.Errorf("Reconfigure: %v", err)
				}
				synctest.Wait()
				close(hooked)
			}}
			logs := &logBuffer{}
			cfg = Config{
				Backends: configs(parseURLs(t, urlA)),
				Monitor:  MonitorConfig{Probe: failOnce, Interval: testInterval, Timeout: 5 * time.Second, Rise: 1, Fall: 1},
				Logger: hclog.New(&hclog.LoggerOptions{
					Output: io.MultiWriter(out, logs), Level: hclog.Trace, DisableTime: true,
				}),
			}
			s, _ = startSelector(t, cfg)
			close(ready)
			<-hooked
			synctest.Wait()
			advance(3 * testInterval) // the new monitor's probes all pass
			if st := mustLookup(t, s, urlA); st.State != "up" {
				t.Errorf("try %d: A's status %+v, want up: its new monitor's probes all pass", try, st)
				failed = true
			}
			if n := strings.Count(logs.String(), "backend down"); n != 0 {
				t.Errorf("try %d: %d %q lines, want none:\n%s", try, n, "backend down", logs)
			}
		})
		if failed {
			return
		}
	}
}

func TestSelectorProbeStatistics(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		p := &scriptProbe{results: "+-+--++"}
		cfg := testConfig(t, p.Probe, urlA)
		cfg.Monitor.Rise, cfg.Monitor.Fall = 2, 2
		s, _ := startSelector(t, cfg)
		steps := []struct {
			state    string
			probes   uint64
			failures uint64
			failing  bool // the last probe failed
		}{
			{"up", 1, 0, false},
			{"up", 2, 1, true}, // one failure is below fall
			{"up", 3, 1, false},
			{"up", 4, 2, true},
			{"down", 5, 3, true}, // the second failure in a row
			{"down", 6, 3, false},
			{"up", 7, 3, false}, // the second pass in a row
		}
		for i, step := range steps {
			if i == 0 {
				synctest.Wait()
			} else {
				advance(testInterval)
			}
			want := BackendStatus{
				State: step.state, Up: step.state == "up",
				LastProbe: start.Add(time.Duration(i) * testInterval),
				Probes:    step.probes, ProbeFailures: step.failures,
			}
			if step.failing {
				want.LastProbeError = probeErr(i).Error()
			}
			st := mustLookup(t, s, urlA)
			got := BackendStatus{
				State: st.State, Up: st.Up, LastProbe: st.LastProbe, LastProbeError: st.LastProbeError,
				Probes: st.Probes, ProbeFailures: st.ProbeFailures,
			}
			if got != want {
				t.Errorf("after probe %d: status %+v, want %+v", i, got, want)
			}
		}
		// Metrics carry the same statistics.
		m, err := s.Metrics(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if st := fullStatus(t, s); len(m.Backends) != 1 || m.Backends[0].BackendStatus != st[0] {
			t.Errorf("Metrics' status %+v, want Status' %+v", m.Backends, st)
		}
	})
}

func TestMonitorStatsMailbox(t *testing.T) {
	t.Run("the mailbox holds only the latest statistics and the monitor never waits for a reader", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			start := time.Now()
			p := &scriptProbe{results: "+-+-+"}
			stats := make(chan ProbeStats, 1)
			m := &Monitor{Backend: newBackend(t, urlA), Stats: stats,
				Config: MonitorConfig{Probe: p.Probe, Interval: testInterval, Fall: 3}}
			runMonitor(t, m)
			advance(4 * testInterval) // five probes; nobody reads the mailbox
			if n := len(p.calls()); n != 5 {
				t.Fatalf("%d probes in four intervals, want 5: the monitor waited on something", n)
			}
			want := ProbeStats{At: start.Add(4 * testInterval), Probes: 5, Failures: 2}
			if got := <-stats; got != want {
				t.Errorf("mailbox holds %+v, want the latest %+v", got, want)
			}
			if len(stats) != 0 {
				t.Errorf("mailbox holds %d more copies after one was taken, want none", len(stats))
			}
			// Read after every probe: each copy is that probe's account.
			for i := 5; i < 8; i++ {
				advance(testInterval)
				want := ProbeStats{At: start.Add(time.Duration(i) * testInterval), Probes: uint64(i + 1), Failures: 2}
				select {
				case got := <-stats:
					if got != want {
						t.Errorf("after probe %d: mailbox holds %+v, want %+v", i, got, want)
					}
				default:
					t.Errorf("after probe %d: mailbox empty", i)
				}
			}
		})
	})

	t.Run("a failed probe leaves its error in the mailbox", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			p := &scriptProbe{results: "-"}
			stats := make(chan ProbeStats, 1)
			m := &Monitor{Backend: newBackend(t, urlA), Stats: stats,
				Config: MonitorConfig{Probe: p.Probe, Interval: testInterval}}
			runMonitor(t, m)
			synctest.Wait()
			want := ProbeStats{At: time.Now(), Err: probeErr(0).Error(), Probes: 1, Failures: 1}
			if got := <-stats; got != want {
				t.Errorf("mailbox holds %+v, want %+v", got, want)
			}
		})
	})
}

// TestSelectorConcurrentAdmin runs in real time: handlers pick and report
// while an operator keeps changing the backend set. Run it with -race.
func TestSelectorConcurrentAdmin(t *testing.T) {
	const (
		workers  = 20
		minPicks = 50  // per worker; they go on while the operator works
		ops      = 300 // operator changes
	)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	urls := parseURLs(t, urlA, urlB, urlC, "http://127.0.0.1:8084")
	ids := make([]string, len(urls))
	for i, u := range urls {
		ids[i] = backendFor(u).ID
	}
	cfg := testConfig(t, newSwitchProbe().Probe, urlA, urlB)
	s, _ := startSelector(t, cfg)
	removals := newRemovalLog()

	operatorDone := make(chan struct{})
	var wg conc.WaitGroup
	wg.Go(func() {
		defer close(operatorDone)
		rng := rand.New(rand.NewPCG(1, 2))
		for i := range ops {
			k := rng.IntN(len(urls))
			var err error
			switch op := rng.IntN(6); op {
			case 0:
				removals.adding(ids[k])
				_, err = s.Add(ctx, BackendConfig{URL: urls[k], Weight: rng.IntN(3)})
				if errors.Is(err, ErrDuplicateBackend) {
					err = nil
				}
			case 1:
				if err = s.Remove(ctx, ids[k]); err == nil {
					removals.removed(ids[k])
				}
			case 2:
				err = s.Drain(ctx, ids[k])
			case 3:
				err = s.SetEnabled(ctx, ids[k], rng.IntN(3) > 0)
			case 4:
				next := Config{Monitor: cfg.Monitor}
				if i%2 == 0 {
					next.Monitor.Interval++ // every monitor restarts
				}
				if rng.IntN(2) == 0 {
					next.Policy = &WeightedRoundRobin{}
				}
				keep := rng.Perm(len(urls))[:1+rng.IntN(len(urls))]
				for _, j := range keep {
					removals.adding(ids[j])
					next.Backends = append(next.Backends, BackendConfig{URL: urls[j], Weight: rng.IntN(3), Disabled: rng.IntN(4) == 0})
				}
				if err = s.Reconfigure(ctx, next); err == nil {
					for j := range urls {
						if !slices.Contains(keep, j) {
							removals.removed(ids[j])
						}
					}
				}
			case 5:
				_, err = s.Metrics(ctx)
			}
			if errors.Is(err, ErrUnknownBackend) {
				err = nil
			}
			if err != nil {
				t.Errorf("operator step %d: %v", i, err)
				return
			}
		}
	})
	for w := range workers {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-operatorDone:
					if i >= minPicks {
						return
					}
				default:
				}
				asked := removals.snapshot()
				var b *Backend
				var err error
				if (w+i)%2 == 0 {
					b, err = s.Pick(ctx)
				} else {
					b, err = s.PickFor(ctx, "", nil)
				}
				if err != nil {
					t.Errorf("worker %d: pick: %v", w, err)
					return
				}
				if b == nil {
					continue
				}
				if removals.stale(asked, b.ID) {
					t.Errorf("worker %d: picked %s, which was removed before the pick was asked for", w, b.Name)
				}
				outcome := Success
				if i%7 == 0 {
					outcome = Failed
				}
				s.Report(Report{Backend: b, Outcome: outcome, Status: 200, Method: "GET", Final: true, Attempt: i % 2})
			}
		})
	}
	wg.Wait()

	// Reports are buffered: ask until every one has been taken in.
	for {
		st, err := s.Status(ctx)
		if err != nil {
			t.Fatalf("waiting for nothing in flight: %v (last status %+v)", err, st)
		}
		busy := false
		seen := map[string]bool{}
		for _, b := range st {
			busy = busy || b.InFlight != 0
			if seen[b.ID] {
				t.Fatalf("status lists %s twice: %+v", b.Name, st)
			}
			seen[b.ID] = true
		}
		if !busy {
			break
		}
	}
}

// removalLog tracks, for TestSelectorConcurrentAdmin, which backends the
// operator has removed: by ID, whether the last removal returned after the
// last add began, and how many adds have begun. An add counts from the
// moment it is sent, since the backend may be picked before it returns; a
// removal counts once it has returned.
type removalLog struct {
	mu   sync.Mutex
	gone map[string]bool
	adds map[string]int
}

func newRemovalLog() *removalLog {
	return &removalLog{gone: map[string]bool{}, adds: map[string]int{}}
}

func (r *removalLog) adding(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.gone[id] = false
	r.adds[id]++
}

func (r *removalLog) removed(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.gone[id] = true
}

// snapshot returns the removed IDs, each with its count of adds so far.
func (r *removalLog) snapshot() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]int{}
	for id, gone := range r.gone {
		if gone {
			out[id] = r.adds[id]
		}
	}
	return out
}

// stale reports whether id was removed at snapshot time and has not been
// added since.
func (r *removalLog) stale(snapshot map[string]int, id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	n, removed := snapshot[id]
	return removed && r.adds[id] == n
}

// slicesAdd returns a + b, element by element.
func slicesAdd(a, b []int) []int {
	out := make([]int, len(a))
	for i := range a {
		out[i] = a[i] + b[i]
	}
	return out
}

// unusedTransport is a RoundTripper for monitor settings whose probes are
// fakes: nothing calls it. Its field keeps two of them distinct.
type unusedTransport struct{ _ int }

func (*unusedTransport) RoundTrip(*http.Request) (*http.Response, error) {
	return nil, errors.New("unusedTransport: not for use")
}
