package actors

import (
	"errors"
	"slices"
	"testing"
	"testing/synctest"
)

// fullStatus returns s.Status with every field, failing the test on an error.
func fullStatus(t *testing.T, s *Selector) []BackendStatus {
	t.Helper()
	st, err := s.Status(t.Context())
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	return st
}

func stateOf(t *testing.T, s *Selector, name string) BackendStatus {
	t.Helper()
	for _, st := range fullStatus(t, s) {
		if st.Name == name {
			return st
		}
	}
	t.Fatalf("Status has no backend %s", name)
	return BackendStatus{}
}

func TestSelectorAddStartsBalancingAndProbingAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		probe := newSwitchProbe()
		s, _ := startSelector(t, testConfig(t, probe.Probe, urlA))
		id, err := s.Add(t.Context(), BackendConfig{URL: parseURLs(t, urlB)[0], Weight: 1})
		if err != nil || id != newBackend(t, urlB).ID {
			t.Fatalf("Add = %q, %v; want %s's ID", id, err, urlB)
		}
		synctest.Wait()
		if probe.count(urlB) != 1 {
			t.Errorf("the added backend was probed %d times, want once at once", probe.count(urlB))
		}
		if got := pickNames(t, s, 4); !slices.Equal(got, []string{urlA, urlB, urlA, urlB}) {
			t.Errorf("picks %v, want A and B in turn", got)
		}
		for _, bc := range []BackendConfig{
			{URL: parseURLs(t, urlA)[0], Weight: 1},
			{URL: parseURLs(t, urlB)[0], Weight: 2},
		} {
			if _, err := s.Add(t.Context(), bc); !errors.Is(err, ErrDuplicateBackend) {
				t.Errorf("Add(%s) again = %v, want ErrDuplicateBackend", bc.URL, err)
			}
		}
		if _, err := s.Add(t.Context(), BackendConfig{URL: parseURLs(t, urlC)[0], Weight: -1}); err == nil {
			t.Error("Add with a negative weight: no error")
		}
	})
}

func TestSelectorDrainDisableEnable(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		probe := newSwitchProbe()
		s, _ := startSelector(t, testConfig(t, probe.Probe, urlA, urlB))
		synctest.Wait()
		idA := newBackend(t, urlA).ID

		if err := s.Drain(t.Context(), idA); err != nil {
			t.Fatal(err)
		}
		if got := stateOf(t, s, urlA).State; got != "draining" {
			t.Errorf("after Drain A is %s", got)
		}
		if got := pickNames(t, s, 3); !slices.Equal(got, []string{urlB, urlB, urlB}) {
			t.Errorf("picks while A drains: %v, want B only", got)
		}
		if err := s.SetEnabled(t.Context(), idA, true); err != nil {
			t.Fatal(err)
		}
		if got := stateOf(t, s, urlA).State; got != "up" {
			t.Errorf("after enable A is %s, want up", got)
		}

		if err := s.SetEnabled(t.Context(), idA, false); err != nil {
			t.Fatal(err)
		}
		if got := stateOf(t, s, urlA).State; got != "disabled" {
			t.Errorf("after disable A is %s", got)
		}
		before := probe.count(urlA)
		advance(testInterval)
		if probe.count(urlA) == before {
			t.Error("a disabled backend is no longer probed")
		}
		if got := pickNames(t, s, 2); !slices.Equal(got, []string{urlB, urlB}) {
			t.Errorf("picks while A is disabled: %v, want B only", got)
		}

		for name, call := range map[string]func(string) error{
			"Drain":   func(id string) error { return s.Drain(t.Context(), id) },
			"Enable":  func(id string) error { return s.SetEnabled(t.Context(), id, true) },
			"Disable": func(id string) error { return s.SetEnabled(t.Context(), id, false) },
			"Remove":  func(id string) error { return s.Remove(t.Context(), id) },
		} {
			if err := call("nope"); !errors.Is(err, ErrUnknownBackend) {
				t.Errorf("%s(unknown) = %v, want ErrUnknownBackend", name, err)
			}
		}
	})
}

