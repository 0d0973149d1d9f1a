package actors

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// Helpers shared by the policy tests. Sequences of picks are written as
// letters: "a" is the first backend in configuration order, "b" the second,
// and "-" a pick of none.

// testURL is the URL of the i-th test backend (from 0). Nothing dials it.
func testURL(i int) string { return fmt.Sprintf("http://127.0.0.1:%d", 8081+i) }

// testURLs returns the URLs of the first n test backends.
func testURLs(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = testURL(i)
	}
	return out
}

// weighted returns one eligible candidate per weight, each with its own
// backend (testURL(i)) and nothing in flight.
func weighted(t testing.TB, weights ...int) []Candidate {
	t.Helper()
	out := make([]Candidate, len(weights))
	for i, w := range weights {
		out[i] = Candidate{Backend: newBackend(t, testURL(i)), Eligible: true, Weight: w}
	}
	return out
}

// letter names the backend at index i; -1 is "-".
func letter(i int) string {
	if i < 0 {
		return "-"
	}
	return string(rune('a' + i))
}

// drive makes n picks from p as the selector would (Choose, then Taken for
// a pick that is not none) and returns them as letters.
func drive(p Policy, cands []Candidate, key string, n int) string {
	var sb strings.Builder
	for range n {
		i := p.Choose(cands, key)
		sb.WriteString(letter(i))
		if i >= 0 {
			p.Taken(cands, i)
		}
	}
	return sb.String()
}

// counts tallies the letters of a sequence of picks.
func counts(seq string) map[rune]int {
	out := map[rune]int{}
	for _, r := range seq {
		out[r]++
	}
	return out
}

// longestRun returns the longest stretch of one letter in seq, and the letter.
func longestRun(seq string) (int, rune) {
	best, run := 0, 0
	var prev, bestLetter rune
	for _, r := range seq {
		if r == prev {
			run++
		} else {
			prev, run = r, 1
		}
		if run > best {
			best, bestLetter = run, r
		}
	}
	return best, bestLetter
}

// selectorPicks takes n picks from s the way the proxy does for policy
// (the standing offer, or PickFor with key when the policy is Keyed),
// reports each at once as a success, and returns them as letters.
func selectorPicks(t *testing.T, s *Selector, policy Policy, key string, n int) string {
	t.Helper()
	index := map[*Backend]int{}
	for i, b := range backendsOf(t, s) {
		index[b] = i
	}
	var sb strings.Builder
	for range n {
		var b *Backend
		var err error
		if KeyOf(policy).Kind == KeyNone {
			b, err = s.Pick(t.Context())
		} else {
			b, err = s.PickFor(t.Context(), key, nil)
		}
		if err != nil {
			t.Fatalf("pick: %v", err)
		}
		if b == nil {
			sb.WriteString("-")
			continue
		}
		sb.WriteString(letter(index[b]))
		s.Report(Report{Backend: b, Outcome: Success, Status: 200})
	}
	return sb.String()
}

// mustPolicy returns NewPolicy(spec) with a fixed secret and seed.
func mustPolicy(t testing.TB, spec string) Policy {
	t.Helper()
	p, err := NewPolicy(spec, []byte("a test secret of some length"), 1)
	if err != nil {
		t.Fatalf("NewPolicy(%q): %v", spec, err)
	}
	return p
}

// everyPolicy is one --policy value per policy.
var everyPolicy = []string{
	"round-robin", "weighted-round-robin", "least-conn", "p2c", "random", "first",
	"ip-hash", "header-hash:X-User", "cookie",
}

func TestNewPolicy(t *testing.T) {
	tests := []struct {
		spec     string
		wantType string
		wantKey  KeySpec
	}{
		{"round-robin", "*actors.RoundRobin", KeySpec{}},
		{"weighted-round-robin", "*actors.WeightedRoundRobin", KeySpec{}},
		{"least-conn", "*actors.LeastConn", KeySpec{}},
		{"p2c", "*actors.P2C", KeySpec{}},
		{"random", "*actors.Random", KeySpec{}},
		{"first", "actors.First", KeySpec{}},
		{"ip-hash", "*actors.Hash", KeySpec{Kind: KeyClientIP}},
		{"header-hash:X-User", "*actors.Hash", KeySpec{Kind: KeyHeader, Name: "X-User"}},
		{"cookie", "*actors.Sticky", KeySpec{Kind: KeyCookie, Name: DefaultCookie}},
		{"cookie:SESSION", "*actors.Sticky", KeySpec{Kind: KeyCookie, Name: "SESSION"}},
	}
	for _, tt := range tests {
		t.Run(tt.spec+" gives a "+tt.wantType+" "+keyWords(tt.wantKey), func(t *testing.T) {
			p := mustPolicy(t, tt.spec)
			if got := fmt.Sprintf("%T", p); got != tt.wantType {
				t.Errorf("type %s, want %s", got, tt.wantType)
			}
			if got := KeyOf(p); got != tt.wantKey {
				t.Errorf("KeyOf = %+v, want %+v", got, tt.wantKey)
			}
		})
	}
}

