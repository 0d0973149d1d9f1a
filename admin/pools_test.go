package admin

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/sourcegraph/conc"

	"github.com/roundhouse/roundhouse/actors"
	"github.com/roundhouse/roundhouse/routing"
	"github.com/roundhouse/roundhouse/transport"
)

// poolSpec is one pool of a poolFixture: its name and its backends, each
// an origin of its own or, with shareWith, the same URL as another pool's.
type poolSpec struct {
	name    string
	origins []string // names of new origins
	// shared lists origins of pools earlier in the fixture, as
	// "pool/index", that this pool lists too (the same URL in two pools).
	shared []string
}

// testPool is one running pool of a poolFixture.
type testPool struct {
	name    string
	sel     *actors.Selector
	origins []*origin
	proxy   string // a proxy in front of this pool's selector alone
	stop    func() // stops the selector and waits for it
}

// poolFixture is several pools, each a real selector over real origins
// with its own proxy, and one admin API over all of them.
type poolFixture struct {
	*fixture // admin, client, log; sel and proxy are unused
	pools    []*testPool

	mu       sync.Mutex // guards unrouted; test helpers may lock
	unrouted uint64
}

type poolFixtureOptions struct {
	monitor  actors.MonitorConfig // Interval 0: an hour
	routes   []routing.Route
	unrouted bool // export the unrouted counter
}

func newPoolFixture(t *testing.T, o poolFixtureOptions, specs ...poolSpec) *poolFixture {
	t.Helper()
	f := &poolFixture{fixture: &fixture{log: &logSink{}}}
	log := hclog.New(&hclog.LoggerOptions{Output: f.log, Level: hclog.Info})
	tr := transport.New(transport.Options{DialTimeout: time.Second})
	t.Cleanup(tr.CloseIdleConnections)
	if o.monitor.Interval == 0 {
		o.monitor.Interval = time.Hour
	}
	o.monitor.Transport = tr
	byName := map[string]*testPool{}
	for _, spec := range specs {
		p := &testPool{name: spec.name}
		var backends []actors.BackendConfig
		add := func(org *origin) {
			u, err := url.Parse(org.srv.URL)
			if err != nil {
				t.Fatal(err)
			}
			p.origins = append(p.origins, org)
			backends = append(backends, actors.BackendConfig{URL: u, Weight: 1})
		}
		for _, name := range spec.origins {
			add(newOrigin(t, name))
		}
		for _, ref := range spec.shared {
			pool, i, _ := strings.Cut(ref, "/")
			add(byName[pool].origins[int(i[0]-'0')])
		}
		sel, err := actors.New(actors.Config{Backends: backends, Monitor: o.monitor, Logger: log.Named(spec.name)})
		if err != nil {
			t.Fatal(err)
		}
		p.sel = sel
		ctx, cancel := context.WithCancel(context.Background())
		var wg conc.WaitGroup
		wg.Go(func() { _ = sel.Run(ctx) })
		var once sync.Once
		p.stop = func() { once.Do(func() { cancel(); wg.Wait() }) }
		t.Cleanup(p.stop)
		proxy := httptest.NewServer(transport.NewProxy(transport.Config{Selector: sel, Transport: tr}))
		t.Cleanup(proxy.Close)
		p.proxy = proxy.URL
		f.pools = append(f.pools, p)
		byName[spec.name] = p
	}
	cfg := Config{
		Logger: log.Named("admin"),
		Pools: func(context.Context) ([]Pool, error) {
			out := make([]Pool, len(f.pools))
			for i, p := range f.pools {
				out[i] = Pool{Name: p.name, Selector: p.sel}
			}
			return out, nil
		},
		Routes: func(context.Context) ([]routing.Route, error) { return o.routes, nil },
	}
	if o.unrouted {
		cfg.Unrouted = func(context.Context) (uint64, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			return f.unrouted, nil
		}
	}
	h, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	adm := httptest.NewServer(h)
	t.Cleanup(adm.Close)
	f.admin = adm.URL
	f.client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	t.Cleanup(f.client.CloseIdleConnections)
	return f
}

