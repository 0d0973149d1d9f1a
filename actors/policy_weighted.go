package actors

// WeightedRoundRobin is nginx's smooth weighted round-robin: each backend
// gets a share of picks in proportion to its weight, interleaved rather than
// in bursts. With weights 5, 1, 1 the picks are a a b a c a a, not
// a a a a a b c.
//
// Every pick adds each eligible backend's weight to its running score, takes
// the highest score, and subtracts the total weight from the winner. The
// zero value is ready to use.
type WeightedRoundRobin struct {
	current []int // running score per backend index; grows with the set
}

var _ Policy = (*WeightedRoundRobin)(nil)

// Choose returns the eligible backend whose score would be highest.
func (w *WeightedRoundRobin) Choose(cands []Candidate, _ string) int {
	w.fit(len(cands))
	best, bestScore := -1, 0
	for i, c := range cands {
		if !c.Eligible {
			continue
		}
		if score := w.current[i] + c.Weight; best < 0 || score > bestScore {
			best, bestScore = i, score
		}
	}
	return best
}

// Taken applies the round: every eligible score grows by its weight and the
// winner's falls by the total.
func (w *WeightedRoundRobin) Taken(cands []Candidate, chosen int) {
	w.fit(len(cands))
	total := 0
	for i, c := range cands {
		if c.Eligible {
			w.current[i] += c.Weight
			total += c.Weight
		}
	}
	w.current[chosen] -= total
}

func (w *WeightedRoundRobin) fit(n int) {
	if len(w.current) != n {
		w.current = make([]int, n) // the backend set changed: start afresh
	}
}
