package actors

// WeightedRoundRobin is nginx's smooth weighted round-robin: each backend
// gets a share of picks in proportion to its weight, interleaved rather than
// in bursts. With weights 5, 1, 1 the picks are a a b a c a a, not
// a a a a a b c.
//
// Every pick adds each eligible backend's weight to its running score, takes
// the highest score, and subtracts the total weight from the winner. The
// zero value is ready to use.
//
// Scores only compare well when they were built against the same total. When
// the eligible set changes (a backend goes DOWN or comes back, or a retry
// excludes one), a score is first rescaled from the total it was last
// updated with to the current one. Without that, survivors of a heavy
// backend's failure keep scores spread over the old, larger total and go in
// long bursts: with weights 100, 1, 1 and the first DOWN, nginx's version
// can send 51 picks in a row to one of two equal backends. A score of a
// backend that is not eligible stays as it was, in its own scale, so when
// the backend returns it resumes its place in the cycle.
type WeightedRoundRobin struct {
	current []int // running score per backend index; grows with the set
	scale   []int // the eligible total each score was last updated with; 0: never
}

var _ Policy = (*WeightedRoundRobin)(nil)

func init() {
	registerPolicy(policyEntry{name: "weighted-round-robin", rank: 20,
		make: func(policyArgs) (Policy, error) { return &WeightedRoundRobin{}, nil }})
}

// Choose returns the eligible backend whose score would be highest.
func (w *WeightedRoundRobin) Choose(cands []Candidate, _ string) int {
	w.fit(len(cands))
	total := eligibleWeight(cands)
	best, bestScore := -1, 0
	for i, c := range cands {
		if !c.Eligible {
			continue
		}
		if score := w.score(i, total) + c.Weight; best < 0 || score > bestScore {
			best, bestScore = i, score
		}
	}
	return best
}

// Taken applies the round: every eligible score grows by its weight and the
// winner's falls by the total.
func (w *WeightedRoundRobin) Taken(cands []Candidate, chosen int) {
	w.fit(len(cands))
	total := eligibleWeight(cands)
	for i, c := range cands {
		if c.Eligible {
			w.current[i] = w.score(i, total) + c.Weight
			w.scale[i] = total
		}
	}
	w.current[chosen] -= total
}

// score is backend i's running score rescaled to total.
func (w *WeightedRoundRobin) score(i, total int) int {
	if s := w.scale[i]; s != 0 && s != total {
		return w.current[i] * total / s
	}
	return w.current[i]
}

func (w *WeightedRoundRobin) fit(n int) {
	if len(w.current) != n {
		// The backend set changed: start afresh.
		w.current, w.scale = make([]int, n), make([]int, n)
	}
}

func eligibleWeight(cands []Candidate) int {
	total := 0
	for _, c := range cands {
		if c.Eligible {
			total += c.Weight
		}
	}
	return total
}
