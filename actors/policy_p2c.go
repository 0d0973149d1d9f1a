package actors

import "math/rand/v2"

// P2C is "the power of two random choices": pick two eligible backends at
// random and use the one with fewer requests in flight (relative to weight).
// It spreads load almost as well as least-conn while avoiding least-conn's
// herd behaviour when several balancers see the same counts.
//
// It compares in-flight counts rather than a latency EWMA: the selector knows
// in-flight counts exactly and at once (every pick and report passes
// through it), they react to a slow backend as soon as requests pile up on
// it, and they need no decay constant to tune. Latency would also mix the
// backend's speed with the cost of whatever each endpoint does.
type P2C struct {
	rng *rand.Rand // owned by the selector goroutine, like all policy state
}

var _ Policy = (*P2C)(nil)

func init() {
	registerPolicy(policyEntry{name: "p2c", rank: 40,
		make: func(a policyArgs) (Policy, error) { return &P2C{rng: a.rng}, nil }})
}

// Choose draws two distinct eligible candidates and returns the less loaded;
// with one eligible it returns that one.
func (p *P2C) Choose(cands []Candidate, _ string) int {
	n := countEligible(cands)
	switch n {
	case 0:
		return -1
	case 1:
		return nthEligible(cands, 0)
	}
	a := p.rng.IntN(n)
	b := p.rng.IntN(n - 1)
	if b >= a {
		b++
	}
	ia, ib := nthEligible(cands, a), nthEligible(cands, b)
	if lessLoaded(cands[ib], cands[ia]) {
		return ib
	}
	return ia
}

// Taken does nothing: P2C keeps no position.
func (p *P2C) Taken([]Candidate, int) {}

func countEligible(cands []Candidate) int {
	n := 0
	for _, c := range cands {
		if c.Eligible {
			n++
		}
	}
	return n
}

// nthEligible returns the index of the k-th eligible candidate (from 0).
func nthEligible(cands []Candidate, k int) int {
	for i, c := range cands {
		if c.Eligible {
			if k == 0 {
				return i
			}
			k--
		}
	}
	return -1
}
