package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/roundhouse/roundhouse/actors"
	"github.com/roundhouse/roundhouse/admin"
	"github.com/roundhouse/roundhouse/internal/dnstest"
	"github.com/roundhouse/roundhouse/internal/etcdtest"
	"github.com/roundhouse/roundhouse/internal/testenv"
)

// These tests run the binary with pool and route blocks (docs/configuration.md,
// "Pools and routes"): requests reach the pool their route names, each pool
// balances among its own backends, one pool's trouble stays its own, the
// admin API and the status command work per pool, and discovery feeds one
// pool. pools_reload_test.go has the reloads.

// origin is a backend for the pool tests. It answers every request but
// its health probes (GET /health, answered 200 and counted apart) with
// three lines: its name, the request target as it arrived, and the
// X-Forwarded-Prefix header.
type origin struct {
	name   string
	url    string
	hits   atomic.Int64 // requests other than health probes
	probes atomic.Int64 // GET /health
}

// startOrigin starts an origin named name, closed when the test ends.
func startOrigin(t *testing.T, name string) *origin {
	t.Helper()
	o := &origin{name: name}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			o.probes.Add(1)
			return
		}
		o.hits.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
		fmt.Fprintf(w, "%s\n%s\n%s\n", name, r.RequestURI, r.Header.Get("X-Forwarded-Prefix"))
	}))
	t.Cleanup(srv.Close)
	o.url = srv.URL
	return o
}

// answer is what the balancer answered, and for an origin's answer who
// answered, the target it saw and the X-Forwarded-Prefix it got.
type answer struct {
	code              int
	body              string
	name, uri, prefix string
}

// parseAnswer splits an origin's three lines (name, uri, prefix).
func parseAnswer(code int, body string) answer {
	a := answer{code: code, body: body}
	if lines := strings.Split(body, "\n"); code == http.StatusOK && len(lines) >= 3 {
		a.name, a.uri, a.prefix = lines[0], lines[1], lines[2]
	}
	return a
}

// ask sends method target to the balancer at addr with Host host ("" for
// addr) and the headers given (name, value, ...).
func ask(t *testing.T, addr, method, host, target string, hdr ...string) answer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var body io.Reader
	if method == http.MethodPost || method == http.MethodPut {
		body = strings.NewReader("a body of some bytes")
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+addr+target, body)
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s (Host %q): %v", method, target, host, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, target, err)
	}
	return parseAnswer(resp.StatusCode, string(b))
}

// rawAsk sends GET target over a TCP connection of its own, so that the
// request target arrives exactly as written (a client library would clean
// or escape it), with the extra header lines given.
func rawAsk(t *testing.T, addr, target string, hdr ...string) answer {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	req := "GET " + target + " HTTP/1.1\r\nHost: " + addr + "\r\nConnection: close\r\n"
	for _, h := range hdr {
		req += h + "\r\n"
	}
	if _, err := io.WriteString(conn, req+"\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("GET %s: %v", target, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading the body: %v", target, err)
	}
	return parseAnswer(resp.StatusCode, string(b))
}

// poolStatus returns GET /status's pools, by name.
func poolStatus(t *testing.T, adminURL string) map[string][]actors.BackendStatus {
	t.Helper()
	code, body := get(t, adminURL+"/status")
	var st admin.StatusResponse
	if err := json.Unmarshal([]byte(body), &st); code != http.StatusOK || err != nil {
		t.Fatalf("GET /status: %d %s %v", code, body, err)
	}
	out := map[string][]actors.BackendStatus{}
	for _, p := range st.PoolList() {
		out[p.Name] = p.Backends
	}
	return out
}

// alternates checks that names, the backends that answered a pool's
// requests in turn, alternate exactly between the pool's two backends.
func alternates(t *testing.T, pool string, names []string, backends ...string) {
	t.Helper()
	count := map[string]int{}
	for i, n := range names {
		count[n]++
		if i > 0 && n == names[i-1] {
			t.Errorf("pool %s: answers %v do not alternate", pool, names)
			return
		}
	}
	for _, b := range backends {
		if count[b] != len(names)/len(backends) {
			t.Errorf("pool %s: answers %v, want %d from each of %v", pool, names, len(names)/len(backends), backends)
			return
		}
	}
}

