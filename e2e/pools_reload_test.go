package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	mathrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/roundhouse/roundhouse/admin"
	"github.com/roundhouse/roundhouse/demo"
	"github.com/roundhouse/roundhouse/internal/dnstest"
	"github.com/roundhouse/roundhouse/internal/testenv"
)

// Reloads of pools and routes on the binary: a reload under load moves a
// route, removes a pool and adds one without a client error; a removed
// pool drains and stops probing; a pool that stays keeps its state; a new
// one probes at once; a removed pool's open WebSocket and stream finish.

// probedDemo is a demo backend (package demo's handler) that counts its
// health probes (GET /health).
type probedDemo struct {
	url    string
	probes atomic.Int64
}

func startProbedDemo(t *testing.T, name string) *probedDemo {
	t.Helper()
	d := &probedDemo{}
	h := demo.Handler(name)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			d.probes.Add(1)
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	d.url = srv.URL
	return d
}

// poolSpec is a pool block: its name, backends, and extra lines.
type poolSpec struct {
	name     string
	backends []string
	extra    string
}

// routesConfig is a configuration with round-robin and 100 ms health
// checks at the top level, the pools given, and one route per prefix
// (in the order given), named after it and stripping it: prefix "a" is
// route "a", path_prefix "/a/".
func routesConfig(pools []poolSpec, routes ...[2]string) string {
	var b strings.Builder
	b.WriteString("policy = \"round-robin\"\nhealth {\n  path     = \"/health\"\n  interval = \"100ms\"\n}\n")
	for _, p := range pools {
		fmt.Fprintf(&b, "pool %q {\n", p.name)
		for _, u := range p.backends {
			fmt.Fprintf(&b, "  backend %q {}\n", u)
		}
		b.WriteString(p.extra)
		b.WriteString("}\n")
	}
	for _, r := range routes {
		fmt.Fprintf(&b, "route %q {\n  path_prefix  = \"/%s/\"\n  pool         = %q\n  strip_prefix = true\n}\n", r[0], r[0], r[1])
	}
	return b.String()
}

// adminPost posts to the admin API and returns the status and body,
// giving up after 20 s.
func adminPost(t *testing.T, url string) (int, string) {
	t.Helper()
	return adminPostWithin(t, url, 20*time.Second)
}

// adminPostWithin posts to the admin API and returns the status and body;
// taking longer than timeout, or any error, fails the test.
func adminPostWithin(t *testing.T, url string, timeout time.Duration) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	resp := mustDo(ctx, t, http.MethodPost, url)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

