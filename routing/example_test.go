package routing_test

import (
	"errors"
	"fmt"
	"net/http/httptest"
	"net/url"

	"github.com/roundhouse/roundhouse/routing"
)

// The proxy's route stage, in a few lines: clean the path, match, strip,
// and forward the cleaned path.
func Example() {
	table, err := routing.Compile([]routing.Route{
		{Name: "api-v1", Hosts: []string{"api.example.com", "*.api.example.com"}, PathPrefix: "/v1/",
			Methods: []string{"GET", "POST"}, Headers: map[string]string{"X-Canary": "1"}, Pool: "api", StripPrefix: true},
		{Name: "site", Pool: "web"},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, target := range []string{"/v1/users/%2e%2e/orders", "/public/%2e%2e/v1/x", "/%2e%2e/etc"} {
		r := httptest.NewRequest("GET", "http://EU.api.example.com:8443"+target, nil)
		r.Header.Set("X-Canary", "1")

		path, err := routing.CleanPath(r.URL.EscapedPath())
		if errors.Is(err, routing.ErrAboveRoot) {
			fmt.Printf("%s: 400\n", target)
			continue
		}
		i, ok := table.Match(r.Host, r.Method, path, r.Header)
		if !ok {
			fmt.Printf("%s: 404\n", target)
			continue
		}
		route := table.Route(i)
		forwarded, removed := path, ""
		if route.StripPrefix {
			forwarded, removed = routing.Strip(path, route.PathPrefix)
		}
		out := &url.URL{RawPath: forwarded}
		out.Path, _ = url.PathUnescape(forwarded)
		fmt.Printf("%s: route %s, pool %s, path %s, X-Forwarded-Prefix %q\n",
			target, route.Name, route.Pool, out.EscapedPath(), removed)
	}
	// Output:
	// /v1/users/%2e%2e/orders: route api-v1, pool api, path /orders, X-Forwarded-Prefix "/v1"
	// /public/%2e%2e/v1/x: route api-v1, pool api, path /x, X-Forwarded-Prefix "/v1"
	// /%2e%2e/etc: 400
}

// Shadowed finds what validate reports as a route that can never match.
func ExampleShadowed() {
	routes := []routing.Route{
		{Name: "api", PathPrefix: "/api", Pool: "api"},
		{Name: "api-v1", PathPrefix: "/api/v1", Methods: []string{"GET"}, Pool: "v1"},
	}
	for _, s := range routing.Shadowed(routes) {
		fmt.Println(s)
	}
	// Output:
	// route "api-v1" can never match: route "api" (earlier) matches every request it would
}

// Check's errors name the field and the bad value, for validate to print
// after the file:line:col of the field.
func ExampleCheck() {
	err := routing.Check(routing.Route{Hosts: []string{"*."}, PathPrefix: "api"})
	fmt.Println(err)
	// Output:
	// hosts: "*.": a wildcard needs a suffix
	// path_prefix: "api": must start with "/"
}
