package actors

import (
	"testing"
	"testing/synctest"
)

func TestFirstPicksTheFirstEligibleInOrder(t *testing.T) {
	tests := []struct {
		name    string
		down    string
		weights []int // nil: all 1
		want    string
	}{
		{"all up: the first gets everything", "", nil, "aaaa"},
		{"the first down: the second gets everything", "a", nil, "bbbb"},
		{"the first two down: the third gets everything", "ab", nil, "cccc"},
		{"a later backend down changes nothing", "b", nil, "aaaa"},
		{"weights do not matter, order does", "", []int{1, 9, 9}, "aaaa"},
		{"all down: none", "abc", nil, "----"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cands := weighted(t, 1, 1, 1)
			for i, w := range tt.weights {
				cands[i].Weight = w
			}
			for _, r := range tt.down {
				cands[r-'a'].Eligible = false
			}
			if got := drive(First{}, cands, "", len(tt.want)); got != tt.want {
				t.Errorf("picks %s, want %s", got, tt.want)
			}
		})
	}
}

// TestFirstStandbyTakesOverThroughTheSelector: active/standby with the
// real selector. The standby serves only while the active one is DOWN,
// and traffic returns as soon as the active one is UP again.
func TestFirstStandbyTakesOverThroughTheSelector(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		probe := newSwitchProbe()
		cfg := testConfig(t, probe.Probe, urlA, urlB)
		cfg.Policy = First{}
		cfg.Monitor.Fall, cfg.Monitor.Rise = 1, 1
		s, _ := startSelector(t, cfg)
		synctest.Wait()

		if got := selectorPicks(t, s, cfg.Policy, "", 5); got != "aaaaa" {
			t.Errorf("active up: picks %s, want aaaaa", got)
		}
		probe.set(urlA, errRefused)
		advance(testInterval)
		if got := selectorPicks(t, s, cfg.Policy, "", 5); got != "bbbbb" {
			t.Errorf("active down: picks %s, want the standby: bbbbb", got)
		}
		probe.set(urlA, nil)
		advance(testInterval)
		if got := selectorPicks(t, s, cfg.Policy, "", 5); got != "aaaaa" {
			t.Errorf("active back up: picks %s, want aaaaa", got)
		}
		// A failed connection takes the active one down at once (passive
		// health): the very next pick goes to the standby.
		b, _ := s.Pick(t.Context())
		s.Report(Report{Backend: b, Outcome: ConnectFailed, Err: errRefused})
		synctest.Wait()
		if got := selectorPicks(t, s, cfg.Policy, "", 3); got != "bbb" {
			t.Errorf("after a failed connection to a: picks %s, want bbb", got)
		}
	})
}
