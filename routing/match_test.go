package routing

import (
	"net/http"
	"sync"
	"testing"
)

// request is what Match is given.
type request struct {
	host, method, path string
	header             http.Header
}

// get is a GET of path on host with no headers.
func get(host, path string) request { return request{host: host, method: "GET", path: path} }

// matchName compiles routes and returns the name of the route req matches,
// or "" (404) when none does.
func matchName(t *testing.T, routes []Route, req request) string {
	t.Helper()
	tab, err := Compile(routes)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	i, ok := tab.Match(req.host, req.method, req.path, req.header)
	if !ok {
		return ""
	}
	if tab.Route(i).Name != routes[i].Name {
		t.Errorf("Route(%d) is %q, routes[%d] is %q", i, tab.Route(i).Name, i, routes[i].Name)
	}
	return routes[i].Name
}

func TestMatchHosts(t *testing.T) {
	routes := []Route{
		{Name: "exact", Hosts: []string{"api.example.com"}},
		{Name: "wild", Hosts: []string{"*.example.com"}},
		{Name: "mixed-case-config", Hosts: []string{"Shop.Example.ORG"}},
		{Name: "v6", Hosts: []string{"[2001:db8::1]", "::1"}},
		{Name: "v4", Hosts: []string{"127.0.0.1"}},
		{Name: "deep-wild", Hosts: []string{"*.b.example.net"}},
	}
	tests := []struct {
		name, host, want string
	}{
		{"an exact name matches", "api.example.com", "exact"},
		{"an exact name matches with a port", "api.example.com:443", "exact"},
		{"an exact name matches in mixed case", "API.Example.Com", "exact"},
		{"an exact name matches in mixed case with a port", "Api.EXAMPLE.com:8080", "exact"},
		{"an exact name matches with a trailing dot", "api.example.com.", "exact"},
		{"an exact name matches with a trailing dot and a port", "api.example.com.:80", "exact"},
		{"two trailing dots match nothing", "api.example.com..", ""},
		{"a config name in mixed case matches in lower case", "shop.example.org", "mixed-case-config"},
		{"a wildcard covers one label", "www.example.com", "wild"},
		{"a wildcard covers several labels", "a.b.c.example.com", "wild"},
		{"a wildcard covers a name in mixed case with a port", "WWW.Example.COM:8443", "wild"},
		{"a wildcard never covers the bare suffix", "example.com", ""},
		{"a wildcard never covers a name that only ends in the suffix's text", "badexample.com", ""},
		{"a deep wildcard covers a label before it", "a.b.example.net", "deep-wild"},
		{"a deep wildcard does not cover its suffix's parent", "c.example.net", ""},
		{"an IPv6 literal matches in brackets", "[2001:db8::1]", "v6"},
		{"an IPv6 literal matches with a port", "[2001:db8::1]:8080", "v6"},
		{"an IPv6 literal matches written another way", "[2001:DB8:0::1]:8080", "v6"},
		{"an IPv6 loopback matches", "[::1]:8080", "v6"},
		{"an IPv6 literal without brackets matches nothing", "::1", ""},
		{"an IPv6 literal with an unclosed bracket matches nothing", "[::1", ""},
		{"an IPv6 literal with junk after its bracket matches nothing", "[::1]x", ""},
		{"an IPv4 address in brackets matches nothing", "[127.0.0.1]", ""},
		{"an IPv4 address matches with a port", "127.0.0.1:9000", "v4"},
		{"an unknown host matches nothing", "other.org", ""},
		{"an empty host matches nothing", "", ""},
		{"a Kelvin sign is not a k", "api.example.\u212aom", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := matchName(t, routes, get(tt.host, "/")); got != tt.want {
				t.Errorf("host %q matches %q, want %q", tt.host, got, tt.want)
			}
		})
	}
}

func TestMatchPathPrefix(t *testing.T) {
	routes := []Route{
		{Name: "api", PathPrefix: "/api"},
		{Name: "static", PathPrefix: "/static/"},
		{Name: "tilde", PathPrefix: "/%7Euser"},
		{Name: "slash", PathPrefix: "/a%2fb"},
	}
	tests := []struct {
		name, path, want string
	}{
		{"a segment prefix matches itself", "/api", "api"},
		{"a segment prefix matches itself with a slash", "/api/", "api"},
		{"a segment prefix matches a path below it", "/api/x", "api"},
		{"a segment prefix never matches a longer segment", "/apix", ""},
		{"a segment prefix is case-sensitive", "/API", ""},
		{"a byte prefix matches a path below it", "/static/app.js", "static"},
		{"a byte prefix matches itself", "/static/", "static"},
		{"a byte prefix never matches without its slash", "/static", ""},
		{"a prefix with an escape of an unreserved character matches it decoded", "/~user/x", "tilde"},
		{"a prefix with a lower-case escape matches it upper-cased", "/a%2Fb/c", "slash"},
		{"an encoded slash never matches a real one", "/a/b/c", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := matchName(t, routes, get("h", tt.path)); got != tt.want {
				t.Errorf("path %q matches %q, want %q", tt.path, got, tt.want)
			}
		})
	}
}

