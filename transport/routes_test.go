package transport

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/sourcegraph/conc"

	"github.com/roundhouse/roundhouse/actors"
	"github.com/roundhouse/roundhouse/internal/accesslog"
	"github.com/roundhouse/roundhouse/routing"
)

// echoBackend answers with its name, the path it was asked for and the
// X-Forwarded-Prefix it got, one per line.
func echoBackend(t *testing.T, name string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s\n%s\n%s\n", name, r.URL.EscapedPath(), r.Header.Get("X-Forwarded-Prefix"))
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// site is a Proxy with a Router in front of several pools, each its own
// selector, behind a real listener.
type site struct {
	router *Router
	url    string
	log    *logSink
	pools  map[string]*Pool
	ctx    context.Context // the actors'
	wg     *conc.WaitGroup // the actors'
}

// newSite starts one selector per pool (name → backend URLs) and a proxy
// that routes by routes.
func newSite(t *testing.T, pools map[string][]string, routes []routing.Route) *site {
	t.Helper()
	sink, log, tr, ctx, wg := siteParts(t)
	s := &site{log: sink, pools: map[string]*Pool{}, ctx: ctx, wg: wg}
	var list []*Pool
	for name, urls := range pools {
		p := s.startPool(t, name, tr, urls...)
		list = append(list, p)
	}
	table, err := NewTable(routes, list)
	if err != nil {
		t.Fatal(err)
	}
	s.router, s.url = serveRouted(t, ctx, wg, table, log, sink)
	return s
}

// siteParts is what every test site of pools starts with: a log sink and a
// debug logger writing to it, a transport (its idle connections closed at
// cleanup), and ctx and wg for the site's actors: at cleanup, ctx is
// cancelled and wg waited for. Cleanups run last-registered first, so what
// a caller registers afterwards (serveRouted's frontend) stops before the
// actors do.
func siteParts(t *testing.T) (*logSink, hclog.Logger, *Transport, context.Context, *conc.WaitGroup) {
	t.Helper()
	sink := newLogSink()
	log := hclog.New(&hclog.LoggerOptions{Output: sink, Level: hclog.Debug})
	tr := New(Options{DialTimeout: time.Second})
	t.Cleanup(tr.CloseIdleConnections)
	ctx, cancel := context.WithCancel(context.Background())
	wg := new(conc.WaitGroup)
	t.Cleanup(func() { cancel(); wg.Wait() })
	return sink, log, tr, ctx, wg
}

// serveRouted starts a Router over table (its goroutine is wg's, ending
// when ctx is done) and a frontend on a fresh 127.0.0.1 listener whose
// proxy routes by it, logging to log and its access log to sink. The
// frontend is shut down (5 s at most) at the test's cleanup. It returns
// the router and the frontend's URL.
func serveRouted(t *testing.T, ctx context.Context, wg *conc.WaitGroup, table *Table, log hclog.Logger, sink *logSink) (*Router, string) {
	t.Helper()
	router := NewRouter(table)
	wg.Go(func() { _ = router.Run(ctx) })
	proxy := NewProxy(Config{Router: router, Logger: log, AccessLog: accesslog.New(accesslog.Options{Name: "access", Output: sink})})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	front := NewFrontend(ln, proxy, FrontendOptions{Logger: log})
	var serving conc.WaitGroup
	serving.Go(func() { _ = front.Serve() })
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = front.Shutdown(ctx)
		serving.Wait()
	})
	return router, "http://" + ln.Addr().String()
}

// startPool starts a selector for a pool of the given backends.
func (s *site) startPool(t *testing.T, name string, tr http.RoundTripper, urls ...string) *Pool {
	t.Helper()
	var bcs []actors.BackendConfig
	for _, raw := range urls {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		bcs = append(bcs, actors.BackendConfig{URL: u, Weight: 1})
	}
	sel, err := actors.New(actors.Config{Backends: bcs, Monitor: actors.MonitorConfig{Interval: time.Hour, Transport: tr}})
	if err != nil {
		t.Fatal(err)
	}
	s.wg.Go(func() { _ = sel.Run(s.ctx) })
	p := NewPool(Pool{Name: name, Selector: sel, Transport: tr})
	s.pools[name] = p
	return p
}

// send makes one request and returns its status and body lines.
func (s *site) send(t *testing.T, method, host, target string, header http.Header) (int, []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// A raw request line, so that the path reaches the balancer exactly as
	// written (net/http's client would clean nothing, but url.Parse would
	// re-encode some of it).
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", strings.TrimPrefix(s.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	req := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n", method, target, host)
	for k, vs := range header {
		for _, v := range vs {
			req += k + ": " + v + "\r\n"
		}
	}
	if _, err := io.WriteString(conn, req+"\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.Split(strings.TrimSuffix(string(body), "\n"), "\n")
}

