package e2e

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/roundhouse/roundhouse/internal/dnstest"
	"github.com/roundhouse/roundhouse/internal/etcdtest"
)

// These tests run the built binary with --discover: the flags reach the
// providers, the providers' backends serve alongside the static ones, and
// a reload of the file leaves discovered backends alone.

// answering sends requests to lb until the set of backends that answer
// (their X-Backend) is exactly want, for up to 10 s.
func answering(t *testing.T, lb string, want ...string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		seen := map[string]bool{}
		for range 4 * len(want) { // round-robin: every backend answers in a few rounds
			resp, err := http.Get(lb)
			if err == nil {
				seen[resp.Header.Get("X-Backend")] = true
				resp.Body.Close()
			}
		}
		ok := len(seen) == len(want)
		for _, w := range want {
			ok = ok && seen[w]
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("backends answering %v, want exactly %v", seen, want)
		}
		time.Sleep(20 * time.Millisecond) // pacing between rounds
	}
}

func TestServeDiscoversFromDNSAndAReloadKeepsWhatItFound(t *testing.T) {
	t.Cleanup(http.DefaultClient.CloseIdleConnections)
	b := demoBackends(t, "a", "b", "c", "d")
	d := dnstest.Start(t)
	var records []string
	for _, n := range []string{"a", "b"} {
		u, _ := url.Parse(b[n])
		records = append(records, "_web._tcp.test. 1 IN SRV 1 1 "+u.Port()+" "+n+".test.", n+".test. 1 IN A "+u.Hostname())
	}
	d.Set(t, true, records...)
	file := writeConfig(t, configWith([]string{b["c"]}, nil))
	lb := start(t, "--config", file, "--listen", "127.0.0.1:0", "--access-log=false", "--health-interval", "100ms",
		"--discover", "dns+srv://_web._tcp.test", "--dns-server", d.Addr)
	addr := "http://" + lb.waitFor(t, listening)
	lb.waitFor(t, "discover=1")
	answering(t, addr, "a", "b", "c")

	// The file now lists d instead of c: c goes, the discovered a and b stay.
	if err := os.WriteFile(file, []byte(configWith([]string{b["d"]}, nil)), 0o644); err != nil {
		t.Fatal(err)
	}
	lb.signal(t, syscall.SIGHUP)
	lb.waitFor(t, "reloaded")
	answering(t, addr, "a", "b", "d")

	// The records change: b goes.
	d.Set(t, true, records[:2]...)
	answering(t, addr, "a", "d")
	if t.Failed() {
		t.Logf("output:\n%s", lb.output())
	}
}

func TestTwoProcessesFollowOneEtcdPrefix(t *testing.T) {
	t.Cleanup(http.DefaultClient.CloseIdleConnections)
	etcd := etcdtest.Start(t)
	cli := etcd.NewClient()
	t.Cleanup(func() { cli.Close() })
	b := demoBackends(t, "a", "b")
	const prefix = "/roundhouse/processes/"
	putValue := func(key, value string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		if _, err := cli.Put(ctx, prefix+key, value); err != nil {
			t.Fatal(err)
		}
	}
	putValue("a", `{"url": "`+b["a"]+`"}`)
	var lbs []string
	for range 2 {
		p := start(t, "--listen", "127.0.0.1:0", "--access-log=false", "--discover", etcd.URL(prefix))
		lbs = append(lbs, "http://"+p.waitFor(t, listening))
		p.waitFor(t, "read the backends from etcd")
	}
	for _, lb := range lbs {
		answering(t, lb, "a")
	}
	putValue("b", `{"url": "`+b["b"]+`", "weight": 2}`)
	for _, lb := range lbs {
		answering(t, lb, "a", "b")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if _, err := cli.Delete(ctx, prefix, clientv3.WithPrefix()); err != nil {
		t.Fatal(err)
	}
	for _, lb := range lbs {
		deadline := time.Now().Add(10 * time.Second)
		for {
			resp, err := http.Get(lb)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode == http.StatusServiceUnavailable {
				break // every backend gone: 503 at once
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s still answers %d after every key was deleted", lb, resp.StatusCode)
			}
			time.Sleep(20 * time.Millisecond) // pacing
		}
	}
}