func TestMatchMethodsAndHeaders(t *testing.T) {
	routes := []Route{
		{Name: "canary-write", Methods: []string{"POST", "PUT"}, Headers: map[string]string{"x-canary": "1"}},
		{Name: "tenant", Headers: map[string]string{"X-Tenant": "acme", "X-Env": "prod"}},
		{Name: "reads", Methods: []string{"GET", "HEAD"}},
	}
	tests := []struct {
		name   string
		method string
		header http.Header
		want   string
	}{
		{"a listed method with the header matches", "POST", http.Header{"X-Canary": {"1"}}, "canary-write"},
		{"another listed method with the header matches", "PUT", http.Header{"X-Canary": {"1"}}, "canary-write"},
		{"a listed method without the header falls through", "POST", nil, ""},
		{"a listed method with another value falls through", "POST", http.Header{"X-Canary": {"2"}}, ""},
		{"a header value is case-sensitive", "POST", http.Header{"X-Tenant": {"ACME"}, "X-Env": {"prod"}}, ""},
		{"a header sent twice counts as its values joined", "POST", http.Header{"X-Canary": {"1", "1"}}, ""},
		{"a joined value matches a header sent on two lines", "GET", http.Header{"X-Tenant": {"acme"}, "X-Env": {"pr", "od"}}, "reads"},
		{"every header must hold", "DELETE", http.Header{"X-Tenant": {"acme"}}, ""},
		{"all headers holding match", "DELETE", http.Header{"X-Tenant": {"acme"}, "X-Env": {"prod"}}, "tenant"},
		{"a method in lower case is another method", "get", nil, ""},
		{"an unlisted method matches nothing", "DELETE", nil, ""},
		{"a read matches the reads route", "HEAD", nil, "reads"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := request{host: "h", method: tt.method, path: "/", header: tt.header}
			if got := matchName(t, routes, req); got != tt.want {
				t.Errorf("%s with %v matches %q, want %q", tt.method, tt.header, got, tt.want)
			}
		})
	}
}

func TestJoinedEquals(t *testing.T) {
	tests := []struct {
		name string
		vals []string
		want string
		eq   bool
	}{
		{"one value equals itself", []string{"1"}, "1", true},
		{"an empty value equals the empty string", []string{""}, "", true},
		{"no value never equals", nil, "", false},
		{"two values equal their join", []string{"a", "b"}, "a, b", true},
		{"two values do not equal a join without space", []string{"a", "b"}, "a,b", false},
		{"two values do not equal the first", []string{"a", "b"}, "a", false},
		{"a longer want does not equal", []string{"a"}, "a, b", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := joinedEquals(tt.vals, tt.want); got != tt.eq {
				t.Errorf("joinedEquals(%q, %q) = %v, want %v", tt.vals, tt.want, got, tt.eq)
			}
		})
	}
}

func TestMatchFirstRouteWins(t *testing.T) {
	routes := []Route{
		{Name: "api-v1", Hosts: []string{"api.example.com", "*.api.example.com"}, PathPrefix: "/v1/",
			Methods: []string{"GET", "POST"}, Headers: map[string]string{"X-Canary": "1"}, Pool: "api", StripPrefix: true},
		{Name: "wild-before-exact", Hosts: []string{"*.example.com"}, PathPrefix: "/w"},
		{Name: "exact-after-wild", Hosts: []string{"www.example.com"}},
		{Name: "hostless-static", PathPrefix: "/static/"},
		{Name: "api-rest", Hosts: []string{"api.example.com"}},
		{Name: "site", Pool: "web"},
	}
	canary := http.Header{"X-Canary": {"1"}}
	tests := []struct {
		name string
		req  request
		want string
	}{
		{"the issue's example route matches its request", request{"api.example.com", "GET", "/v1/users", canary}, "api-v1"},
		{"the issue's example route matches a sub-domain", request{"eu.api.example.com:443", "POST", "/v1/", canary}, "api-v1"},
		{"without the canary header the request falls to the next route for its host", request{"api.example.com", "GET", "/v1/users", nil}, "api-rest"},
		{"a wildcard route before an exact one wins", get("www.example.com", "/w/x"), "wild-before-exact"},
		{"the exact route matches what the wildcard route does not", get("www.example.com", "/x"), "exact-after-wild"},
		{"a hostless route applies to a named host", get("api.example.com", "/static/a.css"), "hostless-static"},
		{"a hostless route applies to an unknown host", get("other.org", "/static/a.css"), "hostless-static"},
		{"a route with no conditions catches the rest", request{"other.org", "DELETE", "/x", nil}, "site"},
		{"a route with no conditions catches a request without a host", get("", "/"), "site"},
		{"a route with no conditions catches a bad host", get("[nope]", "/"), "site"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := matchName(t, routes, tt.req); got != tt.want {
				t.Errorf("%+v matches %q, want %q", tt.req, got, tt.want)
			}
		})
	}
}

