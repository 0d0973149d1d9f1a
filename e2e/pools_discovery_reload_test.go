package e2e

import (
	"net/http"
	"net/url"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/roundhouse/roundhouse/internal/dnstest"
)

// TestAReloadRoutesToANewDiscoveredPoolOnceItsSourceHasAnswered: a
// reload that moves a route to a new pool whose only backends come from
// discovery makes the route current once the pool's source has answered,
// as start-up does, not before: a request right after the reload is
// served, not answered 503 by a pool with no backends yet. The source
// fails its first query, so that without the wait the route would be
// current ~250 ms (the provider's first retry) before the pool has a
// backend.
func TestAReloadRoutesToANewDiscoveredPoolOnceItsSourceHasAnswered(t *testing.T) {
	t.Cleanup(http.DefaultClient.CloseIdleConnections)
	b := demoBackends(t, "a", "d")
	dns := dnstest.Start(t)
	u, _ := url.Parse(b["d"])
	dns.Set(t, true, "_d._tcp.test. 1 IN SRV 1 1 "+u.Port()+" d.test.", "d.test. 1 IN A "+u.Hostname())
	dns.SetFail(true)
	file := writeConfig(t, routesConfig([]poolSpec{{name: "a", backends: []string{b["a"]}}}, [2]string{"x", "a"}))
	lb := start(t, "--config", file, "--listen", "127.0.0.1:0", "--access-log=false", "--dns-server", dns.Addr)
	addr := "http://" + lb.waitFor(t, listening)
	if code, body := get(t, addr+"/x/"); code != http.StatusOK || body != "Hello from a\n" {
		t.Fatalf("before the reload: %d %q", code, body)
	}

	next := routesConfig([]poolSpec{{name: "d", extra: "  discover = [\"dns+srv://_d._tcp.test\"]\n"}}, [2]string{"x", "d"})
	if err := os.WriteFile(file, []byte(next), 0o644); err != nil {
		t.Fatal(err)
	}
	lb.signal(t, syscall.SIGHUP)
	deadline := time.Now().Add(10 * time.Second)
	for dns.Queries() == 0 { // the new pool's source has asked, and failed
		if time.Now().After(deadline) {
			t.Fatalf("the new pool's source never asked; output:\n%s", lb.output())
		}
		time.Sleep(5 * time.Millisecond) // polling a counter of another process's queries
	}
	dns.SetFail(false)
	lb.waitFor(t, "reloaded: ")
	if code, body := get(t, addr+"/x/"); code != http.StatusOK || body != "Hello from d\n" {
		t.Errorf("right after the reload: %d %q, want 200 from d; output:\n%s", code, body, lb.output())
	}
}
