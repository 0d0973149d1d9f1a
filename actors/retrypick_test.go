package actors

import (
	"testing"
	"testing/synctest"
)

// A retry's pick must not answer "none" while a backend that is UP is
// left. The handler reports the failure (a buffered send) and then asks for
// another backend, and the selector may take the pick first: here B's
// connection failure takes B down, which ends A's ejection, and whichever
// the selector takes first, A must be the retry's answer (see also
// TestARetryTakesAnEjectedBackendWhenNoOtherIsLeft). Before A could take
// it, about one round in thirty answered none.
func TestARetryAfterAConnectionFailureFindsTheEjectedBackend(t *testing.T) {
	for i := range 50 {
		synctest.Test(t, func(t *testing.T) {
			cfg, _ := ejectionConfig(t, newSwitchProbe().Probe, urlA, urlB)
			s, _ := startSelector(t, cfg)
			synctest.Wait()
			hits(t, s, urlA, failed, ejectAfter) // A ejected: one of two UP
			if st := fullStatusOf(t, s, urlA); st.State != "ejected" {
				t.Fatalf("A is %s, want ejected", st.State)
			}
			b, err := s.PickFor(t.Context(), "", nil)
			if err != nil || b == nil || b.Name != urlB {
				t.Fatalf("first pick = %v, %v; want B", b, err)
			}
			s.Report(Report{Backend: b, Outcome: ConnectFailed})
			retry, err := s.PickFor(t.Context(), "", []*Backend{b})
			if err != nil || retry == nil || retry.Name != urlA {
				t.Fatalf("round %d: the retry's pick = %v, %v; want A, whose ejection B's failure ends", i, retry, err)
			}
			s.Report(Report{Backend: retry, Outcome: Success, Status: 200})
		})
	}
}

// Ejection steers requests away from a backend; it never turns one away.
// A retry that has tried every backend in rotation goes to an ejected one
// that is UP rather than get no backend (the client would get a 502 with a
// healthy backend idle): here B broke an exchange (B stays UP, so A's
// ejection does not end), and A is the only backend left for the retry.
func TestARetryTakesAnEjectedBackendWhenNoOtherIsLeft(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg, _ := ejectionConfig(t, newSwitchProbe().Probe, urlA, urlB)
		s, _ := startSelector(t, cfg)
		synctest.Wait()
		hits(t, s, urlA, failed, ejectAfter)
		if st := fullStatusOf(t, s, urlA); st.State != "ejected" {
			t.Fatalf("A is %s, want ejected", st.State)
		}
		b, err := s.PickFor(t.Context(), "", nil)
		if err != nil || b == nil || b.Name != urlB {
			t.Fatalf("first pick = %v, %v; want B (A is ejected)", b, err)
		}
		s.Report(Report{Backend: b, Outcome: Failed})
		retry, err := s.PickFor(t.Context(), "", []*Backend{b})
		if err != nil || retry == nil || retry.Name != urlA {
			t.Fatalf("the retry's pick = %v, %v; want A, ejected but UP and the only one left", retry, err)
		}
		s.Report(Report{Backend: retry, Outcome: Success, Status: 200})
		synctest.Wait()
		if st := fullStatusOf(t, s, urlA); st.State != "ejected" {
			t.Errorf("A is %s after serving the retry, want still ejected", st.State)
		}
		if b, _ := s.PickFor(t.Context(), "", nil); b == nil || b.Name != urlB {
			t.Errorf("a first pick = %v, want B: A stays out of rotation while B can serve", b)
		} else {
			s.Report(Report{Backend: b, Outcome: Success, Status: 200})
		}
	})
}
