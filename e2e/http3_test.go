package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/quic-go/quic-go/http3"

	"github.com/roundhouse/roundhouse/demo"
	"github.com/roundhouse/roundhouse/internal/testcert"
)

// h3Client is an HTTP/3 client (quic-go's http3.Transport; curl here may
// not speak HTTP/3) that trusts pool, closed when the test ends.
func h3Client(t *testing.T, pool *x509.CertPool) *http.Client {
	t.Helper()
	tr := &http3.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	t.Cleanup(func() { _ = tr.Close() })
	return &http.Client{Transport: tr}
}

// h3Balancer starts the balancer with a certificate for 127.0.0.1 and
// --http3 in front of backends, and returns it, its https URL (TCP and
// UDP share the port) and the authority its clients trust.
func h3Balancer(t *testing.T, backends []string, args ...string) (*proc, string, *x509.CertPool) {
	t.Helper()
	ca := testcert.NewAuthority(t, "test CA")
	certFile, keyFile := ca.Issue("lb", "127.0.0.1").WriteFiles(t, t.TempDir())
	argv := []string{"--listen", "127.0.0.1:0", "--tls-cert", certFile, "--tls-key", keyFile, "--http3"}
	for _, b := range backends {
		argv = append(argv, "--backend", b)
	}
	lb := start(t, append(argv, args...)...)
	addr := lb.waitFor(t, listening)
	lb.waitFor(t, `listening: addr=`+addr+` .*http3=`+addr)
	return lb, "https://" + addr, ca.Pool()
}

func TestHTTP3WithoutACertificateExitsWithStatus2(t *testing.T) {
	expectUsageErrors(t, []usageCase{
		{"--http3 without --tls-cert is refused", []string{"--backend=http://127.0.0.1:1", "--http3"},
			"--http3: HTTP/3 runs over TLS only: give --tls-cert and --tls-key"},
	})
}

// TestHTTP3ServesUnderLoadWhileABackendDies runs HTTP/3 clients (GETs,
// and POSTs with an Idempotency-Key, so retrying them is safe) against the
// binary, kills one of two backends mid-load, and wants no client error;
// the TCP side advertises HTTP/3 and the access log says proto=HTTP/3.
func TestHTTP3ServesUnderLoadWhileABackendDies(t *testing.T) {
	a := demoBackend(t, "a")
	b := httptest.NewServer(demo.Handler("b"))
	t.Cleanup(b.Close)
	lb, url, pool := h3Balancer(t, []string{a, b.URL})
	client := h3Client(t, pool)

	// Round-robin over HTTP/3.
	var got []string
	for range 4 {
		code, body, proto := h3Get(t, client, url+"/")
		if code != http.StatusOK || proto != "HTTP/3.0" {
			t.Fatalf("GET over HTTP/3: %d %s %q", code, proto, body)
		}
		got = append(got, strings.Fields(body)[2])
	}
	if s := strings.Join(got, " "); s != "a b a b" && s != "b a b a" {
		t.Errorf("HTTP/3 order %q, want round-robin", s)
	}
	// The TCP side (HTTP/2) advertises HTTP/3 on the same port.
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get(url + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	port := url[strings.LastIndex(url, ":")+1:]
	if v := resp.Header.Get("Alt-Svc"); resp.ProtoMajor != 2 || v != `h3=":`+port+`"; ma=86400` {
		t.Errorf("%s response's Alt-Svc %q, want h3 on port %s", resp.Proto, v, port)
	}

	load := startH3Load(t, 6, url, pool)
	load.waitRequests(t, 200)
	b.CloseClientConnections()
	b.Close() // killed mid-load: its requests in flight break, new ones are refused
	load.waitRequests(t, 300)
	load.stop()
	t.Logf("%d HTTP/3 requests, %d client errors, backend b killed mid-load", load.ok.Load(), load.failed.Load())
	if load.failed.Load() > 0 {
		t.Errorf("%d HTTP/3 requests failed, want 0: %q", load.failed.Load(), load.failures())
	}
	lb.waitFor(t, `request: method=POST path=/sha256 client=127\.0\.0\.1:\d+ backend=\S+ status=200 duration=\S+ bytes=\d+ proto=HTTP/3`)
	lb.stop(t)
}

// h3Get sends GET url and returns the status, the body and the protocol.
func h3Get(t *testing.T, client *http.Client, url string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), resp.Proto
}

