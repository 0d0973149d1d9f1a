package transport

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/quic-go/quic-go/http3"
	"github.com/sourcegraph/conc"

	"github.com/roundhouse/roundhouse/internal/testcert"
)

// h3Server is a test balancer's HTTP/3 side: the server on the TLS
// listener's port (UDP), and an HTTP/3 client (quic-go's http3.Transport)
// that trusts the balancer's certificate.
type h3Server struct {
	*HTTP3
	url    string
	client *http.Client
}

// serveHTTP3 serves h over HTTP/3 on tcp's port, UDP, until the test ends.
func serveHTTP3(t *testing.T, h http.Handler, tcp net.Addr, o HTTP3Options, tc *tls.Config,
	roots *x509.CertPool, log hclog.Logger) *h3Server {
	t.Helper()
	if tc == nil {
		t.Fatal("HTTP/3 needs the balancer's TLS")
	}
	port := tcp.(*net.TCPAddr).Port
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
	if err != nil {
		t.Fatal(err)
	}
	o.TLS, o.Logger = tc, log
	s, err := NewHTTP3(udp, h, o)
	if err != nil {
		t.Fatal(err)
	}
	var serving conc.WaitGroup
	serving.Go(func() { _ = s.Serve() })
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
		serving.Wait()
		udp.Close()
	})
	tr := &http3.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}
	t.Cleanup(func() { _ = tr.Close() })
	return &h3Server{HTTP3: s, url: "https://" + udp.LocalAddr().String(), client: &http.Client{Transport: tr}}
}

// h3Balancer is a TLS balancer that also serves HTTP/3.
func h3Balancer(t *testing.T, o balancerOptions, backends ...string) *balancer {
	t.Helper()
	if o.http3 == nil {
		o.http3 = &HTTP3Options{}
	}
	lb, _, _ := tlsBalancer(t, o, backends...)
	return lb
}

// do sends a request over HTTP/3 and returns the response, its body read.
func (s *h3Server) do(t *testing.T, method, path string, body []byte, header http.Header) (*http.Response, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, _ := http.NewRequestWithContext(ctx, method, s.url+path, r)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s over HTTP/3: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s over HTTP/3: reading the body: %v", method, path, err)
	}
	return resp, string(b)
}

// reportingBackend answers with its name and what it was sent: method,
// protocol, forwarded headers, request ID, the body's length and SHA-256.
func reportingBackend(t *testing.T, name string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("%s: reading the body: %v", name, err)
		}
		sum := sha256.Sum256(b)
		fmt.Fprintf(w, "%s %s xfp=%s fwd=%s id=%s len=%d sum=%s", name, r.Method,
			r.Header.Get("X-Forwarded-Proto"), r.Header.Get("Forwarded"), r.Header.Get("X-Request-ID"),
			len(b), hex.EncodeToString(sum[:]))
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestHTTP3ServesWhatHTTP2Serves(t *testing.T) {
	lb := h3Balancer(t, balancerOptions{requestIDHeader: "X-Request-ID", retryBuffer: 1 << 20},
		reportingBackend(t, "A"), reportingBackend(t, "B"))

	t.Run("GETs go round-robin over HTTP/3, with forwarded headers and request IDs", func(t *testing.T) {
		var order []string
		for range 4 {
			resp, body := lb.h3.do(t, http.MethodGet, "/", nil, nil)
			if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 3 {
				t.Fatalf("status %d over %s: %q", resp.StatusCode, resp.Proto, body)
			}
			name, _, _ := strings.Cut(body, " ")
			order = append(order, name)
			id := resp.Header.Get("X-Request-ID")
			if id == "" || !strings.Contains(body, " id="+id+" ") {
				t.Errorf("request ID %q in the response, backend saw %q", id, body)
			}
			if !strings.Contains(body, "xfp=https ") || !strings.Contains(body, ";proto=https") {
				t.Errorf("forwarded headers: backend saw %q, want https", body)
			}
			if v := resp.Header.Get("Alt-Svc"); v != "" {
				t.Errorf("an HTTP/3 response advertises %q", v)
			}
		}
		if got := strings.Join(order, " "); got != "A B A B" && got != "B A B A" {
			t.Errorf("order %s, want round-robin", got)
		}
	})
	t.Run("a POST body reaches the backend whole", func(t *testing.T) {
		body := make([]byte, 300<<10)
		_, _ = rand.Read(body)
		sum := sha256.Sum256(body)
		resp, got := lb.h3.do(t, http.MethodPost, "/upload", body, nil)
		if want := "len=" + strconv.Itoa(len(body)) + " sum=" + hex.EncodeToString(sum[:]); resp.StatusCode != http.StatusOK || !strings.HasSuffix(got, want) {
			t.Errorf("status %d, backend saw %q; want %s", resp.StatusCode, got, want)
		}
	})
	t.Run("HTTP/1.1 and HTTP/2 responses advertise HTTP/3 on the same port", func(t *testing.T) {
		_, port, _ := net.SplitHostPort(strings.TrimPrefix(lb.url, "https://"))
		want := `h3=":` + port + `"; ma=86400`
		for _, c := range []struct {
			name   string
			client *http.Client
		}{{"HTTP/2", lb.client}, {"HTTP/1.1", clientFor(t, lb.client.Transport.(*http.Transport).TLSClientConfig.RootCAs, true, false)}} {
			resp := getWith(t, c.client, lb.url+"/")
			if got := resp.Header.Values("Alt-Svc"); len(got) != 1 || got[0] != want || resp.Proto != map[string]string{"HTTP/2": "HTTP/2.0", "HTTP/1.1": "HTTP/1.1"}[c.name] {
				t.Errorf("%s (%s): Alt-Svc %q, want %q", c.name, resp.Proto, got, want)
			}
		}
	})
	t.Run("the access log says proto=HTTP/3 on HTTP/3 lines only", func(t *testing.T) {
		lb.log.waitFor(t, 1, "request:", "method=POST", "path=/upload", "proto=HTTP/3")
		lb.log.waitFor(t, 7, "request:")
		if n := lb.log.count("request:", "proto="); n != 5 {
			t.Errorf("%d lines with a proto, want the 5 HTTP/3 requests'", n)
		}
	})
	t.Run("metrics count requests by protocol", func(t *testing.T) {
		want := map[string]uint64{"HTTP/3": 5, "HTTP/2": 1, "HTTP/1.1": 1}
		waitUntil(t, 5*time.Second, "the requests are counted by protocol", func() bool {
			m, err := lb.sel.Metrics(t.Context())
			return err == nil && fmt.Sprint(m.ByProto) == fmt.Sprint(want)
		})
	})
}

