package transport

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/sourcegraph/conc"

	"github.com/roundhouse/roundhouse/actors"
	"github.com/roundhouse/roundhouse/internal/accesslog"
	"github.com/roundhouse/roundhouse/internal/logtest"
	"github.com/roundhouse/roundhouse/internal/testenv"
)

// logSink is the tests' log output (see internal/logtest), with this
// package's spelling.
type logSink struct{ logtest.Sink }

func newLogSink() *logSink { return &logSink{} }

// count returns how many lines contain every one of substrs.
func (s *logSink) count(substrs ...string) int { return s.Count(substrs...) }

// waitFor blocks until at least n lines contain all of substrs.
func (s *logSink) waitFor(t *testing.T, n int, substrs ...string) {
	t.Helper()
	s.WaitFor(t, n, substrs...)
}

// balancer is a selector and a Proxy behind a real listener.
type balancer struct {
	sel    *actors.Selector
	tr     *Transport // the proxy's shared transport
	url    string
	client *http.Client
	log    *logSink
	front  *Frontend
	h3     *h3Server // with balancerOptions.http3; nil otherwise
}

type balancerOptions struct {
	monitor               actors.MonitorConfig // Interval 0: an hour (no active checks during the test)
	retries               int
	responseHeaderTimeout time.Duration
	tlsHandshakeTimeout   time.Duration // Options.TLSHandshakeTimeout; 0: its default
	retryBuffer           int           // Config.RetryBuffer; 0: no body kept for a retry
	requestTimeout        time.Duration // Config.RequestTimeout; 0: none
	policy                actors.Policy // nil: round-robin
	secret                []byte        // keys the sticky cookie (Config.StickySecret); nil: none
	trusted               TrustedProxies
	maxBody               int64
	bodyTimeout           time.Duration         // Config.BodyTimeout; 0: none
	limit                 *RateLimitOptions     // nil: no rate limit
	frontend              FrontendOptions       // Logger is the balancer's
	backendCAs            *x509.CertPool        // for https:// backends
	clientCAs             *x509.CertPool        // the test client trusts these when frontend.TLS is set
	requestIDHeader       string                // Config.RequestIDHeader; "": request IDs off
	proxyProtocol         *ProxyProtocolOptions // logging to the balancer's log; nil: no PROXY protocol
	sendProxy             int                   // every backend's BackendConfig.ProxyProtocol
	limits                actors.Limits         // connection caps and their queue; zero: none
	h2Ping                time.Duration         // Options.H2Ping; 0: its default
	http3                 *HTTP3Options         // also serve HTTP/3 on the TLS port (http3_test.go); nil: no
}

