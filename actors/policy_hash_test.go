package actors

import (
	"fmt"
	"maps"
	"slices"
	"testing"
	"testing/synctest"
)

// hashKeys are the keys the hashing tests map: n user IDs.
func hashKeys(n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("user-%d", i)
	}
	return keys
}

// mapping returns the backend URL each key goes to ("" for none).
func mapping(p Policy, cands []Candidate, keys []string) map[string]string {
	out := make(map[string]string, len(keys))
	for _, k := range keys {
		i := p.Choose(cands, k)
		if i < 0 {
			out[k] = ""
			continue
		}
		p.Taken(cands, i)
		out[k] = cands[i].Backend.Name
	}
	return out
}

// shares counts the keys per backend URL.
func shares(m map[string]string) map[string]int {
	out := map[string]int{}
	for _, b := range m {
		out[b]++
	}
	return out
}

func TestHashMovesOnlyTheKeysOfADownBackend(t *testing.T) {
	const n = 10000
	keys := hashKeys(n)
	for down := range 5 {
		t.Run(fmt.Sprintf("with %s down at most a fifth plus 5%% of keys move, all of them from %s, and they come back", letter(down), letter(down)), func(t *testing.T) {
			h := mustPolicy(t, "header-hash:X-User")
			cands := weighted(t, 1, 1, 1, 1, 1)
			before := mapping(h, cands, keys)

			cands[down].Eligible = false
			during := mapping(h, cands, keys)
			moved := 0
			for _, k := range keys {
				switch {
				case before[k] == during[k]:
				case before[k] != cands[down].Backend.Name:
					t.Fatalf("key %s moved from %s to %s, though only %s went down", k, before[k], during[k], cands[down].Backend)
				default:
					moved++
				}
				if during[k] == cands[down].Backend.Name || during[k] == "" {
					t.Fatalf("key %s still maps to %q", k, during[k])
				}
			}
			if limit := n/5 + n*5/100; moved > limit {
				t.Errorf("%d of %d keys moved, want at most %d", moved, n, limit)
			}
			if moved == 0 {
				t.Errorf("no key moved: %s had none", cands[down].Backend)
			}

			cands[down].Eligible = true
			if after := mapping(h, cands, keys); !maps.Equal(after, before) {
				diff := 0
				for _, k := range keys {
					if after[k] != before[k] {
						diff++
					}
				}
				t.Errorf("with %s back, %d keys map differently from before", cands[down].Backend, diff)
			}
		})
	}
}

func TestHashSpreadsInProportionToWeight(t *testing.T) {
	tests := []struct {
		weights []int
	}{
		{[]int{1, 1, 1, 1, 1}},
		{[]int{1, 2, 3, 4}},
		{[]int{5, 1, 1}},
		{[]int{3, 1}},
	}
	const n = 10000
	for _, tt := range tests {
		t.Run(fmt.Sprintf("weights %v give shares within 2.5%% of the weights", tt.weights), func(t *testing.T) {
			cands := weighted(t, tt.weights...)
			total := 0
			for _, w := range tt.weights {
				total += w
			}
			got := shares(mapping(mustPolicy(t, "ip-hash"), cands, hashKeys(n)))
			for i, c := range cands {
				want := float64(tt.weights[i]) / float64(total)
				if share := float64(got[c.Backend.Name]) / n; !within(share, want, 0.025) {
					t.Errorf("%s has %.1f%% of keys, want %.1f%% ± 2.5%%", letter(i), 100*share, 100*want)
				}
			}
		})
	}
}

