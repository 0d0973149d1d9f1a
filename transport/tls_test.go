package transport

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sourcegraph/conc"

	"github.com/roundhouse/roundhouse/internal/testcert"
)

// runCertStore serves leaf's files from a CertStore running until the test
// ends; it returns the store and the directory holding the files.
func runCertStore(t *testing.T, leaf *testcert.Leaf) (*CertStore, string) {
	t.Helper()
	dir := t.TempDir()
	certFile, keyFile := leaf.WriteFiles(t, dir)
	store, err := NewCertStore(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg conc.WaitGroup
	wg.Go(func() { _ = store.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	return store, dir
}

// tlsBalancer is a balancer terminating TLS with a certificate for
// 127.0.0.1 from a fresh authority, which its client trusts.
func tlsBalancer(t *testing.T, o balancerOptions, backends ...string) (*balancer, *CertStore, *testcert.Authority) {
	t.Helper()
	ca := testcert.NewAuthority(t, "test CA")
	store, _ := runCertStore(t, ca.Issue("balancer", "127.0.0.1"))
	o.frontend.TLS = ServerTLSConfig(store.GetCertificate)
	o.clientCAs = ca.Pool()
	return newBalancer(t, o, backends...), store, ca
}

// clientFor returns a client of the balancer speaking only the given protocols.
func clientFor(t *testing.T, pool *x509.CertPool, http1, http2 bool) *http.Client {
	t.Helper()
	var p http.Protocols
	p.SetHTTP1(http1)
	p.SetHTTP2(http2)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, Protocols: &p}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

func getWith(t *testing.T, c *http.Client, url string) *http.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

func TestTLSServesHTTP2AndHTTP1ChosenByALPN(t *testing.T) {
	backend, got := recordingBackend(t)
	lb, _, ca := tlsBalancer(t, balancerOptions{}, backend.URL)
	for _, tt := range []struct {
		name         string
		http1, http2 bool
		wantMajor    int
	}{
		{"a client offering h2 gets HTTP/2", true, true, 2},
		{"a client offering only http/1.1 gets HTTP/1.1", true, false, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp := getWith(t, clientFor(t, ca.Pool(), tt.http1, tt.http2), lb.url+"/")
			if resp.StatusCode != 200 || resp.ProtoMajor != tt.wantMajor {
				t.Errorf("got %d over %s, want 200 over HTTP/%d", resp.StatusCode, resp.Proto, tt.wantMajor)
			}
			r := <-got
			if r.Header.Get("X-Forwarded-Proto") != "https" || !strings.Contains(r.Header.Get("Forwarded"), "proto=https") {
				t.Errorf("backend saw X-Forwarded-Proto %q, Forwarded %q; want https",
					r.Header.Get("X-Forwarded-Proto"), r.Header.Get("Forwarded"))
			}
		})
	}
}

func TestTLSRefusesVersionsBeforeTLS12(t *testing.T) {
	lb, _, ca := tlsBalancer(t, balancerOptions{}, demoBackend(t, "A").URL)
	c, err := tls.Dial("tcp", strings.TrimPrefix(lb.url, "https://"), &tls.Config{
		RootCAs: ca.Pool(), MaxVersion: tls.VersionTLS11,
	})
	if err == nil {
		c.Close()
		t.Fatal("a TLS 1.1 handshake succeeded")
	}
}

// dialTLS opens a raw HTTP/1.1 connection over TLS to the balancer.
func dialTLS(t *testing.T, lb *balancer, pool *x509.CertPool) *rawConn {
	t.Helper()
	c, err := tls.Dial("tcp", strings.TrimPrefix(lb.url, "https://"), &tls.Config{RootCAs: pool, NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return &rawConn{t: t, c: c, br: bufio.NewReader(c)}
}

func TestTheFramingGuardWorksOverTLS(t *testing.T) {
	backend, got := recordingBackend(t)
	lb, _, ca := tlsBalancer(t, balancerOptions{}, backend.URL)
	rc := dialTLS(t, lb, ca.Pool())
	rc.send("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n")
	if resp, _ := rc.response("POST"); resp.StatusCode != 400 {
		t.Errorf("status %d, want 400", resp.StatusCode)
	}
	if !rc.closed() {
		t.Error("the connection stayed open")
	}
	noRequest(t, got)
}

func TestPlainHTTPToTheTLSPortGetsA400(t *testing.T) {
	lb, _, _ := tlsBalancer(t, balancerOptions{}, demoBackend(t, "A").URL)
	rc := dialRaw(t, "http://"+strings.TrimPrefix(lb.url, "https://"))
	rc.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	if resp, body := rc.response("GET"); resp.StatusCode != 400 || !strings.Contains(body, "HTTPS") {
		t.Errorf("got %d %q, want 400 saying HTTPS is expected", resp.StatusCode, body)
	}
}

func TestAClientThatNeverFinishesTheTLSHandshakeIsCutOff(t *testing.T) {
	lb, _, ca := tlsBalancer(t, balancerOptions{frontend: FrontendOptions{ReadHeaderTimeout: 200 * time.Millisecond}},
		demoBackend(t, "A").URL)
	for range 5 {
		rc := dialRaw(t, "http://"+strings.TrimPrefix(lb.url, "https://"))
		_, _ = rc.c.Write([]byte{0x16, 0x03, 0x01}) // the start of a record, then silence
		defer func() {
			if !rc.closed() {
				t.Error("a stalled handshake was not cut off")
			}
		}()
	}
	if resp := getWith(t, clientFor(t, ca.Pool(), true, true), lb.url+"/"); resp.StatusCode != 200 {
		t.Errorf("status %d during stalled handshakes", resp.StatusCode)
	}
}

func TestCertStoreReloadKeepsTheOldCertificateWhenTheNewFilesAreBad(t *testing.T) {
	ca := testcert.NewAuthority(t, "test CA")
	first, second := ca.Issue("first", "127.0.0.1"), ca.Issue("second", "127.0.0.1")
	store, dir := runCertStore(t, first)
	current := func() string {
		t.Helper()
		c, err := store.GetCertificate(&tls.ClientHelloInfo{})
		if err != nil {
			t.Fatal(err)
		}
		return c.Leaf.Subject.CommonName
	}
	if got := current(); got != "first" {
		t.Fatalf("serving %q, want first", got)
	}
	second.WriteFiles(t, dir)
	if leaf, err := store.Reload(t.Context()); err != nil || leaf.Subject.CommonName != "second" {
		t.Fatalf("Reload: %v, %v", leaf, err)
	}
	if got := current(); got != "second" {
		t.Errorf("serving %q after a reload, want second", got)
	}
	certFile, _ := first.WriteFiles(t, dir)
	if err := writeFile(certFile, "not a certificate"); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Reload(t.Context()); err == nil {
		t.Error("Reload of a broken certificate file succeeded")
	}
	if got := current(); got != "second" {
		t.Errorf("serving %q after a failed reload, want second still", got)
	}
}

func TestANewCertificateServesNewConnectionsAfterReload(t *testing.T) {
	ca := testcert.NewAuthority(t, "test CA")
	store, dir := runCertStore(t, ca.Issue("first", "127.0.0.1"))
	lb := newBalancer(t, balancerOptions{frontend: FrontendOptions{TLS: ServerTLSConfig(store.GetCertificate)}, clientCAs: ca.Pool()},
		demoBackend(t, "A").URL)
	served := func() string {
		t.Helper()
		c, err := tls.Dial("tcp", strings.TrimPrefix(lb.url, "https://"), &tls.Config{RootCAs: ca.Pool()})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].Subject.CommonName
	}
	if got := served(); got != "first" {
		t.Fatalf("served %q, want first", got)
	}
	ca.Issue("second", "127.0.0.1").WriteFiles(t, dir)
	if _, err := store.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := served(); got != "second" {
		t.Errorf("served %q after reload, want second", got)
	}
}

func TestH2CServesCleartextHTTP2AndHTTP1OnOnePort(t *testing.T) {
	lb := newBalancer(t, balancerOptions{frontend: FrontendOptions{H2C: true}}, demoBackend(t, "A").URL)
	if resp := getWith(t, h2cClient(t), lb.url+"/"); resp.StatusCode != 200 || resp.ProtoMajor != 2 {
		t.Errorf("prior-knowledge client: %d over %s, want 200 over HTTP/2", resp.StatusCode, resp.Proto)
	}
	if code, _, _ := lb.get(t, "/"); code != 200 {
		t.Errorf("HTTP/1.1 client: %d", code)
	}
	// A preface that breaks off is not HTTP/2, and not a request either.
	rc := dialRaw(t, lb.url)
	rc.send("PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n")
	if resp, _ := rc.response("GET"); resp.StatusCode != 400 {
		t.Errorf("broken preface: status %d, want 400", resp.StatusCode)
	}
}

func TestWithoutH2CThePrefaceIsRefused(t *testing.T) {
	lb := newBalancer(t, balancerOptions{}, demoBackend(t, "A").URL)
	rc := dialRaw(t, lb.url)
	rc.send("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
	if resp, _ := rc.response("GET"); resp.StatusCode != 400 {
		t.Errorf("status %d, want 400", resp.StatusCode)
	}
	if !rc.closed() {
		t.Error("the connection stayed open")
	}
}

// tlsBackend is an https:// backend with a certificate for "localhost"
// from ca, offering h2 and http/1.1. It records each request's protocol
// and the SNI name its client sent.
func tlsBackend(t *testing.T, ca *testcert.Authority, h http.Handler) (url string, sni <-chan string) {
	t.Helper()
	names := make(chan string, 16)
	srv := httptest.NewUnstartedServer(h)
	srv.EnableHTTP2 = true
	srv.TLS = &tls.Config{
		Certificates: []tls.Certificate{ca.Issue("backend", "localhost").Cert},
		NextProtos:   []string{"h2", "http/1.1"},
		GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			select {
			case names <- hello.ServerName:
			default:
			}
			return nil, nil
		},
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	return "https://localhost:" + port, names
}

func TestHTTPSBackendsGetSNIVerificationAndHTTP2(t *testing.T) {
	ca := testcert.NewAuthority(t, "backend CA")
	protos := make(chan string, 16)
	url, sni := tlsBackend(t, ca, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/health" {
			protos <- r.Proto
		}
	}))
	lb := newBalancer(t, balancerOptions{backendCAs: ca.Pool()}, url)
	if code, _, body := lb.get(t, "/"); code != 200 {
		t.Fatalf("status %d %q", code, body)
	}
	if p := <-protos; p != "HTTP/2.0" {
		t.Errorf("backend spoke %s, want HTTP/2.0", p)
	}
	if name := <-sni; name != "localhost" {
		t.Errorf("SNI %q, want localhost", name)
	}
}

func TestAnHTTPSBackendThatCannotBeVerifiedIsNeverSentTheRequest(t *testing.T) {
	ca, stranger := testcert.NewAuthority(t, "backend CA"), testcert.NewAuthority(t, "someone else")
	reached := make(chan string, 4)
	url, _ := tlsBackend(t, ca, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached <- r.URL.Path
	}))
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(url, "https://"))
	for _, tt := range []struct {
		name, url string
		pool      *x509.CertPool
	}{
		{"a certificate from an untrusted authority is refused", url, stranger.Pool()},
		{"a certificate for another host is refused", "https://127.0.0.1:" + port, ca.Pool()},
	} {
		t.Run(tt.name, func(t *testing.T) {
			lb := newBalancer(t, balancerOptions{backendCAs: tt.pool, monitor: fallNever()}, tt.url)
			code, _, body := lb.get(t, "/secret")
			if code != http.StatusBadGateway {
				t.Errorf("status %d, want 502", code)
			}
			if strings.Contains(body, "127.0.0.1") || strings.Contains(body, "localhost") || strings.Contains(body, "x509") {
				t.Errorf("the error reveals the backend: %q", body)
			}
			if st := lb.status(t)[0]; st.Up || !strings.HasPrefix(st.Reason, "passive:") {
				t.Errorf("backend %+v, want DOWN at once like a refused connection", st)
			}
		})
	}
	select {
	case p := <-reached:
		t.Errorf("the backend received %s", p)
	default:
	}
}