func TestSelectorRemoveWaitsForInFlightRequests(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, _ := startSelector(t, testConfig(t, newSwitchProbe().Probe, urlA, urlB))
		synctest.Wait()
		b, _ := s.Pick(t.Context()) // A, held in flight
		if b == nil || b.Name != urlA {
			t.Fatalf("first pick %v, want A", b)
		}
		if err := s.Remove(t.Context(), b.ID); err != nil {
			t.Fatal(err)
		}
		if st := stateOf(t, s, urlA); st.State != "draining" || st.InFlight != 1 {
			t.Errorf("A while its request runs: %s with %d in flight, want draining with 1", st.State, st.InFlight)
		}
		if got := pickNames(t, s, 2); !slices.Equal(got, []string{urlB, urlB}) {
			t.Errorf("picks after Remove: %v, want B only", got)
		}
		if err := s.Remove(t.Context(), b.ID); !errors.Is(err, ErrUnknownBackend) {
			t.Errorf("second Remove = %v, want ErrUnknownBackend", err)
		}
		s.Report(Report{Backend: b, Outcome: Success, Status: 200, Final: true, Method: "GET"})
		synctest.Wait()
		if st := fullStatus(t, s); len(st) != 1 || st[0].Name != urlB {
			t.Errorf("after its last request A is still listed: %+v", st)
		}
	})
}

func TestSelectorReconfigureKeepsCountersAndAppliesTheNewSet(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		probe := newSwitchProbe()
		cfg := testConfig(t, probe.Probe, urlA, urlB)
		s, _ := startSelector(t, cfg)
		synctest.Wait()
		pickNames(t, s, 2) // one request each
		synctest.Wait()
		idA := newBackend(t, urlA).ID
		if err := s.Drain(t.Context(), idA); err != nil {
			t.Fatal(err)
		}

		next := testConfig(t, probe.Probe, urlC, urlA) // B goes, C comes, A stays
		if err := s.Reconfigure(t.Context(), next); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		st := fullStatus(t, s)
		var names []string
		for _, b := range st {
			names = append(names, b.Name)
		}
		if !slices.Equal(names, []string{urlC, urlA}) {
			t.Errorf("backends after reload: %v, want C then A", names)
		}
		if a := stateOf(t, s, urlA); a.State != "up" || a.Requests != 1 {
			t.Errorf("A after reload: %s with %d requests; want up (the reload ends the drain) and its count kept", a.State, a.Requests)
		}
		m, err := s.Metrics(t.Context())
		if err != nil || m.Reloads != 1 {
			t.Errorf("Metrics = %d reloads, %v; want 1", m.Reloads, err)
		}

		bad := testConfig(t, probe.Probe, urlA, urlA)
		if err := s.Reconfigure(t.Context(), bad); !errors.Is(err, ErrDuplicateBackend) {
			t.Errorf("Reconfigure with a duplicate = %v, want ErrDuplicateBackend", err)
		}
		if got := fullStatus(t, s); len(got) != 2 {
			t.Errorf("a refused reload changed the set: %+v", got)
		}
	})
}

// A reload that changes the health settings restarts the monitors. The
// probe counters are Prometheus counters (roundhouse_health_probes_total):
// they must keep counting across the restart, not start again from zero.
func TestSelectorProbeCountersSurviveAMonitorRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		probe := newSwitchProbe()
		probe.set(urlA, errRefused)
		cfg := testConfig(t, probe.Probe, urlA)
		s, _ := startSelector(t, cfg)
		synctest.Wait()
		for range 4 {
			advance(testInterval)
		}
		before := stateOf(t, s, urlA)
		if before.Probes != 5 || before.ProbeFailures != 5 {
			t.Fatalf("before the reload: %d probes, %d failed; want 5 and 5", before.Probes, before.ProbeFailures)
		}

		next := cfg
		next.Monitor.Interval = 2 * testInterval // a different setting: A's monitor restarts
		if err := s.Reconfigure(t.Context(), next); err != nil {
			t.Fatal(err)
		}
		synctest.Wait() // the new monitor probes at once
		after := stateOf(t, s, urlA)
		if after.Probes != 6 || after.ProbeFailures != 6 {
			t.Errorf("after the restart: %d probes, %d failed; want 6 and 6 (counting on)", after.Probes, after.ProbeFailures)
		}
		if after.LastProbe.Before(before.LastProbe) || after.LastProbeError == "" {
			t.Errorf("last probe %v %q, want the new monitor's failure", after.LastProbe, after.LastProbeError)
		}
		advance(2 * testInterval)
		if got := stateOf(t, s, urlA).Probes; got != 7 {
			t.Errorf("one interval later: %d probes, want 7", got)
		}
	})
}
