package e2e

import (
	"context"
	"flag"
	"fmt"
	mathrand "math/rand/v2"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/roundhouse/roundhouse/internal/testenv"
)

var chaosDuration = flag.Duration("chaos.duration", 0,
	"how long TestChaos runs (default 5s, or $ROUNDHOUSE_CHAOS_DURATION)")

// TestChaos runs the balancer and four demo backends as real processes,
// with 16 clients sending GETs and POSTs with random bodies (checked by
// SHA-256), while a chaos loop kills backends with SIGKILL and restarts
// them, never all at once. No client may see an error.
//
// The POSTs carry an Idempotency-Key, as a client does when it wants safe
// retries; that lets the balancer resend a body a killed backend had
// already received (a plain POST would rightly get a 502 then).
func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos test skipped in -short mode")
	}
	duration := testenv.Duration(t, chaosDuration, "ROUNDHOUSE_CHAOS_DURATION", 5*time.Second)
	addrs := []string{testenv.FreeAddr(t), testenv.FreeAddr(t), testenv.FreeAddr(t), testenv.FreeAddr(t)}
	backends := make([]*proc, len(addrs))
	args := []string{"--listen", "127.0.0.1:0", "--health-interval", "100ms", "--rise", "1", "--fall", "1", "--retries", "3"}
	for i, a := range addrs {
		backends[i] = start(t, "backend", "--listen", a)
		backends[i].waitFor(t, listening)
		args = append(args, "--backend", "http://"+a)
	}
	lb := start(t, args...)
	url := "http://" + lb.waitFor(t, listening)

	ctx, cancel := context.WithTimeout(context.Background(), duration)
	defer cancel()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 32}}
	t.Cleanup(client.CloseIdleConnections)

	var requests, posts atomic.Int64
	var clients sync.WaitGroup
	for c := range 16 {
		clients.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				if err := checkedRequest(client, url, c%2 == 0, 32<<10, fmt.Sprintf("c%d-%d", c, i)); err != nil {
					t.Errorf("client %d request %d: %v", c, i, err)
					return
				}
				requests.Add(1)
				if c%2 == 0 {
					posts.Add(1)
				}
			}
		})
	}

	kills := 0
	alive := make([]bool, len(backends))
	for i := range alive {
		alive[i] = true
	}
	tick := time.NewTicker(150 * time.Millisecond)
	defer tick.Stop()
chaos:
	for {
		select {
		case <-ctx.Done():
			break chaos
		case <-tick.C:
		}
		i := mathrand.IntN(len(backends))
		switch n := countTrue(alive); {
		case alive[i] && n > 1:
			backends[i].signal(t, os.Kill)
			backends[i].wait(t)
			alive[i] = false
			kills++
		case !alive[i]:
			// Count it alive only once the balancer has seen it UP, so
			// that the kills never leave the balancer without a backend
			// it knows to be alive.
			backends[i] = start(t, "backend", "--listen", addrs[i])
			backends[i].waitFor(t, listening)
			lb.waitUntil(t, "backend "+addrs[i]+" UP", func(out string) bool {
				// Every DOWN the balancer logged for it has been followed
				// by an UP (if it never noticed the kill, there are none).
				return strings.Count(out, "backend up: backend=http://"+addrs[i]) >=
					strings.Count(out, "backend down: backend=http://"+addrs[i])
			})
			alive[i] = true
		}
	}
	clients.Wait()
	out := lb.output()
	retried := strings.Count(out, "attempts=")
	t.Logf("%d requests (%d POST) in %v; %d backends killed; %d requests retried; %d ejections; %d passive DOWNs",
		requests.Load(), posts.Load(), duration, kills, retried,
		strings.Count(out, "backend ejected"), strings.Count(out, `reason="passive:`))
	if kills == 0 {
		t.Error("the chaos loop killed nothing")
	}
	if t.Failed() {
		var lines []string
		for l := range strings.SplitSeq(out, "\n") {
			if strings.Contains(l, "status=50") || strings.Contains(l, "selector") {
				lines = append(lines, l)
			}
		}
		t.Logf("balancer's errors and selector lines:\n%s", strings.Join(lines, "\n"))
	}
}

func countTrue(bs []bool) int {
	n := 0
	for _, b := range bs {
		if b {
			n++
		}
	}
	return n
}