func TestHTTP3RetriesWithTheBodyIntactAfterABackendDies(t *testing.T) {
	var resets atomic.Int64
	bad := resetAfterReading(t, &resets)
	lb := h3Balancer(t, balancerOptions{retries: 2, retryBuffer: 64 << 10, monitor: fallNever()},
		bad.URL, reportingBackend(t, "good"))
	body := make([]byte, 32<<10)
	_, _ = rand.Read(body)
	sum := sha256.Sum256(body)
	for i := range 4 {
		resp, got := lb.h3.do(t, http.MethodPut, "/doc", body, nil)
		if resp.StatusCode != http.StatusOK || !strings.HasSuffix(got, "sum="+hex.EncodeToString(sum[:])) {
			t.Fatalf("PUT %d: status %d, %q; want the body resent whole to the good backend", i, resp.StatusCode, got)
		}
	}
	if resets.Load() < 1 {
		t.Errorf("the dying backend reset %d exchanges, want at least one", resets.Load())
	}
	lb.log.waitFor(t, 1, "request:", "method=PUT", "attempts=2", "proto=HTTP/3")
}

func TestHTTP3ShutdownFinishesTheRequestsInFlight(t *testing.T) {
	arrived, release := make(chan struct{}), make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(arrived)
			<-release
		}
		_, _ = io.WriteString(w, "done")
	}))
	t.Cleanup(slow.Close)
	lb := h3Balancer(t, balancerOptions{}, slow.URL)

	var wg conc.WaitGroup
	defer wg.Wait()
	type answer struct {
		status int
		body   string
		err    error
	}
	got := make(chan answer, 1)
	wg.Go(func() {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, lb.h3.url+"/slow", nil)
		resp, err := lb.h3.client.Do(req)
		if err != nil {
			got <- answer{err: err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- answer{resp.StatusCode, string(b), err}
	})
	<-arrived
	shutDown := make(chan error, 1)
	wg.Go(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		shutDown <- lb.h3.Shutdown(ctx)
	})
	// A new connection is refused once the server stops accepting.
	waitUntil(t, 5*time.Second, "new HTTP/3 connections are refused", func() bool {
		tr := &http3.Transport{TLSClientConfig: lb.h3.client.Transport.(*http3.Transport).TLSClientConfig}
		defer tr.Close()
		ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, lb.h3.url+"/", nil)
		resp, err := (&http.Client{Transport: tr}).Do(req)
		if err == nil {
			resp.Body.Close()
		}
		return err != nil
	})
	select {
	case err := <-shutDown:
		t.Fatalf("Shutdown returned (%v) with a request in flight", err)
	default:
	}
	close(release)
	if a := <-got; a.err != nil || a.status != http.StatusOK || a.body != "done" {
		t.Errorf("the request in flight: %d %q, %v; want 200 done", a.status, a.body, a.err)
	}
	if err := <-shutDown; err != nil {
		t.Errorf("Shutdown: %v, want nil once the request finished", err)
	}
}

