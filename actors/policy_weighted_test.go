package actors

import (
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
)

func TestWeightedRoundRobinSequences(t *testing.T) {
	tests := []struct {
		name    string
		weights []int
		down    string // letters of the ineligible backends
		picks   int
		want    string
	}{
		{"weights 5 1 1 give a a b a c a a, cycle after cycle", []int{5, 1, 1}, "", 21, "aabacaa" + "aabacaa" + "aabacaa"},
		{"equal weights are plain round robin", []int{1, 1, 1}, "", 9, "abcabcabc"},
		{"equal weights above one are plain round robin too", []int{4, 4, 4}, "", 6, "abcabc"},
		{"weights 3 1 give a a b a", []int{3, 1}, "", 8, "aaba" + "aaba"},
		{"weights 2 1 give a b a", []int{2, 1}, "", 6, "aba" + "aba"},
		{"weights 1 2 3 interleave with the heaviest first", []int{1, 2, 3}, "", 12, "cbacbc" + "cbacbc"},
		{"an ineligible backend is skipped and the rest keep their ratio", []int{5, 1, 1}, "b", 12, "aaacaa" + "aaacaa"},
		{"an ineligible heavy backend leaves plain round robin", []int{5, 1, 1}, "a", 6, "bcbcbc"},
		{"one backend gets every pick", []int{7}, "", 3, "aaa"},
		{"no eligible backend gives none", []int{5, 1}, "ab", 2, "--"},
		{"no backends at all gives none", nil, "", 2, "--"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cands := weighted(t, tt.weights...)
			for _, r := range tt.down {
				cands[r-'a'].Eligible = false
			}
			var w WeightedRoundRobin
			if got := drive(&w, cands, "", tt.picks); got != tt.want {
				t.Errorf("picks %s, want %s", got, tt.want)
			}
		})
	}
}

func TestWeightedRoundRobinChooseDoesNotMove(t *testing.T) {
	// The selector recomputes its offer (Choose) without handing it out;
	// only Taken moves the scores.
	cands := weighted(t, 5, 1, 1)
	var w WeightedRoundRobin
	drive(&w, cands, "", 2) // a a; b is next
	for range 3 {
		if got := w.Choose(cands, ""); got != 1 {
			t.Fatalf("Choose = %s, want b every time until Taken", letter(got))
		}
	}
	if got := drive(&w, cands, "", 5); got != "bacaa" {
		t.Errorf("the rest of the cycle is %s, want bacaa", got)
	}
}

func TestWeightedRoundRobinTakenOutOfTurn(t *testing.T) {
	// A retry takes a backend other than the policy's first choice (the
	// one it would have chosen is excluded); the cycle absorbs it and the
	// shares still come out right.
	cands := weighted(t, 5, 1, 1)
	var w WeightedRoundRobin
	excluded := weighted(t, 5, 1, 1)
	excluded[0].Eligible = false
	w.Taken(excluded, w.Choose(excluded, "")) // b, with a excluded
	seq := "b" + drive(&w, cands, "", 69)
	got := counts(seq)
	for r, want := range map[rune]int{'a': 50, 'b': 10, 'c': 10} {
		if n := got[r]; n < want-1 || n > want+1 {
			t.Errorf("over ten cycles with one retry: %c has %d, want %d ± 1 (%s)", r, n, want, seq)
		}
	}
}

// TestWeightedRoundRobinDownAndUp takes each backend out at every point of
// the cycle, for a while, and brings it back: while it is out the others
// share in their ratio; once it is back the picks are as smooth as ever and
// every ten cycles give each backend its weight's share, give or take one.
func TestWeightedRoundRobinDownAndUp(t *testing.T) {
	weights := []int{5, 1, 1}
	for phase := range 7 {
		for out := range weights {
			for downFor := 1; downFor <= 12; downFor++ {
				name := fmt.Sprintf("%s out after pick %d for %d picks comes back smooth and fair", letter(out), phase, downFor)
				t.Run(name, func(t *testing.T) {
					cands := weighted(t, weights...)
					var w WeightedRoundRobin
					drive(&w, cands, "", phase)

					cands[out].Eligible = false
					during := drive(&w, cands, "", downFor)
					if strings.Contains(during, letter(out)) {
						t.Errorf("while %s is out: picks %s include it", letter(out), during)
					}
					cands[out].Eligible = true
					after := drive(&w, cands, "", 70)

					got := counts(after)
					for i, weight := range weights {
						if n := got[rune('a'+i)]; n < 10*weight-1 || n > 10*weight+1 {
							t.Errorf("after %s is back: %s has %d of 70 picks, want %d ± 1 (%s)", letter(out), letter(i), n, 10*weight, after)
						}
					}
					if strings.Contains(after, "bb") || strings.Contains(after, "cc") {
						t.Errorf("after %s is back: a light backend is picked twice in a row: %s", letter(out), after)
					}
					if run, r := longestRun(after); run > 4 {
						t.Errorf("after %s is back: %d picks of %c in a row, want at most 4 as in a a b a c a a: %s", letter(out), run, r, after)
					}
				})
			}
		}
	}
}

