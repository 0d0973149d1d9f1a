package config

import (
	"fmt"
	"strings"

	"github.com/hashicorp/go-hclog"
)

// Values derived from Settings that are still data. What runs is built
// from Settings by the command (see build.go at the module's root).

// StickySecret returns the sticky cookie's key: the contents of
// Sticky.SecretFile, or a random key made once per process when there is no
// such file.
func (s *Settings) StickySecret() []byte {
	if s.Sticky.Secret != nil {
		return s.Sticky.Secret
	}
	return processSecret
}

// LogLevel returns Log.Level as an hclog level.
func (s *Settings) LogLevel() hclog.Level { return hclog.LevelFromString(s.Log.Level) }

// Summary describes the settings in one line: "3 backends (1 disabled),
// policy weighted-round-robin, listen 127.0.0.1:8080". With pool or route
// blocks it describes each pool and route: "3 backends in 2 pools: api (2
// backends, policy least-conn), web (1 backend, policy round-robin); 2
// routes: api-v1 -> api, site -> web; listen 127.0.0.1:8080".
func (s *Settings) Summary() string {
	if len(s.Routes) == 0 && (len(s.Pools) == 0 || len(s.Pools) == 1 && s.Pools[0].Source == "") {
		out := backendsPhrase(s.Backends, s.Discover) + ", policy " + s.Policy + ", listen " + s.Listen
		if s.Admin.Listen != "" {
			out += ", admin " + s.Admin.Listen
		}
		return out
	}
	total := 0
	pools := make([]string, len(s.Pools))
	for i, p := range s.Pools {
		total += len(p.Backends)
		pools[i] = fmt.Sprintf("%s (%s, policy %s)", p.Name, backendsPhrase(p.Backends, p.Discover), p.Policy)
	}
	out := fmt.Sprintf("%s in %s: %s", plural(total, "backend"), plural(len(s.Pools), "pool"), strings.Join(pools, ", "))
	if len(s.Routes) > 0 {
		routes := make([]string, len(s.Routes))
		for i, r := range s.Routes {
			routes[i] = r.Name + " -> " + r.Pool
		}
		out += fmt.Sprintf("; %s: %s", plural(len(s.Routes), "route"), strings.Join(routes, ", "))
	}
	out += "; listen " + s.Listen
	if s.Admin.Listen != "" {
		out += ", admin " + s.Admin.Listen
	}
	return out
}

// backendsPhrase says how many backends (and discovery sources) there are:
// "3 backends (1 disabled), 1 discovery source".
func backendsPhrase(backends []Backend, discover []string) string {
	disabled := 0
	for _, b := range backends {
		if b.Disabled {
			disabled++
		}
	}
	out := plural(len(backends), "backend")
	if disabled > 0 {
		out += fmt.Sprintf(" (%d disabled)", disabled)
	}
	if n := len(discover); n > 0 {
		out += ", " + plural(n, "discovery source")
	}
	return out
}

// plural writes n and noun, with an s unless n is 1.
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