func TestRoutesSendEachRequestToItsPool(t *testing.T) {
	s := newSite(t, map[string][]string{
		"api":    {echoBackend(t, "api1"), echoBackend(t, "api2")},
		"web":    {echoBackend(t, "web1")},
		"canary": {echoBackend(t, "canary1")},
	}, []routing.Route{
		{Name: "canary", Hosts: []string{"api.example.com"}, Headers: map[string]string{"X-Canary": "1"}, Pool: "canary"},
		{Name: "api-v1", Hosts: []string{"api.example.com", "*.api.example.com"}, PathPrefix: "/v1/", Methods: []string{"GET", "POST"}, Pool: "api", StripPrefix: true},
		{Name: "static", PathPrefix: "/static", Pool: "web"},
	})
	tests := []struct {
		name, method, host, target string
		header                     http.Header
		status                     int
		backendPrefix, path, fwd   string
	}{
		{"a header condition picks the canary first", "GET", "api.example.com", "/v1/x", http.Header{"X-Canary": {"1"}}, 200, "canary", "/v1/x", ""},
		{"a host and a prefix pick the api, prefix stripped", "GET", "api.example.com", "/v1/users", nil, 200, "api", "/users", "/v1"},
		{"a host with a port in mixed case matches", "GET", "API.Example.COM:8080", "/v1/users", nil, 200, "api", "/users", "/v1"},
		{"a wildcard host covers a subdomain", "POST", "eu.api.example.com", "/v1/", nil, 200, "api", "/", "/v1"},
		{"a wildcard never covers the bare suffix", "GET", "example.com", "/v1/users", nil, 404, "", "", ""},
		{"a method not listed matches no route", "DELETE", "api.example.com", "/v1/users", nil, 404, "", "", ""},
		{"a prefix without a slash matches the segment itself", "GET", "any", "/static", nil, 200, "web", "/static", ""},
		{"a prefix without a slash matches below it", "GET", "any", "/static/app.js", nil, 200, "web", "/static/app.js", ""},
		{"a prefix never matches a longer segment", "GET", "any", "/staticx", nil, 404, "", "", ""},
		{"dot segments are removed before matching and forwarding", "GET", "any", "/x/../static/./a.css", nil, 200, "web", "/static/a.css", ""},
		{"encoded dot segments cannot climb past a route", "GET", "any", "/static/%2e%2e/admin", nil, 404, "", "", ""},
		{"an encoded slash is not a segment boundary", "GET", "any", "/static%2Fa", nil, 404, "", "", ""},
		{"a path above the root is refused", "GET", "any", "/../etc/passwd", nil, 400, "", "", ""},
		{"an encoded climb above the root is refused", "GET", "any", "/static/%2e%2e/%2E%2E/x", nil, 400, "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, lines := s.send(t, tt.method, tt.host, tt.target, tt.header)
			if status != tt.status {
				t.Fatalf("status %d (%q), want %d", status, lines, tt.status)
			}
			if status != 200 {
				return
			}
			if len(lines) != 3 || !strings.HasPrefix(lines[0], tt.backendPrefix) || lines[1] != tt.path || lines[2] != tt.fwd {
				t.Errorf("backend saw %q, want a %s backend, path %q, X-Forwarded-Prefix %q", lines, tt.backendPrefix, tt.path, tt.fwd)
			}
		})
	}
	// Each pool keeps exact round-robin among its own backends.
	var got []string
	for range 4 {
		_, lines := s.send(t, "GET", "api.example.com", "/v1/", nil)
		got = append(got, lines[0])
	}
	if got[0] == got[1] || got[0] != got[2] || got[1] != got[3] {
		t.Errorf("api pool answered %v, want alternation", got)
	}
	s.log.waitFor(t, 1, "access: request:", "pool=api", "route=api-v1")
	n, err := s.router.Unrouted(context.Background())
	if err != nil || n != 5 {
		t.Errorf("Unrouted = %d, %v; want the 5 requests answered 404", n, err)
	}
}

func TestAPoolWithEveryBackendDownAnswers503WhileOthersServe(t *testing.T) {
	s := newSite(t, map[string][]string{
		"dead": {deadURL(t)},
		"live": {echoBackend(t, "live1")},
	}, []routing.Route{
		{Name: "dead", PathPrefix: "/dead", Pool: "dead"},
		{Name: "live", Pool: "live"},
	})
	// The first request finds the dead backend's refusal and marks it DOWN.
	if status, _ := s.send(t, "GET", "x", "/dead", nil); status != http.StatusBadGateway && status != http.StatusServiceUnavailable {
		t.Fatalf("dead pool: %d", status)
	}
	if status, _ := s.send(t, "GET", "x", "/dead", nil); status != http.StatusServiceUnavailable {
		t.Errorf("dead pool, once its backend is DOWN: %d, want 503", status)
	}
	if status, lines := s.send(t, "GET", "x", "/other", nil); status != 200 || lines[0] != "live1" {
		t.Errorf("live pool: %d %q", status, lines)
	}
}

