package main

import (
	"crypto/x509"
	"net/url"
	"reflect"
	"testing"
	"time"

	"github.com/roundhouse/roundhouse/actors"
	"github.com/roundhouse/roundhouse/config"
)

func TestWhatServeBuildsFromTheSettings(t *testing.T) {
	s, err := config.Load([]string{
		"--policy", "weighted-round-robin",
		"--backend", "http://127.0.0.1:8081,weight=3", "--backend", "http://127.0.0.1:8083,weight=0,proxy-protocol=v2",
		"--health-path", "/ready", "--health-interval", "5s", "--health-timeout", "1s", "--rise", "4", "--fall", "6",
		"--health-expect", "200, 204,300-399", "--health-body", "^ok$", "--health-host", "app.example:8080",
		"--health-header", "X-Probe-Token: s3cret", "--health-port", "9000",
		"--max-conns-per-backend", "7", "--eject-after", "9", "--trusted-proxy", "10.0.0.0/8", "--rate-limit", "10/s",
	}, config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	dp := s.EveryPool()[0]
	dp.Backends = append(dp.Backends, config.Backend{URL: &url.URL{Scheme: "http", Host: "127.0.0.1:8082"}, Weight: 1, Disabled: true})
	want := []actors.BackendConfig{
		{URL: &url.URL{Scheme: "http", Host: "127.0.0.1:8081"}, Weight: 3},
		{URL: &url.URL{Scheme: "http", Host: "127.0.0.1:8083"}, Weight: 0, ProxyProtocol: 2},
		{URL: &url.URL{Scheme: "http", Host: "127.0.0.1:8082"}, Weight: 1, Disabled: true},
	}
	if got := actorBackends(dp); !reflect.DeepEqual(got, want) {
		t.Errorf("actorBackends = %+v, want all, the disabled one marked: %+v", got, want)
	}
	m := monitorConfig(dp, nil, nil)
	if m.Check.Path != "/ready" || m.Interval != 5*time.Second || m.Timeout != time.Second || m.Rise != 4 || m.Fall != 6 {
		t.Errorf("monitorConfig = %+v", m)
	}
	if c := m.Check; c.Expect.String() != "200,204,300-399" || c.Body.String() != "^ok$" ||
		c.Host != "app.example:8080" || c.Port != 9000 || c.Header.Get("X-Probe-Token") != "s3cret" {
		t.Errorf("healthCheck = %+v", c)
	}
	p, err := newPolicy(dp, s.StickySecret(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := p.(*actors.WeightedRoundRobin); !ok {
		t.Errorf("newPolicy is a %T, want *actors.WeightedRoundRobin", p)
	}
	if l := actorLimits(dp); l.MaxConnsPerBackend != 7 || l.QueueSize != 100 || l.QueueTimeout != 5*time.Second {
		t.Errorf("actorLimits = %+v", l)
	}
	if e := actorEjection(dp); e.After != 9 || e.Time != 30*time.Second || e.MaxPercent != 50 {
		t.Errorf("actorEjection = %+v", e)
	}
	if tp := trustedProxies(s); len(tp) != 1 || tp[0].String() != "10.0.0.0/8" {
		t.Errorf("trustedProxies = %v", tp)
	}
	if newRateLimiter(s) == nil || newCertStore(s) != nil {
		t.Error("want a rate limiter and no certificate store")
	}
}

func TestTheDefaultHealthCheckIsTheDocumentedOne(t *testing.T) {
	c := healthCheck(config.Defaults().EveryPool()[0])
	if c.Path != "/health" || c.Expect.String() != "200-399" || c.Body != nil || c.Host != "" || c.Header != nil || c.Port != 0 {
		t.Errorf("default healthCheck = %+v", c)
	}
	if newRateLimiter(config.Defaults()) != nil {
		t.Error("a rate limiter by default")
	}
}

func TestTheGRPCHealthCheckIsWiredWithTheBackendCAs(t *testing.T) {
	s, err := config.Load([]string{
		"--backend", "https://127.0.0.1:8081", "--health-grpc", "--health-grpc-service", "api.v1.Users",
		"--health-host", "api.internal", "--health-header", "X-Probe-Token: s3cret", "--health-port", "9000",
	}, config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cas := x509.NewCertPool()
	m := monitorConfig(s.EveryPool()[0], nil, cas)
	g := m.GRPC
	if g == nil {
		t.Fatal("monitorConfig.GRPC is nil with --health-grpc")
	}
	if g.Service != "api.v1.Users" || g.Authority != "api.internal" || g.Port != 9000 || g.RootCAs != cas ||
		g.Header.Get("X-Probe-Token") != "s3cret" {
		t.Errorf("grpcCheck = %+v", g)
	}
	if m := monitorConfig(config.Defaults().EveryPool()[0], nil, cas); m.GRPC != nil {
		t.Errorf("monitorConfig.GRPC = %+v by default, want nil (HTTP probes)", m.GRPC)
	}
}