// TestHTTP3RequestsInFlightFinishAtShutdown stops the binary (SIGTERM)
// while an HTTP/3 request waits on its backend: the request finishes, and
// the process exits 0 once it has.
func TestHTTP3RequestsInFlightFinishAtShutdown(t *testing.T) {
	arrived, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			once.Do(func() { close(arrived) })
			<-release
		}
		_, _ = io.WriteString(w, "done")
	}))
	t.Cleanup(slow.Close)
	lb, url, pool := h3Balancer(t, []string{slow.URL}, "--shutdown-grace", "20s")
	client := h3Client(t, pool)

	type answer struct {
		code int
		body string
		err  error
	}
	got := make(chan answer, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/slow", nil)
		resp, err := client.Do(req)
		if err != nil {
			got <- answer{err: err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- answer{resp.StatusCode, string(b), err}
	}()
	<-arrived
	lb.signal(t, syscall.SIGTERM)
	lb.waitFor(t, `shutting down`)
	select {
	case <-lb.exited:
		t.Fatal("the balancer exited with an HTTP/3 request in flight")
	case a := <-got:
		t.Fatalf("the request ended before its backend answered: %+v", a)
	case <-time.After(200 * time.Millisecond): // a moment for a wrong exit to show; no synchronisation rests on it
	}
	close(release)
	if a := <-got; a.err != nil || a.code != http.StatusOK || a.body != "done" {
		t.Errorf("the request in flight: %d %q, %v; want 200 done", a.code, a.body, a.err)
	}
	if code := lb.wait(t); code != 0 {
		t.Errorf("exit status %d, want 0; output:\n%s", code, lb.output())
	}
	if out := lb.output(); strings.Contains(out, "grace period over") {
		t.Errorf("the drain ran out of grace:\n%s", out)
	}
}

// TestHTTP3SurvivesAnUpgrade upgrades the binary (SIGUSR2) while HTTP/3
// clients send requests: the new process inherits the UDP socket and
// serves HTTP/3 on it; the old one drains and exits 0. It reports the
// client errors the hand-over cost (see docs/operations.md).
func TestHTTP3SurvivesAnUpgrade(t *testing.T) {
	if testing.Short() {
		t.Skip("upgrade test skipped in -short mode")
	}
	ca := testcert.NewAuthority(t, "test CA")
	certFile, keyFile := ca.Issue("lb", "127.0.0.1").WriteFiles(t, t.TempDir())
	f := startFamily(t, nil, nil, "--listen", "127.0.0.1:0", "--backend", demoBackend(t, "a"),
		"--tls-cert", certFile, "--tls-key", keyFile, "--http3", "--shutdown-grace", "10s", "--access-log=false")
	addr := f.waitForCount(1, listening)[0]
	url := "https://" + addr
	old := f.pids()[0]

	load := startH3Load(t, 4, url, ca.Pool())
	load.waitRequests(t, 100)
	if err := syscall.Kill(old, syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	f.waitForCount(1, `new process ready: pid=(\d+)`)
	if code := f.reap(old, 20*time.Second); code != 0 {
		t.Errorf("the old process exited with status %d, want 0", code)
	}
	load.waitRequests(t, 100)
	load.stop()
	t.Logf("%d HTTP/3 requests across the upgrade, %d failed: %q", load.ok.Load(), load.failed.Load(), load.failures())
	for _, m := range regexp.MustCompile(`(?m)^\S+ .*(handed over|drained|stopped: pid|grace period over).*$`).FindAllString(f.output(), -1) {
		t.Log(m)
	}
	// What an upgrade may cost HTTP/3 clients (docs/operations.md): a
	// request still in flight when the old process closes its connections
	// after its idle second ends with the connection, H3_NO_ERROR. Seen in
	// about 1 run in 10 under CI's load, once per run at most: allow 1%,
	// and only that error.
	if n, limit := load.failed.Load(), max(1, load.ok.Load()/100); n > limit {
		t.Errorf("%d HTTP/3 requests failed across the upgrade, want at most %d", n, limit)
	}
	for _, f := range load.failures() {
		if !strings.Contains(f, "H3_NO_ERROR") && !strings.Contains(f, "H3_REQUEST_REJECTED") {
			t.Errorf("a request failed across the upgrade with %q, want only a connection the old process closed", f)
		}
	}
	// The new process serves HTTP/3 on the inherited socket.
	if code, _, proto := h3Get(t, h3Client(t, ca.Pool()), url+"/"); code != http.StatusOK || proto != "HTTP/3.0" {
		t.Errorf("after the upgrade: %d over %s", code, proto)
	}
}

// h3Load is n HTTP/3 clients sending checked requests (package-level
// checkedRequest) until stopped: even ones GET /, odd ones POST /sha256
// with an Idempotency-Key, so that a retry is safe.
type h3Load struct {
	ok, failed atomic.Int64
	progress   chan struct{} // a value (if there is room) after each request
	errs       sync.Map      // the failures' texts
	stop       func()        // stops the clients and waits for them
}

func startH3Load(t *testing.T, n int, url string, pool *x509.CertPool) *h3Load {
	t.Helper()
	l := &h3Load{progress: make(chan struct{}, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	var clients sync.WaitGroup
	var seq atomic.Int64
	for c := range n {
		client := h3Client(t, pool)
		clients.Go(func() {
			for ctx.Err() == nil {
				post := c%2 == 1
				key := ""
				if post {
					key = fmt.Sprintf("c%d-%d", c, seq.Add(1))
				}
				if err := checkedRequest(client, url, post, 32<<10, key); err != nil {
					l.failed.Add(1)
					l.errs.Store(err.Error(), true)
				} else {
					l.ok.Add(1)
				}
				select {
				case l.progress <- struct{}{}:
				default:
				}
			}
		})
	}
	l.stop = sync.OnceFunc(func() { cancel(); clients.Wait() })
	t.Cleanup(l.stop)
	return l
}

// waitRequests waits until the clients have made n more requests.
func (l *h3Load) waitRequests(t *testing.T, n int64) {
	t.Helper()
	target := l.ok.Load() + l.failed.Load() + n
	deadline := time.After(30 * time.Second)
	for l.ok.Load()+l.failed.Load() < target {
		select {
		case <-l.progress:
		case <-deadline:
			t.Fatalf("the HTTP/3 clients made fewer than %d requests in 30s", n)
		}
	}
}

// failures lists the texts of the failed requests' errors.
func (l *h3Load) failures() []string {
	var kinds []string
	l.errs.Range(func(k, _ any) bool { kinds = append(kinds, k.(string)); return true })
	return kinds
}
