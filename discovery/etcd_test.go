package discovery

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/roundhouse/roundhouse/internal/etcdtest"
)

// put sets key under prefix to a backend value for url.
func put(t *testing.T, cli *clientv3.Client, key, value string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if _, err := cli.Put(ctx, key, value); err != nil {
		t.Fatalf("etcd put %s: %v", key, err)
	}
}

func del(t *testing.T, cli *clientv3.Client, key string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if _, err := cli.Delete(ctx, key); err != nil {
		t.Fatalf("etcd delete %s: %v", key, err)
	}
}

func value(url string) string { return fmt.Sprintf(`{"url": %q}`, url) }

// routesTo waits until a request through in is answered by the backend
// called name, and returns how long that took.
func routesTo(t *testing.T, in *instance, name string, timeout time.Duration) time.Duration {
	t.Helper()
	return waitUntil(t, timeout, in.name+" routes to "+name, func() bool {
		for range 8 { // round-robin: one of a few requests must reach it
			if _, got, _, err := in.get("/"); err == nil && got == name {
				return true
			}
		}
		return false
	})
}

// load sends requests through the instances from 2 clients each until
// stop is called, and counts answers and errors (anything but a 200 from a
// backend).
type load struct {
	requests, errors atomic.Int64
	mu               sync.Mutex
	firstErr         error
	stop             func()
}

func startLoad(t *testing.T, ins ...*instance) *load {
	l := &load{}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, in := range ins {
		for range 2 {
			wg.Go(func() {
				for ctx.Err() == nil {
					code, backend, _, err := in.get("/")
					if err == nil && (code != http.StatusOK || backend == "") {
						err = fmt.Errorf("%s: status %d from %q", in.name, code, backend)
					}
					if err != nil {
						l.errors.Add(1)
						l.mu.Lock()
						if l.firstErr == nil {
							l.firstErr = err
						}
						l.mu.Unlock()
						continue
					}
					l.requests.Add(1)
				}
			})
		}
	}
	l.stop = sync.OnceFunc(func() { cancel(); wg.Wait() })
	t.Cleanup(l.stop)
	return l
}