// TestWeightedRoundRobinSurvivorsStaySmooth: when a heavy backend goes
// out, the others' scores were built against the old, larger total. Used
// as they are (nginx does), equal survivors go in long bursts: with weights
// 100 1 1, up to 51 picks in a row to one of b and c. Rescaled to the new
// total, they alternate from the first pick.
func TestWeightedRoundRobinSurvivorsStaySmooth(t *testing.T) {
	tests := []struct {
		weights []int
		maxRun  int // longest run of one survivor allowed
	}{
		{[]int{5, 1, 1}, 1},
		{[]int{100, 1, 1}, 1},
		{[]int{50, 2, 2, 2}, 1},
		{[]int{20, 3, 1}, 4}, // steady b b c b has runs of 3; one more while scores settle
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("weights %v with a out keep the survivors interleaved", tt.weights), func(t *testing.T) {
			total := 0
			for _, w := range tt.weights {
				total += w
			}
			for phase := range total {
				cands := weighted(t, tt.weights...)
				var w WeightedRoundRobin
				drive(&w, cands, "", phase)
				cands[0].Eligible = false
				during := drive(&w, cands, "", 24)
				if run, r := longestRun(during); run > tt.maxRun {
					t.Fatalf("a out after %d picks: %d picks of %c in a row, want at most %d: %s", phase, run, r, tt.maxRun, during)
				}
			}
		})
	}
}

func TestWeightedRoundRobinOutAndBackMidCycle(t *testing.T) {
	// The exact sequence when the heavy backend leaves in the middle of a
	// cycle and comes back: its survivors alternate, and on its return the
	// cycle is a smooth 5 1 1 again, in a new phase.
	cands := weighted(t, 5, 1, 1)
	var w WeightedRoundRobin
	if got := drive(&w, cands, "", 3); got != "aab" {
		t.Fatalf("first picks %s, want aab", got)
	}
	cands[0].Eligible = false
	if got, want := drive(&w, cands, "", 6), "cbcbcb"; got != want {
		t.Errorf("with a out: %s, want %s", got, want)
	}
	cands[0].Eligible = true
	if got, want := drive(&w, cands, "", 21), "aacaaab"+"aacaaab"+"aacaaab"; got != want {
		t.Errorf("with a back: %s, want %s", got, want)
	}
}

func TestWeightedRoundRobinWhileOneIsOut(t *testing.T) {
	// While a backend is out for long, the others split in their ratio.
	tests := []struct {
		weights []int
		out     int
		want    map[rune]int // over 60 picks
	}{
		{[]int{5, 1, 1}, 0, map[rune]int{'b': 30, 'c': 30}},
		{[]int{5, 1, 1}, 1, map[rune]int{'a': 50, 'c': 10}},
		{[]int{3, 2, 1}, 1, map[rune]int{'a': 45, 'c': 15}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("weights %v with %s out split in their ratio", tt.weights, letter(tt.out)), func(t *testing.T) {
			for phase := range 12 {
				cands := weighted(t, tt.weights...)
				var w WeightedRoundRobin
				drive(&w, cands, "", phase)
				cands[tt.out].Eligible = false
				during := drive(&w, cands, "", 60)
				for r, want := range tt.want {
					if n := counts(during)[r]; n < want-2 || n > want+2 {
						t.Errorf("after %d picks, %c has %d of 60, want %d ± 2: %s", phase, r, n, want, during)
					}
				}
			}
		})
	}
}

func TestWeightedRoundRobinBackendSetChange(t *testing.T) {
	// A different number of candidates means a new backend set: the
	// scores start afresh instead of indexing out of range.
	var w WeightedRoundRobin
	drive(&w, weighted(t, 5, 1, 1), "", 3)
	if got := drive(&w, weighted(t, 1, 1, 1, 1), "", 8); got != "abcdabcd" {
		t.Errorf("after growing to four backends: %s, want abcdabcd", got)
	}
	if got := drive(&w, weighted(t, 3, 1), "", 4); got != "aaba" {
		t.Errorf("after shrinking to two backends: %s, want aaba", got)
	}
}

// TestWeightedRoundRobinThroughTheSelector runs smooth WRR in the real
// selector with fake probes: B goes DOWN and comes back UP.
func TestWeightedRoundRobinThroughTheSelector(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		probe := newSwitchProbe()
		cfg := testConfig(t, probe.Probe, urlA, urlB, urlC)
		cfg.Backends[0].Weight = 5
		cfg.Monitor.Fall, cfg.Monitor.Rise = 1, 1
		cfg.Policy = &WeightedRoundRobin{}
		s, _ := startSelector(t, cfg)
		synctest.Wait()

		if got, want := selectorPicks(t, s, cfg.Policy, "", 14), "aabacaa"+"aabacaa"; got != want {
			t.Errorf("all up: picks %s, want %s", got, want)
		}
		probe.set(urlB, errRefused)
		advance(testInterval)
		if got, want := selectorPicks(t, s, cfg.Policy, "", 12), "aaacaa"+"aaacaa"; got != want {
			t.Errorf("with b down: picks %s, want %s", got, want)
		}
		probe.set(urlB, nil)
		advance(testInterval)
		if got, want := selectorPicks(t, s, cfg.Policy, "", 14), "aabacaa"+"aabacaa"; got != want {
			t.Errorf("with b back up: picks %s, want %s", got, want)
		}
	})
}
