package main

import (
	"crypto/x509"
	"fmt"
	mathrand "math/rand/v2"
	"net/http"
	"regexp"

	"github.com/roundhouse/roundhouse/actors"
	"github.com/roundhouse/roundhouse/config"
	"github.com/roundhouse/roundhouse/internal/parse"
	"github.com/roundhouse/roundhouse/transport"
)

// The running parts serve builds from config.Settings, which are data
// (values, parsed URLs, file contents). Nothing here starts a goroutine:
// serve starts and owns each part's Run (see the table in serve.go).

// transportOptions is how a pool's backend transport dials, verifies and
// times out.
func transportOptions(s *config.Settings, p config.Pool) transport.Options {
	return transport.Options{
		DialTimeout: p.Timeouts.Dial, TLSHandshakeTimeout: p.Timeouts.TLSHandshake,
		ResponseHeaderTimeout: p.Timeouts.ResponseHeader, IdleConnTimeout: s.Timeouts.BackendIdle,
		H2Ping:     s.Timeouts.BackendH2Ping,
		BackendCAs: s.TLS.BackendCAs,
	}
}

// selectorConfig is what a pool's selector needs from its settings; its
// HTTP health probes go through tr, its gRPC health probes verify https://
// backends against cas (nil: the system's roots; the transport's
// BackendCAs), and its sticky cookies are keyed with secret. Its policy is
// seeded at random.
func selectorConfig(s config.Pool, secret []byte, tr http.RoundTripper, cas *x509.CertPool) (actors.Config, error) {
	policy, err := newPolicy(s, secret, mathrand.Uint64())
	if err != nil {
		return actors.Config{}, err
	}
	return actors.Config{
		Backends: actorBackends(s), Policy: policy, Monitor: monitorConfig(s, tr, cas),
		Limits: actorLimits(s), Ejection: actorEjection(s), SlowStart: s.SlowStart,
	}, nil
}

// actorBackends returns the backends for actors.Config, disabled ones
// included (with their mark), so that the admin API can enable them.
func actorBackends(s config.Pool) []actors.BackendConfig {
	out := make([]actors.BackendConfig, 0, len(s.Backends))
	for _, b := range s.Backends {
		out = append(out, actors.BackendConfig{URL: b.URL, Weight: b.Weight, Disabled: b.Disabled, ProxyProtocol: b.ProxyProtocol})
	}
	return out
}

// monitorConfig returns how the health monitors probe, every
// Health.Interval: healthCheck through rt, or, with Health.GRPC, the gRPC
// check grpcCheck(s, cas) on connections of the monitors' own.
func monitorConfig(s config.Pool, rt http.RoundTripper, cas *x509.CertPool) actors.MonitorConfig {
	h := s.Health
	m := actors.MonitorConfig{
		Check: healthCheck(s), Transport: rt,
		Interval: h.Interval, Timeout: h.Timeout, Rise: h.Rise, Fall: h.Fall,
	}
	if h.GRPC {
		m.GRPC = grpcCheck(s, cas)
	}
	return m
}

// grpcCheck returns what a gRPC health probe asks and where: the service
// Health.GRPCService, with the Host, Headers and Port the HTTP probe would
// use as its :authority, metadata and port, verifying https:// backends
// against cas as the transport does.
func grpcCheck(s config.Pool, cas *x509.CertPool) *actors.GRPCCheck {
	h := s.Health
	return &actors.GRPCCheck{Service: h.GRPCService, Authority: h.Host, Header: h.Headers.Clone(), Port: h.Port, RootCAs: cas}
}

// healthCheck returns what a probe asks for and what passes. config.Load
// has checked the status list and the regular expression; in settings
// made by hand a bad one is left out (the default applies).
func healthCheck(s config.Pool) actors.HTTPCheck {
	h := s.Health
	expect, _ := actors.ParseStatusRanges(h.Expect)
	var body *regexp.Regexp
	if h.Body != "" {
		body, _ = regexp.Compile(h.Body)
	}
	return actors.HTTPCheck{Path: h.Path, Expect: expect, Body: body, Host: h.Host, Header: h.Headers.Clone(), Port: h.Port}
}

// actorLimits returns the connection caps and queue for actors.Config.
func actorLimits(s config.Pool) actors.Limits {
	return actors.Limits{
		MaxConnsPerBackend: s.Limits.MaxConnsPerBackend,
		QueueSize:          s.Limits.QueueSize, QueueTimeout: s.Limits.QueueTimeout,
	}
}

// actorEjection returns the outlier detection settings for actors.Config.
func actorEjection(s config.Pool) actors.Ejection {
	return actors.Ejection{
		After: s.Ejection.After, Time: s.Ejection.Time, MaxPercent: s.Ejection.MaxPercent,
		FailureRate: s.Ejection.FailureRate, Window: s.Ejection.FailureWindow,
	}
}

// newPolicy returns a fresh policy as s.Policy names it, keyed with
// secret and seeded with seed.
func newPolicy(s config.Pool, secret []byte, seed uint64) (actors.Policy, error) {
	p, err := actors.NewPolicy(policyName(s), secret, seed)
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	return p, nil
}

// policyName is the policy newPolicy makes for s: s.Policy, except that
// slow start turns round-robin into weighted-round-robin.
func policyName(s config.Pool) string {
	if s.SlowStart > 0 && s.Policy == "round-robin" {
		// Slow start ramps weights, which round-robin ignores; smooth
		// weighted round-robin with equal weights picks in the same order.
		return "weighted-round-robin"
	}
	return s.Policy
}

// trustedProxies returns Edge.TrustedProxies parsed (config.Load has
// checked them).
func trustedProxies(s *config.Settings) transport.TrustedProxies {
	var out transport.TrustedProxies
	for _, v := range s.Edge.TrustedProxies {
		if p, err := parse.TrustedProxy(v); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// newRateLimiter returns the per-client rate limiter Edge asks for, not
// yet running; nil when there is no limit.
func newRateLimiter(s *config.Settings) *transport.RateLimiter {
	if s.Edge.RateLimit <= 0 {
		return nil
	}
	l, err := transport.NewRateLimiter(transport.RateLimitOptions{Rate: s.Edge.RateLimit, Burst: s.Edge.RateBurst})
	if err != nil {
		return nil // config.Load has checked the values
	}
	return l
}

// newCertStore returns the store of the serving certificate, not yet
// running, with the certificate config.Load read; nil for cleartext.
func newCertStore(s *config.Settings) *transport.CertStore {
	if s.TLS.Certificate == nil {
		return nil
	}
	return transport.NewCertStoreWith(s.TLS.Certificate, s.TLS.Cert, s.TLS.Key)
}
