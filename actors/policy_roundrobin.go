package actors

// RoundRobin hands out eligible backends in configuration order, skipping
// ineligible ones: with A B C all UP the picks are A B C A B C; with B DOWN,
// A C A C. It ignores weights (see WeightedRoundRobin). The zero value starts
// at the first backend.
type RoundRobin struct {
	next int // index to try first; may exceed the backend count, used modulo
}

var _ Policy = (*RoundRobin)(nil)

func init() {
	registerPolicy(policyEntry{name: "round-robin", rank: 10,
		make: func(policyArgs) (Policy, error) { return &RoundRobin{}, nil }})
}

// Choose returns the first eligible index at or after the position.
func (rr *RoundRobin) Choose(cands []Candidate, _ string) int {
	n := len(cands)
	for k := range n {
		if i := (rr.next + k) % n; cands[i].Eligible {
			return i
		}
	}
	return -1
}

// Taken moves the position just past i.
func (rr *RoundRobin) Taken(_ []Candidate, i int) { rr.next = i + 1 }