// pool returns the fixture's pool called name.
func (f *poolFixture) pool(t *testing.T, name string) *testPool {
	t.Helper()
	for _, p := range f.pools {
		if p.name == name {
			return p
		}
	}
	t.Fatalf("no pool %s", name)
	return nil
}

// sendTo sends GET / through pool's proxy and checks it was answered 200.
func (f *poolFixture) sendTo(t *testing.T, pool string, n int) {
	t.Helper()
	p := f.pool(t, pool)
	for range n {
		resp, err := f.client.Get(p.proxy + "/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET / in pool %s: %d", pool, resp.StatusCode)
		}
	}
}

// fullStatus returns GET /status's whole answer.
func (f *poolFixture) fullStatus(t *testing.T) StatusResponse {
	t.Helper()
	a := f.call(t, request{method: "GET", path: "/status"})
	if a.code != http.StatusOK {
		t.Fatalf("GET /status: %d %s", a.code, a.body)
	}
	var st StatusResponse
	a.json(t, &st)
	return st
}

// poolStatus returns pool's backends from GET /status.
func (f *poolFixture) poolStatus(t *testing.T, pool string) []actors.BackendStatus {
	t.Helper()
	for _, p := range f.fullStatus(t).Pools {
		if p.Name == pool {
			return p.Backends
		}
	}
	t.Fatalf("no pool %s in /status", pool)
	return nil
}

func urls(st []actors.BackendStatus) []string {
	var out []string
	for _, b := range st {
		out = append(out, b.Name)
	}
	return out
}

func TestNewNeedsASelectorOrPools(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Error("New accepted a Config with neither Selector nor Pools")
	}
	h, err := New(Config{Pools: func(context.Context) ([]Pool, error) { return nil, nil }})
	if err != nil {
		t.Fatalf("New refused Pools without Selector: %v", err)
	}
	a := serve(t, h, "GET", "/status", "")
	if a.code != http.StatusOK || !strings.Contains(string(a.body), `"backends": []`) {
		t.Errorf("no pools: GET /status = %d %s, want 200 and empty backends", a.code, a.body)
	}
	if a := serve(t, h, "POST", "/backends/x/drain", ""); a.code != http.StatusNotFound || !strings.Contains(a.errorText(t), "no pools") {
		t.Errorf("no pools: drain = %d %s, want 404 saying there are no pools", a.code, a.body)
	}
}

func TestStatusGroupsBackendsByPool(t *testing.T) {
	f := newPoolFixture(t, poolFixtureOptions{},
		poolSpec{name: DefaultPool, origins: []string{"a", "b"}},
		poolSpec{name: "api", origins: []string{"c"}, shared: []string{"default/0"}})
	st := f.fullStatus(t)
	def, api := f.pool(t, DefaultPool), f.pool(t, "api")
	wantDefault := []string{def.origins[0].srv.URL, def.origins[1].srv.URL}
	wantAPI := []string{api.origins[0].srv.URL, def.origins[0].srv.URL}
	if got := urls(st.Backends); !slices.Equal(got, wantDefault) {
		t.Errorf("top-level backends %v, want the default pool's %v", got, wantDefault)
	}
	if len(st.Pools) != 2 || st.Pools[0].Name != DefaultPool || st.Pools[1].Name != "api" {
		t.Fatalf("pools %+v, want default then api", st.Pools)
	}
	if got := urls(st.Pools[0].Backends); !slices.Equal(got, wantDefault) {
		t.Errorf("pool default: %v, want %v", got, wantDefault)
	}
	if got := urls(st.Pools[1].Backends); !slices.Equal(got, wantAPI) {
		t.Errorf("pool api: %v, want %v", got, wantAPI)
	}
	if st.Time.IsZero() {
		t.Error("no snapshot time")
	}

	// A pool whose selector has stopped (a reload removed it) is left out.
	api.stop()
	st = f.fullStatus(t)
	if len(st.Pools) != 1 || st.Pools[0].Name != DefaultPool {
		t.Errorf("after api's selector stopped: pools %+v, want default alone", st.Pools)
	}
}

