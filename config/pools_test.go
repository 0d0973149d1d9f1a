package config

import (
	"net/http"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/roundhouse/roundhouse/routing"
)

// twoPools is a file with a pool "api" (line 1) and a route to it, for the
// inheritance tests: pool holds what the api block adds, top what the top
// level says.
func twoPools(top, pool string) string {
	return top + "\n" + `pool "api" {
  backend "http://127.0.0.1:9001" {}
` + pool + `
}
route "api" { pool = "api" }
`
}

// apiPool returns the pool called api, failing the test without one.
func apiPool(t *testing.T, s *Settings) Pool {
	t.Helper()
	i := poolNamed(s.Pools, "api")
	if i < 0 {
		t.Fatalf("no pool api in %+v", s.Pools)
	}
	return s.Pools[i]
}

func TestPoolsInheritTheTopLevelKeyByKey(t *testing.T) {
	d := Defaults()
	tests := []struct {
		name      string
		top, pool string
		args      []string
		want      func(p *Pool) // changes from a pool that takes every default
	}{
		{"a pool with only backends takes every default", "", "", nil, func(*Pool) {}},
		{"a pool inherits the file's top-level policy, retries and slow start", `
policy     = "least-conn"
retries    = 0
slow_start = "30s"`, "", nil, func(p *Pool) { p.Policy, p.Retries, p.SlowStart = "least-conn", 0, 30*time.Second }},
		{"a pool inherits the top-level health, limits and ejection blocks", `
health {
  path     = "/ready"
  interval = "1s"
  headers  = { "X-Probe" = "1" }
}
limits {
  max_conns_per_backend = 10
  queue_size            = 5
}
ejection { after = 0 }`, "", nil, func(p *Pool) {
			p.Health.Path, p.Health.Interval, p.Health.Headers = "/ready", time.Second, http.Header{"X-Probe": {"1"}}
			p.Limits.MaxConnsPerBackend, p.Limits.QueueSize = 10, 5
			p.Ejection.After, p.Ejection.FailureRate = 0, 0 // --eject-after 0 alone: no ejection
		}},
		{"a pool inherits the per-request timeouts and carries the balancer's others", `
timeouts {
  dial                = "1s"
  tls_handshake       = "2s"
  response_header     = "3s"
  request             = "4s"
  client_idle         = "5s"
}`, "", nil, func(p *Pool) {
			p.Timeouts.Dial, p.Timeouts.TLSHandshake, p.Timeouts.ResponseHeader, p.Timeouts.Request = time.Second, 2*time.Second, 3*time.Second, 4*time.Second
			p.Timeouts.ClientIdle = 5 * time.Second
		}},
		{"a flag overrides the file's top level and is inherited", `policy = "least-conn"`, "",
			[]string{"--policy", "p2c", "--retries", "5", "--health-path", "/flag", "--request-timeout", "9s", "--eject-after", "2"},
			func(p *Pool) {
				p.Policy, p.Retries, p.Health.Path, p.Timeouts.Request, p.Ejection.After = "p2c", 5, "/flag", 9*time.Second, 2
			}},
		{"a value in the pool block wins over the file and the flags", `
policy  = "least-conn"
retries = 1`, `
  policy     = "random"
  retries    = 3
  slow_start = "1m"
  timeouts { response_header = "10s" }
  limits { queue_timeout = "7s" }
  ejection { max_percent = 20 }`, []string{"--policy", "p2c", "--retries", "5", "--response-header-timeout", "1s"},
			func(p *Pool) {
				p.Policy, p.Retries, p.SlowStart, p.Timeouts.ResponseHeader = "random", 3, time.Minute, 10*time.Second
				p.Limits.QueueTimeout, p.Ejection.MaxPercent = 7*time.Second, 20
			}},
		{"a pool's health block overrides only the keys it sets", `
health {
  path     = "/health"
  interval = "1s"
  fall     = 5
}`, `  health { path = "/healthz" }`, nil, func(p *Pool) {
			p.Health.Path, p.Health.Interval, p.Health.Fall = "/healthz", time.Second, 5
		}},
		{"a pool's discover list is its own", "", `  discover = ["dns+srv://api.service.consul"]`, nil, func(p *Pool) {
			p.Discover = []string{"dns+srv://api.service.consul"}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := twoPools(tt.top, tt.pool)
			s, err := load(t, src, tt.args...)
			if err != nil {
				t.Fatalf("Load: %v\n%s", err, src)
			}
			want := d.defaultPool()
			want.Name, want.Source = "api", "roundhouse.hcl:"+poolLine(src)+":6"
			want.Backends = []Backend{fileBackend(t, "http://127.0.0.1:9001", 1, false, strconv.Itoa(strings.Count(src[:strings.Index(src, `backend "`)], "\n")+1)+":11")}
			tt.want(&want)
			if got := apiPool(t, s); !reflect.DeepEqual(got, want) {
				t.Errorf("got\n%+v\nwant\n%+v", got, want)
			}
			if len(s.Pools) != 1 {
				t.Errorf("%d pools, want only api", len(s.Pools))
			}
		})
	}
}