// mustDo sends a body-less method request to url with http.DefaultClient
// under ctx; failing to build or send it fails the test. The caller closes
// the response's body.
func mustDo(ctx context.Context, t *testing.T, method, url string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// TestAReloadUnderLoadMovesARouteRemovesAPoolAndAddsOneWithoutAClientError
// runs three pools of two demo backends each, behind /a/, /b/ and /c/,
// under steady load from 6 clients (GET, and POST with bodies checked by
// their digest) and one slow client on /c/. A SIGHUP moves /c/ to pool b
// and removes pool c: pool c drains, then its backends are probed no
// more, and pool a, unchanged, keeps its backends and counters. Then POST
// /reload adds pool d (/d/), which probes at once although its interval
// is 30 s, and the clients use it. No client sees an error.
func TestAReloadUnderLoadMovesARouteRemovesAPoolAndAddsOneWithoutAClientError(t *testing.T) {
	if testing.Short() {
		t.Skip("reload test skipped in -short mode")
	}
	t.Cleanup(http.DefaultClient.CloseIdleConnections)
	be := map[string]*probedDemo{}
	for _, n := range []string{"a1", "a2", "b1", "b2", "c1", "c2", "d1", "d2"} {
		be[n] = startProbedDemo(t, n)
	}
	pool := func(name, extra string) poolSpec {
		return poolSpec{name, []string{be[name+"1"].url, be[name+"2"].url}, extra}
	}
	file := writeConfig(t, routesConfig([]poolSpec{pool("a", ""), pool("b", ""), pool("c", "")},
		[2]string{"a", "a"}, [2]string{"b", "b"}, [2]string{"c", "c"}))
	lb := start(t, "--config", file, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--access-log=false")
	url := "http://" + lb.waitFor(t, listening)
	adminURL := "http://" + lb.waitFor(t, `listening: .*admin=(127\.0\.0\.1:\d+)`)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	prefixes := []string{"a", "b", "c", "d"}
	var active atomic.Int32 // how many of prefixes the clients use
	active.Store(3)
	var requests, errs, slow atomic.Int64
	perPrefix := make([]atomic.Int64, len(prefixes))
	var clients sync.WaitGroup
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	t.Cleanup(client.CloseIdleConnections)
	for c := range 6 {
		clients.Go(func() {
			for ctx.Err() == nil {
				i := mathrand.IntN(int(active.Load()))
				if err := checkedRequest(client, url+"/"+prefixes[i], c%2 == 0 && mathrand.IntN(2) == 0, 64<<10, ""); err != nil {
					if ctx.Err() != nil {
						return
					}
					if errs.Add(1) <= 5 {
						t.Errorf("client %d, /%s/: %v", c, prefixes[i], err)
					}
					continue
				}
				requests.Add(1)
				perPrefix[i].Add(1)
			}
		})
	}
	clients.Go(func() { // keeps requests in flight in pool c, then in b
		for ctx.Err() == nil {
			code, body, err := fetch(url + "/c/slow?d=150ms")
			if ctx.Err() != nil {
				return
			}
			if err != nil || code != http.StatusOK {
				if errs.Add(1) <= 5 {
					t.Errorf("slow client: %d %q %v", code, body, err)
				}
				continue
			}
			slow.Add(1)
		}
	})
	flow := func(n int64) { // lets n more requests through (fewer once a client has failed)
		t.Helper()
		start := requests.Load()
		testenv.WaitUntil(t, 30*time.Second, fmt.Sprintf("%d more requests", n), func() bool {
			return requests.Load() >= start+n || errs.Load() != 0
		})
	}
	flow(200)

	before := poolStatus(t, adminURL)["a"]
	began := time.Now()
	if err := os.WriteFile(file, []byte(routesConfig([]poolSpec{pool("a", ""), pool("b", "")},
		[2]string{"a", "a"}, [2]string{"b", "b"}, [2]string{"c", "b"})), 0o644); err != nil {
		t.Fatal(err)
	}
	lb.signal(t, syscall.SIGHUP)
	lb.waitForCount(t, 1, "roundhouse: reloaded:")
	if !regexp.MustCompile(`roundhouse: reloaded: .*backends=4 .*pools=2 routes=3`).MatchString(lb.output()) {
		t.Errorf("the reloaded line does not count the 4 backends of 2 pools and the 3 routes:\n%s", lb.output())
	}
	lb.waitFor(t, `pool removed; draining: pool=c`)
	lb.waitFor(t, `pool drained and stopped: pool=c`)
	drained := time.Since(began)
	flow(100)
	after := poolStatus(t, adminURL)
	if _, ok := after["c"]; ok {
		t.Errorf("/status still lists pool c after it drained: %+v", after["c"])
	}
	if code, body := adminPost(t, adminURL+"/pools/c/backends/x/disable"); code != http.StatusNotFound {
		t.Errorf("POST /pools/c/backends/x/disable after pool c went: %d %s, want 404", code, body)
	}
	if len(after["a"]) != len(before) {
		t.Fatalf("pool a: %d backends after the reload, %d before", len(after["a"]), len(before))
	}
	for i, b := range after["a"] {
		if b.ID != before[i].ID || b.Requests < before[i].Requests || b.Probes < before[i].Probes {
			t.Errorf("pool a's %s did not keep its state: before %+v, after %+v", b.Name, before[i], b)
		}
	}
	// Pool c's backends are probed no more: pool a's are probed five times
	// more meanwhile.
	c1, c2 := be["c1"].probes.Load(), be["c2"].probes.Load()
	a1 := be["a1"].probes.Load()
	testenv.WaitUntil(t, 10*time.Second, "5 more probes of a1", func() bool { return be["a1"].probes.Load() >= a1+5 })
	if n1, n2 := be["c1"].probes.Load(), be["c2"].probes.Load(); n1 != c1 || n2 != c2 {
		t.Errorf("pool c's backends still probed after it drained: %d and %d more probes", n1-c1, n2-c2)
	}

	// POST /reload adds pool d, whose health interval is 30 s.
	if err := os.WriteFile(file, []byte(routesConfig([]poolSpec{pool("a", ""), pool("b", ""), pool("d", "  health {\n    interval = \"30s\"\n  }\n")},
		[2]string{"a", "a"}, [2]string{"b", "b"}, [2]string{"c", "b"}, [2]string{"d", "d"})), 0o644); err != nil {
		t.Fatal(err)
	}
	reloaded := time.Now()
	if code, body := adminPost(t, adminURL+"/reload"); code != http.StatusOK || !strings.Contains(body, `"reloaded": true`) {
		t.Fatalf("POST /reload: %d %s", code, body)
	}
	testenv.WaitUntil(t, 5*time.Second, "pool d's backends are probed (interval 30 s)", func() bool {
		return be["d1"].probes.Load() > 0 && be["d2"].probes.Load() > 0
	})
	firstProbe := time.Since(reloaded)
	active.Store(4)
	flow(300)
	cancel()
	clients.Wait()

	if n := errs.Load(); n != 0 {
		t.Errorf("%d client errors", n)
	}
	if perPrefix[3].Load() == 0 {
		t.Errorf("no request reached pool d")
	}
	final := poolStatus(t, adminURL)
	var inD uint64
	for _, b := range final["d"] {
		inD += b.Requests
	}
	t.Logf("%d requests (a %d, b %d, c %d, d %d; %d slow ones on /c/), %d client errors; pool c drained and stopped %v after the SIGHUP; pool d probed %v after POST /reload and served %d requests",
		requests.Load(), perPrefix[0].Load(), perPrefix[1].Load(), perPrefix[2].Load(), perPrefix[3].Load(), slow.Load(),
		errs.Load(), drained.Round(time.Millisecond), firstProbe.Round(time.Millisecond), inD)
	if t.Failed() {
		t.Logf("balancer output:\n%s", lb.output())
	}
}

// TestAReloadThatRemovesAPoolLetsItsOpenWebSocketAndStreamFinish: pool
// "ws" carries an open WebSocket and pool "stream" a server-sent event
// stream when a reload removes both pools. The WebSocket still echoes and
// the stream sends every event; each pool is stopped only once what it
// carried has ended, while new requests go to the pool that stays.
func TestAReloadThatRemovesAPoolLetsItsOpenWebSocketAndStreamFinish(t *testing.T) {
	t.Cleanup(http.DefaultClient.CloseIdleConnections)
	wsBackend := echoWebSocketBackend(t)
	streamer := demoBackend(t, "streamer")
	rest := demoBackend(t, "rest")
	src := func(withOld bool) string {
		var b strings.Builder
		b.WriteString("policy = \"round-robin\"\n")
		if withOld {
			fmt.Fprintf(&b, "pool \"ws\" {\n  backend %q {}\n}\npool \"stream\" {\n  backend %q {}\n}\n", wsBackend.URL, streamer)
			b.WriteString("route \"ws\" {\n  path_prefix = \"/ws\"\n  pool        = \"ws\"\n}\n")
			b.WriteString("route \"stream\" {\n  path_prefix = \"/sse\"\n  pool        = \"stream\"\n}\n")
		}
		fmt.Fprintf(&b, "pool \"rest\" {\n  backend %q {}\n}\nroute \"rest\" {\n  pool = \"rest\"\n}\n", rest)
		return b.String()
	}
	file := writeConfig(t, src(true))
	lb := start(t, "--config", file, "--listen", "127.0.0.1:0", "--access-log=false")
	addr := lb.waitFor(t, listening)

	ws := dialWebSocket(t, addr)
	ws.echo("before the reload")
	const events = 8
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp := mustDo(ctx, t, http.MethodGet, fmt.Sprintf("http://%s/sse?n=%d&every=250ms", addr, events))
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	got, last := 0, ""
	next := func() bool { // reads the next event's data line
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "data: ") {
				got++
				last = sc.Text()
				return true
			}
		}
		return false
	}
	if !next() {
		t.Fatalf("no first event: %v", sc.Err())
	}
	streamOpened := time.Now()

	if err := os.WriteFile(file, []byte(src(false)), 0o644); err != nil {
		t.Fatal(err)
	}
	lb.signal(t, syscall.SIGHUP)
	lb.waitFor(t, `pool removed; draining: pool=ws`)
	lb.waitFor(t, `pool removed; draining: pool=stream`)
	if code, body, err := fetch("http://" + addr + "/sse?n=1"); err != nil || code != http.StatusOK || !strings.Contains(body, "from rest") {
		t.Errorf("a new request after the reload: %d %q %v, want 200 from rest", code, body, err)
	}
	ws.echo("after the reload")
	for got < events-1 && next() {
	}
	if strings.Contains(lb.output(), "pool drained and stopped: pool=stream") {
		t.Errorf("pool stream stopped with its stream open (%d of %d events read):\n%s", got, events, lb.output())
	}
	for next() {
	}
	if got != events || !strings.Contains(last, "from streamer") {
		t.Errorf("the stream through the removed pool: %d events, last %q (%v); want %d from streamer", got, last, sc.Err(), events)
	}
	streamed := time.Since(streamOpened)
	lb.waitFor(t, `pool drained and stopped: pool=stream`)
	ws.echo("after the stream ended")
	if strings.Contains(lb.output(), "pool drained and stopped: pool=ws") {
		t.Fatalf("pool ws stopped with its WebSocket open:\n%s", lb.output())
	}
	ws.c.Close()
	wsClosed := time.Now()
	lb.waitFor(t, `pool drained and stopped: pool=ws`)
	t.Logf("the stream ran %v after the reload with all %d events; pool ws stopped %v after its WebSocket closed",
		streamed.Round(time.Millisecond), got, time.Since(wsClosed).Round(time.Millisecond))
	if t.Failed() {
		t.Logf("balancer output:\n%s", lb.output())
	}
}

