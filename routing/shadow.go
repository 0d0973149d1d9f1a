package routing

import "fmt"

// Shadow reports a route that can never match: every request it would
// match, an earlier route matches first.
type Shadow struct {
	Later, Earlier         int    // indices into the routes given to Shadowed
	LaterName, EarlierName string // their Names
}

// String is the message validate prints at the later route's position:
// `route "b" can never match: route "a" (earlier) matches every request it would`.
func (s Shadow) String() string {
	return fmt.Sprintf("route %q can never match: route %q (earlier) matches every request it would",
		s.LaterName, s.EarlierName)
}

// Shadowed returns, in order, each route that an earlier route shadows,
// paired with the first such earlier route. It is conservative: it reports
// only when one earlier route on its own matches every request the later
// one would, that is, on every condition:
//
//   - hosts: the earlier states none, or each of the later's entries is
//     covered by one of the earlier's (equal, or a wildcard whose suffix
//     ends the later's name or wildcard suffix);
//   - path_prefix: the earlier states none, or every path the later's
//     prefix matches starts with the earlier's ("/api" covers "/api/v1"
//     and "/api", not "/apix"; "/api/" covers "/api/x" but not "/api");
//   - methods: the earlier states none, or lists all of the later's;
//   - headers: each of the earlier's headers is among the later's, with the
//     same value.
//
// A later route shadowed only by several earlier routes together is not
// reported. Routes that Check rejects are skipped, on either side.
func Shadowed(routes []Route) []Shadow {
	cs := make([]*compiled, len(routes))
	for i, r := range routes {
		if c, err := compile(r); err == nil {
			cs[i] = &c
		}
	}
	var out []Shadow
	for j, later := range cs {
		if later == nil {
			continue
		}
		for i, earlier := range cs[:j] {
			if earlier != nil && earlier.covers(later) {
				out = append(out, Shadow{Later: j, Earlier: i, LaterName: routes[j].Name, EarlierName: routes[i].Name})
				break
			}
		}
	}
	return out
}

// covers reports whether c matches every request that d matches.
func (c *compiled) covers(d *compiled) bool {
	return c.coversHosts(d) && coversPrefix(c.prefix, d.prefix) &&
		coversMethods(c.methods, d.methods) && coversHeaders(c.headers, d.headers)
}

func (c *compiled) coversHosts(d *compiled) bool {
	if len(c.route.Hosts) == 0 {
		return true
	}
	if len(d.route.Hosts) == 0 {
		return false
	}
	for _, dh := range d.route.Hosts {
		dp, _ := parseHost(dh)
		covered := false
		for _, ch := range c.route.Hosts {
			cp, _ := parseHost(ch)
			if cp.covers(dp) {
				covered = true
				break
			}
		}
		if !covered {
			return false
		}
	}
	return true
}

// coversPrefix reports whether every cleaned path that prefix q matches
// also matches p. Both are normalized; "" means any path.
func coversPrefix(p, q string) bool {
	switch {
	case p == "":
		return true
	case q == "":
		return false
	case p[len(p)-1] == '/':
		return len(q) >= len(p) && q[:len(p)] == p
	default:
		return hasPrefix(q, p)
	}
}

func coversMethods(c, d []string) bool {
	if len(c) == 0 {
		return true
	}
	if len(d) == 0 {
		return false
	}
	for _, m := range d {
		found := false
		for _, n := range c {
			found = found || n == m
		}
		if !found {
			return false
		}
	}
	return true
}

func coversHeaders(c, d []header) bool {
	for _, hc := range c {
		found := false
		for _, hd := range d {
			found = found || hd == hc
		}
		if !found {
			return false
		}
	}
	return true
}
