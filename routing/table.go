package routing

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
)

// Table is a compiled, immutable list of routes. Once Compile returns it,
// nothing changes it, so any number of goroutines may call its methods at
// once and it can be handed from one owner to another by pointer. A nil
// *Table matches nothing.
type Table struct {
	routes []compiled

	// byHost holds, for each exact name or address some route lists, the
	// indices (in order) of every route that can match that host: those
	// naming it, those with a wildcard covering it and those with no hosts.
	byHost map[string][]int32
	// others holds, in order, the routes that can match a host no route
	// names exactly: those with no hosts or with a wildcard.
	others []int32
}

// compiled is one route in the form Match uses.
type compiled struct {
	route   Route    // normalized, as Table.Route gives it
	exact   []string // exact names and addresses
	wild    []string // wildcard suffixes with their dot: ".example.com"
	prefix  string   // normalized; "" for none
	methods []string
	headers []header // sorted by name
}

type header struct{ name, value string }

// Compile checks routes (see Check) and builds the Table that matches them
// in order. Its error names the first bad route (by name, or by position
// when it has none) and wraps what Check found. Compile does not look at
// Name or Pool, nor at shadowing (see Shadowed). No routes give a Table
// that matches nothing. Compile keeps no reference to routes.
func Compile(routes []Route) (*Table, error) {
	t := &Table{byHost: map[string][]int32{}}
	for i, r := range routes {
		c, err := compile(r)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", describe(r, i), err)
		}
		t.routes = append(t.routes, c)
	}
	for _, c := range t.routes {
		for _, name := range c.exact {
			t.byHost[name] = nil
		}
	}
	for i, c := range t.routes {
		if len(c.exact) == 0 || len(c.wild) > 0 {
			t.others = append(t.others, int32(i))
		}
		for name := range t.byHost {
			if c.matchesHost([]byte(name), kindOf(name)) {
				t.byHost[name] = append(t.byHost[name], int32(i))
			}
		}
	}
	return t, nil
}

// describe names route i in an error.
func describe(r Route, i int) string {
	if r.Name != "" {
		return fmt.Sprintf("route %q", r.Name)
	}
	return fmt.Sprintf("route %d", i+1)
}

// kindOf says whether a normalized exact name is an IPv6 address.
func kindOf(name string) hostKind {
	if isIPv6(name) {
		return hostIPv6
	}
	return hostName
}

// compile checks one route and normalizes it.
func compile(r Route) (compiled, error) {
	if err := Check(r); err != nil {
		return compiled{}, err
	}
	var c compiled
	norm := r
	norm.Hosts = nil
	for _, h := range r.Hosts {
		p, _ := parseHost(h)
		norm.Hosts = append(norm.Hosts, p.key())
		if p.wild {
			c.wild = append(c.wild, "."+p.name)
		} else {
			c.exact = append(c.exact, p.name)
		}
	}
	if r.PathPrefix != "" && r.PathPrefix != "/" {
		c.prefix = normalizeEscapes(r.PathPrefix)
	}
	norm.PathPrefix = c.prefix
	c.methods = slices.Clone(r.Methods)
	norm.Methods = c.methods
	norm.Headers = nil
	if len(r.Headers) > 0 {
		norm.Headers = make(map[string]string, len(r.Headers))
		for _, name := range sortedKeys(r.Headers) {
			canon := http.CanonicalHeaderKey(name)
			norm.Headers[canon] = r.Headers[name]
			c.headers = append(c.headers, header{canon, r.Headers[name]})
		}
		slices.SortFunc(c.headers, func(a, b header) int { return strings.Compare(a.name, b.name) })
	}
	c.route = norm
	return c, nil
}

// Len returns the number of routes in t.
func (t *Table) Len() int {
	if t == nil {
		return 0
	}
	return len(t.routes)
}

// Route returns route i of t as Compile normalized it: hosts in lower case
// (IPv6 addresses canonical, without brackets), PathPrefix with its
// escapes normalized as CleanPath does them ("" for none, also when "/"
// was given), header names canonical. Give its PathPrefix to Strip. The
// slices and map are shared with t: do not modify them.
func (t *Table) Route(i int) Route { return t.routes[i].route }

// Match returns the index of the first route, in order, that matches a
// request, and true; or 0 and false when none does (the proxy answers 404).
//
// host is the request's Host as received (r.Host: with or without a port,
// IPv6 in brackets); method is r.Method; path is the request's path as
// CleanPath returned it; h is the request's header with canonical keys, as
// net/http's server gives it. Match does not allocate for hosts of up to
// 128 bytes.
func (t *Table) Match(host, method, path string, h http.Header) (int, bool) {
	if t == nil {
		return 0, false
	}
	var buf [128]byte
	key, kind := requestHost(buf[:0], host)
	cands, exact := t.byHost[string(key)]
	if !exact {
		cands = t.others
	}
	for _, i := range cands {
		c := &t.routes[i]
		if !exact && !c.matchesHost(key, kind) {
			continue
		}
		if c.matchesRest(method, path, h) {
			return int(i), true
		}
	}
	return 0, false
}

// matchesHost reports whether the route's hosts condition holds for a
// request host normalized by requestHost.
func (c *compiled) matchesHost(key []byte, kind hostKind) bool {
	if len(c.exact) == 0 && len(c.wild) == 0 {
		return true
	}
	if kind == hostInvalid {
		return false
	}
	for _, e := range c.exact {
		if string(key) == e {
			return true
		}
	}
	if kind != hostName {
		return false
	}
	for _, w := range c.wild {
		if len(key) > len(w) && string(key[len(key)-len(w):]) == w {
			return true
		}
	}
	return false
}

// matchesRest reports whether the route's path, method and header
// conditions hold.
func (c *compiled) matchesRest(method, path string, h http.Header) bool {
	if c.prefix != "" && !hasPrefix(path, c.prefix) {
		return false
	}
	if len(c.methods) > 0 && !slices.Contains(c.methods, method) {
		return false
	}
	for _, hd := range c.headers {
		if !joinedEquals(h[hd.name], hd.value) {
			return false
		}
	}
	return true
}

// joinedEquals reports whether strings.Join(vals, ", ") == want for a
// non-empty vals, without building the joined string.
func joinedEquals(vals []string, want string) bool {
	if len(vals) == 0 {
		return false
	}
	for i, v := range vals {
		if i > 0 {
			if !strings.HasPrefix(want, ", ") {
				return false
			}
			want = want[2:]
		}
		if !strings.HasPrefix(want, v) {
			return false
		}
		want = want[len(v):]
	}
	return want == ""
}

// sortedKeys returns m's keys in order, so that messages come out the same
// on every run.
func sortedKeys(m map[string]string) []string {
	return slices.Sorted(maps.Keys(m))
}