func TestANewTableTakesEffectAndAStoppedPoolIsRoutedAgain(t *testing.T) {
	s := newSite(t, map[string][]string{"a": {echoBackend(t, "a1")}}, nil)
	if _, lines := s.send(t, "GET", "x", "/", nil); lines[0] != "a1" {
		t.Fatalf("before: %q", lines)
	}
	tr := New(Options{})
	t.Cleanup(tr.CloseIdleConnections)
	// Pool b runs under a context of its own, stopped below.
	bctx, stopB := context.WithCancel(s.ctx)
	defer stopB()
	u, _ := url.Parse(echoBackend(t, "b1"))
	sel, err := actors.New(actors.Config{Backends: []actors.BackendConfig{{URL: u, Weight: 1}}, Monitor: actors.MonitorConfig{Interval: time.Hour, Transport: tr}})
	if err != nil {
		t.Fatal(err)
	}
	var bwg conc.WaitGroup
	bwg.Go(func() { _ = sel.Run(bctx) })
	b := NewPool(Pool{Name: "b", Selector: sel, Transport: tr})
	table, err := NewTable([]routing.Route{{Name: "all", Pool: "b"}}, []*Pool{s.pools["a"], b})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.router.Set(context.Background(), table); err != nil {
		t.Fatal(err)
	}
	if _, lines := s.send(t, "GET", "x", "/", nil); lines[0] != "b1" {
		t.Fatalf("after Set: %q, want b1", lines)
	}
	// Back to a, and b stops: a request holding the old table would find
	// b stopped and route again; one that takes the table now goes to a.
	table, err = NewTable([]routing.Route{{Name: "all", Pool: "a"}}, []*Pool{s.pools["a"]})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.router.Set(context.Background(), table); err != nil {
		t.Fatal(err)
	}
	stopB()
	bwg.Wait()
	if status, lines := s.send(t, "GET", "x", "/", nil); status != 200 || lines[0] != "a1" {
		t.Errorf("after b stopped: %d %q, want a1", status, lines)
	}
}

func TestNewTableRefusesWhatCannotRoute(t *testing.T) {
	a, b := &Pool{Name: "a"}, &Pool{Name: "b"}
	for _, tt := range []struct {
		name   string
		routes []routing.Route
		pools  []*Pool
		want   string
	}{
		{"two pools without routes need a default", nil, []*Pool{a, b}, `pool named "default"`},
		{"a route naming no pool", []routing.Route{{Name: "r", Pool: "c"}}, []*Pool{a}, `route "r": no pool "c"`},
		{"a pool twice", nil, []*Pool{a, a}, `pool "a": defined twice`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewTable(tt.routes, tt.pools)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("NewTable: %v, want %q", err, tt.want)
			}
		})
	}
}

func TestARequestThatGoesToNoPoolIsLoggedWithPoolAndRouteDashes(t *testing.T) {
	s := newSite(t, map[string][]string{"api": {echoBackend(t, "api1")}}, []routing.Route{
		{Name: "api", PathPrefix: "/api", Pool: "api"},
	})
	for _, tt := range []struct {
		target string
		status int
	}{{"/elsewhere", http.StatusNotFound}, {"/../etc/passwd", http.StatusBadRequest}} {
		if status, _ := s.send(t, "GET", "x", tt.target, nil); status != tt.status {
			t.Fatalf("%s: %d, want %d", tt.target, status, tt.status)
		}
		// With routes every line has pool= and route=, as the
		// configuration reference says: "-" for a request that reached
		// no pool, as backend= says "-" for one that reached no backend.
		s.log.waitFor(t, 1, "access: request:", "status="+fmt.Sprint(tt.status), "backend=- pool=- route=- ")
	}
	// Lines of requests that found a route are as before.
	if status, _ := s.send(t, "GET", "x", "/api/x", nil); status != 200 {
		t.Fatalf("/api/x: %d", status)
	}
	s.log.waitFor(t, 1, "access: request:", "status=200", "pool=api route=api ")
}

func TestAClientCannotForgeTheForwardedPrefix(t *testing.T) {
	s := newSite(t, map[string][]string{"a": {echoBackend(t, "a1")}}, []routing.Route{
		{Name: "stripped", PathPrefix: "/api", StripPrefix: true, Pool: "a"},
		{Name: "as-is", Pool: "a"},
	})
	forged := http.Header{"X-Forwarded-Prefix": {"/admin"}}
	for _, tt := range []struct{ target, path, prefix string }{
		{"/api/x", "/x", "/api"},
		{"/x", "/x", ""}, // nothing was removed: the backend gets no prefix
	} {
		status, lines := s.send(t, "GET", "x", tt.target, forged)
		if status != 200 || len(lines) != 3 || lines[1] != tt.path || lines[2] != tt.prefix {
			t.Errorf("%s: %d %q, want path %q and X-Forwarded-Prefix %q", tt.target, status, lines, tt.path, tt.prefix)
		}
	}
}
