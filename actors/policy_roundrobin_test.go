package actors

import (
	"slices"
	"testing"
)

// eligibleFrom turns "+-+" into three candidates of weight 1, the middle
// one ineligible.
func eligibleFrom(s string) []Candidate {
	out := make([]Candidate, len(s))
	for i, c := range s {
		out[i] = Candidate{Eligible: c == '+', Weight: 1}
	}
	return out
}

func TestRoundRobin(t *testing.T) {
	tests := []struct {
		name     string
		eligible string // one backend a character: "+" eligible, "-" not
		picks    int
		want     []int
	}{
		{"all eligible go round in order", "+++", 7, []int{0, 1, 2, 0, 1, 2, 0}},
		{"an ineligible backend is skipped", "+-+", 4, []int{0, 2, 0, 2}},
		{"an ineligible first backend is skipped from the start", "-++", 4, []int{1, 2, 1, 2}},
		{"an ineligible last backend wraps to the first", "++-", 4, []int{0, 1, 0, 1}},
		{"one eligible backend gets every pick", "-+-", 3, []int{1, 1, 1}},
		{"one backend gets every pick", "+", 3, []int{0, 0, 0}},
		{"no eligible backend gives minus one", "---", 2, []int{-1, -1}},
		{"no backends at all gives minus one", "", 2, []int{-1, -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var rr RoundRobin
			eligible := eligibleFrom(tt.eligible)
			var got []int
			for range tt.picks {
				i := rr.Choose(eligible, "")
				got = append(got, i)
				if i >= 0 {
					rr.Taken(nil, i)
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("picks = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestRoundRobinChooseDoesNotMove(t *testing.T) {
	// The selector may Choose several times (an offer recomputed after a
	// health change) before anyone takes the answer.
	var rr RoundRobin
	eligible := eligibleFrom("+++")
	for range 3 {
		if got := rr.Choose(eligible, ""); got != 0 {
			t.Fatalf("Choose before any Taken = %d, want 0", got)
		}
	}
	rr.Taken(nil, 0)
	if got := rr.Choose(eligible, ""); got != 1 {
		t.Errorf("Choose after Taken(0) = %d, want 1", got)
	}
}

func TestRoundRobinFollowsHealthChanges(t *testing.T) {
	// The eligible slice changes between calls as backends go down and up;
	// the position keeps its place in configuration order.
	steps := []struct {
		eligible string
		want     int
	}{
		{"+++", 0},
		{"+++", 1},
		{"+-+", 2}, // B went down after being picked
		{"+-+", 0},
		{"+-+", 2}, // B is skipped
		{"+++", 0}, // B is back: after C comes A, then B
		{"+++", 1},
		{"+++", 2},
		{"--+", 2}, // A and B down: C again
		{"+--", 0},
	}
	var rr RoundRobin
	for n, step := range steps {
		i := rr.Choose(eligibleFrom(step.eligible), "")
		if i != step.want {
			t.Fatalf("pick %d with %s = %d, want %d", n, step.eligible, i, step.want)
		}
		rr.Taken(nil, i)
	}
}

func TestRoundRobinTakenOutOfTurn(t *testing.T) {
	// PickExcept may hand out a backend other than the one Choose would
	// give first; Taken moves the position past whatever was taken.
	var rr RoundRobin
	eligible := eligibleFrom("+++")
	rr.Taken(nil, 1)
	if got := rr.Choose(eligible, ""); got != 2 {
		t.Errorf("Choose after Taken(1) = %d, want 2", got)
	}
	rr.Taken(nil, 2)
	if got := rr.Choose(eligible, ""); got != 0 {
		t.Errorf("Choose after Taken(2) = %d, want 0 (wrapped)", got)
	}
}