// TestAReloadKeepsAnUnchangedPoolsRoundRobinPosition: pool a answers
// three requests in turn; a reload adds a backend to pool b and a route
// before the others. Pool a's next answer is the one after its last, as
// if nothing happened, pool b's three next answers come from its three
// backends, and /routes lists the new routes in order.
func TestAReloadKeepsAnUnchangedPoolsRoundRobinPosition(t *testing.T) {
	t.Cleanup(http.DefaultClient.CloseIdleConnections)
	o := map[string]*origin{}
	for _, n := range []string{"a1", "a2", "b1", "b2", "b3"} {
		o[n] = startOrigin(t, n)
	}
	pa := poolSpec{"a", []string{o["a1"].url, o["a2"].url}, ""}
	file := writeConfig(t, routesConfig([]poolSpec{pa, {"b", []string{o["b1"].url, o["b2"].url}, ""}},
		[2]string{"a", "a"}, [2]string{"b", "b"}))
	lb := start(t, "--config", file, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--access-log=false")
	addr := lb.waitFor(t, listening)
	adminURL := "http://" + lb.waitFor(t, `listening: .*admin=(127\.0\.0\.1:\d+)`)
	var turns []string
	for range 3 {
		turns = append(turns, ask(t, addr, "GET", "", "/a/x").name)
	}
	alternates(t, "a", turns[:2], "a1", "a2")

	if err := os.WriteFile(file, []byte(routesConfig([]poolSpec{pa, {"b", []string{o["b1"].url, o["b2"].url, o["b3"].url}, ""}},
		[2]string{"x", "a"}, [2]string{"a", "a"}, [2]string{"b", "b"})), 0o644); err != nil {
		t.Fatal(err)
	}
	lb.signal(t, syscall.SIGHUP)
	lb.waitFor(t, "roundhouse: reloaded:")
	if next := ask(t, addr, "GET", "", "/a/x").name; next != turns[1] {
		t.Errorf("pool a answered %v before the reload, then %s: want %s, its round-robin position kept", turns, next, turns[1])
	}
	b := map[string]bool{}
	for range 3 {
		b[ask(t, addr, "GET", "", "/b/x").name] = true
	}
	if len(b) != 3 {
		t.Errorf("pool b after the reload that added b3: answers %v, want its three backends", b)
	}
	if got := ask(t, addr, "GET", "", "/x/y"); got.name == "" || got.name[0] != 'a' || got.uri != "/y" {
		t.Errorf("the new route x: %d %q, want pool a with /y", got.code, got.body)
	}
	code, body := get(t, adminURL+"/routes")
	var rr admin.RoutesResponse
	if err := json.Unmarshal([]byte(body), &rr); code != http.StatusOK || err != nil {
		t.Fatalf("GET /routes: %d %s %v", code, body, err)
	}
	var got []string
	for _, r := range rr.Routes {
		got = append(got, r.Name+"->"+r.Pool+" "+r.PathPrefix)
	}
	if want := []string{"x->a /x/", "a->a /a/", "b->b /b/"}; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("GET /routes after the reload: %v, want %v", got, want)
	}
}