func TestStatusWithoutADefaultPoolHasEmptyTopLevelBackends(t *testing.T) {
	f := newPoolFixture(t, poolFixtureOptions{},
		poolSpec{name: "api", origins: []string{"a"}},
		poolSpec{name: "web", origins: []string{"b"}})
	a := f.call(t, request{method: "GET", path: "/status"})
	if !strings.Contains(string(a.body), `"backends": [],`) {
		t.Errorf("the top-level backends are not an empty list:\n%s", a.body)
	}
	var st StatusResponse
	a.json(t, &st)
	if len(st.Pools) != 2 || st.Pools[0].Name != "api" || st.Pools[1].Name != "web" || len(st.Pools[1].Backends) != 1 {
		t.Errorf("pools %+v, want api and web with one backend each", st.Pools)
	}
	// The paths without a pool speak of the default pool, which is not there.
	id := st.Pools[0].Backends[0].ID
	a = f.call(t, request{method: "POST", path: "/backends/" + id + "/drain"})
	if a.code != http.StatusNotFound || !strings.Contains(a.errorText(t), `unknown pool "default"`) {
		t.Errorf("drain without a default pool: %d %s, want 404 naming the pool", a.code, a.body)
	}
}

func TestRoutesListsTheRoutesInOrder(t *testing.T) {
	routes := []routing.Route{
		{Name: "api-v1", Hosts: []string{"api.example.com", "*.api.example.com"}, PathPrefix: "/v1/",
			Methods: []string{"GET", "POST"}, Headers: map[string]string{"X-Canary": "1"}, Pool: "api", StripPrefix: true},
		{Name: "site", Pool: DefaultPool},
	}
	f := newPoolFixture(t, poolFixtureOptions{routes: routes},
		poolSpec{name: DefaultPool, origins: []string{"a"}},
		poolSpec{name: "api", origins: []string{"b"}})
	a := f.call(t, request{method: "GET", path: "/routes"})
	if a.code != http.StatusOK {
		t.Fatalf("GET /routes: %d %s", a.code, a.body)
	}
	var raw struct {
		Routes []map[string]any `json:"routes"`
	}
	a.json(t, &raw)
	if len(raw.Routes) != 2 {
		t.Fatalf("%d routes, want 2: %s", len(raw.Routes), a.body)
	}
	keys := []string{"name", "hosts", "path_prefix", "methods", "headers", "pool", "strip_prefix"}
	for i, r := range raw.Routes {
		got := make([]string, 0, len(r))
		for k := range r {
			got = append(got, k)
		}
		slices.Sort(got)
		want := slices.Sorted(slices.Values(keys))
		if !slices.Equal(got, want) {
			t.Errorf("route %d has keys %v, want the configuration's %v", i, got, want)
		}
	}
	var resp RoutesResponse
	a.json(t, &resp)
	first := resp.Routes[0]
	if first.Name != "api-v1" || !slices.Equal(first.Hosts, routes[0].Hosts) || first.PathPrefix != "/v1/" ||
		!slices.Equal(first.Methods, routes[0].Methods) || first.Headers["X-Canary"] != "1" || first.Pool != "api" || !first.StripPrefix {
		t.Errorf("first route %+v, want %+v", first, routes[0])
	}
	// A route with no conditions shows empty lists and object, not nulls.
	if !strings.Contains(string(a.body), `"hosts": [],`) || !strings.Contains(string(a.body), `"headers": {},`) {
		t.Errorf("the catch-all route's unstated conditions are not empty lists and objects:\n%s", a.body)
	}
	if resp.Routes[1].Name != "site" || resp.Routes[1].Pool != DefaultPool || resp.Routes[1].StripPrefix {
		t.Errorf("second route %+v", resp.Routes[1])
	}

	// Without Config.Routes (one pool, no route blocks): an empty list.
	one := newFixture(t, fixtureOptions{}, "a")
	a = one.call(t, request{method: "GET", path: "/routes"})
	if a.code != http.StatusOK || !strings.Contains(string(a.body), `"routes": []`) {
		t.Errorf("GET /routes without routes: %d %s, want 200 and an empty list", a.code, a.body)
	}
	if a := one.call(t, request{method: "POST", path: "/routes"}); a.code != http.StatusMethodNotAllowed {
		t.Errorf("POST /routes: %d, want 405", a.code)
	}
}

