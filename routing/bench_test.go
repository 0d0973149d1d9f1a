package routing

import (
	"fmt"
	"net/http"
	"testing"
)

// benchRoutes returns n routes in a realistic mix, cycling through an
// exact host with a prefix, a wildcard host with a method, and a prefix
// with no host, none of which the benchmark's requests match; the last
// route, which they do match, has no host, a prefix and a header.
func benchRoutes(n int) []Route {
	routes := make([]Route, 0, n)
	for i := range n - 1 {
		var r Route
		switch i % 3 {
		case 0:
			r = Route{Hosts: []string{fmt.Sprintf("svc%d.example.com", i), fmt.Sprintf("svc%d.example.net", i)}, PathPrefix: "/v2"}
		case 1:
			r = Route{Hosts: []string{fmt.Sprintf("*.wild%d.example.com", i)}, PathPrefix: "/v1", Methods: []string{"DELETE"}}
		case 2:
			r = Route{PathPrefix: fmt.Sprintf("/p%d/", i)}
		}
		r.Name, r.Pool = fmt.Sprintf("r%d", i), "pool"
		routes = append(routes, r)
	}
	return append(routes, Route{Name: "last", PathPrefix: "/v1/users", Headers: map[string]string{"X-Canary": "1"}, Pool: "pool"})
}

// BenchmarkMatch matches a request against 1, 10 and 100 routes; every
// request matches only the last route, the worst case. The hosts are one
// that a route names exactly (in mixed case, with a port), one under a
// wildcard, and one no route names.
func BenchmarkMatch(b *testing.B) {
	h := http.Header{"X-Canary": {"1"}, "Accept": {"*/*"}, "User-Agent": {"bench"}}
	for _, n := range []int{1, 10, 100} {
		tab, err := Compile(benchRoutes(n))
		if err != nil {
			b.Fatal(err)
		}
		for _, host := range []struct{ name, host string }{
			{"exact", "Svc0.Example.COM:443"},
			{"wildcard", "x.wild1.example.com"},
			{"unknown", "unknown.example.org"},
		} {
			b.Run(fmt.Sprintf("routes=%d/host=%s", n, host.name), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if i, ok := tab.Match(host.host, "GET", "/v1/users/42", h); !ok || i != n-1 {
						b.Fatalf("matched %d, %v; want %d", i, ok, n-1)
					}
				}
			})
		}
	}
}

// BenchmarkCleanPath cleans a path that is already clean (the common case,
// which must not allocate) and one that is not.
func BenchmarkCleanPath(b *testing.B) {
	for _, p := range []struct{ name, path string }{
		{"clean", "/v1/users/42/orders"},
		{"dirty", "/v1//users/./%7Ebob/../42"},
	} {
		b.Run(p.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := CleanPath(p.path); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
