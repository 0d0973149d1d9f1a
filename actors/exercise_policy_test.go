//go:build exercise

// Exercise (a) of docs/TOUR.md: add a policy. These tests fail until the
// "least-recent" policy exists; run them with
//
//	go test -tags exercise ./actors/ -run ExerciseLeastRecent

package actors_test

import (
	"context"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/sourcegraph/conc"

	"github.com/roundhouse/roundhouse/actors"
)

// newLeastRecent returns the policy that --policy least-recent names.
func newLeastRecent(t *testing.T) actors.Policy {
	t.Helper()
	p, err := actors.NewPolicy("least-recent", nil, 1)
	if err != nil {
		t.Fatalf(`NewPolicy("least-recent"): %v
add the policy: a type in actors/policy_leastrecent.go that registers itself in an init function (see docs/TOUR.md, exercise (a))`, err)
	}
	return p
}

// fakeBackends returns a distinct *Backend per name.
func fakeBackends(names ...string) map[string]*actors.Backend {
	m := map[string]*actors.Backend{}
	for _, n := range names {
		m[n] = &actors.Backend{URL: &url.URL{Scheme: "http", Host: n}, Name: n}
	}
	return m
}

// candidates lists the named backends in this order; a name ending in "-"
// is not eligible (DOWN).
func candidates(bs map[string]*actors.Backend, names ...string) []actors.Candidate {
	var cands []actors.Candidate
	for _, n := range names {
		up := !strings.HasSuffix(n, "-")
		cands = append(cands, actors.Candidate{Backend: bs[strings.TrimSuffix(n, "-")], Eligible: up, Weight: 1})
	}
	return cands
}

// take makes n picks from cands as the selector does (Choose, then Taken)
// and returns the names picked, "none" for -1.
func take(p actors.Policy, cands []actors.Candidate, n int) string {
	var out []string
	for range n {
		i := p.Choose(cands, "")
		if i < 0 {
			out = append(out, "none")
			continue
		}
		p.Taken(cands, i)
		out = append(out, cands[i].Backend.Name)
	}
	return strings.Join(out, " ")
}

func TestExerciseLeastRecentIsListed(t *testing.T) {
	if !slices.Contains(actors.PolicyNames, "least-recent") {
		t.Errorf("PolicyNames = %v; want it to list least-recent (--help shows it)", actors.PolicyNames)
	}
	if _, err := actors.NewPolicy("least-recent:x", nil, 1); err == nil {
		t.Errorf(`NewPolicy("least-recent:x") succeeded; want an error: the policy takes no argument`)
	}
}

func TestExerciseLeastRecentPicks(t *testing.T) {
	bs := fakeBackends("a", "b", "c", "d")
	tests := []struct {
		name  string
		steps [][]string // each step: the candidates, then the picks wanted
	}{
		{"with all up it goes round in order", [][]string{
			{"a b c", "a b c a b c"},
		}},
		{"a backend that comes back goes first, having waited longest", [][]string{
			{"a b c", "a b c"},
			{"a b- c", "a c a c"},
			{"a b c", "b a c b"}, // round-robin would go a b c
		}},
		{"a new backend, never picked, goes first", [][]string{
			{"a b c", "a b c"},
			{"a b c d", "d a b c"},
		}},
		{"ties among never-picked backends go in order", [][]string{
			{"a b", "a"},
			{"a b c d", "b c d a"},
		}},
		{"it follows backends, not positions, when the set changes", [][]string{
			{"a b c", "a b c"},
			{"c b", "b c b"}, // a removed, the rest reordered
		}},
		{"none eligible gives none", [][]string{
			{"a- b-", "none none"},
			{"a b", "a b"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newLeastRecent(t)
			for _, step := range tt.steps {
				cands := candidates(bs, strings.Fields(step[0])...)
				n := len(strings.Fields(step[1]))
				if got := take(p, cands, n); got != step[1] {
					t.Fatalf("candidates %q: picks %q, want %q", step[0], got, step[1])
				}
			}
		})
	}
}

// Choose must not commit: the selector calls it to prepare an offer that
// nobody may take before health changes. Only Taken moves the policy on.
func TestExerciseLeastRecentChooseDoesNotCommit(t *testing.T) {
	bs := fakeBackends("a", "b", "c")
	p := newLeastRecent(t)
	cands := candidates(bs, "a", "b", "c")
	for range 3 {
		if i := p.Choose(cands, ""); i != 0 {
			t.Fatalf("Choose = %d before anything was taken, want 0 every time", i)
		}
	}
	p.Taken(cands, 0)
	if i := p.Choose(cands, ""); i != 1 {
		t.Fatalf("Choose after a was taken = %d, want 1 (b)", i)
	}
}

// The policy works inside a real selector: picks go round while every
// backend is up.
func TestExerciseLeastRecentInSelector(t *testing.T) {
	var cfgs []actors.BackendConfig
	for _, host := range []string{"a.invalid", "b.invalid", "c.invalid"} {
		cfgs = append(cfgs, actors.BackendConfig{URL: &url.URL{Scheme: "http", Host: host}, Weight: 1})
	}
	sel, err := actors.New(actors.Config{
		Backends: cfgs,
		Policy:   newLeastRecent(t),
		Monitor:  actors.MonitorConfig{Probe: func(context.Context, *actors.Backend) error { return nil }},
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	var wg conc.WaitGroup
	wg.Go(func() { _ = sel.Run(ctx) })
	t.Cleanup(wg.Wait)
	t.Cleanup(cancel)

	var got []string
	for range 6 {
		b, err := sel.Pick(ctx)
		if err != nil || b == nil {
			t.Fatalf("Pick = %v, %v; want a backend", b, err)
		}
		got = append(got, b.URL.Host)
		sel.Report(actors.Report{Backend: b, Status: 200, Final: true})
	}
	want := "a.invalid b.invalid c.invalid a.invalid b.invalid c.invalid"
	if strings.Join(got, " ") != want {
		t.Errorf("picks %q, want %q", strings.Join(got, " "), want)
	}
}
