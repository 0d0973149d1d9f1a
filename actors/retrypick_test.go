package actors

import (
	"testing"
	"testing/synctest"
)

// A retry's pick must see the report of the attempt it retries. The
// handler reports the failure (a buffered send) and then asks for another
// backend; if the selector took the pick first, it would decide without
// the failure: here B's connection failure takes B down, which ends A's
// ejection (an ejected backend returns when too few are UP), so A must be
// the retry's answer, never "none".
func TestARetrysPickSeesTheFailureItRetries(t *testing.T) {
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
				t.Fatalf("round %d: the retry's pick = %v, %v; want A, whose ejection B's failure ended", i, retry, err)
			}
			s.Report(Report{Backend: retry, Outcome: Success, Status: 200})
		})
	}
}
