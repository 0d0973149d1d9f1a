package config

import (
	"fmt"
	"net/http"
	"regexp"

	"github.com/hashicorp/go-hclog"

	"github.com/roundhouse/roundhouse/actors"
	"github.com/roundhouse/roundhouse/transport"
)

// What serve builds from Settings. Everything else it reads from the
// fields directly.

// ActorBackends returns the backends for actors.Config, disabled ones
// included (with their mark), so that the admin API can enable them.
func (s *Settings) ActorBackends() []actors.BackendConfig {
	out := make([]actors.BackendConfig, 0, len(s.Backends))
	for _, b := range s.Backends {
		out = append(out, actors.BackendConfig{URL: b.URL, Weight: b.Weight, Disabled: b.Disabled, ProxyProtocol: b.ProxyProtocol})
	}
	return out
}

// Monitor returns how the health monitors probe: HealthCheck through rt
// every Health.Interval.
func (s *Settings) Monitor(rt http.RoundTripper) actors.MonitorConfig {
	h := s.Health
	return actors.MonitorConfig{
		Check: s.HealthCheck(), Transport: rt,
		Interval: h.Interval, Timeout: h.Timeout, Rise: h.Rise, Fall: h.Fall,
	}
}

// HealthCheck returns what a probe asks for and what passes. Load has
// checked the status list and the regular expression; in settings made
// by hand a bad one is left out (the default applies).
func (s *Settings) HealthCheck() actors.HTTPCheck {
	h := s.Health
	expect, _ := actors.ParseStatusRanges(h.Expect)
	var body *regexp.Regexp
	if h.Body != "" {
		body, _ = regexp.Compile(h.Body)
	}
	return actors.HTTPCheck{Path: h.Path, Expect: expect, Body: body, Host: h.Host, Header: h.Headers.Clone(), Port: h.Port}
}

// ActorLimits returns the connection caps and queue for actors.Config.
func (s *Settings) ActorLimits() actors.Limits {
	return actors.Limits{
		MaxConnsPerBackend: s.Limits.MaxConnsPerBackend,
		QueueSize:          s.Limits.QueueSize, QueueTimeout: s.Limits.QueueTimeout,
	}
}

// ActorEjection returns the outlier detection settings for actors.Config.
func (s *Settings) ActorEjection() actors.Ejection {
	return actors.Ejection{After: s.Ejection.After, Time: s.Ejection.Time, MaxPercent: s.Ejection.MaxPercent}
}

// NewPolicy returns a fresh policy as Policy names it, keyed with
// StickySecret and seeded with seed.
func (s *Settings) NewPolicy(seed uint64) (actors.Policy, error) {
	name := s.Policy
	if s.SlowStart > 0 && name == "round-robin" {
		// Slow start ramps weights, which round-robin ignores; smooth
		// weighted round-robin with equal weights picks in the same order.
		name = "weighted-round-robin"
	}
	p, err := actors.NewPolicy(name, s.StickySecret(), seed)
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	return p, nil
}

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
// policy weighted-round-robin, listen 127.0.0.1:8080".
func (s *Settings) Summary() string {
	disabled := 0
	for _, b := range s.Backends {
		if b.Disabled {
			disabled++
		}
	}
	out := fmt.Sprintf("%d backend", len(s.Backends))
	if len(s.Backends) != 1 {
		out += "s"
	}
	if disabled > 0 {
		out += fmt.Sprintf(" (%d disabled)", disabled)
	}
	if n := len(s.Discover); n > 0 {
		out += fmt.Sprintf(", %d discovery source", n)
		if n != 1 {
			out += "s"
		}
	}
	out += ", policy " + s.Policy + ", listen " + s.Listen
	if s.Admin.Listen != "" {
		out += ", admin " + s.Admin.Listen
	}
	return out
}

// TrustedProxies returns Edge.TrustedProxies parsed (Load has checked them).
func (s *Settings) TrustedProxies() transport.TrustedProxies {
	var out transport.TrustedProxies
	for _, v := range s.Edge.TrustedProxies {
		if p, err := transport.ParseTrustedProxy(v); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// RateLimiter returns the per-client rate limiter Edge asks for, not yet
// running; nil when there is no limit.
func (s *Settings) RateLimiter() *transport.RateLimiter {
	if s.Edge.RateLimit <= 0 {
		return nil
	}
	l, err := transport.NewRateLimiter(transport.RateLimitOptions{Rate: s.Edge.RateLimit, Burst: s.Edge.RateBurst})
	if err != nil {
		return nil // Load has checked the values
	}
	return l
}
