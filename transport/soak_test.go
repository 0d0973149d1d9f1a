package transport

import (
	"context"
	"flag"
	"net/http"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/roundhouse/roundhouse/internal/procstat"
	"github.com/roundhouse/roundhouse/internal/testenv"
)

var soakDuration = flag.Duration("soak.duration", 0,
	"how long TestSoak runs (default 2s, or $ROUNDHOUSE_SOAK_DURATION; 10m for a real soak)")

// TestSoak runs steady load through the balancer and checks that nothing
// accumulates: after the load, goroutines and open file descriptors return
// to their baseline, and RSS stays flat while it runs.
func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("soak test skipped in -short mode")
	}
	duration := testenv.Duration(t, soakDuration, "ROUNDHOUSE_SOAK_DURATION", 2*time.Second)
	a, b := demoBackend(t, "A"), demoBackend(t, "B")
	lb := newBalancer(t, balancerOptions{retries: 1}, a.URL, b.URL)
	if code, _, _ := lb.get(t, "/"); code != http.StatusOK {
		t.Fatalf("warm-up request: %d", code)
	}
	idle := func() { lb.client.CloseIdleConnections(); lb.tr.CloseIdleConnections() }
	idle()
	goroutines, fds := settle(t, 0, 0)

	ctx, cancel := context.WithTimeout(context.Background(), duration)
	defer cancel()
	var wg sync.WaitGroup
	var mu sync.Mutex
	requests := 0
	for range 16 {
		wg.Go(func() {
			for ctx.Err() == nil {
				code, _, _ := lb.get(t, "/bytes?n=4096")
				if code != http.StatusOK {
					t.Errorf("status %d", code)
					return
				}
				mu.Lock()
				requests++
				mu.Unlock()
			}
		})
	}
	var samples []int64
	tick := time.NewTicker(duration / 20)
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case <-tick.C:
			samples = append(samples, selfRSS(t))
		}
	}
	tick.Stop()
	wg.Wait()
	idle()
	afterG, afterFD := settle(t, goroutines, fds)

	first, last := samples[len(samples)/4], samples[len(samples)-1]
	t.Logf("%d requests in %v; goroutines %d → %d, open fds %d → %d; RSS %.1f MiB a quarter in, %.1f MiB at the end",
		requests, duration, goroutines, afterG, fds, afterFD, mib(first), mib(last))
	if last > first+first/2+(8<<20) {
		t.Errorf("RSS grew from %.1f MiB to %.1f MiB under steady load", mib(first), mib(last))
	}
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

// settle waits, bounded, until goroutines and open fds are back to at most
// the given counts (0: whatever they settle to), and returns them. Neither
// count announces itself, so this polls.
func settle(t *testing.T, goroutines, fds int) (int, int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		g, f := runtime.NumGoroutine(), openFDs(t)
		if (goroutines == 0 || g <= goroutines) && (fds == 0 || f <= fds) {
			return g, f
		}
		if time.Now().After(deadline) {
			t.Fatalf("goroutines %d (baseline %d), open fds %d (baseline %d) did not return", g, goroutines, f, fds)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func openFDs(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

func selfRSS(t *testing.T) int64 {
	t.Helper()
	n, err := procstat.RSS(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	return n
}
