package actors

// First sends every request to the first eligible backend in configuration
// order: active/standby. The others take traffic only while those before
// them are DOWN.
type First struct{}

var _ Policy = First{}

func init() {
	registerPolicy(policyEntry{name: "first", rank: 60,
		make: func(policyArgs) (Policy, error) { return First{}, nil }})
}

// Choose returns the first eligible candidate.
func (First) Choose(cands []Candidate, _ string) int { return nthEligible(cands, 0) }

// Taken does nothing.
func (First) Taken([]Candidate, int) {}
