package transport

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/quic-go/quic-go/http3"
	"github.com/sourcegraph/conc"

	"github.com/roundhouse/roundhouse/actors"
	"github.com/roundhouse/roundhouse/demo"
	"github.com/roundhouse/roundhouse/internal/testcert"
)

// BenchmarkProtocols sends GET / (a ~130-byte response) through the
// balancer over each client protocol, side by side: HTTP/1.1 and HTTP/2
// over TLS on the Frontend, HTTP/3 over QUIC on the HTTP3 server at the
// same port, each client keeping its connections. The rest is as
// BenchmarkProxy's (the selector, round-robin over 3 loopback demo
// backends, request IDs on, no access log); the client's work is in the
// figures too. Serial, then -parallel from 8 × GOMAXPROCS goroutines:
//
//	go test -run=NONE -bench=Protocols -benchmem -count=6 ./transport
func BenchmarkProtocols(b *testing.B) {
	s := newProtocolBench(b)
	for _, c := range []struct {
		name   string
		client *http.Client
		url    string
	}{
		{"HTTP1.1", s.http1, s.tcp},
		{"HTTP2", s.http2, s.tcp},
		{"HTTP3", s.http3, s.udp},
	} {
		b.Run(c.name, func(b *testing.B) { protoSerial(b, c.client, c.url+"/") })
		b.Run(c.name+"-parallel", func(b *testing.B) { protoParallel(b, c.client, c.url+"/") })
	}
}

type protocolBench struct {
	tcp, udp            string // base URLs: the Frontend's, the HTTP3 server's
	http1, http2, http3 *http.Client
}

func newProtocolBench(b *testing.B) *protocolBench {
	b.Helper()
	urls := make([]actors.BackendConfig, 3)
	for i, name := range []string{"b1", "b2", "b3"} {
		srv := httptest.NewServer(demo.Handler(name))
		b.Cleanup(srv.Close)
		u, _ := url.Parse(srv.URL)
		urls[i] = actors.BackendConfig{URL: u, Weight: 1}
	}
	tr := New(Options{})
	b.Cleanup(tr.CloseIdleConnections)
	sel, err := actors.New(actors.Config{Backends: urls, Monitor: actors.MonitorConfig{Transport: tr, Interval: time.Hour}})
	if err != nil {
		b.Fatal(err)
	}
	ca := testcert.NewAuthority(b, "bench CA")
	leaf := ca.Issue("lb", "127.0.0.1")
	certFile, keyFile := leaf.WriteFiles(b, b.TempDir())
	store, err := NewCertStore(certFile, keyFile)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var actorsWG conc.WaitGroup
	actorsWG.Go(func() { _ = sel.Run(ctx) })
	actorsWG.Go(func() { _ = store.Run(ctx) })
	b.Cleanup(func() { cancel(); actorsWG.Wait() })

	p := NewProxy(Config{Selector: sel, Transport: tr, Retries: 2, Logger: hclog.NewNullLogger(), RequestIDHeader: "X-Request-ID"})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: ln.Addr().(*net.TCPAddr).Port})
	if err != nil {
		b.Fatal(err)
	}
	h3, err := NewHTTP3(udp, p, HTTP3Options{TLS: ServerTLSConfig(store.GetCertificate)})
	if err != nil {
		b.Fatal(err)
	}
	front := NewFrontend(ln, AdvertiseHTTP3(p, h3.AltSvc()), FrontendOptions{TLS: ServerTLSConfig(store.GetCertificate)})
	var serving conc.WaitGroup
	serving.Go(func() { _ = front.Serve() })
	serving.Go(func() { _ = h3.Serve() })
	b.Cleanup(func() {
		stop, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = front.Shutdown(stop)
		_ = h3.Shutdown(stop)
		serving.Wait()
		udp.Close()
	})

	tc := &tls.Config{RootCAs: ca.Pool()}
	var h1, h2 http.Protocols
	h1.SetHTTP1(true)
	h2.SetHTTP2(true)
	t1 := &http.Transport{TLSClientConfig: tc, Protocols: &h1, MaxIdleConnsPerHost: 1024}
	t2 := &http.Transport{TLSClientConfig: tc, Protocols: &h2}
	t3 := &http3.Transport{TLSClientConfig: tc}
	b.Cleanup(t1.CloseIdleConnections)
	b.Cleanup(t2.CloseIdleConnections)
	b.Cleanup(func() { _ = t3.Close() })
	return &protocolBench{
		tcp: "https://" + ln.Addr().String(), udp: "https://" + udp.LocalAddr().String(),
		http1: &http.Client{Transport: t1}, http2: &http.Client{Transport: t2}, http3: &http.Client{Transport: t3},
	}
}

func protoSerial(b *testing.B, c *http.Client, target string) {
	b.ReportAllocs()
	protoGet(b, c, target) // connect outside the timed loop
	cpu := startCPU(b)
	for b.Loop() {
		protoGet(b, c, target)
	}
	cpu.report(b)
}

func protoParallel(b *testing.B, c *http.Client, target string) {
	b.ReportAllocs()
	protoGet(b, c, target)
	b.SetParallelism(8)
	b.ResetTimer()
	cpu := startCPU(b)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if !protoGet(b, c, target) {
				return
			}
		}
	})
	cpu.report(b)
}

// protoGet fetches target with client c and reads the body, reporting
// failures with b.Errorf (safe from RunParallel's goroutines); it says
// whether the request worked. get is protoGet with the shared benchClient.
func protoGet(b testing.TB, c *http.Client, target string) bool {
	resp, err := c.Get(target)
	if err != nil {
		b.Errorf("GET %s: %v", target, err)
		return false
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		b.Errorf("GET %s: status %d, body: %v", target, resp.StatusCode, err)
		return false
	}
	return true
}
