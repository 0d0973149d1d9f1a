package actors

import (
	"fmt"
	"testing"
)

// p2cPicks makes n picks from a fresh "p2c" policy with the given seed.
// The in-flight counts stay as given, as if every pick were reported
// before the next.
func p2cPicks(t *testing.T, seed uint64, cands []Candidate, n int) string {
	t.Helper()
	p, err := NewPolicy("p2c", nil, seed)
	if err != nil {
		t.Fatal(err)
	}
	return drive(p, cands, "", n)
}

// within reports whether got is within tolerance of want, both fractions.
func within(got, want, tolerance float64) bool {
	return got >= want-tolerance && got <= want+tolerance
}

func TestP2CSpreadsEvenlyWhenLoadIsEqual(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3, 12345} {
		t.Run(fmt.Sprintf("with seed %d each of 4 backends gets 25%% ± 3%% of 10 000 picks", seed), func(t *testing.T) {
			const n = 10000
			got := counts(p2cPicks(t, seed, loaded(t, 0, 0, 0, 0), n))
			for _, r := range "abcd" {
				if share := float64(got[r]) / n; !within(share, 0.25, 0.03) {
					t.Errorf("%c got %.1f%% of picks, want 25%% ± 3%% (all: %v)", r, 100*share, got)
				}
			}
		})
	}
}

func TestP2CPrefersTheLessLoadedOfTwo(t *testing.T) {
	// With loads 0 1 2 3, a pair always goes to its less loaded member:
	// a wins the 3 pairs it is in (of 6), b 2, c 1 and d none.
	const n = 10000
	got := counts(p2cPicks(t, 7, loaded(t, 0, 1, 2, 3), n))
	want := map[rune]float64{'a': 3.0 / 6, 'b': 2.0 / 6, 'c': 1.0 / 6, 'd': 0}
	for r, w := range want {
		if share := float64(got[r]) / n; !within(share, w, 0.03) {
			t.Errorf("%c got %.1f%% of picks, want %.1f%% ± 3%% (all: %v)", r, 100*share, 100*w, got)
		}
	}
}

func TestP2CRarelyPicksABusyBackend(t *testing.T) {
	tests := []struct {
		name     string
		inFlight []int
	}{
		{"one backend far busier than the rest is never picked", []int{50, 0, 1, 0}},
		{"one backend a little busier than the rest is never picked", []int{2, 1, 1, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The two choices are distinct, so the busiest backend always
			// meets a less loaded one.
			got := counts(p2cPicks(t, 3, loaded(t, tt.inFlight...), 10000))
			if got['a'] != 0 {
				t.Errorf("a (in flight %d) got %d of 10 000 picks, want none (all: %v)", tt.inFlight[0], got['a'], got)
			}
		})
	}
}

func TestP2CWeighsLoadByWeight(t *testing.T) {
	// a holds 4 with weight 4 (1 per unit of weight), b holds 2 with
	// weight 1: a is the less loaded and wins every pair.
	cands := loaded(t, 4, 2)
	cands[0].Weight = 4
	if got := counts(p2cPicks(t, 5, cands, 1000)); got['a'] != 1000 {
		t.Errorf("picks %v, want all 1000 on a", got)
	}
}

func TestP2CNeverPicksAnIneligibleBackend(t *testing.T) {
	tests := []struct {
		name string
		down string
		want map[rune]int // exact counts of 1000 picks, or nil to check only the down ones
	}{
		{"a down backend is never picked even when idle", "b", nil},
		{"one eligible backend gets every pick", "acd", map[rune]int{'b': 1000}},
		{"no eligible backend gives none", "abcd", map[rune]int{'-': 1000}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cands := loaded(t, 5, 0, 5, 5)
			for _, r := range tt.down {
				cands[r-'a'].Eligible = false
			}
			got := counts(p2cPicks(t, 9, cands, 1000))
			for _, r := range tt.down {
				if got[r] != 0 {
					t.Errorf("ineligible %c got %d picks (all: %v)", r, got[r], got)
				}
			}
			for r, n := range tt.want {
				if got[r] != n {
					t.Errorf("%c got %d picks, want %d (all: %v)", r, got[r], n, got)
				}
			}
			if tt.want == nil && got['-'] != 0 {
				t.Errorf("%d empty picks with backends eligible", got['-'])
			}
		})
	}
}

func TestP2CIsDeterministicGivenASeed(t *testing.T) {
	cands := loaded(t, 0, 0, 0, 0, 0)
	first := p2cPicks(t, 42, cands, 1000)
	if again := p2cPicks(t, 42, cands, 1000); again != first {
		t.Errorf("the same seed gave different picks:\n%s\n%s", first, again)
	}
	if other := p2cPicks(t, 43, cands, 1000); other == first {
		t.Error("another seed gave the same 1000 picks")
	}
}