// poolLine returns the line of src's pool "api" block, as a string.
func poolLine(src string) string {
	return strconv.Itoa(strings.Count(src[:strings.Index(src, `pool "api"`)], "\n") + 1)
}

func TestTheTopLevelStaysTheDefaultPoolsWhateverThePoolsSet(t *testing.T) {
	s, err := load(t, `
retries = 1
backend "http://127.0.0.1:9000" {}
pool "api" {
  retries = 4
  backend "http://127.0.0.1:9001" {}
}
route "api" {
  hosts = ["api.example.com"]
  pool  = "api"
}
route "rest" { pool = "default" }
`)
	if err != nil {
		t.Fatal(err)
	}
	if s.Retries != 1 || len(s.Backends) != 1 {
		t.Errorf("top level: retries %d, %d backends; want 1 and 1", s.Retries, len(s.Backends))
	}
	if len(s.Pools) != 2 || s.Pools[0].Name != DefaultPool || s.Pools[0].Retries != 1 || s.Pools[1].Retries != 4 {
		t.Errorf("pools %+v, want default (retries 1) then api (retries 4)", s.Pools)
	}
}

func TestTheDefaultPool(t *testing.T) {
	tests := []struct {
		name  string
		src   string
		args  []string
		pools []string // names, in order
	}{
		{"top-level backends alone make the default pool", `backend "http://127.0.0.1:9000" {}`, nil, []string{"default"}},
		{"--backend alone makes the default pool", "", []string{"--backend", "http://127.0.0.1:9000"}, []string{"default"}},
		{"--discover alone makes the default pool", "", []string{"--discover", "dns+srv://api.service.consul"}, []string{"default"}},
		{"a pool default block is the default pool and comes first", `
pool "api" {
  backend "http://127.0.0.1:9001" {}
}
pool "default" {
  backend "http://127.0.0.1:9000" {}
}
route "api" {
  path_prefix = "/api"
  pool = "api"
}
route "rest" { pool = "default" }
`, nil, []string{"default", "api"}},
		{"named pools and the top-level default pool coexist", `
backend "http://127.0.0.1:9000" {}
pool "web" {
  backend "http://127.0.0.1:9003" {}
}
pool "api" {
  backend "http://127.0.0.1:9001" {}
}
route "api" {
  hosts = ["api.example.com"]
  pool = "api"
}
route "web" {
  hosts = ["www.example.com"]
  pool = "web"
}
route "rest" { pool = "default" }
`, nil, []string{"default", "web", "api"}},
		{"a pool default block alone takes every request", `
pool "default" {
  retries = 0
  backend "http://127.0.0.1:9000" {}
}
`, nil, []string{"default"}},
		{"routes may leave out the default pool when there is none", `
pool "api" {
  backend "http://127.0.0.1:9001" {}
}
route "api" { pool = "api" }
`, nil, []string{"api"}},
		{"one backend URL may be in two pools", `
pool "a" {
  backend "http://127.0.0.1:9001" {}
}
pool "b" {
  backend "http://127.0.0.1:9001" {}
}
route "a" {
  methods = ["GET"]
  pool = "a"
}
route "b" { pool = "b" }
`, nil, []string{"a", "b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := load(t, tt.src, tt.args...)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			var names []string
			for _, p := range s.Pools {
				names = append(names, p.Name)
				if len(p.Backends) == 0 && len(p.Discover) == 0 {
					t.Errorf("pool %s has no backend", p.Name)
				}
			}
			if !reflect.DeepEqual(names, tt.pools) {
				t.Errorf("pools %q, want %q", names, tt.pools)
			}
		})
	}
}

