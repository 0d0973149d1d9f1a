package main

import (
	"context"
	"fmt"
	mathrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/roundhouse/roundhouse/demo"
)

// TestReloadUnderLoadLosesNothing runs the balancer as a process from a
// configuration file while 8 clients send requests (some slow, so that
// removed backends have requests in flight), and reloads it 20 times with
// SIGHUP, adding, removing and reweighting backends, and once with a file
// that is invalid. No client may see an error.
func TestReloadUnderLoadLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("reload test skipped in -short mode")
	}
	t.Cleanup(http.DefaultClient.CloseIdleConnections)
	var backends []string
	for _, name := range []string{"a", "b", "c", "d"} {
		srv := httptest.NewServer(demo.Handler(name))
		t.Cleanup(srv.Close)
		backends = append(backends, srv.URL)
	}
	file := writeConfig(t, configWith(backends[:2], nil))
	lb := start(t, "--config", file, "--listen", "127.0.0.1:0", "--health-interval", "50ms", "--access-log=false")
	url := "http://" + lb.waitFor(t, listening)

	ctx, cancel := context.WithCancel(context.Background())
	var requests atomic.Int64
	var clients sync.WaitGroup
	for c := range 8 {
		clients.Go(func() {
			path := "/"
			if c < 2 {
				path = "/slow?d=100ms" // in flight across reloads
			}
			for ctx.Err() == nil {
				code, body, err := fetch(url + path)
				if err != nil || code != http.StatusOK {
					t.Errorf("client %d: %d %q %v", c, code, body, err)
					return
				}
				requests.Add(1)
			}
		})
	}

	reloads := 0
	for i := range 21 {
		if i == 10 { // an invalid file changes nothing
			if err := os.WriteFile(file, []byte("backend \"ftp://nowhere\" {}\nretries = -1\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			failed := strings.Count(lb.output(), "reload failed")
			lb.signal(t, syscall.SIGHUP)
			lb.waitForCount(t, failed+1, "reload failed")
			continue
		}
		n := 1 + mathrand.IntN(len(backends))
		perm := mathrand.Perm(len(backends))
		var set []string
		weights := map[string]int{}
		for _, j := range perm[:n] {
			set = append(set, backends[j])
			weights[backends[j]] = mathrand.IntN(4) // 0 makes a standby
		}
		if err := os.WriteFile(file, []byte(configWith(set, weights)), 0o644); err != nil {
			t.Fatal(err)
		}
		lb.signal(t, syscall.SIGHUP)
		reloads++
		lb.waitForCount(t, reloads, "reloaded")
		// Let some traffic flow through this configuration.
		for start := requests.Load(); requests.Load() < start+20 && !t.Failed(); {
			time.Sleep(time.Millisecond)
		}
	}
	cancel()
	clients.Wait()
	t.Logf("%d requests, %d reloads and one invalid file; %d backends removed along the way",
		requests.Load(), reloads, strings.Count(lb.output(), "backend removed"))
	if t.Failed() {
		t.Logf("balancer output:\n%s", lb.output())
	}
}

// configWith is a configuration file listing backends, with the given
// weights (1 when absent).
func configWith(backends []string, weights map[string]int) string {
	var b strings.Builder
	b.WriteString("policy = \"weighted-round-robin\"\n")
	for _, u := range backends {
		w, ok := weights[u]
		if !ok {
			w = 1
		}
		fmt.Fprintf(&b, "backend %q {\n  weight = %d\n}\n", u, w)
	}
	return b.String()
}

// TestReloadRefusesAPolicyThatNeedsARestart: the proxy extracts request
// keys for the policy it started with, so a reload may not switch to a
// policy that keys requests differently; the running configuration stays.
func TestReloadRefusesAPolicyThatNeedsARestart(t *testing.T) {
	t.Cleanup(http.DefaultClient.CloseIdleConnections)
	srv := httptest.NewServer(demo.Handler("a"))
	t.Cleanup(srv.Close)
	file := writeConfig(t, configWith([]string{srv.URL}, nil))
	lb := start(t, "--config", file, "--listen", "127.0.0.1:0")
	url := "http://" + lb.waitFor(t, listening)
	if err := os.WriteFile(file, []byte(strings.Replace(configWith([]string{srv.URL}, nil),
		`"weighted-round-robin"`, `"ip-hash"`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	lb.signal(t, syscall.SIGHUP)
	lb.waitFor(t, `reload failed.*needs a restart`)
	if code, body, err := fetch(url + "/"); err != nil || code != http.StatusOK {
		t.Errorf("after the refused reload: %d %q %v", code, body, err)
	}
}