// TestEtcdTwoInstancesActAsOne runs two balancers on one etcd prefix and
// changes the keys under them: they follow every change within a second,
// drain removed backends without cutting a request, and ride out an etcd
// outage with zero errors.
func TestEtcdTwoInstancesActAsOne(t *testing.T) {
	etcd := etcdtest.Start(t)
	cli := etcd.NewClient()
	t.Cleanup(func() { cli.Close() })
	origins := startOrigins(t, 4)
	const prefix = "/roundhouse/test/backends/"
	put(t, cli, prefix+"b1", value(origins[0].url))
	put(t, cli, prefix+"b2", value(origins[1].url))
	source := etcd.URL(prefix)
	a := startInstance(t, "a", "round-robin", nil, nil, testOptions(), source)
	b := startInstance(t, "b", "round-robin", nil, nil, testOptions(), source)
	for _, in := range []*instance{a, b} {
		if got, want := in.backends(t), weighted(origins[0].url, origins[1].url); !slices.Equal(got, want) {
			t.Fatalf("%s starts with %v, want %v", in.name, got, want)
		}
	}

	t.Run("a key added reaches both instances within a second", func(t *testing.T) {
		start := time.Now()
		put(t, cli, prefix+"b3", value(origins[2].url))
		var wg sync.WaitGroup
		took := make([]time.Duration, 2)
		for i, in := range []*instance{a, b} {
			wg.Go(func() { took[i] = routesTo(t, in, "b3", 5*time.Second) })
		}
		wg.Wait()
		worst := time.Since(start)
		t.Logf("propagation: put → routed by a in %v, by b in %v", took[0].Round(time.Millisecond), took[1].Round(time.Millisecond))
		if worst > time.Second {
			t.Errorf("the new backend took %v to reach both instances, want under 1s", worst)
		}
	})

	t.Run("a key deleted drains its backend: requests in flight complete, no new ones arrive", func(t *testing.T) {
		b3 := origins[2]
		arrivedAll := func() (n int64) {
			for _, o := range origins[:3] {
				n += o.arrived.Load()
			}
			return n
		}
		before := arrivedAll()
		var wg sync.WaitGroup
		var slowErrs atomic.Int64
		for _, in := range []*instance{a, b} {
			for range 6 { // round-robin over 3 backends: 2 of each 6 reach b3
				wg.Go(func() {
					code, _, _, err := in.get("/slow?d=1500ms")
					if err != nil || code != http.StatusOK {
						slowErrs.Add(1)
						t.Errorf("%s: a request in flight during the removal: %d %v", in.name, code, err)
					}
				})
			}
		}
		// Every slow request must have reached its backend before the delete:
		// one still on its way was picked while b3 was in the set, and may
		// rightly arrive there after the delete.
		waitUntil(t, 5*time.Second, "all 12 slow requests reached their backends", func() bool { return arrivedAll()-before == 12 })
		del(t, cli, prefix+"b3")
		waitUntil(t, 2*time.Second, "both instances stop sending to b3", func() bool {
			return a.state(t, b3.url) != "up" && b.state(t, b3.url) != "up"
		})
		arrived, inFlight := b3.arrived.Load(), b3.inFlight.Load()
		for _, in := range []*instance{a, b} {
			for range 30 {
				if code, got, _, err := in.get("/"); err != nil || code != http.StatusOK || got == "b3" {
					t.Errorf("%s after the delete: %d from %q, %v", in.name, code, got, err)
				}
			}
		}
		wg.Wait()
		if got := b3.arrived.Load(); got != arrived {
			t.Errorf("b3 received %d new requests after the delete, want none", got-arrived)
		}
		t.Logf("deleted b3 with %d requests in flight: all completed (%d errors); 60 requests after it, none at b3", inFlight, slowErrs.Load())
		waitUntil(t, 2*time.Second, "b3 is forgotten once its requests are done", func() bool {
			return a.state(t, b3.url) == "" && b.state(t, b3.url) == ""
		})
	})

	t.Run("etcd stopped: both keep serving the last set with zero errors, and follow a change made after it restarts", func(t *testing.T) {
		l := startLoad(t, a, b)
		waitUntil(t, 5*time.Second, "the load is flowing", func() bool { return l.requests.Load() > 100 })
		before := l.requests.Load()
		time.Sleep(500 * time.Millisecond) // pacing: the rate before the outage, to compare
		before = l.requests.Load() - before
		etcd.Stop()
		stopped := time.Now()
		a.logs.waitFor(t, 1, "etcd unreachable")
		b.logs.waitFor(t, 1, "etcd unreachable")
		t.Logf("outage noticed by both instances %v after the kill", time.Since(stopped).Round(time.Millisecond))
		during := l.requests.Load()
		time.Sleep(500 * time.Millisecond) // pacing: serve through the outage for a while
		during = l.requests.Load() - during
		for _, in := range []*instance{a, b} {
			if got, want := in.backends(t), weighted(origins[0].url, origins[1].url); !slices.Equal(got, want) {
				t.Errorf("%s during the outage: %v, want the last set %v", in.name, got, want)
			}
		}
		etcd.Restart()
		a.logs.waitFor(t, 1, "etcd reachable again")
		b.logs.waitFor(t, 1, "etcd reachable again")
		start := time.Now()
		put(t, cli, prefix+"b4", value(origins[3].url))
		var wg sync.WaitGroup
		for _, in := range []*instance{a, b} {
			wg.Go(func() { routesTo(t, in, "b4", 5*time.Second) })
		}
		wg.Wait()
		took := time.Since(start)
		l.stop()
		t.Logf("outage: %d requests in 500ms before it, %d in 500ms while etcd was down, %d in all, %d errors; after the restart a new key reached both in %v",
			before, during, l.requests.Load(), l.errors.Load(), took.Round(time.Millisecond))
		if n := l.errors.Load(); n > 0 {
			t.Errorf("%d client errors through the outage, want none; first: %v", n, l.firstErr)
		}
		for _, in := range []*instance{a, b} {
			if n := in.logs.count("etcd unreachable"); n != 1 {
				t.Errorf("%s logged the outage %d times, want once", in.name, n)
			}
			if n := in.logs.count("etcd reachable again"); n != 1 {
				t.Errorf("%s logged the recovery %d times, want once", in.name, n)
			}
			if n := in.logs.count("read the backends from etcd"); n != 1 {
				t.Errorf("%s read the whole prefix %d times, want once: the watch resumes after the outage", in.name, n)
			}
		}
	})
}

