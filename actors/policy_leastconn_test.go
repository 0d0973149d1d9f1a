package actors

import (
	"testing"
	"testing/synctest"
)

// loaded returns candidates of weight 1 with the given in-flight counts.
func loaded(t testing.TB, inFlight ...int) []Candidate {
	t.Helper()
	cands := weighted(t, make([]int, len(inFlight))...)
	for i, n := range inFlight {
		cands[i].Weight, cands[i].InFlight = 1, n
	}
	return cands
}

func TestLeastConnChoose(t *testing.T) {
	tests := []struct {
		name     string
		inFlight []int
		weights  []int  // nil: all 1
		down     string // letters of the ineligible backends
		want     string // the first pick
	}{
		{"the backend with the fewest in flight wins", []int{3, 1, 2}, nil, "", "b"},
		{"an idle backend wins over busy ones", []int{4, 4, 0}, nil, "", "c"},
		{"an ineligible backend is skipped however idle", []int{0, 3, 4}, nil, "a", "b"},
		{"weight divides the load: 2 of weight 3 beats 1 of weight 1", []int{2, 1}, []int{3, 1}, "", "a"},
		{"weight divides the load: 4 of weight 3 loses to 1 of weight 1", []int{4, 1}, []int{3, 1}, "", "b"},
		{"weight divides the load: 5 of weight 10 beats 1 of weight 1", []int{5, 1}, []int{10, 1}, "", "a"},
		{"equal load per weight is a tie, and the first in turn wins", []int{3, 1}, []int{3, 1}, "", "a"},
		{"no eligible backend gives none", []int{0, 0}, nil, "ab", "-"},
		{"no backends at all gives none", nil, nil, "", "-"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cands := loaded(t, tt.inFlight...)
			for i, w := range tt.weights {
				cands[i].Weight = w
			}
			for _, r := range tt.down {
				cands[r-'a'].Eligible = false
			}
			var lc LeastConn
			if got := letter(lc.Choose(cands, "")); got != tt.want {
				t.Errorf("Choose = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestLeastConnTiesGoRoundRobin(t *testing.T) {
	tests := []struct {
		name     string
		inFlight []int
		want     string
	}{
		{"all idle backends take turns", []int{0, 0, 0}, "abcabca"},
		{"only the least loaded take turns", []int{0, 5, 0}, "acacac"},
		{"equally busy backends take turns", []int{2, 2, 2, 2}, "abcdab"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Counts stay fixed: as if each pick were reported before the next.
			var lc LeastConn
			if got := drive(&lc, loaded(t, tt.inFlight...), "", len(tt.want)); got != tt.want {
				t.Errorf("picks %s, want %s", got, tt.want)
			}
		})
	}
}

func TestLeastConnChooseDoesNotMove(t *testing.T) {
	var lc LeastConn
	cands := loaded(t, 0, 0, 0)
	lc.Taken(cands, 0)
	for range 3 {
		if got := lc.Choose(cands, ""); got != 1 {
			t.Fatalf("Choose = %s, want b until Taken", letter(got))
		}
	}
}

func TestLeastConnFollowsTheCounts(t *testing.T) {
	// Picks held in flight and never reported: least-conn fills the
	// backends evenly, the lightest first, taking weight into account.
	cands := loaded(t, 0, 0, 0)
	cands[0].Weight = 2
	var lc LeastConn
	var got string
	for range 8 {
		i := lc.Choose(cands, "")
		got += letter(i)
		lc.Taken(cands, i)
		cands[i].InFlight++
	}
	// a has weight 2: it takes a second request while b and c hold one.
	if want := "abcabcaa"; got != want {
		t.Errorf("picks %s, want %s", got, want)
	}
	if a, b, c := cands[0].InFlight, cands[1].InFlight, cands[2].InFlight; a != 4 || b != 2 || c != 2 {
		t.Errorf("in flight %d %d %d, want 4 2 2", a, b, c)
	}
}

// TestLeastConnThroughTheSelector: in the real selector, least-conn sees
// the in-flight counts that picks raise and reports lower.
func TestLeastConnThroughTheSelector(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig(t, newSwitchProbe().Probe, urlA, urlB, urlC)
		cfg.Policy = &LeastConn{}
		s, _ := startSelector(t, cfg)
		pick := func() *Backend {
			t.Helper()
			b, err := s.PickFor(t.Context(), "", nil)
			if err != nil || b == nil {
				t.Fatalf("PickFor = %v, %v", b, err)
			}
			return b
		}
		a, b, c := pick(), pick(), pick()
		if a.Name != urlA || b.Name != urlB || c.Name != urlC {
			t.Fatalf("first picks %s %s %s, want a b c", a, b, c)
		}
		s.Report(Report{Backend: b})
		synctest.Wait()
		if got := pick(); got != b {
			t.Errorf("after b's request ended: pick %s, want b, the only idle backend", got)
		}
		// Held: a, b, c, b. A second b and a c end: c has none in flight.
		s.Report(Report{Backend: b})
		s.Report(Report{Backend: c})
		synctest.Wait()
		if got := pick(); got != c {
			t.Errorf("after c's request ended: pick %s, want c", got)
		}
	})
}

// TestLeastConnOfferSeesReports is the same through Pick, the selector's
// standing offer, which is what the proxy uses for least-conn.
func TestLeastConnOfferSeesReports(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig(t, newSwitchProbe().Probe, urlA, urlB, urlC)
		cfg.Policy = &LeastConn{}
		s, _ := startSelector(t, cfg)
		pick := func() *Backend {
			t.Helper()
			b, err := s.Pick(t.Context())
			if err != nil || b == nil {
				t.Fatalf("Pick = %v, %v", b, err)
			}
			return b
		}
		_, b, _ := pick(), pick(), pick() // one each in flight; the offer is now a
		s.Report(Report{Backend: b})
		synctest.Wait()
		if got := pick(); got != b {
			t.Errorf("after b's request ended: pick %s, want b, the only idle backend", got)
		}
	})
}