// TestAPoolAddedBackWhileItDrainsRunsBesideTheOldOne: a reload removes
// pool ws while a WebSocket is open through it, and the next adds pool ws
// back. The new pool serves a second WebSocket; the old one drains and
// stops when the first closes, and the new one runs on.
func TestAPoolAddedBackWhileItDrainsRunsBesideTheOldOne(t *testing.T) {
	t.Cleanup(http.DefaultClient.CloseIdleConnections)
	wsBackend := echoWebSocketBackend(t)
	rest := demoBackend(t, "rest")
	src := func(withWS bool) string {
		var b strings.Builder
		b.WriteString("policy = \"round-robin\"\n")
		if withWS {
			fmt.Fprintf(&b, "pool \"ws\" {\n  backend %q {}\n}\nroute \"ws\" {\n  path_prefix = \"/ws\"\n  pool        = \"ws\"\n}\n", wsBackend.URL)
		}
		fmt.Fprintf(&b, "pool \"rest\" {\n  backend %q {}\n}\nroute \"rest\" {\n  pool = \"rest\"\n}\n", rest)
		return b.String()
	}
	file := writeConfig(t, src(true))
	lb := start(t, "--config", file, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--access-log=false")
	addr := lb.waitFor(t, listening)
	adminURL := "http://" + lb.waitFor(t, `listening: .*admin=(127\.0\.0\.1:\d+)`)
	first := dialWebSocket(t, addr)
	first.echo("through the first pool ws")

	reload := func(withWS bool, n int) {
		t.Helper()
		if err := os.WriteFile(file, []byte(src(withWS)), 0o644); err != nil {
			t.Fatal(err)
		}
		lb.signal(t, syscall.SIGHUP)
		lb.waitForCount(t, n, "roundhouse: reloaded:")
	}
	reload(false, 1)
	lb.waitFor(t, `pool removed; draining: pool=ws`)
	reload(true, 2)
	second := dialWebSocket(t, addr)
	second.echo("through the second pool ws")
	first.echo("still through the first")
	st := poolStatus(t, adminURL)
	if len(st["ws"]) != 1 || st["ws"][0].InFlight != 1 {
		t.Errorf("/status pool ws: %+v; want the new pool, with the second WebSocket alone in flight", st["ws"])
	}
	first.c.Close()
	lb.waitFor(t, `pool drained and stopped: pool=ws`)
	second.echo("after the old pool stopped")
	if code, body, err := fetch("http://" + addr + "/"); err != nil || code != http.StatusOK {
		t.Errorf("GET / beside: %d %q %v", code, body, err)
	}
	st = poolStatus(t, adminURL)
	if len(st["ws"]) != 1 || st["ws"][0].State != "up" {
		t.Errorf("/status pool ws after the old one stopped: %+v", st["ws"])
	}
	if n := strings.Count(lb.output(), "pool drained and stopped"); n != 1 {
		t.Errorf("%d pools stopped, want the old ws alone:\n%s", n, lb.output())
	}
	if t.Failed() {
		t.Logf("balancer output:\n%s", lb.output())
	}
}

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
