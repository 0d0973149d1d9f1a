package e2e

import (
	"context"
	"encoding/json"
	mathrand "math/rand/v2"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/roundhouse/roundhouse/admin"
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
		backends = append(backends, demoBackend(t, name))
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
			if n := strings.Count(lb.output(), "roundhouse: reloaded:"); n != reloads {
				t.Errorf("after the invalid file: %d reloads applied, want %d", n, reloads)
			}
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
	out := lb.output()
	// A removed backend with requests in flight must let them finish (the
	// slow clients saw no error); make sure the run did remove some so.
	drained := len(regexp.MustCompile(`backend removing: .*in_flight=[1-9]`).FindAllString(out, -1))
	t.Logf("%d requests, %d reloads and one invalid file; %d backends removed along the way, %d removals begun with requests in flight",
		requests.Load(), reloads, strings.Count(out, "backend removed"), drained)
	if drained == 0 {
		t.Error("no backend was removed while it had requests in flight")
	}
	if t.Failed() {
		t.Logf("balancer output:\n%s", lb.output())
	}
}

// TestReloadRefusesAPolicyThatNeedsARestart: the proxy extracts request
// keys for the policy it started with, so a reload may not switch to a
// policy that keys requests differently; the running configuration stays.
func TestReloadRefusesAPolicyThatNeedsARestart(t *testing.T) {
	t.Cleanup(http.DefaultClient.CloseIdleConnections)
	srv := demoBackend(t, "a")
	file := writeConfig(t, configWith([]string{srv}, nil))
	lb := start(t, "--config", file, "--listen", "127.0.0.1:0")
	url := "http://" + lb.waitFor(t, listening)
	if err := os.WriteFile(file, []byte(strings.Replace(configWith([]string{srv}, nil),
		`"weighted-round-robin"`, `"ip-hash"`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	lb.signal(t, syscall.SIGHUP)
	lb.waitFor(t, `reload failed.*needs a restart`)
	if code, body, err := fetch(url + "/"); err != nil || code != http.StatusOK {
		t.Errorf("after the refused reload: %d %q %v", code, body, err)
	}
}

// TestAdminReloadAppliesTheFileOrKeepsTheRunningOne: POST /reload on the
// admin API of a running balancer reads its file again, as SIGHUP does. A
// file with a problem is refused with the problem's position and changes
// nothing; a good one is applied, and the answer comes once it is.
func TestAdminReloadAppliesTheFileOrKeepsTheRunningOne(t *testing.T) {
	t.Cleanup(http.DefaultClient.CloseIdleConnections)
	var backends []string
	for _, name := range []string{"a", "b"} {
		backends = append(backends, demoBackend(t, name))
	}
	file := writeConfig(t, configWith(backends[:1], nil))
	lb := start(t, "--config", file, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--access-log=false")
	url := "http://" + lb.waitFor(t, listening)
	adminURL := "http://" + lb.waitFor(t, `listening: .*admin=(127\.0\.0\.1:\d+)`)

	reload := func() (int, string) {
		t.Helper()
		return adminPostWithin(t, adminURL+"/reload", 10*time.Second)
	}
	// backendsNow returns the URLs /status lists, in order.
	backendsNow := func() []string {
		t.Helper()
		code, body := get(t, adminURL+"/status")
		var st admin.StatusResponse
		if err := json.Unmarshal([]byte(body), &st); code != http.StatusOK || err != nil {
			t.Fatalf("GET /status: %d %s %v", code, body, err)
		}
		var urls []string
		for _, b := range st.Backends {
			urls = append(urls, b.Name)
		}
		return urls
	}
	// answers counts who answers n requests.
	answers := func(n int) map[string]int {
		t.Helper()
		got := map[string]int{}
		for range n {
			code, body := get(t, url+"/")
			if code != http.StatusOK {
				t.Fatalf("GET /: %d %q", code, body)
			}
			got[strings.TrimSpace(strings.TrimPrefix(body, "Hello from "))]++
		}
		return got
	}

	bad := configWith(backends, nil) + "retries = \"2\"\n"
	if err := os.WriteFile(file, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	code, body := reload()
	want := file + ":8:11: retries: want a whole number, got a string"
	if code != http.StatusInternalServerError || !strings.Contains(body, want) || strings.Contains(body, "reload: reload:") {
		t.Errorf("POST /reload of a bad file: %d %s, want 500 and %q once", code, body, want)
	}
	if got := backendsNow(); !slices.Equal(got, backends[:1]) {
		t.Errorf("after the refused reload /status lists %v, want %v", got, backends[:1])
	}
	if got := answers(4); got["a"] != 4 {
		t.Errorf("after the refused reload: answers %v, want a alone", got)
	}

	if err := os.WriteFile(file, []byte(configWith(backends, nil)), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, body := reload(); code != http.StatusOK || !strings.Contains(body, `"reloaded": true`) {
		t.Fatalf("POST /reload of a good file: %d %s", code, body)
	}
	if got := backendsNow(); !slices.Equal(got, backends) {
		t.Errorf("after the reload /status lists %v, want %v", got, backends)
	}
	if got := answers(4); got["a"] != 2 || got["b"] != 2 {
		t.Errorf("after the reload: answers %v, want 2 from each of a and b", got)
	}
	if strings.Count(lb.output(), "roundhouse: reloaded:") != 1 {
		t.Errorf("want one reload logged:\n%s", lb.output())
	}
}
