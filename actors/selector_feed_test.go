package actors

import (
	"errors"
	"slices"
	"testing"
	"testing/synctest"
)

// Tests of backends from several sources: the static configuration
// (Reconfigure, the operator's commands) and discovery providers (Feed).
// Like selector_admin_test.go they run in a synctest bubble with fake
// probes.

// Two discovery providers' sources, as serve names them (their URLs).
const (
	srcEtcd = "etcd://127.0.0.1:2379/roundhouse/"
	srcDNS  = "dns+srv://_web._tcp.example.test"
)

// sources returns "name=source" for every backend, in Status order; a
// static backend's source shows as "static".
func sources(t *testing.T, s *Selector) []string {
	t.Helper()
	var out []string
	for _, st := range fullStatus(t, s) {
		src := st.Source
		if src == "" {
			src = "static"
		}
		out = append(out, st.Name+"="+src)
	}
	return out
}

func TestSelectorFeed(t *testing.T) {
	t.Run("a reload keeps the backends a provider added and their place", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			cfg := testConfig(t, newSwitchProbe().Probe, urlA)
			s, _ := startSelector(t, cfg)
			feed := s.Feed(srcEtcd)
			if _, err := feed.Add(t.Context(), backendConfig(t, urlB, 1)); err != nil {
				t.Fatalf("Feed.Add: %v", err)
			}
			// A reload that drops A and lists C: B is not the file's to drop.
			if err := s.Reconfigure(t.Context(), withBackends(t, cfg, urlC)); err != nil {
				t.Fatalf("Reconfigure: %v", err)
			}
			want := []string{urlC + "=static", urlB + "=" + srcEtcd}
			if got := sources(t, s); !slices.Equal(got, want) {
				t.Errorf("after the reload: sources = %v, want %v", got, want)
			}
			// An empty configuration leaves the discovered backend alone too.
			if err := s.Reconfigure(t.Context(), withBackends(t, cfg)); err != nil {
				t.Fatalf("Reconfigure: %v", err)
			}
			if got, want := states(t, s), []string{urlB + "=up"}; !slices.Equal(got, want) {
				t.Errorf("after an empty reload: states = %v, want %v", got, want)
			}
			if got, want := pickNames(t, s, 2), []string{urlB, urlB}; !slices.Equal(got, want) {
				t.Errorf("picks = %v, want %v", got, want)
			}
		})
	})

	t.Run("a provider cannot remove, disable or reweight a backend it did not add", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s, _ := startSelector(t, testConfig(t, newSwitchProbe().Probe, urlA))
			etcd, dns := s.Feed(srcEtcd), s.Feed(srcDNS)
			idB, err := dns.Add(t.Context(), backendConfig(t, urlB, 1))
			if err != nil {
				t.Fatalf("Feed.Add: %v", err)
			}
			for _, tc := range []struct {
				what string
				feed *Feed
				id   string
			}{
				{"the static A", etcd, idOf(t, urlA)},
				{"another provider's B", etcd, idB},
			} {
				if err := tc.feed.Remove(t.Context(), tc.id); !errors.Is(err, ErrNotOwner) {
					t.Errorf("Remove of %s = %v, want %v", tc.what, err, ErrNotOwner)
				}
				if err := tc.feed.SetEnabled(t.Context(), tc.id, false); !errors.Is(err, ErrNotOwner) {
					t.Errorf("SetEnabled of %s = %v, want %v", tc.what, err, ErrNotOwner)
				}
				if err := tc.feed.SetWeight(t.Context(), tc.id, 5); !errors.Is(err, ErrNotOwner) {
					t.Errorf("SetWeight of %s = %v, want %v", tc.what, err, ErrNotOwner)
				}
			}
			if err := etcd.Remove(t.Context(), idOf(t, urlC)); !errors.Is(err, ErrUnknownBackend) {
				t.Errorf("Remove of an unknown backend = %v, want %v", err, ErrUnknownBackend)
			}
			if got, want := states(t, s), []string{urlA + "=up", urlB + "=up"}; !slices.Equal(got, want) {
				t.Errorf("states = %v, want %v (nothing changed)", got, want)
			}
			// Its own backend it may change; the operator may change any.
			if err := dns.SetEnabled(t.Context(), idB, false); err != nil {
				t.Errorf("SetEnabled of its own: %v", err)
			}
			if err := s.Drain(t.Context(), idB); err != nil {
				t.Errorf("the operator's Drain of a discovered backend: %v", err)
			}
			if err := dns.Remove(t.Context(), idB); err != nil {
				t.Errorf("Remove of its own: %v", err)
			}
			if got, want := states(t, s), []string{urlA + "=up"}; !slices.Equal(got, want) {
				t.Errorf("states = %v, want %v", got, want)
			}
		})
	})

	t.Run("a URL two sources give belongs to the first, and the static configuration takes it over", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			logger, logs := newLogger()
			cfg := testConfig(t, newSwitchProbe().Probe, urlA)
			cfg.Logger = logger
			s, _ := startSelector(t, cfg)
			etcd, dns := s.Feed(srcEtcd), s.Feed(srcDNS)
			if _, err := etcd.Add(t.Context(), backendConfig(t, urlA, 1)); !errors.Is(err, ErrDuplicateBackend) {
				t.Errorf("Feed.Add of the static A = %v, want %v", err, ErrDuplicateBackend)
			}
			idB, err := etcd.Add(t.Context(), backendConfig(t, urlB, 2))
			if err != nil {
				t.Fatalf("Feed.Add: %v", err)
			}
			if _, err := dns.Add(t.Context(), backendConfig(t, urlB, 7)); !errors.Is(err, ErrDuplicateBackend) {
				t.Errorf("second provider's Add of B = %v, want %v", err, ErrDuplicateBackend)
			}
			if st := mustLookup(t, s, urlB); st.Source != srcEtcd || st.Weight != 2 {
				t.Errorf("B = source %q weight %d, want the first provider's (%q, 2)", st.Source, st.Weight, srcEtcd)
			}
			// The file now lists B: static wins.
			next := withBackends(t, cfg, urlA, urlB)
			next.Backends[1].Weight = 3
			if err := s.Reconfigure(t.Context(), next); err != nil {
				t.Fatalf("Reconfigure: %v", err)
			}
			if st := mustLookup(t, s, urlB); st.Source != "" || st.Weight != 3 {
				t.Errorf("B = source %q weight %d, want static with the file's weight 3", st.Source, st.Weight)
			}
			if n := logs.count("backend now static", "backend="+urlB, "was="+srcEtcd); n != 1 {
				t.Errorf("%d %q lines, want 1:\n%s", n, "backend now static", logs)
			}
			if err := etcd.Remove(t.Context(), idB); !errors.Is(err, ErrNotOwner) {
				t.Errorf("the provider's Remove of B, now static = %v, want %v", err, ErrNotOwner)
			}
			// The file drops B again: it drains and goes, whoever wanted it,
			// and then the provider may add it afresh.
			if err := s.Reconfigure(t.Context(), withBackends(t, cfg, urlA)); err != nil {
				t.Fatalf("Reconfigure: %v", err)
			}
			if _, ok := lookup(t, s, urlB); ok {
				t.Errorf("B still listed after the file dropped it: %v", states(t, s))
			}
			if _, err := etcd.Add(t.Context(), backendConfig(t, urlB, 2)); err != nil {
				t.Errorf("the provider's Add of B once the file dropped it: %v", err)
			}
		})
	})

	t.Run("a provider takes back its backend while it drains, with its requests in flight", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s, _ := startSelector(t, testConfig(t, newSwitchProbe().Probe))
			feed := s.Feed(srcEtcd)
			id, err := feed.Add(t.Context(), backendConfig(t, urlA, 1))
			if err != nil {
				t.Fatalf("Feed.Add: %v", err)
			}
			held := take(t, s, urlA)
			if err := feed.Remove(t.Context(), id); err != nil {
				t.Fatalf("Feed.Remove: %v", err)
			}
			if got, want := states(t, s), []string{urlA + "=draining"}; !slices.Equal(got, want) {
				t.Errorf("states = %v, want %v", got, want)
			}
			if got, want := pickNames(t, s, 1), []string{"none"}; !slices.Equal(got, want) {
				t.Errorf("picks while draining = %v, want %v", got, want)
			}
			if _, err := feed.Add(t.Context(), backendConfig(t, urlA, 1)); err != nil {
				t.Fatalf("Feed.Add again: %v", err)
			}
			if st := mustLookup(t, s, urlA); st.State != "up" || st.InFlight != 1 || st.Source != srcEtcd {
				t.Errorf("A = %+v, want up, its request still in flight, source %q", st, srcEtcd)
			}
			reportAndWait(s, held)
			if got, want := pickNames(t, s, 2), []string{urlA, urlA}; !slices.Equal(got, want) {
				t.Errorf("picks = %v, want %v", got, want)
			}
		})
	})

	t.Run("a static backend dropped while it drains can be taken over by a provider", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			cfg := testConfig(t, newSwitchProbe().Probe, urlA)
			s, _ := startSelector(t, cfg)
			held := take(t, s, urlA)
			if err := s.Reconfigure(t.Context(), withBackends(t, cfg)); err != nil {
				t.Fatalf("Reconfigure: %v", err)
			}
			if _, err := s.Feed(srcDNS).Add(t.Context(), backendConfig(t, urlA, 1)); err != nil {
				t.Fatalf("Feed.Add of the draining A: %v", err)
			}
			reportAndWait(s, held)
			if st := mustLookup(t, s, urlA); st.State != "up" || st.Source != srcDNS {
				t.Errorf("A = state %q source %q, want up and the provider's", st.State, st.Source)
			}
			// And a reload without A no longer touches it.
			if err := s.Reconfigure(t.Context(), withBackends(t, cfg)); err != nil {
				t.Fatalf("Reconfigure: %v", err)
			}
			if got, want := states(t, s), []string{urlA + "=up"}; !slices.Equal(got, want) {
				t.Errorf("states = %v, want %v", got, want)
			}
		})
	})

	t.Run("an empty source is refused", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s, _ := startSelector(t, testConfig(t, newSwitchProbe().Probe))
			if _, err := s.Feed("").Add(t.Context(), backendConfig(t, urlA, 1)); err == nil {
				t.Errorf("Feed(\"\").Add succeeded, want an error")
			}
		})
	})
}