func TestHTTP3ConnectionsAreCapped(t *testing.T) {
	lb := h3Balancer(t, balancerOptions{http3: &HTTP3Options{MaxConns: 1}}, reportingBackend(t, "A"))
	if resp, _ := lb.h3.do(t, http.MethodGet, "/", nil, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	// A second client's connection waits while the first is open...
	other := &http3.Transport{TLSClientConfig: lb.h3.client.Transport.(*http3.Transport).TLSClientConfig}
	t.Cleanup(func() { _ = other.Close() })
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, lb.h3.url+"/", nil)
	if resp, err := (&http.Client{Transport: other}).Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("a second connection was served past the cap: %d", resp.StatusCode)
	}
	lb.log.waitFor(t, 1, "QUIC connection limit reached", "max_conns=1")
	// ...and is served once the first closes.
	_ = lb.h3.client.Transport.(*http3.Transport).Close()
	ctx, cancel = context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	req, _ = http.NewRequestWithContext(ctx, http.MethodGet, lb.h3.url+"/", nil)
	resp, err := (&http.Client{Transport: other}).Do(req)
	if err != nil {
		t.Fatalf("after the first connection closed: %v", err)
	}
	resp.Body.Close()
}

func TestHTTP3NeedsTLS(t *testing.T) {
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	if _, err := NewHTTP3(udp, http.NotFoundHandler(), HTTP3Options{}); err == nil {
		t.Error("NewHTTP3 without TLS succeeded")
	}
}

func TestHTTP3KeepsTheLimitsAndTheReloadedCertificate(t *testing.T) {
	ca := testcert.NewAuthority(t, "test CA")
	store, dir := runCertStore(t, ca.Issue("first", "127.0.0.1"))
	lb := newBalancer(t, balancerOptions{
		frontend: FrontendOptions{TLS: ServerTLSConfig(store.GetCertificate)}, clientCAs: ca.Pool(),
		http3: &HTTP3Options{}, maxBody: 1 << 10, limit: &RateLimitOptions{Rate: 0.001, Burst: 3},
	}, reportingBackend(t, "A"))
	served := func() string {
		t.Helper()
		resp, body := lb.h3.do(t, http.MethodGet, "/", nil, nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d: %q", resp.StatusCode, body)
		}
		return resp.TLS.PeerCertificates[0].Subject.CommonName
	}
	if got := served(); got != "first" {
		t.Fatalf("HTTP/3 served %q, want first", got)
	}

	// A reloaded certificate serves new QUIC connections.
	ca.Issue("second", "127.0.0.1").WriteFiles(t, dir)
	if _, err := store.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	_ = lb.h3.client.Transport.(*http3.Transport).Close() // a new connection, a new handshake
	lb.h3.client.Transport = &http3.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}
	t.Cleanup(func() { _ = lb.h3.client.Transport.(*http3.Transport).Close() })
	if got := served(); got != "second" {
		t.Errorf("HTTP/3 served %q after the reload, want second", got)
	}

	// --max-body, then --rate-limit (the burst of 3 is spent by now).
	if resp, _ := lb.h3.do(t, http.MethodPost, "/", make([]byte, 2<<10), nil); resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("a body over --max-body: status %d, want 413", resp.StatusCode)
	}
	if resp, _ := lb.h3.do(t, http.MethodGet, "/", nil, nil); resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Errorf("past the rate limit: status %d, Retry-After %q; want 429 with a Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}

func TestInFlightWaitsForALullAfterTheLastRequest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newInFlight()
		ctx, cancel := context.WithCancel(t.Context())
		var wg conc.WaitGroup
		defer wg.Wait()
		defer cancel()
		wg.Go(func() { f.run(ctx) })

		release := make(chan struct{})
		h := f.handler(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { <-release }))
		wg.Go(func() { h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil)) })
		synctest.Wait() // the request is in flight
		start := time.Now()
		idle := f.whenIdleFor(time.Second)
		time.Sleep(5 * time.Second) // fake time: the request is still in flight
		select {
		case <-idle:
			t.Fatal("idle with a request in flight")
		default:
		}
		close(release)
		<-idle
		if d := time.Since(start); d != 6*time.Second {
			t.Errorf("idle after %v, want 6s: the request's 5s, then a second's lull", d)
		}
	})
}
