package actors

import (
	"fmt"
	"testing"
)

// randomPicks makes n picks from a fresh "random" policy with the given seed.
func randomPicks(t *testing.T, seed uint64, cands []Candidate, n int) string {
	t.Helper()
	p, err := NewPolicy("random", nil, seed)
	if err != nil {
		t.Fatal(err)
	}
	return drive(p, cands, "", n)
}

func TestRandomFollowsTheWeights(t *testing.T) {
	tests := []struct {
		weights []int
		down    string
	}{
		{[]int{1, 1, 1, 1}, ""},
		{[]int{5, 1, 1}, ""},
		{[]int{1, 2, 3, 4}, ""},
		{[]int{5, 1, 1}, "a"},
		{[]int{1, 2, 3, 4}, "c"},
	}
	for _, tt := range tests {
		name := fmt.Sprintf("weights %v give shares within 2%% of the weights", tt.weights)
		if tt.down != "" {
			name = fmt.Sprintf("weights %v with %s down give the others shares within 2%% of their weights", tt.weights, tt.down)
		}
		t.Run(name, func(t *testing.T) {
			cands := weighted(t, tt.weights...)
			for _, r := range tt.down {
				cands[r-'a'].Eligible = false
			}
			total := 0
			for _, c := range cands {
				if c.Eligible {
					total += c.Weight
				}
			}
			const n = 20000
			got := counts(randomPicks(t, 11, cands, n))
			for i, c := range cands {
				want := 0.0
				if c.Eligible {
					want = float64(c.Weight) / float64(total)
				}
				if share := float64(got[rune('a'+i)]) / n; !within(share, want, 0.02) {
					t.Errorf("%s got %.1f%%, want %.1f%% ± 2%% (all: %v)", letter(i), 100*share, 100*want, got)
				}
			}
		})
	}
}

func TestRandomEdgeCases(t *testing.T) {
	one := weighted(t, 1, 1, 1)
	one[0].Eligible, one[2].Eligible = false, false
	if got := counts(randomPicks(t, 1, one, 100)); got['b'] != 100 {
		t.Errorf("one eligible backend: picks %v, want all on b", got)
	}
	none := weighted(t, 1, 1)
	none[0].Eligible, none[1].Eligible = false, false
	if got := randomPicks(t, 1, none, 3); got != "---" {
		t.Errorf("no eligible backend: picks %s, want ---", got)
	}
	if got := randomPicks(t, 1, nil, 2); got != "--" {
		t.Errorf("no backends: picks %s, want --", got)
	}
}

func TestRandomIsDeterministicGivenASeed(t *testing.T) {
	cands := weighted(t, 3, 2, 1)
	first := randomPicks(t, 99, cands, 500)
	if again := randomPicks(t, 99, cands, 500); again != first {
		t.Errorf("the same seed gave different picks:\n%s\n%s", first, again)
	}
	if other := randomPicks(t, 100, cands, 500); other == first {
		t.Error("another seed gave the same 500 picks")
	}
}