func TestHashDependsOnlyOnBackendURLsAndKey(t *testing.T) {
	keys := hashKeys(2000)
	want := mapping(mustPolicy(t, "ip-hash"), weighted(t, 1, 1, 1, 1, 1), keys)

	t.Run("another instance with fresh backends agrees", func(t *testing.T) {
		if got := mapping(mustPolicy(t, "header-hash:X-Other"), weighted(t, 1, 1, 1, 1, 1), keys); !maps.Equal(got, want) {
			t.Error("two Hash instances map keys differently")
		}
	})
	t.Run("the backends in another order agree", func(t *testing.T) {
		cands := weighted(t, 1, 1, 1, 1, 1)
		slices.Reverse(cands)
		cands[1], cands[3] = cands[3], cands[1]
		if got := mapping(mustPolicy(t, "ip-hash"), cands, keys); !maps.Equal(got, want) {
			t.Error("reordering the backends changed the mapping")
		}
	})
	t.Run("keyed picks do not depend on earlier picks", func(t *testing.T) {
		h := mustPolicy(t, "ip-hash")
		cands := weighted(t, 1, 1, 1, 1, 1)
		drive(h, cands, "", 3) // keyless picks move the fallback
		slices.Reverse(keys)
		if got := mapping(h, cands, keys); !maps.Equal(got, want) {
			t.Error("the mapping depends on the order of requests")
		}
	})
	t.Run("the same key always gives the same backend", func(t *testing.T) {
		h := mustPolicy(t, "ip-hash")
		cands := weighted(t, 1, 1, 1, 1, 1)
		if got := drive(h, cands, "203.0.113.7", 10); len(counts(got)) != 1 || got[0] == '-' {
			t.Errorf("picks for one key %s, want one backend every time", got)
		}
	})
}

func TestHashWithoutAKeyGoesRoundRobin(t *testing.T) {
	cands := weighted(t, 1, 1, 1)
	h := mustPolicy(t, "ip-hash")
	if got := drive(h, cands, "", 6); got != "abcabc" {
		t.Errorf("keyless picks %s, want abcabc", got)
	}
	cands[1].Eligible = false
	if got := drive(h, cands, "", 4); got != "acac" {
		t.Errorf("keyless picks with b down %s, want acac", got)
	}
}

func TestHashKeyedTrafficDoesNotSteerKeylessRequests(t *testing.T) {
	// Keyless requests between requests for one busy key still go round
	// robin, rather than all to the backend after the key's.
	cands := weighted(t, 1, 1, 1)
	h := mustPolicy(t, "header-hash:X-User")
	var keyless string
	for range 9 {
		drive(h, cands, "busy-user", 2)
		keyless += drive(h, cands, "", 1)
	}
	if want := "abcabcabc"; keyless != want {
		t.Errorf("keyless requests went to %s, want %s", keyless, want)
	}
}

func TestHashNeverPicksAnIneligibleBackend(t *testing.T) {
	cands := weighted(t, 1, 1, 1)
	cands[0].Eligible, cands[2].Eligible = false, false
	if got := shares(mapping(mustPolicy(t, "ip-hash"), cands, hashKeys(500))); got[cands[1].Backend.Name] != 500 {
		t.Errorf("with only b eligible: %v, want every key on b", got)
	}
	cands[1].Eligible = false
	if got := mustPolicy(t, "ip-hash").Choose(cands, "k"); got != -1 {
		t.Errorf("with none eligible: Choose = %d, want -1", got)
	}
}

// TestHashThroughTheSelector: keyed picks in the real selector follow a
// backend DOWN and back UP, with the mapping restored exactly.
func TestHashThroughTheSelector(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		probe := newSwitchProbe()
		cfg := testConfig(t, probe.Probe, testURLs(5)...)
		cfg.Policy = mustPolicy(t, "header-hash:X-User")
		cfg.Monitor.Fall, cfg.Monitor.Rise = 1, 1
		s, _ := startSelector(t, cfg)
		synctest.Wait()
		keys := hashKeys(500)
		pickAll := func() map[string]string {
			out := map[string]string{}
			for _, k := range keys {
				out[k] = selectorPicks(t, s, cfg.Policy, k, 1)
			}
			return out
		}
		before := pickAll()
		probe.set(testURL(2), errRefused)
		advance(testInterval)
		during := pickAll()
		for _, k := range keys {
			if during[k] == "c" || (before[k] != "c" && during[k] != before[k]) {
				t.Fatalf("key %s: %s before, %s with c down", k, before[k], during[k])
			}
		}
		probe.set(testURL(2), nil)
		advance(testInterval)
		if after := pickAll(); !maps.Equal(after, before) {
			t.Error("with c back up the mapping is not the one before")
		}
	})
}