// A backend that takes connections but never answers the TLS handshake
// costs a POST nothing: when --tls-handshake-timeout passes, nothing of the
// request has been sent, so it goes to the next backend with its body
// whole, and the silent one is marked DOWN at once, like a refused
// connection (not answered 504 like a backend that took the request).
func TestAnHTTPSBackendThatNeverFinishesTheHandshakeIsPassedOver(t *testing.T) {
	// A listener that never accepts: the kernel completes TCP handshakes
	// into its queue, and nobody reads the ClientHello.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { silent.Close() })
	live := demoBackend(t, "live")
	lb := newBalancer(t, balancerOptions{retries: 1, monitor: fallNever(), tlsHandshakeTimeout: 200 * time.Millisecond},
		"https://"+silent.Addr().String(), live.URL)

	body := strings.Repeat("x", 100<<10)
	code, who, got := lb.do(t, http.MethodPost, "/echo", strings.NewReader(body))
	if code != http.StatusOK || who != "live" || got != body {
		t.Errorf("status %d from %q with %d bytes back; want 200 from live with the %d bytes sent", code, who, len(got), len(body))
	}
	if st := lb.status(t)[0]; st.Up || !strings.HasPrefix(st.Reason, "passive:") {
		t.Errorf("silent backend %+v, want DOWN at once like a refused connection", st)
	}
}