func newBalancer(t *testing.T, o balancerOptions, backends ...string) *balancer {
	t.Helper()
	sink := newLogSink()
	log := hclog.New(&hclog.LoggerOptions{Output: sink, Level: hclog.Debug})
	trOpts := Options{ResponseHeaderTimeout: o.responseHeaderTimeout, DialTimeout: time.Second, BackendCAs: o.backendCAs,
		TLSHandshakeTimeout: o.tlsHandshakeTimeout, H2Ping: o.h2Ping}
	tr := New(trOpts)
	t.Cleanup(tr.CloseIdleConnections)
	rt := WithProxyProtocol(tr, trOpts)
	urls := make([]actors.BackendConfig, len(backends))
	for i, b := range backends {
		u, err := url.Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		urls[i] = actors.BackendConfig{URL: u, Weight: 1, ProxyProtocol: o.sendProxy}
	}
	if o.monitor.Interval == 0 {
		o.monitor.Interval = time.Hour
	}
	if o.monitor.Transport == nil {
		o.monitor.Transport = rt
	}
	sel, err := actors.New(actors.Config{Backends: urls, Policy: o.policy, Monitor: o.monitor, Limits: o.limits, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	tunnels := NewTunnels()
	// The actors outlive the frontend: its cleanup, registered later, runs first.
	ctx, cancel := context.WithCancel(context.Background())
	var actorsWG conc.WaitGroup
	actorsWG.Go(func() { _ = sel.Run(ctx) })
	actorsWG.Go(func() { _ = tunnels.Run(ctx) })
	var limiter *RateLimiter
	if o.limit != nil {
		limiter, err = NewRateLimiter(*o.limit)
		if err != nil {
			t.Fatal(err)
		}
		actorsWG.Go(func() { _ = limiter.Run(ctx) })
	}
	var pp *ProxyProtocol
	if o.proxyProtocol != nil {
		ppo := *o.proxyProtocol
		ppo.Logger = log.Named("proxyproto")
		pp = NewProxyProtocol(ppo)
		actorsWG.Go(func() { _ = pp.Run(ctx) })
	}
	t.Cleanup(func() { cancel(); actorsWG.Wait() })

	p := NewProxy(Config{Selector: sel, Transport: rt, Retries: o.retries, Logger: log, AccessLog: accesslog.New(accesslog.Options{Name: "access", Output: sink}),
		Key: actors.KeyOf(o.policy), StickySecret: o.secret,
		TrustedProxies: o.trusted, MaxBody: o.maxBody, BodyTimeout: o.bodyTimeout, Tunnels: tunnels, Limiter: limiter,
		RequestIDHeader: o.requestIDHeader, RetryBuffer: o.retryBuffer, RequestTimeout: o.requestTimeout})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fo := o.frontend
	fo.Logger, fo.Tunnels = log, tunnels
	fo.ProxyProtocol = pp
	var h http.Handler = p
	var h3 *h3Server
	if o.http3 != nil {
		h3 = serveHTTP3(t, p, ln.Addr(), *o.http3, fo.TLS, o.clientCAs, log)
		h = AdvertiseHTTP3(p, h3.AltSvc())
	}
	front := NewFrontend(ln, h, fo)
	var serving conc.WaitGroup
	serving.Go(func() { _ = front.Serve() })
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = front.Shutdown(ctx)
		serving.Wait()
	})
	scheme, ctr := "http", &http.Transport{MaxIdleConnsPerHost: 64}
	if fo.TLS != nil {
		scheme = "https"
		ctr.TLSClientConfig = &tls.Config{RootCAs: o.clientCAs}
		ctr.ForceAttemptHTTP2 = true
	}
	client := &http.Client{Transport: ctr}
	t.Cleanup(client.CloseIdleConnections)
	return &balancer{sel: sel, tr: tr, url: scheme + "://" + ln.Addr().String(), client: client, log: sink, front: front, h3: h3}
}

// get sends GET path and returns status, X-Backend and body.
func (b *balancer) get(t *testing.T, path string) (int, string, string) {
	t.Helper()
	return b.do(t, http.MethodGet, path, nil)
}

func (b *balancer) do(t *testing.T, method, path string, body io.Reader) (int, string, string) {
	t.Helper()
	return b.doWith(t, method, path, body, nil)
}

// doWith is do with header's fields added to the request (nil: none).
func (b *balancer) doWith(t *testing.T, method, path string, body io.Reader, header http.Header) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, b.url+path, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, vv := range header {
		req.Header[k] = vv
	}
	resp, err := b.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	return resp.StatusCode, resp.Header.Get("X-Backend"), string(data)
}

// status returns the selector's view of every backend.
func (b *balancer) status(t *testing.T) []actors.BackendStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := b.sel.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// settled returns the selector's view once nothing is in flight. A client
// can have its whole response before the handler's report reaches the
// selector, so counts read straight after the last response may lag.
func (b *balancer) settled(t *testing.T) []actors.BackendStatus {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		st := b.status(t)
		busy := false
		for _, s := range st {
			busy = busy || s.InFlight != 0
		}
		if !busy {
			return st
		}
		select {
		case <-deadline:
			t.Fatalf("still in flight after 10s: %+v", st)
		case <-time.After(time.Millisecond):
		}
	}
}

// deadURL returns a loopback URL where nothing listens: connections are refused.
func deadURL(t *testing.T) string {
	t.Helper()
	return "http://" + testenv.DeadAddr(t)
}

var waitUntil = testenv.WaitUntil

// h2cClient speaks cleartext HTTP/2 to a balancer with FrontendOptions.H2C.
func h2cClient(t *testing.T) *http.Client {
	t.Helper()
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	c := &http.Client{Transport: &http.Transport{Protocols: &p}, Timeout: 30 * time.Second}
	t.Cleanup(c.CloseIdleConnections)
	return c
}