// keyWords describes a KeySpec for a test name.
func keyWords(k KeySpec) string {
	switch k.Kind {
	case KeyClientIP:
		return "keyed by the client's address"
	case KeyHeader:
		return "keyed by header " + k.Name
	case KeyCookie:
		return "keyed by cookie " + k.Name
	}
	return "that needs no request key"
}

func TestNewPolicyErrors(t *testing.T) {
	tests := []struct {
		name string
		spec string
		want []string // every one must be in the error
	}{
		{"header-hash without a name asks for one", "header-hash", []string{"header-hash needs a header name"}},
		{"header-hash with an empty name asks for one", "header-hash:", []string{"header-hash needs a header name"}},
		{"header-hash with a space in the name is refused", "header-hash:X User", []string{"header-hash needs a header name"}},
		{"cookie with a semicolon in the name is refused", "cookie:bad;name", []string{"bad cookie name", `"bad;name"`}},
		{"cookie with an empty name is refused", "cookie:", []string{"bad cookie name"}},
		{"cookie with a non-ASCII name is refused", "cookie:bäd", []string{"bad cookie name"}},
		{"an unknown policy lists the known ones", "fastest", append([]string{`unknown policy "fastest"`}, PolicyNames...)},
		{"an empty policy is unknown", "", []string{`unknown policy ""`}},
		{"policy names are case-sensitive", "Round-Robin", []string{`unknown policy "Round-Robin"`}},
		{"round-robin takes no argument", "round-robin:2", []string{`"round-robin" takes no argument`}},
		{"weighted-round-robin takes no argument", "weighted-round-robin:3", []string{`"weighted-round-robin" takes no argument`}},
		{"least-conn takes no argument", "least-conn:x", []string{`"least-conn" takes no argument`}},
		{"p2c takes no argument", "p2c:ewma", []string{`"p2c" takes no argument`}},
		{"random takes no argument", "random:x", []string{`"random" takes no argument`}},
		{"first takes no argument", "first:x", []string{`"first" takes no argument`}},
		{"ip-hash takes no argument", "ip-hash:X-Real-IP", []string{`"ip-hash" takes no argument`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := NewPolicy(tt.spec, nil, 1)
			if err == nil {
				t.Fatalf("NewPolicy(%q) = %T, want an error", tt.spec, p)
			}
			if p != nil {
				t.Errorf("NewPolicy(%q) returned %T with its error", tt.spec, p)
			}
			for _, want := range tt.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
		})
	}
}

// Each policy's file registers it; PolicyNames, which --help and the
// "unknown policy" error show, lists them by rank, in the order they have
// always been listed, whatever order the files' init functions ran in.
func TestPolicyNamesListEveryRegisteredPolicyInRankOrder(t *testing.T) {
	want := []string{
		"round-robin", "weighted-round-robin", "least-conn", "p2c", "random", "first",
		"ip-hash", "header-hash:NAME", "cookie[:NAME]",
	}
	if !slices.Equal(PolicyNames, want) {
		t.Errorf("PolicyNames = %q, want %q", PolicyNames, want)
	}
	if len(policies) != len(PolicyNames) {
		t.Errorf("%d policies registered, %d listed", len(policies), len(PolicyNames))
	}
}

// A second policy with a name or a rank already taken is a programming
// error, caught when the package starts.
func TestRegisterPolicyRefusesANameOrRankTaken(t *testing.T) {
	for _, e := range []policyEntry{{name: "round-robin", rank: 1000}, {name: "new-policy", rank: 10}} {
		t.Run(fmt.Sprintf("name %s, rank %d", e.name, e.rank), func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("registerPolicy(%+v) did not panic", e)
				}
			}()
			registerPolicy(e)
		})
	}
}

// TestStandbysThroughTheSelector: a backend of weight 0 takes no traffic
// while a weighted backend is eligible, and all of it when none is. Backends
// a and b have weight 1; c is the standby.
func TestStandbysThroughTheSelector(t *testing.T) {
	for _, spec := range everyPolicy {
		t.Run("with "+spec+" the standby waits until every weighted backend is down", func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				probe := newSwitchProbe()
				cfg := testConfig(t, probe.Probe, urlA, urlB, urlC)
				cfg.Backends[2].Weight = 0
				cfg.Monitor.Fall, cfg.Monitor.Rise = 1, 1
				cfg.Policy = mustPolicy(t, spec)
				s, _ := startSelector(t, cfg)
				synctest.Wait()
				picks := func(n int) map[rune]int {
					t.Helper()
					// Different keys, so that the hashing policies spread.
					seen := map[rune]int{}
					for i := range n {
						for r, k := range counts(selectorPicks(t, s, cfg.Policy, fmt.Sprint("key", i), 1)) {
							seen[r] += k
						}
					}
					return seen
				}
				setDown := func(name string, down bool) {
					t.Helper()
					if down {
						probe.set(name, errRefused)
					} else {
						probe.set(name, nil)
					}
					advance(testInterval)
				}

				if got := picks(40); got['c'] != 0 || got['a']+got['b'] != 40 {
					t.Errorf("all up: picks %v, want none for the standby", got)
				}
				setDown(urlA, true)
				if got := picks(20); got['b'] != 20 {
					t.Errorf("a down: picks %v, want all on b", got)
				}
				setDown(urlB, true)
				if got := picks(20); got['c'] != 20 {
					t.Errorf("a and b down: picks %v, want all on the standby c", got)
				}
				setDown(urlA, false)
				if got := picks(20); got['a'] != 20 {
					t.Errorf("a back up: picks %v, want all on a, none on the standby", got)
				}
				setDown(urlA, true)
				setDown(urlC, true)
				if got := picks(3); got['-'] != 3 {
					t.Errorf("everything down: picks %v, want none", got)
				}
			})
		})
	}
}