// TestEtcdInstancesAgreeOnStickyAndHashedRequests: a cookie one instance
// sets routes to the same backend through the other, and a header-hash
// key maps to the same backend through both, and through a third
// instance given the same backends statically, in the reverse order.
func TestEtcdInstancesAgreeOnStickyAndHashedRequests(t *testing.T) {
	etcd := etcdtest.Start(t)
	cli := etcd.NewClient()
	t.Cleanup(func() { cli.Close() })
	origins := startOrigins(t, 4)
	const prefix = "/roundhouse/agree/"
	var urls []string
	for _, o := range origins {
		put(t, cli, prefix+o.name, value(o.url))
		urls = append(urls, o.url)
	}
	slices.Reverse(urls)
	secret := []byte("a shared secret of 32 bytes.....")
	source := etcd.URL(prefix)

	t.Run("a sticky cookie from one instance pins the client through the other", func(t *testing.T) {
		a := startInstance(t, "a", "cookie", secret, nil, testOptions(), source)
		b := startInstance(t, "b", "cookie", secret, nil, testOptions(), source)
		pinned := map[string]bool{}
		for range 8 { // round-robin hands fresh clients every backend in turn
			_, first, resp, err := a.get("/")
			if err != nil || len(resp.Cookies()) != 1 {
				t.Fatalf("a: %v, cookies %v", err, resp.Cookies())
			}
			c := resp.Cookies()[0]
			pinned[first] = true
			for range 3 {
				_, got, resp, err := b.get("/", "Cookie: "+c.Name+"="+c.Value)
				if err != nil || got != first {
					t.Errorf("b with a's cookie for %s: answered by %q, %v", first, got, err)
				}
				if len(resp.Cookies()) != 0 {
					t.Errorf("b re-pinned a client a had pinned: %v", resp.Cookies())
				}
			}
		}
		if len(pinned) != len(origins) {
			t.Errorf("cookies pinned to %d backends, want all %d", len(pinned), len(origins))
		}
	})

	t.Run("a header-hash key maps to the same backend through every instance", func(t *testing.T) {
		a := startInstance(t, "a", "header-hash:X-User", nil, nil, testOptions(), source)
		b := startInstance(t, "b", "header-hash:X-User", nil, nil, testOptions(), source)
		c := startInstance(t, "c", "header-hash:X-User", nil, urls, testOptions())
		spread := map[string]int{}
		for i := range 100 {
			user := fmt.Sprintf("X-User: user-%d", i)
			var got []string
			for _, in := range []*instance{a, b, c} {
				_, backend, _, err := in.get("/", user)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, backend)
			}
			if got[0] != got[1] || got[0] != got[2] {
				t.Errorf("%s: a, b, c sent it to %v; want one backend", user, got)
			}
			spread[got[0]]++
		}
		t.Logf("100 keys over 4 backends, identical through 3 instances: %v", spread)
		if len(spread) != len(origins) {
			t.Errorf("keys reached %d backends, want all %d", len(spread), len(origins))
		}
	})
}

// TestEtcdResumesAfterCompaction cuts one instance off etcd (through a
// TCP relay), changes the keys and compacts etcd's history meanwhile. The
// resumed watch fails with ErrCompacted, and the provider reads the whole
// prefix again and applies the difference.
func TestEtcdResumesAfterCompaction(t *testing.T) {
	etcd := etcdtest.Start(t)
	cli := etcd.NewClient()
	t.Cleanup(func() { cli.Close() })
	relay := startRelay(t, etcd.Client)
	const prefix = "/roundhouse/compact/"
	origins := startOrigins(t, 3)
	put(t, cli, prefix+"b1", value(origins[0].url))
	put(t, cli, prefix+"b2", value(origins[1].url))
	a := startInstance(t, "a", "round-robin", nil, nil, testOptions(), "etcd://"+relay.addr()+prefix)

	relay.cut(true)
	a.logs.waitFor(t, 1, "etcd unreachable")
	del(t, cli, prefix+"b1")
	put(t, cli, prefix+"b2", fmt.Sprintf(`{"url": %q, "weight": 5}`, origins[1].url))
	put(t, cli, prefix+"b3", fmt.Sprintf(`{"url": %q, "enabled": false}`, origins[2].url))
	resp, err := cli.Get(t.Context(), "compact-marker")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Compact(t.Context(), resp.Header.Revision); err != nil {
		t.Fatalf("compact: %v", err)
	}
	relay.cut(false)
	a.logs.waitFor(t, 1, "etcd compacted the history")
	want := []string{origins[1].url + " weight=5", origins[2].url + " weight=1 disabled"}
	slices.Sort(want)
	waitUntil(t, 5*time.Second, "the instance has the keys' new set", func() bool {
		return slices.Equal(a.backends(t), want)
	})
	a.logs.waitFor(t, 2, "read the backends from etcd")
}