func TestRoutesErrorIsA500(t *testing.T) {
	sel, err := actors.New(actors.Config{})
	if err != nil {
		t.Fatal(err)
	}
	h, err := New(Config{Selector: sel, Routes: func(context.Context) ([]routing.Route, error) {
		return nil, errors.New("route table gone")
	}})
	if err != nil {
		t.Fatal(err)
	}
	if a := serve(t, h, "GET", "/routes", ""); a.code != http.StatusInternalServerError || !strings.Contains(a.errorText(t), "route table gone") {
		t.Errorf("GET /routes = %d %s, want 500 with the error", a.code, a.body)
	}
}

// The same backend URL in two pools is two backends with the same id: an
// operation under /pools/NAME changes only NAME's, and the old paths only
// the default pool's.
func TestPoolBackendOperationsTouchOnlyThatPool(t *testing.T) {
	f := newPoolFixture(t, poolFixtureOptions{},
		poolSpec{name: DefaultPool, origins: []string{"a", "b"}},
		poolSpec{name: "api", origins: []string{"c"}, shared: []string{"default/0"}})
	def, api := f.pool(t, DefaultPool), f.pool(t, "api")
	shared := def.origins[0].srv.URL
	id := byURL(t, f.poolStatus(t, "api"), shared).ID
	if other := byURL(t, f.poolStatus(t, DefaultPool), shared).ID; other != id {
		t.Fatalf("the shared URL has ids %s and %s", id, other)
	}
	states := func() (string, string) {
		return byURL(t, f.poolStatus(t, DefaultPool), shared).State, byURL(t, f.poolStatus(t, "api"), shared).State
	}
	steps := []struct {
		path                 string
		wantDefault, wantAPI string
		wantAnswer           string
	}{
		{"/pools/api/backends/" + id + "/drain", "up", "draining", "draining"},
		{"/pools/api/backends/" + id + "/disable", "up", "disabled", "disabled"},
		{"/backends/" + id + "/disable", "disabled", "disabled", "disabled"},
		{"/pools/api/backends/" + id + "/enable", "disabled", "up", "up"},
		{"/pools/default/backends/" + id + "/enable", "up", "up", "up"},
	}
	for _, s := range steps {
		a := f.call(t, request{method: "POST", path: s.path})
		if a.code != http.StatusOK {
			t.Fatalf("POST %s: %d %s", s.path, a.code, a.body)
		}
		var b actors.BackendStatus
		a.json(t, &b)
		if b.State != s.wantAnswer || b.Name != shared {
			t.Errorf("POST %s answered %s %s, want %s %s", s.path, b.Name, b.State, shared, s.wantAnswer)
		}
		if d, p := states(); d != s.wantDefault || p != s.wantAPI {
			t.Errorf("after POST %s: default's %s, api's %s; want %s and %s", s.path, d, p, s.wantDefault, s.wantAPI)
		}
	}
	if !strings.Contains(f.log.String(), "backend drained: backend="+shared+" id="+id+" client=127.0.0.1:") ||
		f.log.Count("backend drained", "pool=api") != 1 {
		t.Errorf("the drain in api was not logged with its pool:\n%s", f.log)
	}

	// Add to api: only api has it.
	extra := newOrigin(t, "extra")
	a := f.call(t, request{method: "POST", path: "/pools/api/backends", body: `{"url": "` + extra.srv.URL + `"}`})
	if a.code != http.StatusCreated {
		t.Fatalf("add to api: %d %s", a.code, a.body)
	}
	if got := urls(f.poolStatus(t, "api")); !slices.Contains(got, extra.srv.URL) {
		t.Errorf("api's backends %v lack the added one", got)
	}
	if got := urls(f.poolStatus(t, DefaultPool)); slices.Contains(got, extra.srv.URL) {
		t.Errorf("the default pool %v got api's added backend", got)
	}
	// Traffic in api reaches it (round-robin over three).
	resp := 0
	for range 3 {
		r, err := f.client.Get(api.proxy + "/")
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		if r.Header.Get("X-Backend") == "extra" {
			resp++
		}
	}
	if resp != 1 {
		t.Errorf("extra answered %d of 3 requests in api, want 1", resp)
	}

	// Remove the shared URL from api: the default pool keeps it.
	a = f.call(t, request{method: "DELETE", path: "/pools/api/backends/" + id})
	if a.code != http.StatusOK {
		t.Fatalf("DELETE in api: %d %s", a.code, a.body)
	}
	eventually(t, func() string { return "the shared backend to leave api" }, func() bool {
		return !slices.Contains(urls(f.poolStatus(t, "api")), shared)
	})
	if got := urls(f.poolStatus(t, DefaultPool)); !slices.Contains(got, shared) {
		t.Errorf("removing from api removed it from default too: %v", got)
	}
	// An id that only another pool has is unknown in this one.
	idB := byURL(t, f.poolStatus(t, DefaultPool), def.origins[1].srv.URL).ID
	if a := f.call(t, request{method: "POST", path: "/pools/api/backends/" + idB + "/drain"}); a.code != http.StatusNotFound {
		t.Errorf("draining default's backend in api: %d %s, want 404", a.code, a.body)
	}
}

