package actors

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"testing/synctest"
)

var testSecret = []byte("0123456789abcdef-sticky")

func TestStickyToken(t *testing.T) {
	b := newBackend(t, "http://127.0.0.1:8081")
	token := StickyToken(testSecret, b)

	t.Run("a token is 32 lower-case hex digits", func(t *testing.T) {
		if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(token) {
			t.Errorf("token %q", token)
		}
	})
	t.Run("a token does not reveal the backend's address or port", func(t *testing.T) {
		for _, part := range []string{"127", "0.0.1", "8081", "http", fmt.Sprintf("%x", "127.0.0.1")} {
			if strings.Contains(token, part) {
				t.Errorf("token %q contains %q", token, part)
			}
		}
	})
	t.Run("a token is the same for the same secret and URL, in any Backend value", func(t *testing.T) {
		if again := StickyToken(append([]byte(nil), testSecret...), newBackend(t, "http://127.0.0.1:8081")); again != token {
			t.Errorf("token %q, then %q", token, again)
		}
	})
	t.Run("tokens differ between backends", func(t *testing.T) {
		if other := StickyToken(testSecret, newBackend(t, "http://127.0.0.1:8082")); other == token {
			t.Error("two backends share a token")
		}
	})
	t.Run("tokens differ between secrets", func(t *testing.T) {
		if other := StickyToken([]byte("another secret of 16+ bytes"), b); other == token {
			t.Error("two secrets give the same token")
		}
	})
}

func TestStickyChoose(t *testing.T) {
	cands := weighted(t, 1, 1, 1)
	tokenOf := func(i int) string { return StickyToken(testSecret, cands[i].Backend) }
	tests := []struct {
		name string
		key  string
		down string
		want string
	}{
		{"a cookie for b goes to b every time", tokenOf(1), "", "bbbbb"},
		{"a cookie for c goes to c every time", tokenOf(2), "", "ccccc"},
		{"a cookie for a down backend goes round robin among the rest", tokenOf(1), "b", "acaca"},
		{"no cookie goes round robin", "", "", "abcab"},
		{"an unknown cookie goes round robin", "0123456789abcdef0123456789abcdef", "", "abcab"},
		{"a cookie with the backend's address in it is unknown", cands[1].Backend.Name, "", "abcab"},
		{"a cookie made with another secret is unknown", StickyToken([]byte("not the secret"), cands[1].Backend), "", "abcab"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cands := weighted(t, 1, 1, 1)
			for _, r := range tt.down {
				cands[r-'a'].Eligible = false
			}
			if got := drive(NewSticky("s", testSecret), cands, tt.key, len(tt.want)); got != tt.want {
				t.Errorf("picks %s, want %s", got, tt.want)
			}
		})
	}
}

func TestStickyPinnedTrafficDoesNotSteerNewClients(t *testing.T) {
	// One busy client pinned to b, and new clients arriving between its
	// requests: the new clients still go round robin. If pinned picks
	// moved the round-robin position, every new client would land on the
	// backend after b.
	cands := weighted(t, 1, 1, 1)
	s := NewSticky("s", testSecret)
	pinned := StickyToken(testSecret, cands[1].Backend)
	var fresh string
	for range 9 {
		if got := drive(s, cands, pinned, 2); got != "bb" {
			t.Fatalf("the pinned client went to %s, want b", got)
		}
		fresh += drive(s, cands, "", 1)
	}
	if want := "abcabcabc"; fresh != want {
		t.Errorf("new clients went to %s, want %s", fresh, want)
	}
}

func TestStickyInstancesWithOneSecretAgree(t *testing.T) {
	// Two balancers sharing the secret honour each other's cookies, even
	// with their backends listed in another order.
	one := weighted(t, 1, 1, 1, 1)
	two := weighted(t, 1, 1, 1, 1)
	two[0], two[3] = two[3], two[0]
	p1, p2 := NewSticky("s", testSecret), NewSticky("s", testSecret)
	for i, c := range one {
		token := StickyToken(testSecret, c.Backend)
		if got := one[p1.Choose(one, token)].Backend.Name; got != c.Backend.Name {
			t.Errorf("instance one: token of %s goes to %s", c.Backend, got)
		}
		if got := two[p2.Choose(two, token)].Backend.Name; got != c.Backend.Name {
			t.Errorf("instance two: token of %s (%s) goes to %s", c.Backend, letter(i), got)
		}
	}
}

func TestStickyWithManyBackends(t *testing.T) {
	// The token cache is bounded; tokens stay right after it is cleared.
	var weights []int
	for range 1500 {
		weights = append(weights, 1)
	}
	cands := weighted(t, weights...)
	s := NewSticky("s", testSecret)
	for round := range 2 {
		for _, i := range []int{0, 700, 1024, 1499} {
			if got := s.Choose(cands, StickyToken(testSecret, cands[i].Backend)); got != i {
				t.Fatalf("round %d: token of backend %d chose %d", round, i, got)
			}
		}
	}
}

// TestStickyThroughTheSelector: the pinned backend keeps the traffic while
// it is UP; when it is DOWN the pick falls back, and once it is back the
// old cookie works again.
func TestStickyThroughTheSelector(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		probe := newSwitchProbe()
		cfg := testConfig(t, probe.Probe, urlA, urlB, urlC)
		cfg.Policy = NewSticky(DefaultCookie, testSecret)
		cfg.Monitor.Fall, cfg.Monitor.Rise = 1, 1
		s, _ := startSelector(t, cfg)
		synctest.Wait()
		token := StickyToken(testSecret, backendsOf(t, s)[1])
		if got := selectorPicks(t, s, cfg.Policy, token, 20); got != strings.Repeat("b", 20) {
			t.Errorf("pinned to b: picks %s", got)
		}
		probe.set(urlB, errRefused)
		advance(testInterval)
		if got := selectorPicks(t, s, cfg.Policy, token, 20); strings.Contains(got, "b") || strings.Contains(got, "-") {
			t.Errorf("pinned to b with b down: picks %s, want a and c only", got)
		}
		probe.set(urlB, nil)
		advance(testInterval)
		if got := selectorPicks(t, s, cfg.Policy, token, 5); got != "bbbbb" {
			t.Errorf("pinned to b with b back up: picks %s, want bbbbb", got)
		}
	})
}