// closingListener returns the address of a loopback listener that
// accepts each connection and closes it at once; t's cleanup stops it.
func closingListener(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var accepting sync.WaitGroup
	accepting.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	})
	t.Cleanup(func() { ln.Close(); accepting.Wait() })
	return ln.Addr().String()
}

func TestAnHTTPSBackendThatClosesDuringTheHandshakeIsPassedOver(t *testing.T) {
	// The ClientHello meets a closed connection, and the transport sees a
	// bare EOF or reset.
	closing := closingListener(t)
	live := demoBackend(t, "live")
	lb := newBalancer(t, balancerOptions{retries: 1, monitor: fallNever()}, "https://"+closing, live.URL)

	body := strings.Repeat("x", 100<<10)
	code, who, got := lb.do(t, http.MethodPost, "/echo", strings.NewReader(body))
	if code != http.StatusOK || who != "live" || got != body {
		t.Errorf("status %d from %q with %d bytes back; want 200 from live with the %d bytes sent", code, who, len(got), len(body))
	}
	if st := lb.status(t)[0]; st.Up || !strings.HasPrefix(st.Reason, "passive:") {
		t.Errorf("closing backend %+v, want DOWN at once like a refused connection", st)
	}
}

func TestWebSocketsReachAnHTTP2CapableBackendOverHTTP1(t *testing.T) {
	ca := testcert.NewAuthority(t, "backend CA")
	backend, events := wsBackend(t)
	backend.Close() // only its handler is wanted, behind TLS
	url, _ := tlsBackend(t, ca, backend.Config.Handler)
	lb := newBalancer(t, balancerOptions{backendCAs: ca.Pool()}, url)
	rc := openWebSocket(t, lb, "")
	rc.echo("over TLS")
	_ = rc.c.(*net.TCPConn).CloseWrite()
	waitEvent(t, events, "half-closed")
}

func writeFile(name, content string) error { return os.WriteFile(name, []byte(content), 0o600) }
