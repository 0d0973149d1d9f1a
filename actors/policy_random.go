package actors

import "math/rand/v2"

// Random picks an eligible backend at random, in proportion to its weight.
type Random struct {
	rng *rand.Rand // owned by the selector goroutine
}

var _ Policy = (*Random)(nil)

func init() {
	registerPolicy(policyEntry{name: "random", rank: 50,
		make: func(a policyArgs) (Policy, error) { return &Random{rng: a.rng}, nil }})
}

// Choose draws a weighted random eligible candidate.
func (r *Random) Choose(cands []Candidate, _ string) int {
	total := 0
	for _, c := range cands {
		if c.Eligible {
			total += c.Weight
		}
	}
	if total == 0 {
		return -1
	}
	x := r.rng.IntN(total)
	for i, c := range cands {
		if c.Eligible {
			if x < c.Weight {
				return i
			}
			x -= c.Weight
		}
	}
	return -1 // unreachable
}

// Taken does nothing.
func (r *Random) Taken([]Candidate, int) {}