// TestEtcdValues: invalid values are logged and the key is no backend;
// weight and enabled changes reach the selector as SetWeight and
// SetEnabled; a key whose value turns invalid drains its backend; and a
// URL the static configuration has stays static.
func TestEtcdValues(t *testing.T) {
	etcd := etcdtest.Start(t)
	cli := etcd.NewClient()
	t.Cleanup(func() { cli.Close() })
	const prefix = "/roundhouse/values/"
	origins := startOrigins(t, 3)
	put(t, cli, prefix+"bad-json", `{"url": `)
	put(t, cli, prefix+"bad-url", `{"url": "ftp://x"}`)
	put(t, cli, prefix+"typo", fmt.Sprintf(`{"url": %q, "wieght": 3}`, origins[0].url))
	put(t, cli, prefix+"b1", value(origins[0].url))
	put(t, cli, prefix+"static", value(origins[2].url))
	a := startInstance(t, "a", "round-robin", nil, []string{origins[2].url}, testOptions(), etcd.URL(prefix))
	if got, want := a.backends(t), weighted(origins[2].url, origins[0].url); !slices.Equal(got, want) {
		t.Errorf("backends = %v, want %v", got, want)
	}
	for _, key := range []string{"bad-json", "bad-url", "typo"} {
		if n := a.logs.count("invalid backend in etcd", "key="+prefix+key); n != 1 {
			t.Errorf("%d log lines for the invalid %s, want 1", n, key)
		}
	}
	if n := a.logs.count("backend left to the source that has it", "backend="+origins[2].url); n != 1 {
		t.Errorf("%d log lines for the static backend etcd also lists, want 1:\n%s", n, a.logs)
	}

	put(t, cli, prefix+"b1", fmt.Sprintf(`{"url": %q, "weight": 7, "enabled": false}`, origins[0].url))
	want := []string{origins[0].url + " weight=7 disabled", origins[2].url + " weight=1"}
	slices.Sort(want)
	waitUntil(t, 2*time.Second, "the weight and enabled change", func() bool { return slices.Equal(a.backends(t), want) })
	if st := statusOf(t, a, origins[0].url); st.Source != etcd.URL(prefix) {
		t.Errorf("source = %q, want %q", st.Source, etcd.URL(prefix))
	}

	put(t, cli, prefix+"b1", `{"url": "not a url"}`)
	waitUntil(t, 2*time.Second, "the backend whose value turned invalid goes", func() bool {
		return slices.Equal(a.backends(t), weighted(origins[2].url))
	})
	// Deleting the key etcd shares with the static configuration leaves
	// the static backend alone.
	del(t, cli, prefix+"static")
	put(t, cli, prefix+"b2", value(origins[1].url))
	waitUntil(t, 2*time.Second, "b2 joins", func() bool {
		return slices.Equal(a.backends(t), weighted(origins[1].url, origins[2].url))
	})
}

// statusOf returns the status of the backend at url.
func statusOf(t *testing.T, in *instance, url string) (st struct{ Source string }) {
	t.Helper()
	all, err := in.sel.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range all {
		if b.Name == url {
			st.Source = b.Source
			return st
		}
	}
	t.Fatalf("no backend %s", url)
	return st
}

// relay is a TCP relay to etcd that the test can cut: while cut, it
// closes every connection it has and every new one at once, as a network
// partition would look to the client.
type relay struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	isCut  bool
	conns  map[net.Conn]bool
	wg     sync.WaitGroup
}

func startRelay(t *testing.T, target string) *relay {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &relay{ln: ln, target: target, conns: map[net.Conn]bool{}}
	r.wg.Go(r.accept)
	t.Cleanup(func() {
		ln.Close()
		r.cut(true)
		r.wg.Wait()
	})
	return r
}

func (r *relay) addr() string { return r.ln.Addr().String() }

func (r *relay) accept() {
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		r.mu.Lock()
		if r.isCut {
			r.mu.Unlock()
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", r.target)
		if err != nil {
			r.mu.Unlock()
			c.Close()
			continue
		}
		r.conns[c], r.conns[up] = true, true
		r.mu.Unlock()
		pipe := func(dst, src net.Conn) {
			_, _ = io.Copy(dst, src)
			dst.Close()
			src.Close()
		}
		r.wg.Go(func() { pipe(up, c) })
		r.wg.Go(func() { pipe(c, up) })
	}
}

// cut closes every connection and refuses new ones (true), or lets them
// through again (false).
func (r *relay) cut(on bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.isCut = on
	if on {
		for c := range r.conns {
			c.Close()
		}
		clear(r.conns)
	}
}