func TestUnknownPoolIs404(t *testing.T) {
	f := newPoolFixture(t, poolFixtureOptions{},
		poolSpec{name: DefaultPool, origins: []string{"a"}},
		poolSpec{name: "api", origins: []string{"b"}})
	id := f.poolStatus(t, DefaultPool)[0].ID
	for _, r := range []request{
		{method: "POST", path: "/pools/nope/backends", body: `{"url": "http://127.0.0.1:1"}`},
		{method: "DELETE", path: "/pools/nope/backends/" + id},
		{method: "POST", path: "/pools/nope/backends/" + id + "/drain"},
		{method: "POST", path: "/pools/nope/backends/" + id + "/enable"},
		{method: "POST", path: "/pools/nope/backends/" + id + "/disable"},
		{method: "POST", path: "/pools/Default/backends/" + id + "/drain"}, // names are exact
	} {
		a := f.call(t, r)
		if a.code != http.StatusNotFound {
			t.Errorf("%s %s: %d %s, want 404", r.method, r.path, a.code, a.body)
			continue
		}
		if msg := a.errorText(t); !strings.Contains(msg, "unknown pool") || !strings.Contains(msg, "default, api") {
			t.Errorf("%s %s: error %q, want it to name the unknown pool and the pools there are", r.method, r.path, msg)
		}
	}
	if a := f.call(t, request{method: "GET", path: "/pools/api/backends/" + id + "/drain"}); a.code != http.StatusMethodNotAllowed {
		t.Errorf("GET on a pool's drain: %d, want 405", a.code)
	}
	if st := f.poolStatus(t, DefaultPool); st[0].State != "up" {
		t.Errorf("a refused request changed the default pool: %+v", st[0])
	}
}

