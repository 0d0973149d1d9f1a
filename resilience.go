package main

import (
	"flag"
	"fmt"
	"time"
)

// resilience holds the flags for outlier ejection, overload protection,
// slow start, retries' body buffer and per-phase timeouts.
type resilience struct {
	ejectAfter          int
	ejectTime           time.Duration
	maxEjectionPercent  int
	maxConnsPerBackend  int
	queueSize           int
	queueTimeout        time.Duration
	slowStart           time.Duration
	retryBuffer         int
	requestTimeout      time.Duration
	tlsHandshakeTimeout time.Duration
	backendIdleTimeout  time.Duration
	clientHeaderTimeout time.Duration
	clientIdleTimeout   time.Duration
}

func registerResilienceFlags(fs *flag.FlagSet, c *serveFlags) {
	r := &c.resilience
	fs.IntVar(&r.ejectAfter, "eject-after", 5, "consecutive gateway failures (connection errors, 502/503/504) that eject a backend; 0 never ejects")
	fs.DurationVar(&r.ejectTime, "eject-time", 30*time.Second, "first ejection's length; each repeat adds as much, up to 300s")
	fs.IntVar(&r.maxEjectionPercent, "max-ejection-percent", 50, "most backends, as a percentage of those UP, that may be ejected at once")
	fs.IntVar(&r.maxConnsPerBackend, "max-conns-per-backend", 0, "cap on each backend's in-flight requests; 0: no cap")
	fs.IntVar(&r.queueSize, "queue-size", 100, "requests that may wait for a backend under its cap")
	fs.DurationVar(&r.queueTimeout, "queue-timeout", 5*time.Second, "longest wait in that queue before a 503")
	fs.DurationVar(&r.slowStart, "slow-start", 0, "ramp a returning backend's share of traffic up over this long; 0: off")
	fs.IntVar(&r.retryBuffer, "retry-buffer", 64<<10, "`bytes` of an idempotent request's body kept so it can be resent to another backend")
	fs.DurationVar(&r.requestTimeout, "request-timeout", 0, "limit on a whole request, response included; 0: none (streams may be long)")
	fs.DurationVar(&r.tlsHandshakeTimeout, "tls-handshake-timeout", 5*time.Second, "TLS handshake with an https backend")
	fs.DurationVar(&r.backendIdleTimeout, "backend-idle-timeout", 90*time.Second, "how long an idle pooled backend connection is kept")
	fs.DurationVar(&r.clientHeaderTimeout, "client-header-timeout", 10*time.Second, "time a client has to send its request headers")
	fs.DurationVar(&r.clientIdleTimeout, "client-idle-timeout", 120*time.Second, "how long an idle client keep-alive connection is kept")
}

func (r *resilience) validate() error {
	for _, d := range []struct {
		flag string
		v    time.Duration
	}{
		{"eject-time", r.ejectTime}, {"queue-timeout", r.queueTimeout},
		{"tls-handshake-timeout", r.tlsHandshakeTimeout}, {"backend-idle-timeout", r.backendIdleTimeout},
		{"client-header-timeout", r.clientHeaderTimeout}, {"client-idle-timeout", r.clientIdleTimeout},
	} {
		if d.v <= 0 {
			return fmt.Errorf("--%s: must be positive, got %v", d.flag, d.v)
		}
	}
	for _, n := range []struct {
		flag string
		v    int
	}{
		{"eject-after", r.ejectAfter}, {"max-conns-per-backend", r.maxConnsPerBackend},
		{"queue-size", r.queueSize}, {"retry-buffer", r.retryBuffer},
	} {
		if n.v < 0 {
			return fmt.Errorf("--%s: must not be negative, got %d", n.flag, n.v)
		}
	}
	switch {
	case r.maxEjectionPercent < 1 || r.maxEjectionPercent > 100:
		return fmt.Errorf("--max-ejection-percent: want 1 to 100, got %d", r.maxEjectionPercent)
	case r.slowStart < 0:
		return fmt.Errorf("--slow-start: must not be negative, got %v", r.slowStart)
	case r.requestTimeout < 0:
		return fmt.Errorf("--request-timeout: must not be negative, got %v", r.requestTimeout)
	}
	return nil
}