func TestSelectorSetWeight(t *testing.T) {
	t.Run("a new weight changes the weighted order at once and keeps the backend's counters", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			cfg := testConfig(t, newSwitchProbe().Probe, urlA, urlB)
			cfg.Policy = &WeightedRoundRobin{}
			s, _ := startSelector(t, cfg)
			if got, want := pickNames(t, s, 4), []string{urlA, urlB, urlA, urlB}; !slices.Equal(got, want) {
				t.Fatalf("equal weights: picks = %v, want %v", got, want)
			}
			if err := s.SetWeight(t.Context(), idOf(t, urlA), 3); err != nil {
				t.Fatalf("SetWeight: %v", err)
			}
			got := pickNames(t, s, 8)
			if a := countOf(got, urlA); a != 6 {
				t.Errorf("weights 3:1: A got %d of 8 picks, want 6: %v", a, got)
			}
			if st := mustLookup(t, s, urlA); st.Weight != 3 || st.Requests != 8 {
				t.Errorf("A = weight %d, %d requests; want 3 and 8 (2+6)", st.Weight, st.Requests)
			}
			// Weight 0 makes a standby.
			if err := s.SetWeight(t.Context(), idOf(t, urlA), 0); err != nil {
				t.Fatalf("SetWeight 0: %v", err)
			}
			if got, want := pickNames(t, s, 3), []string{urlB, urlB, urlB}; !slices.Equal(got, want) {
				t.Errorf("A a standby: picks = %v, want %v", got, want)
			}
		})
	})

	t.Run("weights out of range and unknown backends are refused", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s, _ := startSelector(t, testConfig(t, newSwitchProbe().Probe, urlA))
			for _, w := range []int{-1, MaxWeight + 1} {
				if err := s.SetWeight(t.Context(), idOf(t, urlA), w); err == nil {
					t.Errorf("SetWeight %d succeeded, want an error", w)
				}
			}
			if err := s.SetWeight(t.Context(), idOf(t, urlB), 1); !errors.Is(err, ErrUnknownBackend) {
				t.Errorf("SetWeight of an unknown backend = %v, want %v", err, ErrUnknownBackend)
			}
			if st := mustLookup(t, s, urlA); st.Weight != 1 {
				t.Errorf("A's weight = %d, want 1 (unchanged)", st.Weight)
			}
		})
	})
}

// countOf counts the picks of name.
func countOf(picks []string, name string) int {
	n := 0
	for _, p := range picks {
		if p == name {
			n++
		}
	}
	return n
}
