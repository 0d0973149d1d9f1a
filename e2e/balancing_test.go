package e2e

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestWeightedRoundRobinFromTheCommandLineSplitsThreeToOne(t *testing.T) {
	t.Cleanup(http.DefaultClient.CloseIdleConnections)
	var aHits, bHits atomic.Int64
	a, b := namedBackend(t, "a", &aHits), namedBackend(t, "b", &bHits)
	lb := start(t, "--listen", "127.0.0.1:0", "--policy", "weighted-round-robin",
		"--backend", a.URL+",weight=3", "--backend", b.URL, "--access-log=false")
	addr := lb.waitFor(t, listening)
	var got strings.Builder
	for range 40 {
		code, body := get(t, "http://"+addr+"/")
		if code != http.StatusOK {
			t.Fatalf("status %d: %s", code, body)
		}
		got.WriteString(body)
	}
	if want := strings.Repeat("aaba", 10); got.String() != want {
		t.Errorf("answers %s, want %s", got.String(), want)
	}
	if aHits.Load() != 30 || bHits.Load() != 10 {
		t.Errorf("backends served %d and %d requests, want 30 and 10", aHits.Load(), bHits.Load())
	}
	lb.stop(t)
}

// stickyValue starts a balancer with args, fetches / once and returns the
// sticky cookie's value and the backend that answered.
func stickyValue(t *testing.T, args ...string) (value, backend string) {
	t.Helper()
	lb := start(t, append([]string{"--listen", "127.0.0.1:0", "--policy", "cookie", "--access-log=false"}, args...)...)
	addr := lb.waitFor(t, listening)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, %v", resp.StatusCode, err)
	}
	for _, c := range resp.Cookies() {
		if c.Name == "roundhouse_sticky" {
			value = c.Value
		}
	}
	if value == "" {
		t.Fatalf("no roundhouse_sticky cookie: %q", resp.Header.Values("Set-Cookie"))
	}
	lb.stop(t)
	return value, string(body)
}

func TestCookieSecretFileMakesStickyCookiesStableAcrossInstances(t *testing.T) {
	var hits atomic.Int64
	a := namedBackend(t, "a", &hits)
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte("  a secret of more than 16 bytes\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	first, _ := stickyValue(t, "--backend", a.URL, "--cookie-secret-file", secret)
	second, _ := stickyValue(t, "--backend", a.URL, "--cookie-secret-file", secret)
	if first != second {
		t.Errorf("two instances with one secret file set %q and %q, want the same value", first, second)
	}
	third, _ := stickyValue(t, "--backend", a.URL)
	fourth, _ := stickyValue(t, "--backend", a.URL)
	if third == fourth || third == first {
		t.Errorf("instances without a secret file set %q and %q (with the file: %q), want values of their own", third, fourth, first)
	}
}