func TestMetricsCarryThePoolLabel(t *testing.T) {
	f := newPoolFixture(t, poolFixtureOptions{unrouted: true},
		poolSpec{name: DefaultPool, origins: []string{"a", "b"}},
		poolSpec{name: "api", origins: []string{"c"}, shared: []string{"default/0"}})
	def := f.pool(t, DefaultPool)
	shared := def.origins[0].srv.URL
	f.sendTo(t, DefaultPool, 4) // 2 to a, 2 to b
	f.sendTo(t, "api", 6)       // 3 to c, 3 to a
	f.mu.Lock()
	f.unrouted = 7
	f.mu.Unlock()
	fams := f.scrape(t)
	eventually(t, func() string { return "10 requests in roundhouse_requests_total" }, func() bool {
		fams = f.scrape(t)
		return sum(t, fams, "roundhouse_requests_total", nil) >= 10
	})
	checks := []struct {
		family string
		labels map[string]string
		want   float64
	}{
		{"roundhouse_requests_total", map[string]string{"pool": DefaultPool}, 4},
		{"roundhouse_requests_total", map[string]string{"pool": "api"}, 6},
		{"roundhouse_requests_total", map[string]string{"pool": DefaultPool, "backend": shared}, 2},
		{"roundhouse_requests_total", map[string]string{"pool": "api", "backend": shared}, 3},
		{"roundhouse_backend_attempts_total", map[string]string{"pool": "api", "backend": shared}, 3},
		{"roundhouse_request_duration_seconds", map[string]string{"pool": "api"}, 6},
		{"roundhouse_backend_up", map[string]string{"pool": DefaultPool}, 2},
		{"roundhouse_backend_up", map[string]string{"pool": "api"}, 2},
		{"roundhouse_backend_state", map[string]string{"pool": "api", "state": "up"}, 2},
		{"roundhouse_backend_weight", map[string]string{"pool": "api"}, 2},
		{"roundhouse_config_reloads_total", map[string]string{"pool": "api"}, 0},
		{"roundhouse_queued_requests", map[string]string{"pool": DefaultPool}, 0},
		{"roundhouse_unrouted_requests_total", nil, 7},
	}
	for _, c := range checks {
		if got := sum(t, fams, c.family, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.family, c.labels, got, c.want)
		}
	}
	// Every roundhouse series but the unrouted count has a pool, and one
	// the scrape has.
	for name, fam := range fams {
		if !strings.HasPrefix(name, "roundhouse_") || name == "roundhouse_unrouted_requests_total" {
			continue
		}
		for _, m := range fam.GetMetric() {
			if p := label(m, "pool"); p != DefaultPool && p != "api" {
				t.Errorf("%s series %v has pool %q", name, m.GetLabel(), p)
			}
		}
	}
	for _, name := range []string{"roundhouse_config_reloads_total", "roundhouse_queue_full_total", "roundhouse_queue_timeouts_total", "roundhouse_queued_requests"} {
		if n := len(fams[name].GetMetric()); n != 2 {
			t.Errorf("%s: %d series, want one per pool", name, n)
		}
	}
	if n := len(fams["roundhouse_unrouted_requests_total"].GetMetric()); n != 1 || len(fams["roundhouse_unrouted_requests_total"].GetMetric()[0].GetLabel()) != 0 {
		t.Errorf("roundhouse_unrouted_requests_total: want one series without labels, got %v", fams["roundhouse_unrouted_requests_total"])
	}

	// A pool stopped by a reload leaves the scrape; the scrape still works.
	f.pool(t, "api").stop()
	fams = f.scrape(t)
	if got := sum(t, fams, "roundhouse_backend_up", map[string]string{"pool": "api"}); got != 0 {
		t.Errorf("the stopped pool still has %v backends up", got)
	}
	if got := sum(t, fams, "roundhouse_backend_up", map[string]string{"pool": DefaultPool}); got != 2 {
		t.Errorf("the default pool has %v backends up after api stopped, want 2", got)
	}
}

// With Config.Selector alone the default pool's series say pool="default"
// (the one change the pool label makes to a single-pool balancer), and
// there is no unrouted count.
func TestMetricsOfTheDefaultPoolAloneSayPoolDefault(t *testing.T) {
	f := newFixture(t, fixtureOptions{}, "a")
	fams := f.scrape(t)
	if _, ok := fams["roundhouse_unrouted_requests_total"]; ok {
		t.Error("roundhouse_unrouted_requests_total exported without Config.Unrouted")
	}
	for _, name := range []string{"roundhouse_backend_up", "roundhouse_config_reloads_total", "roundhouse_queued_requests"} {
		for _, m := range fams[name].GetMetric() {
			if p := label(m, "pool"); p != DefaultPool {
				t.Errorf("%s series %v: pool %q, want default", name, m.GetLabel(), p)
			}
		}
	}
}