// TestEveryPolicyHonoursHealthEjectionAndTheCap: through the selector no
// policy hands out a DOWN backend (and none is left out once it is back
// UP), an ejected one, or one at its connection cap while others have room.
func TestEveryPolicyHonoursHealthEjectionAndTheCap(t *testing.T) {
	for _, spec := range everyPolicy {
		t.Run("with "+spec+" a down backend gets nothing and a returning one gets traffic", func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				probe := newSwitchProbe()
				cfg := testConfig(t, probe.Probe, testURLs(4)...)
				cfg.Monitor.Fall, cfg.Monitor.Rise = 1, 1
				cfg.Policy = mustPolicy(t, spec)
				if spec == "first" {
					// first sends everything to a while it is up: take
					// a down to see the others.
					probe.set(testURL(0), errRefused)
				}
				probe.set(testURL(1), errRefused)
				s, _ := startSelector(t, cfg)
				synctest.Wait() // the first probes run at once: b goes down
				if st := statusOf(t, s, testURL(1)); st.Up {
					t.Fatal("b is still up")
				}
				seen := map[rune]int{}
				for i := range 200 {
					for r, k := range counts(selectorPicks(t, s, cfg.Policy, fmt.Sprint("key", i), 1)) {
						seen[r] += k
					}
				}
				if seen['b'] != 0 || seen['-'] != 0 {
					t.Errorf("with b down: picks %v, want none on b and no empty pick", seen)
				}
				probe.set(testURL(1), nil)
				advance(testInterval)
				clear(seen)
				for i := range 200 {
					for r, k := range counts(selectorPicks(t, s, cfg.Policy, fmt.Sprint("key", i), 1)) {
						seen[r] += k
					}
				}
				if seen['b'] == 0 {
					t.Errorf("with b back up: picks %v, want some on b", seen)
				}
			})
		})
		// The backend taken out below: b, or a for first, which sends
		// nothing to b while a has room anyway.
		out, letterOut := testURL(1), 'b'
		if spec == "first" {
			out, letterOut = testURL(0), 'a'
		}
		t.Run("with "+spec+" an ejected backend gets nothing", func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cfg := testConfig(t, newSwitchProbe().Probe, testURLs(4)...)
				cfg.Policy = mustPolicy(t, spec)
				cfg.Ejection = Ejection{After: ejectAfter, Time: ejectTime, MaxTime: ejectMax}
				s, _ := startSelector(t, cfg)
				for range ejectAfter {
					hit(t, s, out, failed)
				}
				if st := fullStatusOf(t, s, out); st.State != "ejected" {
					t.Fatalf("%s is not ejected: %+v", out, st)
				}
				seen := map[rune]int{}
				for i := range 200 {
					for r, k := range counts(selectorPicks(t, s, cfg.Policy, fmt.Sprint("key", i), 1)) {
						seen[r] += k
					}
				}
				if seen[letterOut] != 0 || seen['-'] != 0 {
					t.Errorf("with %c ejected: picks %v, want none on it and no empty pick", letterOut, seen)
				}
			})
		})
		t.Run("with "+spec+" a backend at its connection cap gets nothing while others have room", func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cfg := testConfig(t, newSwitchProbe().Probe, testURLs(4)...)
				cfg.Policy = mustPolicy(t, spec)
				cfg.Limits = Limits{MaxConnsPerBackend: 1, QueueSize: 10, QueueTimeout: time.Minute}
				s, _ := startSelector(t, cfg)
				var held *Backend
				var others []*Backend
				for _, b := range backendsOf(t, s) {
					if b.Name == out {
						held = b
					} else {
						others = append(others, b)
					}
				}
				if b, err := s.PickFor(t.Context(), "", others); err != nil || b != held {
					t.Fatalf("pick = %v, %v; want %s", b, err, out)
				}
				seen := map[rune]int{}
				for i := range 200 {
					for r, k := range counts(selectorPicks(t, s, cfg.Policy, fmt.Sprint("key", i), 1)) {
						seen[r] += k
					}
				}
				if seen[letterOut] != 0 || seen['-'] != 0 {
					t.Errorf("with %c at its cap: picks %v, want none on it and no empty pick", letterOut, seen)
				}
				s.Report(Report{Backend: held, Outcome: Success, Status: 200})
			})
		})
	}
}