func TestRoutesAreReadInFileOrder(t *testing.T) {
	s, err := load(t, `
pool "api" {
  backend "http://127.0.0.1:9001" {}
}
pool "web" {
  backend "http://127.0.0.1:9003" {}
}
route "api-v1" {
  hosts        = ["api.example.com", "*.api.example.com"]
  path_prefix  = "/v1/"
  methods      = ["GET", "POST"]
  headers      = { "X-Canary" = "1" }
  pool         = "api"
  strip_prefix = true
}
route "site" {
  pool = "web"
}
`)
	if err != nil {
		t.Fatal(err)
	}
	want := []routing.Route{
		{Name: "api-v1", Hosts: []string{"api.example.com", "*.api.example.com"}, PathPrefix: "/v1/", Methods: []string{"GET", "POST"},
			Headers: map[string]string{"X-Canary": "1"}, Pool: "api", StripPrefix: true},
		{Name: "site", Pool: "web"},
	}
	if !reflect.DeepEqual(s.Routes, want) {
		t.Errorf("routes\n%+v\nwant\n%+v", s.Routes, want)
	}
}

func TestBadPoolsAndRoutesAreReportedWithTheirPositions(t *testing.T) {
	const api = `pool "api" {
  backend "http://127.0.0.1:9001" {}
}` + "\n"
	tests := []struct {
		name string
		src  string
		args []string
		want []string
	}{
		{"a route naming an unknown pool", api + `route "r" {
  methods = ["GET"]
  pool    = "nope"
}
route "api" { pool = "api" }`, nil,
			[]string{`roundhouse.hcl:6:13: route "r": no pool "nope" (pools: api)`}},
		{"a route without a pool", api + `route "r" { methods = ["GET"] }` + "\n" + `route "api" { pool = "api" }`, nil,
			[]string{`roundhouse.hcl:4:7: route "r": no pool: name the pool that serves it, such as pool = "api"`}},
		{"a pool with no backends and no discovery", `pool "api" {}` + "\n" + `route "api" { pool = "api" }`, nil,
			[]string{`roundhouse.hcl:1:6: pool "api": no backend: add a block such as backend "http://127.0.0.1:8081" {} or a discover list`}},
		{"a duplicate pool name", api + api + `route "api" { pool = "api" }`, nil,
			[]string{`roundhouse.hcl:4:6: pool "api": given twice; the first is at line 1`}},
		{"a duplicate route name", api + `route "api" {
  methods = ["GET"]
  pool = "api"
}
route "api" { pool = "api" }`, nil,
			[]string{`roundhouse.hcl:8:7: route "api": given twice; the first is at line 4`}},
		{"a bad host pattern, at its place in the list", api + `route "api" {
  hosts = ["ok.example", "*."]
  pool  = "api"
}`, nil, []string{`roundhouse.hcl:5:26: route "api": hosts: "*.": a wildcard needs a suffix`}},
		{"a bad header, at its name", api + `route "api" {
  headers = {
    "X-Canary" = "1"
    "Host"     = "x"
  }
  pool = "api"
}`, nil, []string{`roundhouse.hcl:7:5: route "api": headers: "Host": match the host with hosts, not headers`}},
		{"a bad method, at its place in the list", api + `route "api" {
  methods = ["GET", "get"]
  pool    = "api"
}`, nil, []string{`roundhouse.hcl:5:21: route "api": methods: "get": methods are case-sensitive: write "GET"`}},
		{"a bad path prefix", api + `route "api" {
  path_prefix = "v1"
  pool        = "api"
}`, nil, []string{`roundhouse.hcl:5:17: route "api": path_prefix: "v1": must start with "/"`}},
		{"strip_prefix without path_prefix", api + `route "api" {
  pool         = "api"
  strip_prefix = true
}`, nil, []string{`roundhouse.hcl:6:18: route "api": strip_prefix needs a path_prefix to strip`}},
		{"a route an earlier one shadows, naming both", api + `route "all" { pool = "api" }
route "v1" {
  path_prefix = "/v1"
  pool        = "api"
}`, nil, []string{`roundhouse.hcl:5:7: route "v1" can never match: route "all" (line 4) is tried first and matches every request it would`}},
		{"a named pool without any route", api + oneBackend, nil,
			[]string{`roundhouse.hcl:1:6: pool "api": no route names it, so no request can reach it (without route blocks, every request goes to the default pool); add a route such as route "api" { pool = "api" }`}},
		{"a named pool no route names", api + `pool "web" {
  backend "http://127.0.0.1:9003" {}
}
route "api" { pool = "api" }`, nil,
			[]string{`roundhouse.hcl:4:6: pool "web": no route names it, so no request can reach it; add a route such as route "web" { pool = "web" }`}},
		{"the top-level default pool no route names", api + `route "api" { pool = "api" }` + oneBackend, nil,
			[]string{`roundhouse.hcl:5:9: backend: the default pool (top-level backends, --backend and --discover) is reached only through a route that names it: add route "rest" { pool = "default" } after the others`}},
		{"the --backend default pool no route names", api + `route "api" { pool = "api" }`, []string{"--backend", "http://127.0.0.1:9000"},
			[]string{`--backend: the default pool (top-level backends, --backend and --discover) is reached only through a route that names it: add route "rest" { pool = "default" } after the others`}},
		{"a pool default block beside top-level backends", `pool "default" {
  backend "http://127.0.0.1:9001" {}
}` + oneBackend, nil,
			[]string{`roundhouse.hcl:1:6: pool "default": the top-level backend blocks, --backend and --discover already make the default pool; move them into this block, or give this pool another name`}},
		{"a pool default block beside --discover", `pool "default" {
  backend "http://127.0.0.1:9001" {}
}`, []string{"--discover", "dns+srv://x.example"},
			[]string{`roundhouse.hcl:1:6: pool "default": the top-level backend blocks, --backend and --discover already make the default pool; move them into this block, or give this pool another name`}},
		{"a key of the whole balancer inside a pool", `pool "api" {
  backend "http://127.0.0.1:9001" {}
  listen = "127.0.0.1:1"
  log { level = "debug" }
  timeouts { client_idle = "1s" }
}
route "api" { pool = "api" }`, nil, []string{
			`roundhouse.hcl:3:3: pool "api": listen cannot be set in a pool block: it applies to the whole balancer; set it at the top level (a pool may set backend, policy, retries, slow_start, discover, health {}, timeouts {}, limits {}, ejection {})`,
			`roundhouse.hcl:4:3: pool "api": the log block cannot be set in a pool block: it applies to the whole balancer; set it at the top level (a pool may set backend, policy, retries, slow_start, discover, health {}, timeouts {}, limits {}, ejection {})`,
			`roundhouse.hcl:5:14: pool "api": timeouts.client_idle cannot be set in a pool block: it applies to the whole balancer; set it at the top level (a pool may set backend, policy, retries, slow_start, discover, health {}, timeouts {}, limits {}, ejection {})`,
		}},
		{"a bad value inside a pool, at its place", `pool "api" {
  backend "http://127.0.0.1:9001" {}
  retries = -1
  health { rise = 0 }
}
route "api" { pool = "api" }`, nil, []string{
			`roundhouse.hcl:3:13: pool "api": retries: must not be negative, got -1`,
			`roundhouse.hcl:4:19: pool "api": health.rise: must be at least 1, got 0`,
		}},
		{"a route or pool inside a pool", `pool "api" {
  backend "http://127.0.0.1:9001" {}
  route "r" { pool = "api" }
}
route "api" { pool = "api" }`, nil, []string{`roundhouse.hcl:3:3: pool "api": a route block cannot be inside a pool block: write it at the top level`}},
		{"a name that cannot be a label", `pool "a b" {
  backend "http://127.0.0.1:9001" {}
}` + "\n" + `route "r/1" { pool = "a b" }`, nil, []string{
			`roundhouse.hcl:1:6: pool "a b": a name is letters, digits, '-', '_' and '.', such as "api-v1"`,
			`roundhouse.hcl:4:7: route "r/1": a name is letters, digits, '-', '_' and '.', such as "api-v1"`,
			`roundhouse.hcl:4:22: route "r/1": no pool "a b" (pools: none)`,
		}},
		{"an unknown attribute in a route", api + `route "api" {
  pool = "api"
  host = "x"
}`, nil, []string{`roundhouse.hcl:6:3: unknown attribute "host" in a route block (known: hosts, path_prefix, methods, headers, pool, strip_prefix)`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := load(t, tt.src, tt.args...)
			if got := problems(t, err); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("problems\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestDemoRefusesPoolsAndRoutes(t *testing.T) {
	t.Chdir(t.TempDir())
	src := `pool "api" {
  backend "http://127.0.0.1:9001" {}
}` + "\n" + `route "api" { pool = "api" }`
	if err := os.WriteFile("roundhouse.hcl", []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load([]string{"--config", "roundhouse.hcl"}, Options{OwnBackends: true})
	want := []string{
		`roundhouse.hcl:1:6: pool: demo starts its own backends, in one pool; remove this block`,
		`roundhouse.hcl:4:7: route: demo starts its own backends, in one pool; remove this block`,
	}
	if got := problems(t, err); !reflect.DeepEqual(got, want) {
		t.Errorf("problems\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestTheSummaryListsPoolsAndRoutes(t *testing.T) {
	s, err := Load([]string{"--config", "../examples/routes.hcl"}, Options{})
	if err != nil {
		t.Fatalf("examples/routes.hcl: %v", err)
	}
	want := "3 backends in 2 pools: api (2 backends, policy least-conn), web (1 backend, policy round-robin); 2 routes: api -> api, site -> web; listen 127.0.0.1:8080"
	if got := s.Summary(); got != want {
		t.Errorf("Summary() = %q, want %q", got, want)
	}
	if api := s.Pools[0]; api.Health.Path != "/health" || api.Health.Interval != 2*time.Second || api.Retries != 1 {
		t.Errorf("pool api inherits badly: %+v", api)
	}
}

func TestTheIssuesExampleIsValid(t *testing.T) {
	s, err := load(t, `
policy = "round-robin"
health { path = "/health" }

pool "api" {
  policy  = "least-conn"
  retries = 1
  backend "http://127.0.0.1:9001" {}
  backend "http://127.0.0.1:9002" { weight = 2 }
  health   { path = "/healthz" }                 # overrides the default
  limits   { max_conns_per_backend = 100 }
  timeouts { response_header = "10s" }
  discover = ["etcd://127.0.0.1:2379/roundhouse/api"]   # optional, as --discover
}

pool "web" {
  backend "http://127.0.0.1:9003" {}
}

route "api-v1" {
  hosts        = ["api.example.com", "*.api.example.com"]
  path_prefix  = "/v1/"
  methods      = ["GET", "POST"]
  headers      = { "X-Canary" = "1" }
  pool         = "api"
  strip_prefix = true
}

route "site" {
  pool = "web"      # no conditions: matches everything
}
`)
	if err != nil {
		t.Fatal(err)
	}
	api, web := s.Pools[0], s.Pools[1]
	if api.Name != "api" || api.Policy != "least-conn" || api.Retries != 1 || len(api.Backends) != 2 || api.Backends[1].Weight != 2 ||
		api.Health.Path != "/healthz" || api.Limits.MaxConnsPerBackend != 100 || api.Timeouts.ResponseHeader != 10*time.Second ||
		!reflect.DeepEqual(api.Discover, []string{"etcd://127.0.0.1:2379/roundhouse/api/"}) {
		t.Errorf("pool api: %+v", api)
	}
	if web.Name != "web" || web.Policy != "round-robin" || web.Retries != 2 || web.Health.Path != "/health" || web.Timeouts.ResponseHeader != 30*time.Second {
		t.Errorf("pool web: %+v", web)
	}
	if len(s.Pools) != 2 || len(s.Routes) != 2 {
		t.Errorf("%d pools and %d routes, want 2 and 2", len(s.Pools), len(s.Routes))
	}
}

// balancing returns p without what is not a balancing setting (name,
// source, backends), for comparing pools made by different files.
func balancing(p Pool) Pool {
	p.Name, p.Source, p.Backends = "", "", nil
	return p
}

func TestEveryPoolKeyIsInheritedAndOverriddenByItself(t *testing.T) {
	// Two values of each key a pool may set (discover aside: never
	// inherited), neither its default.
	values := map[string][2]string{
		"policy": {`"least-conn"`, `"p2c"`}, "retries": {"0", "5"}, "slow_start": {`"10s"`, `"20s"`},
		"health.path": {`"/a"`, `"/b"`}, "health.expect": {`"200"`, `"204"`}, "health.body": {`"a"`, `"b"`},
		"health.host": {`"a.example"`, `"b.example"`}, "health.headers": {`{ "X-A" = "1" }`, `{ "X-B" = "2" }`},
		"health.port": {"8001", "8002"}, "health.interval": {`"1s"`, `"2s"`}, "health.timeout": {`"100ms"`, `"200ms"`},
		"health.rise": {"4", "5"}, "health.fall": {"6", "7"},
		"health.grpc": {"true", "false"}, "health.grpc_service": {`"a.v1.A"`, `"b.v1.B"`},
		"timeouts.dial": {`"1s"`, `"2s"`}, "timeouts.tls_handshake": {`"1s"`, `"2s"`},
		"timeouts.response_header": {`"1s"`, `"2s"`}, "timeouts.request": {`"1s"`, `"2s"`},
		"limits.max_conns_per_backend": {"1", "2"}, "limits.queue_size": {"1", "2"}, "limits.queue_timeout": {`"1s"`, `"2s"`},
		"ejection.after": {"1", "2"}, "ejection.time": {`"1s"`, `"2s"`}, "ejection.max_percent": {"10", "20"},
		"ejection.failure_rate": {"10", "20"}, "ejection.failure_window": {"10", "20"},
	}
	set := func(path, v string) string {
		if block, key, nested := strings.Cut(path, "."); nested {
			return block + " {\n  " + key + " = " + v + "\n}"
		}
		return path + " = " + v
	}
	// Flags every load of a key gives: a gRPC service needs the gRPC check.
	extra := map[string][]string{"health.grpc_service": {"--health-grpc"}}
	for _, path := range poolKeys {
		if path == "discover" {
			continue
		}
		v, ok := values[path]
		if !ok {
			t.Errorf("%s: no test values", path)
			continue
		}
		t.Run(path, func(t *testing.T) {
			api := func(top, pool string, args ...string) Pool {
				t.Helper()
				s, err := load(t, twoPools(top, pool), append(args, extra[path]...)...)
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				return balancing(apiPool(t, s))
			}
			a, b := api(set(path, v[0]), ""), api(set(path, v[1]), "")
			if reflect.DeepEqual(a, b) {
				t.Fatalf("%s = %s and = %s make the same pool", path, v[0], v[1])
			}
			if got := api(set(path, v[0]), set(path, v[1])); !reflect.DeepEqual(got, b) {
				t.Errorf("the pool's value does not win over the top level's:\n%+v\nwant\n%+v", got, b)
			}
			if fl := table[rowByPath[path]]; path != "health.headers" {
				_, name := fl.names()
				flagValue := strings.Trim(v[1], `"`)
				flag := []string{"--" + name, flagValue}
				if fl.fileType() == "bool" {
					flag = []string{"--" + name + "=" + flagValue}
				}
				if got := api(set(path, v[0]), "", flag...); !reflect.DeepEqual(got, b) {
					t.Errorf("--%s %s is not inherited over the file's top level:\n%+v\nwant\n%+v", name, flagValue, got, b)
				}
				if got := api("", set(path, v[0]), flag...); !reflect.DeepEqual(got, a) {
					t.Errorf("the pool's value does not win over --%s:\n%+v\nwant\n%+v", name, got, a)
				}
			}
		})
	}
}