func TestEmptyAndNilTablesMatchNothing(t *testing.T) {
	var nilTable *Table
	if _, ok := nilTable.Match("h", "GET", "/", nil); ok || nilTable.Len() != 0 {
		t.Errorf("a nil table matched, or has routes")
	}
	empty, err := Compile(nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := empty.Match("h", "GET", "/", nil); ok || empty.Len() != 0 {
		t.Errorf("an empty table matched, or has routes")
	}
}

func TestRouteIsNormalized(t *testing.T) {
	in := Route{Name: "n", Hosts: []string{"API.Example.com", "*.Example.ORG", "[2001:DB8::1]"}, PathPrefix: "/%7eu%2fx",
		Methods: []string{"GET"}, Headers: map[string]string{"x-canary": "1"}, Pool: "p", StripPrefix: true}
	tab, err := Compile([]Route{in, {PathPrefix: "/"}})
	if err != nil {
		t.Fatal(err)
	}
	got := tab.Route(0)
	if got.Name != "n" || got.Pool != "p" || !got.StripPrefix || got.PathPrefix != "/~u%2Fx" ||
		len(got.Hosts) != 3 || got.Hosts[0] != "api.example.com" || got.Hosts[1] != "*.example.org" || got.Hosts[2] != "2001:db8::1" ||
		got.Headers["X-Canary"] != "1" || len(got.Headers) != 1 {
		t.Errorf("Route(0) = %+v", got)
	}
	if in.Hosts[0] != "API.Example.com" {
		t.Errorf("Compile changed its input: %+v", in)
	}
	if p := tab.Route(1).PathPrefix; p != "" {
		t.Errorf(`a "/" prefix is normalized to %q, want ""`, p)
	}
}

func TestMatchDoesNotAllocate(t *testing.T) {
	tab, err := Compile(benchRoutes(100))
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{"X-Canary": {"1"}}
	for _, host := range []string{"svc96.example.com", "Svc96.Example.COM:443", "x.wild97.example.com", "[::1]:8080", "unknown.org"} {
		allocs := testing.AllocsPerRun(100, func() { tab.Match(host, "GET", "/v1/users/42", h) })
		if allocs != 0 {
			t.Errorf("Match for host %q: %v allocations, want 0", host, allocs)
		}
	}
}

func TestMatchNestedWildcardsKeepTheirOrder(t *testing.T) {
	routes := []Route{
		{Name: "deep-x", Hosts: []string{"*.b.a.com"}, PathPrefix: "/x"},
		{Name: "shallow-y", Hosts: []string{"*.a.com"}, PathPrefix: "/y"},
		{Name: "deep", Hosts: []string{"*.b.a.com"}},
		{Name: "exact", Hosts: []string{"c.b.a.com"}},
		{Name: "shallow", Hosts: []string{"*.a.com"}},
	}
	tests := []struct {
		name, host, path, want string
	}{
		{"the deeper wildcard's first route matches its path", "q.b.a.com", "/x", "deep-x"},
		{"the shallower wildcard's earlier route wins over the deeper's later one", "q.b.a.com", "/y", "shallow-y"},
		{"the deeper wildcard's catch-all comes next", "q.b.a.com", "/z", "deep"},
		{"a name both cover and one names exactly still goes in order", "c.b.a.com", "/z", "deep"},
		{"the shallower wildcard alone covers its other names", "b.a.com", "/z", "shallow"},
		{"neither covers the bare suffix", "a.com", "/z", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := matchName(t, routes, get(tt.host, tt.path)); got != tt.want {
				t.Errorf("%s%s matches %q, want %q", tt.host, tt.path, got, tt.want)
			}
		})
	}
}

// TestTableIsSafeToShare matches from several goroutines at once on one
// Table; under -race this shows that Match only reads it.
func TestTableIsSafeToShare(t *testing.T) {
	tab, err := Compile(benchRoutes(100))
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{"X-Canary": {"1"}}
	var wg sync.WaitGroup
	for _, host := range []string{"svc0.example.com", "x.wild1.example.com", "unknown.org", "[::1]"} {
		wg.Go(func() {
			for range 1000 {
				if i, ok := tab.Match(host, "GET", "/v1/users/42", h); !ok || i != 99 {
					t.Errorf("host %q matched %d, %v; want 99", host, i, ok)
					return
				}
			}
		})
	}
	wg.Wait()
}