// threePools is the configuration of TestThreePoolsAndSixBackendsBehindHostPrefixMethodAndHeaderRoutes.
const threePools = `
policy = "round-robin"
health {
  path     = "/health"
  interval = "100ms"
}

pool "api" {
  backend %[1]q {}
  backend %[2]q {}
}
pool "web" {
  backend %[3]q {}
  backend %[4]q {}
}
pool "ops" {
  backend %[5]q {}
  backend %[6]q {}
}

route "admin" {
  path_prefix = "/admin"
  headers     = { "X-Admin" = "yes" }
  pool        = "ops"
}
route "api-hosts" {
  hosts = ["*.api.test", "Api.Example.TEST"]
  pool  = "api"
}
route "v1" {
  path_prefix  = "/v1/"
  pool         = "api"
  strip_prefix = true
}
route "v2" {
  path_prefix  = "/v2"
  pool         = "api"
  strip_prefix = true
}
route "writes" {
  methods = ["POST", "PUT"]
  pool    = "ops"
}
route "public" {
  path_prefix = "/public"
  pool        = "web"
}
route "www" {
  hosts = ["www.test"]
  pool  = "web"
}
`

// TestThreePoolsAndSixBackendsBehindHostPrefixMethodAndHeaderRoutes runs
// one balancer with three pools of two backends each, behind routes on
// hosts (a wildcard, and a name with a port in mixed case), path prefixes
// (stripped, with and without a trailing "/"), methods and a header. Each
// request reaches the pool and path its route says, each pool alternates
// exactly between its own two backends, a request no route matches gets a
// short 404 counted in the metrics, and traversals, raw and encoded, are
// refused or routed as the backend would see the path.
func TestThreePoolsAndSixBackendsBehindHostPrefixMethodAndHeaderRoutes(t *testing.T) {
	t.Cleanup(http.DefaultClient.CloseIdleConnections)
	var o []*origin
	var urls []any
	for _, n := range []string{"api1", "api2", "web1", "web2", "ops1", "ops2"} {
		b := startOrigin(t, n)
		o = append(o, b)
		urls = append(urls, b.url)
	}
	file := writeConfig(t, fmt.Sprintf(threePools, urls...))
	lb := start(t, "--config", file, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0")
	addr := lb.waitFor(t, listening)
	adminURL := "http://" + lb.waitFor(t, `listening: .*admin=(127\.0\.0\.1:\d+)`)

	// Exact round-robin in each pool, reached by its own kind of route.
	turns := map[string][]string{}
	for i := range 6 {
		turns["web"] = append(turns["web"], ask(t, addr, "GET", "www.test", "/rr").name)
		host := "x.api.test"
		if i%2 == 1 {
			host = "a.b.api.test" // the wildcard covers more than one label
		}
		turns["api"] = append(turns["api"], ask(t, addr, "GET", host, "/rr").name)
		turns["ops"] = append(turns["ops"], ask(t, addr, "POST", "", "/rr").name)
	}
	alternates(t, "web", turns["web"], "web1", "web2")
	alternates(t, "api", turns["api"], "api1", "api2")
	alternates(t, "ops", turns["ops"], "ops1", "ops2")

	// Where each request goes, and the target and prefix its backend sees.
	type want struct {
		pool, uri, prefix string // pool "" for a 404
	}
	cases := []struct {
		name                 string
		method, host, target string
		hdr                  []string
		want                 want
	}{
		{"a host with a port in mixed case", "GET", "API.example.test:8443", "/p", nil, want{"api", "/p", ""}},
		{"the wildcard never covers the bare suffix", "GET", "api.test", "/p", nil, want{}},
		{"a prefix with a trailing slash is stripped", "GET", "", "/v1/users?q=1", nil, want{"api", "/users?q=1", "/v1"}},
		{"a prefix with a trailing slash matches by bytes", "GET", "", "/v1", nil, want{}},
		{"a prefix without a trailing slash, whole path", "GET", "", "/v2", nil, want{"api", "/", "/v2"}},
		{"a prefix without a trailing slash, below it", "GET", "", "/v2/x/y", nil, want{"api", "/x/y", "/v2"}},
		{"a prefix matches whole segments", "GET", "", "/v2x", nil, want{}},
		{"a method route", "PUT", "", "/anything", nil, want{"ops", "/anything", ""}},
		{"a method no route lists", "DELETE", "", "/anything", nil, want{}},
		{"a header route", "GET", "", "/admin/panel", []string{"X-Admin", "yes"}, want{"ops", "/admin/panel", ""}},
		{"a header route without its header", "GET", "", "/admin/panel", nil, want{}},
		{"a header route with another value", "GET", "", "/admin/panel", []string{"X-Admin", "no"}, want{}},
		{"an unprefixed path is not stripped", "GET", "", "/public/page", nil, want{"web", "/public/page", ""}},
	}
	notFound := 0
	for _, c := range cases {
		got := ask(t, addr, c.method, c.host, c.target, c.hdr...)
		checkAnswer(t, c.name, got, c.want.pool, c.want.uri, c.want.prefix)
		if c.want.pool == "" {
			notFound++
		}
	}

	// Targets as written, over raw connections.
	hits := func() int64 {
		var n int64
		for _, b := range o {
			n += b.hits.Load()
		}
		return n
	}
	raw := []struct {
		name, target string
		hdr          []string
		code         int
		pool, uri    string
	}{
		{"a traversal above the root", "/../x", nil, http.StatusBadRequest, "", ""},
		{"an encoded traversal above the root", "/%2e%2e/x", nil, http.StatusBadRequest, "", ""},
		{"dot segments are removed before matching and forwarding", "/public/a/./b/../c", nil, http.StatusOK, "web", "/public/a/c"},
		{"an encoded traversal out of /public does not reach /admin without its header", "/public/%2e%2e/admin", nil, http.StatusNotFound, "", ""},
		{"nor does a half-encoded one", "/public/%2E./admin/x", nil, http.StatusNotFound, "", ""},
		{"nor merged slashes", "//public/..//admin", nil, http.StatusNotFound, "", ""},
		{"an encoded traversal is routed as the backend sees it", "/public/%2e%2e/admin", []string{"X-Admin: yes"}, http.StatusOK, "ops", "/admin"},
		{"an encoded slash is not a separator", "/public%2F..%2Fadmin", []string{"X-Admin: yes"}, http.StatusNotFound, "", ""},
		{"an encoded slash stays encoded inside the prefix", "/public/..%2Fadmin", nil, http.StatusOK, "web", "/public/..%2Fadmin"},
	}
	for _, c := range raw {
		before := hits()
		got := rawAsk(t, addr, c.target, c.hdr...)
		if got.code != c.code {
			t.Errorf("%s: GET %s: %d %q, want %d", c.name, c.target, got.code, got.body, c.code)
			continue
		}
		switch {
		case c.code == http.StatusNotFound:
			notFound++
			fallthrough
		case c.code != http.StatusOK:
			if n := hits() - before; n != 0 {
				t.Errorf("%s: GET %s: answered %d, but %d requests reached a backend", c.name, c.target, got.code, n)
			}
		default:
			checkAnswer(t, c.name, got, c.pool, c.uri, "")
		}
	}

	// The router counts a 404 by a buffered message: the count may lag.
	testenv.WaitUntil(t, 5*time.Second, fmt.Sprintf("roundhouse_unrouted_requests_total to be %d", notFound), func() bool {
		return metric(t, adminURL+"/metrics", "roundhouse_unrouted_requests_total") >= float64(notFound)
	})
	if got := metric(t, adminURL+"/metrics", "roundhouse_unrouted_requests_total"); got != float64(notFound) {
		t.Errorf("roundhouse_unrouted_requests_total = %v, want %d", got, notFound)
	}
	if line := lb.waitFor(t, `access: request: method=PUT path=/anything .*`); !strings.Contains(line, "pool=ops") || !strings.Contains(line, "route=writes") {
		t.Errorf("the access log line does not name the pool and route: %s", line)
	}
	_, metrics := get(t, adminURL+"/metrics")
	for _, p := range []string{"api", "web", "ops"} {
		if !regexp.MustCompile(`(?m)^roundhouse_backend_attempts_total\{.*pool="` + p + `".*\} [1-9]`).MatchString(metrics) {
			t.Errorf("/metrics: no roundhouse_backend_attempts_total with pool=%q:\n%s", p, metrics)
		}
	}
	st := poolStatus(t, adminURL)
	for _, p := range []string{"api", "web", "ops"} {
		if len(st[p]) != 2 {
			t.Errorf("/status: pool %s has %d backends, want 2: %+v", p, len(st[p]), st)
		}
	}
	t.Logf("%d requests, %d of them unrouted (404); each pool alternated over 6 requests: %v", hits(), notFound, turns)
	if t.Failed() {
		t.Logf("balancer output:\n%s", lb.output())
	}
}

// checkAnswer checks that got is the answer of pool's backend (a name with
// the pool's name as its prefix) for target uri with X-Forwarded-Prefix
// prefix, or when pool is "", a short 404 that names no internals.
func checkAnswer(t *testing.T, what string, got answer, pool, uri, prefix string) {
	t.Helper()
	if pool == "" {
		if got.code != http.StatusNotFound || len(got.body) > 64 || strings.Contains(got.body, "127.0.0.1") {
			t.Errorf("%s: %d %q, want a short 404", what, got.code, got.body)
		}
		return
	}
	if got.code != http.StatusOK || !strings.HasPrefix(got.name, pool) || got.uri != uri || got.prefix != prefix {
		t.Errorf("%s: %d from %q, target %q, prefix %q; want 200 from pool %s, target %q, prefix %q (body %q)",
			what, got.code, got.name, got.uri, got.prefix, pool, uri, prefix, got.body)
	}
}

// TestAPoolWhoseBackendsAreAllDownAnswers503WhileTheOtherPoolsServe: the
// "dead" pool's two backends refuse connections, so its health checks take
// both DOWN; its requests get 503 at once, while the "live" pool keeps its
// exact round-robin, unaffected, before and after.
func TestAPoolWhoseBackendsAreAllDownAnswers503WhileTheOtherPoolsServe(t *testing.T) {
	t.Cleanup(http.DefaultClient.CloseIdleConnections)
	l1, l2 := startOrigin(t, "live1"), startOrigin(t, "live2")
	d1, d2 := "http://"+testenv.DeadAddr(t), "http://"+testenv.DeadAddr(t)
	src := func(live ...string) string {
		var b strings.Builder
		b.WriteString("policy = \"round-robin\"\nhealth {\n  path     = \"/health\"\n  interval = \"100ms\"\n}\npool \"live\" {\n")
		for _, u := range live {
			fmt.Fprintf(&b, "  backend %q {}\n", u)
		}
		fmt.Fprintf(&b, "}\npool \"dead\" {\n  backend %q {}\n  backend %q {}\n}\n", d1, d2)
		b.WriteString("route \"dead\" {\n  path_prefix = \"/dead\"\n  pool        = \"dead\"\n}\nroute \"rest\" {\n  pool = \"live\"\n}\n")
		return b.String()
	}
	file := writeConfig(t, src(l1.url, l2.url))
	lb := start(t, "--config", file, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--access-log=false")
	addr := lb.waitFor(t, listening)
	adminURL := "http://" + lb.waitFor(t, `listening: .*admin=(127\.0\.0\.1:\d+)`)
	began := time.Now()
	for _, d := range []string{d1, d2} {
		lb.waitFor(t, `backend down: .*`+regexp.QuoteMeta(d))
	}
	down := time.Since(began)
	for _, line := range regexp.MustCompile(`.*backend down: .*`).FindAllString(lb.output(), -1) {
		if !strings.Contains(line, "pool=dead") {
			t.Errorf("a backend went down outside the dead pool: %s", line)
		}
	}
	var names []string
	for range 3 {
		t0 := time.Now()
		if got := ask(t, addr, "GET", "", "/dead/x"); got.code != http.StatusServiceUnavailable {
			t.Errorf("GET /dead/x: %d %q, want 503", got.code, got.body)
		} else if d := time.Since(t0); d > 2*time.Second {
			t.Errorf("GET /dead/x took %v to answer 503", d)
		}
		for range 2 {
			got := ask(t, addr, "GET", "", "/x")
			if got.code != http.StatusOK {
				t.Fatalf("GET /x beside the dead pool: %d %q", got.code, got.body)
			}
			names = append(names, got.name)
		}
	}
	alternates(t, "live", names, "live1", "live2")

	// A reload that changes the live pool leaves the dead pool's health
	// as it is: DOWN at once, not UP again until probed.
	l3 := startOrigin(t, "live3")
	if err := os.WriteFile(file, []byte(src(l1.url, l2.url, l3.url)), 0o644); err != nil {
		t.Fatal(err)
	}
	lb.signal(t, syscall.SIGHUP)
	lb.waitFor(t, "roundhouse: reloaded:")
	for _, b := range poolStatus(t, adminURL)["dead"] {
		if b.State != "down" {
			t.Errorf("after the reload, pool dead's %s is %s, want down", b.Name, b.State)
		}
	}
	if got := ask(t, addr, "GET", "", "/dead/x"); got.code != http.StatusServiceUnavailable {
		t.Errorf("GET /dead/x after the reload: %d %q, want 503", got.code, got.body)
	}
	seen := map[string]bool{}
	for range 3 {
		seen[ask(t, addr, "GET", "", "/x").name] = true
	}
	if len(seen) != 3 {
		t.Errorf("pool live after the reload that added live3: answers %v, want its three backends", seen)
	}
	t.Logf("both dead backends DOWN %v after start; 3 requests to the dead pool got 503, the live pool answered %v; still down after a reload", down.Round(time.Millisecond), names)
	if t.Failed() {
		t.Logf("balancer output:\n%s", lb.output())
	}
}

// TestAdminDisablesABackendInOnePoolOnlyAndStatusShowsThePools: one
// backend URL is listed in two pools. Disabling it through
// /pools/one/backends/ID/disable takes it out of pool one only: pool two
// still alternates between it and its other backend. roundhouse status
// prints a POOL column with each pool's rows.
func TestAdminDisablesABackendInOnePoolOnlyAndStatusShowsThePools(t *testing.T) {
	t.Cleanup(http.DefaultClient.CloseIdleConnections)
	shared, a, b := startOrigin(t, "shared"), startOrigin(t, "a"), startOrigin(t, "b")
	file := writeConfig(t, fmt.Sprintf(`
policy = "round-robin"
pool "one" {
  backend %[1]q {}
  backend %[2]q {}
}
pool "two" {
  backend %[1]q {}
  backend %[3]q {}
}
route "one" {
  path_prefix = "/one"
  pool        = "one"
}
route "two" {
  pool = "two"
}
`, shared.url, a.url, b.url))
	lb := start(t, "--config", file, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--access-log=false")
	addr := lb.waitFor(t, listening)
	adminAddr := lb.waitFor(t, `listening: .*admin=(127\.0\.0\.1:\d+)`)
	adminURL := "http://" + adminAddr

	st := poolStatus(t, adminURL)
	var id string
	for _, s := range st["one"] {
		if s.Name == shared.url {
			id = s.ID
		}
	}
	if id == "" {
		t.Fatalf("/status: pool one does not list %s: %+v", shared.url, st)
	}
	if code, body := adminPostWithin(t, adminURL+"/pools/one/backends/"+url.PathEscape(id)+"/disable", 10*time.Second); code != http.StatusOK {
		t.Fatalf("POST /pools/one/backends/%s/disable: %d %s", id, code, body)
	}

	one, two := map[string]int{}, []string{}
	for range 4 {
		one[ask(t, addr, "GET", "", "/one/x").name]++
		two = append(two, ask(t, addr, "GET", "", "/x").name)
	}
	if one["a"] != 4 {
		t.Errorf("pool one after disabling %s: answers %v, want a alone", id, one)
	}
	alternates(t, "two", two, "shared", "b")
	st = poolStatus(t, adminURL)
	states := map[string]string{}
	for _, p := range []string{"one", "two"} {
		for _, s := range st[p] {
			states[p+" "+s.Name] = s.State
		}
	}
	if states["one "+shared.url] != "disabled" || states["two "+shared.url] != "up" {
		t.Errorf("/status states %v: want %s disabled in pool one only", states, shared.url)
	}

	stp := start(t, "status", "--admin", adminAddr)
	if code := stp.wait(t); code != 0 {
		t.Fatalf("status: exit status %d; output:\n%s", code, stp.output())
	}
	lines := strings.Split(strings.TrimSpace(stp.output()), "\n")
	if len(lines) != 5 || !strings.HasPrefix(lines[0], "POOL ") {
		t.Fatalf("status: want a header with POOL and four rows:\n%s", stp.output())
	}
	rows := map[string]bool{}
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) < 4 {
			t.Fatalf("status: short row %q", l)
		}
		rows[f[0]+" "+f[2]+" "+f[3]] = true // pool, url, state
	}
	for _, r := range []string{"one " + shared.url + " disabled", "one " + a.url + " up", "two " + shared.url + " up", "two " + b.url + " up"} {
		if !rows[r] {
			t.Errorf("status: no row for %q:\n%s", r, stp.output())
		}
	}
	t.Logf("after the disable: pool one %v, pool two %v; status:\n%s", one, two, stp.output())
}

// TestAPoolDiscoversItsOwnBackends: pool "found" discovers its backends
// from DNS SRV records; they serve that pool alone, and pool "static"
// keeps its one file backend. A change in the records changes pool found
// only.
func TestAPoolDiscoversItsOwnBackends(t *testing.T) {
	t.Cleanup(http.DefaultClient.CloseIdleConnections)
	b := demoBackends(t, "a", "b", "c")
	d := dnstest.Start(t)
	var records []string
	for _, n := range []string{"a", "b"} {
		u, _ := url.Parse(b[n])
		records = append(records, "_web._tcp.test. 1 IN SRV 1 1 "+u.Port()+" "+n+".test.", n+".test. 1 IN A "+u.Hostname())
	}
	d.Set(t, true, records...)
	file := writeConfig(t, fmt.Sprintf(`
policy = "round-robin"
health {
  interval = "100ms"
}
pool "found" {
  discover = ["dns+srv://_web._tcp.test"]
}
pool "static" {
  backend %q {}
}
route "found" {
  path_prefix  = "/found/"
  pool         = "found"
  strip_prefix = true
}
route "rest" {
  pool = "static"
}
`, b["c"]))
	lb := start(t, "--config", file, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--access-log=false", "--dns-server", d.Addr)
	addr := "http://" + lb.waitFor(t, listening)
	adminURL := "http://" + lb.waitFor(t, `listening: .*admin=(127\.0\.0\.1:\d+)`)
	answering(t, addr+"/found/", "a", "b")
	answering(t, addr+"/", "c")
	st := poolStatus(t, adminURL)
	if len(st["found"]) != 2 || len(st["static"]) != 1 || st["static"][0].Name != b["c"] {
		t.Errorf("/status pools: %+v; want found with a and b, static with c alone", st)
	}
	for _, s := range st["found"] {
		if s.Source != "dns+srv://_web._tcp.test" {
			t.Errorf("/status: pool found's %s has source %q, want the DNS source", s.Name, s.Source)
		}
	}

	d.Set(t, true, records[:2]...) // b goes
	answering(t, addr+"/found/", "a")
	answering(t, addr+"/", "c")
	if t.Failed() {
		t.Logf("output:\n%s", lb.output())
	}
}

// TestAStickyCookieOfOnePoolNeverMovesARequestInAnother: two pools with
// the cookie policy list the same two backends, and their cookies share
// a name and path. A cookie pinned in pool one keeps pool one's requests
// on its backend, but pool two does not follow it: its requests still go
// to both backends.
func TestAStickyCookieOfOnePoolNeverMovesARequestInAnother(t *testing.T) {
	t.Cleanup(http.DefaultClient.CloseIdleConnections)
	x, y := startOrigin(t, "x"), startOrigin(t, "y")
	file := writeConfig(t, fmt.Sprintf(`
policy = "cookie"
pool "one" {
  backend %[1]q {}
  backend %[2]q {}
}
pool "two" {
  backend %[1]q {}
  backend %[2]q {}
}
route "one" {
  path_prefix = "/one"
  pool        = "one"
}
route "two" {
  pool = "two"
}
`, x.url, y.url))
	lb := start(t, "--config", file, "--listen", "127.0.0.1:0", "--access-log=false")
	addr := lb.waitFor(t, listening)
	send := func(target string, cookie *http.Cookie) (string, *http.Cookie) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+target, nil)
		if err != nil {
			t.Fatal(err)
		}
		if cookie != nil {
			req.AddCookie(cookie)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		a := parseAnswer(resp.StatusCode, string(body))
		if a.code != http.StatusOK {
			t.Fatalf("GET %s: %d %q", target, a.code, a.body)
		}
		for _, c := range resp.Cookies() {
			if c.Name == "roundhouse_sticky" {
				return a.name, c
			}
		}
		return a.name, nil
	}
	pinned, cookie := send("/one/x", nil)
	if cookie == nil {
		t.Fatal("pool one set no roundhouse_sticky cookie")
	}
	one, two := map[string]int{}, map[string]int{}
	for range 6 {
		n, _ := send("/one/x", cookie)
		one[n]++
		n, _ = send("/two/x", cookie)
		two[n]++
	}
	if one[pinned] != 6 {
		t.Errorf("pool one with its cookie for %s: answers %v, want %s alone", pinned, one, pinned)
	}
	if two["x"] == 0 || two["y"] == 0 {
		t.Errorf("pool two with pool one's cookie for %s: answers %v, want both backends", pinned, two)
	}
	t.Logf("pinned to %s in pool one: pool one answered %v, pool two %v", pinned, one, two)
}

// TestPoolsDiscoverTheirOwnBackendsFromEtcd: two pools follow two etcd
// prefixes; each prefix's backends serve its pool alone, and a key put
// under one prefix changes that pool only.
func TestPoolsDiscoverTheirOwnBackendsFromEtcd(t *testing.T) {
	t.Cleanup(http.DefaultClient.CloseIdleConnections)
	etcd := etcdtest.Start(t)
	cli := etcd.NewClient()
	t.Cleanup(func() { cli.Close() })
	b := demoBackends(t, "a", "b", "c")
	put := func(key, backend string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		if _, err := cli.Put(ctx, key, `{"url": "`+backend+`"}`); err != nil {
			t.Fatal(err)
		}
	}
	put("/roundhouse/one/a", b["a"])
	put("/roundhouse/two/b", b["b"])
	file := writeConfig(t, fmt.Sprintf(`
policy = "round-robin"
pool "one" {
  discover = [%q]
}
pool "two" {
  discover = [%q]
}
route "one" {
  path_prefix  = "/one/"
  pool         = "one"
  strip_prefix = true
}
route "two" {
  pool = "two"
}
`, etcd.URL("/roundhouse/one/"), etcd.URL("/roundhouse/two/")))
	lb := start(t, "--config", file, "--listen", "127.0.0.1:0", "--access-log=false")
	addr := "http://" + lb.waitFor(t, listening)
	answering(t, addr+"/one/", "a")
	answering(t, addr+"/", "b")
	put("/roundhouse/one/c", b["c"])
	answering(t, addr+"/one/", "a", "c")
	answering(t, addr+"/", "b")
	if t.Failed() {
		t.Logf("output:\n%s", lb.output())
	}
}

// TestEachPoolHasItsOwnRequestTimeout: pool quick sets a 300 ms request
// timeout, pool patient inherits none. A slow answer in pool quick gets
// 504 at its timeout, while a slower one in pool patient arrives. A
// reload that raises pool quick's timeout lets the slower one through
// there too.
func TestEachPoolHasItsOwnRequestTimeout(t *testing.T) {
	t.Cleanup(http.DefaultClient.CloseIdleConnections)
	b := demoBackends(t, "q", "p")
	const src = `
pool "quick" {
  backend %q {}
  timeouts {
    request = "300ms"
  }
}
pool "patient" {
  backend %q {}
}
route "quick" {
  path_prefix  = "/quick/"
  pool         = "quick"
  strip_prefix = true
}
route "rest" {
  pool = "patient"
}
`
	file := writeConfig(t, fmt.Sprintf(src, b["q"], b["p"]))
	lb := start(t, "--config", file, "--listen", "127.0.0.1:0", "--access-log=false")
	url := "http://" + lb.waitFor(t, listening)
	t0 := time.Now()
	code, body, err := fetch(url + "/quick/slow?d=5s")
	quick := time.Since(t0)
	if err != nil || code != http.StatusGatewayTimeout || quick > 3*time.Second {
		t.Errorf("GET /quick/slow?d=5s: %d %q %v after %v, want 504 at about 300ms", code, body, err, quick)
	}
	t0 = time.Now()
	code, body, err = fetch(url + "/slow?d=700ms")
	patient := time.Since(t0)
	if err != nil || code != http.StatusOK || !strings.HasPrefix(body, "slept 700ms") {
		t.Errorf("GET /slow?d=700ms in pool patient: %d %q %v after %v, want 200", code, body, err, patient)
	}
	if err := os.WriteFile(file, []byte(strings.Replace(fmt.Sprintf(src, b["q"], b["p"]), `"300ms"`, `"3s"`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	lb.signal(t, syscall.SIGHUP)
	lb.waitFor(t, "roundhouse: reloaded:")
	if code, body, err := fetch(url + "/quick/slow?d=700ms"); err != nil || code != http.StatusOK {
		t.Errorf("GET /quick/slow?d=700ms after the reload to 3s: %d %q %v, want 200", code, body, err)
	}
	t.Logf("pool quick answered 504 after %v; pool patient answered 200 after %v", quick.Round(time.Millisecond), patient.Round(time.Millisecond))
}

// badPools is a file with a problem of every kind validate reports about
// pools and routes.
const badPools = `pool "api" {
  backend "http://127.0.0.1:9001" {}
}
pool "api" {
  backend "http://127.0.0.1:9002" {}
}
pool "empty" {
}
route "all" {
  pool = "api"
}
route "v1" {
  path_prefix = "/v1/"
  pool        = "api"
}
route "ghost" {
  hosts = ["bad host!"]
  pool  = "nowhere"
}
route "rel" {
  path_prefix = "v1"
  pool        = "api"
}
`

// TestValidateAndServeReportPoolAndRouteProblemsWithTheirPositions:
// validate lists every pool and route problem at its file:line:column
// and exits 1; serve reports the same and exits 2. A running balancer
// given such a file by POST /reload answers 500 with the problem and
// keeps its pools and routes.
func TestValidateAndServeReportPoolAndRouteProblemsWithTheirPositions(t *testing.T) {
	t.Cleanup(http.DefaultClient.CloseIdleConnections)
	file := writeConfig(t, badPools)
	want := []string{
		file + `:4:6: pool "api": given twice; the first is at line 1`,
		file + `:7:6: pool "empty": no backend: add a block such as backend "http://127.0.0.1:8081" {} or a discover list`,
		file + `:12:7: route "v1" can never match: route "all" (line 9) is tried first and matches every request it would`,
		file + `:17:12: route "ghost": hosts: "bad host!": a host name has only letters, digits, '-', '_' and dots`,
		file + `:18:11: route "ghost": no pool "nowhere" (pools: api, empty)`,
		file + `:21:17: route "rel": path_prefix: "v1": must start with "/"`,
	}
	p := start(t, "validate", file)
	if code := p.wait(t); code != exitRuntime {
		t.Fatalf("validate: exit status %d, want 1; output:\n%s", code, p.output())
	}
	if got := strings.Split(strings.TrimSpace(p.output()), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("validate output:\n%s\nwant:\n%s", p.output(), strings.Join(want, "\n"))
	}
	s := start(t, "--config", file, "--listen", "127.0.0.1:0")
	if code := s.wait(t); code != exitUsage {
		t.Fatalf("serve: exit status %d, want 2; output:\n%s", code, s.output())
	}
	for _, w := range want {
		if !strings.Contains(s.output(), w) {
			t.Errorf("serve does not report %q:\n%s", w, s.output())
		}
	}

	a, b := startOrigin(t, "a"), startOrigin(t, "b")
	good := routesConfig([]poolSpec{{"one", []string{a.url}, ""}, {"two", []string{b.url}, ""}},
		[2]string{"one", "one"}, [2]string{"two", "two"})
	if err := os.WriteFile(file, []byte(good), 0o644); err != nil {
		t.Fatal(err)
	}
	lb := start(t, "--config", file, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--access-log=false")
	addr := lb.waitFor(t, listening)
	adminURL := "http://" + lb.waitFor(t, `listening: .*admin=(127\.0\.0\.1:\d+)`)
	// pool two goes, but route two still names it.
	bad := routesConfig([]poolSpec{{"one", []string{a.url}, ""}}, [2]string{"one", "one"}, [2]string{"two", "two"})
	if err := os.WriteFile(file, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	code, body := adminPost(t, adminURL+"/reload")
	var e struct{ Error string }
	_ = json.Unmarshal([]byte(body), &e)
	if wantErr := file + `:16:18: route "two": no pool "two" (pools: one)`; code != http.StatusInternalServerError || !strings.Contains(e.Error, wantErr) {
		t.Errorf("POST /reload of a route to a pool that went: %d %s, want 500 and %q", code, body, wantErr)
	}
	if got := ask(t, addr, "GET", "", "/two/x"); got.name != "b" || got.uri != "/x" {
		t.Errorf("after the refused reload, GET /two/x: %d %q, want b with /x", got.code, got.body)
	}
	if n := strings.Count(lb.output(), "pool removed"); n != 0 {
		t.Errorf("the refused reload removed a pool:\n%s", lb.output())
	}
}

// TestAnEjectionInOnePoolLeavesTheSameBackendInAnother: backend s, in
// pools one and two, answers 503 to /boom. Pool one (eject after 2)
// ejects it after two such answers; pool two keeps sending it requests.
func TestAnEjectionInOnePoolLeavesTheSameBackendInAnother(t *testing.T) {
	t.Cleanup(http.DefaultClient.CloseIdleConnections)
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/boom") {
			http.Error(w, "boom", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintf(w, "s\n%s\n\n", r.RequestURI)
	}))
	t.Cleanup(s.Close)
	a, b := startOrigin(t, "a"), startOrigin(t, "b")
	file := writeConfig(t, fmt.Sprintf(`
policy  = "round-robin"
retries = 0
pool "one" {
  backend %[1]q {}
  backend %[2]q {}
  ejection {
    after = 2
    time  = "1m"
  }
}
pool "two" {
  backend %[1]q {}
  backend %[3]q {}
}
route "one" {
  path_prefix  = "/one/"
  pool         = "one"
  strip_prefix = true
}
route "two" {
  pool = "two"
}
`, s.URL, a.url, b.url))
	lb := start(t, "--config", file, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--access-log=false", "--health-interval", "1h")
	addr := lb.waitFor(t, listening)
	adminURL := "http://" + lb.waitFor(t, `listening: .*admin=(127\.0\.0\.1:\d+)`)
	for range 4 { // s, a, s, a: two 503s from s in a row
		ask(t, addr, "GET", "", "/one/boom")
	}
	line := lb.waitFor(t, `backend ejected: .*backend=`+regexp.QuoteMeta(s.URL)+`.*`)
	if !strings.Contains(line, "pool=one") {
		t.Errorf("the ejection is not pool one's: %s", line)
	}
	one, two := map[string]int{}, []string{}
	for range 4 {
		one[ask(t, addr, "GET", "", "/one/x").name]++
		two = append(two, ask(t, addr, "GET", "", "/x").name)
	}
	if one["a"] != 4 {
		t.Errorf("pool one after ejecting s: answers %v, want a alone", one)
	}
	alternates(t, "two", two, "s", "b")
	st := poolStatus(t, adminURL)
	states := map[string]string{}
	for _, p := range []string{"one", "two"} {
		for _, bs := range st[p] {
			states[p+" "+bs.Name] = bs.State
		}
	}
	if states["one "+s.URL] != "ejected" || states["two "+s.URL] != "up" {
		t.Errorf("/status states %v: want s ejected in pool one only", states)
	}
	if n := strings.Count(lb.output(), "backend ejected"); n != 1 {
		t.Errorf("%d ejections logged, want 1:\n%s", n, lb.output())
	}
	t.Logf("%s; then pool one answered %v, pool two %v", line, one, two)
}
