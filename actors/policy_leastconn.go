package actors

// LeastConn picks the eligible backend with the fewest requests in flight
// relative to its weight; ties go round-robin so equal backends share evenly.
// It suits requests of very different cost: a slow backend accumulates
// in-flight requests and so receives fewer new ones. The zero value is ready.
type LeastConn struct {
	next int // where the tie-breaking scan starts
}

var _ Policy = (*LeastConn)(nil)

func init() {
	registerPolicy(policyEntry{name: "least-conn", rank: 30,
		make: func(policyArgs) (Policy, error) { return &LeastConn{}, nil }})
}

// Choose returns the least loaded eligible backend, scanning from the
// round-robin position so that the first of equals wins.
func (l *LeastConn) Choose(cands []Candidate, _ string) int {
	n := len(cands)
	best := -1
	for k := range n {
		i := (l.next + k) % n
		if cands[i].Eligible && (best < 0 || lessLoaded(cands[i], cands[best])) {
			best = i
		}
	}
	return best
}

// Taken moves the tie-breaking position past i.
func (l *LeastConn) Taken(_ []Candidate, i int) { l.next = i + 1 }

// lessLoaded compares in-flight/weight without division.
func lessLoaded(a, b Candidate) bool {
	return a.InFlight*b.Weight < b.InFlight*a.Weight
}