func TestWriteTableWithPools(t *testing.T) {
	now := time.Date(2026, 12, 7, 6, 0, 0, 0, time.UTC)
	a := actors.BackendStatus{Name: "http://127.0.0.1:9001", ID: "aaaa", State: "up", Up: true, Weight: 1, Requests: 5}
	b := actors.BackendStatus{Name: "http://127.0.0.1:9002", ID: "bbbb", State: "down", Weight: 2,
		LastProbe: now.Add(-2 * time.Second), LastProbeError: "status 503"}
	st := &StatusResponse{Time: now, Backends: []actors.BackendStatus{a}, Pools: []PoolStatus{
		{Name: DefaultPool, Backends: []actors.BackendStatus{a}},
		{Name: "api", Backends: []actors.BackendStatus{b, a}},
		{Name: "empty", Backends: []actors.BackendStatus{}},
	}}
	var out strings.Builder
	if err := WriteTable(&out, st); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
	if len(lines) != 5 || !strings.HasPrefix(lines[0], "POOL  ") {
		t.Fatalf("want a header with POOL first and 4 rows:\n%s", out.String())
	}
	col := strings.Index(lines[0], "URL")
	wantPools := []string{"default", "api", "api", "empty"}
	for i, line := range lines[1:] {
		if !strings.HasPrefix(line, wantPools[i]+" ") {
			t.Errorf("row %d is not in pool %s: %q", i, wantPools[i], line)
		}
		if i < 3 && strings.Index(line, "http://") != col {
			t.Errorf("row %d is not aligned with the header:\n%s", i, out.String())
		}
	}
	if !strings.Contains(lines[2], "failed 2s ago") || !strings.Contains(lines[4], "(no backends)") {
		t.Errorf("unexpected rows:\n%s", out.String())
	}

	// The default pool alone prints as before pools, whether the answer
	// lists it in pools or (an older balancer) only at the top level.
	var withPools, without strings.Builder
	if err := WriteTable(&withPools, &StatusResponse{Time: now, Backends: []actors.BackendStatus{a}, Pools: []PoolStatus{{Name: DefaultPool, Backends: []actors.BackendStatus{a}}}}); err != nil {
		t.Fatal(err)
	}
	if err := WriteTable(&without, &StatusResponse{Time: now, Backends: []actors.BackendStatus{a}}); err != nil {
		t.Fatal(err)
	}
	if withPools.String() != without.String() || strings.Contains(without.String(), "POOL") || !strings.HasPrefix(without.String(), "ID  ") {
		t.Errorf("the default pool alone printed\n%s\nand without pools\n%s", withPools.String(), without.String())
	}
}

// A balancer without pools logs its backend changes as it did before
// there were pools: the default pool goes unnamed, as in the selector's
// own lines.
func TestChangesInTheDefaultPoolAreLoggedWithoutAPool(t *testing.T) {
	f := newFixture(t, fixtureOptions{}, "a", "b")
	idA := f.status(t)[0].ID
	for _, op := range []string{"drain", "enable"} {
		if a := f.call(t, request{method: "POST", path: "/backends/" + idA + "/" + op}); a.code != http.StatusOK {
			t.Fatalf("%s: %d %s", op, a.code, a.body)
		}
	}
	if f.log.Count("admin: backend drained: backend="+f.originURL(0)) != 1 || f.log.Count("admin: backend enabled: backend="+f.originURL(0)) != 1 {
		t.Fatalf("the changes were not logged:\n%s", f.log)
	}
	if n := f.log.Count("pool="); n != 0 {
		t.Errorf("%d lines name a pool, want none:\n%s", n, f.log)
	}
}
