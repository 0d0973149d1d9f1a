package e2e

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"

	"github.com/roundhouse/roundhouse/internal/testcert"
)

// Automatic HTTPS against a real ACME CA: Let's Encrypt's pebble, built
// from the module cache (go.mod names it as a tool) and run as a process.
// Its validation authority resolves the test's names with a DNS server of
// the test's own (startTCPDNS: every name is 127.0.0.1) and checks HTTP-01 on
// httpPort and TLS-ALPN-01 on tlsPort, the balancer's --http-listen and
// --listen ports. Roundhouse trusts pebble's API by --acme-ca-root (the
// minica root of pebble's test certificate); clients trust what pebble
// issues by its root, from pebble's management API (/roots/0).

// pebbleServer is pebble's binary, built once by startPebble.
var pebbleServer built

// acmeName is the name the tests obtain certificates for.
const acmeName = "example.test"

// pebble is one running pebble.
type pebble struct {
	*proc
	dir    string // the ACME directory URL
	mgmt   string // the management API's host:port
	caRoot string // PEM file of the root pebble's API is served under
}

// acmePorts are the fixed ports one test's pebble and balancers use,
// chosen free when the test starts: pebble's configuration names the
// balancer's ports before the balancer runs.
type acmePorts struct {
	http, tls, wfe, mgmt int
	dns                  string // the test's DNS server, host:port
	// vaHTTP and vaTLS, if not 0, are where pebble validates HTTP-01 and
	// TLS-ALPN-01 instead of http and tls: a dead port there leaves the
	// other challenge alone.
	vaHTTP, vaTLS int
}

func newACMEPorts(t *testing.T) acmePorts {
	t.Helper()
	return acmePorts{http: freePort(t), tls: freePort(t), wfe: freePort(t), mgmt: freePort(t), dns: startTCPDNS(t)}
}

// startTCPDNS starts a DNS server on TCP (pebble's validation authority
// asks over TCP) that answers every A question with 127.0.0.1 and every
// other with no record. It stops when the test ends.
func startTCPDNS(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{Listener: ln, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(req)
		m.Authoritative = true
		if q := req.Question[0]; q.Qtype == dns.TypeA {
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 1},
				A: net.IPv4(127, 0, 0, 1)})
		}
		_ = w.WriteMsg(m)
	})}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.ActivateAndServe()
	}()
	t.Cleanup(func() {
		_ = srv.Shutdown()
		<-done
	})
	return ln.Addr().String()
}

// freePort returns a TCP port of 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startPebble builds pebble once (skipping the test, saying why, only when
// it cannot be built: .ci/run builds it first so that CI never skips) and
// starts it with a configuration for ports, issuing certificates valid for
// validity (0: 90 days). It is stopped when the test ends.
func startPebble(t *testing.T, ports acmePorts, validity time.Duration) *pebble {
	t.Helper()
	bin, err := pebbleServer.build("pebble", "github.com/letsencrypt/pebble/v2/cmd/pebble")
	if err != nil {
		t.Skipf("skipped: pebble cannot be built (go mod download fetches it; .ci/run builds it): %v", err)
	}
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/letsencrypt/pebble/v2").Output()
	if err != nil {
		t.Skipf("skipped: pebble's module directory: %v", err)
	}
	src := strings.TrimSpace(string(out))
	cfg := map[string]any{"pebble": map[string]any{
		"listenAddress":                  fmt.Sprintf("127.0.0.1:%d", ports.wfe),
		"managementListenAddress":        fmt.Sprintf("127.0.0.1:%d", ports.mgmt),
		"certificate":                    filepath.Join(src, "test/certs/localhost/cert.pem"),
		"privateKey":                     filepath.Join(src, "test/certs/localhost/key.pem"),
		"httpPort":                       cmp.Or(ports.vaHTTP, ports.http),
		"tlsPort":                        cmp.Or(ports.vaTLS, ports.tls),
		"ocspResponderURL":               "",
		"externalAccountBindingRequired": false,
		"retryAfter":                     map[string]int{"authz": 1, "order": 1},
		"keyAlgorithm":                   "ecdsa",
		"profiles": map[string]any{
			"default": map[string]any{"description": "test", "validityPeriod": int(validity.Seconds())},
		},
	}}
	if validity == 0 {
		validity = 90 * 24 * time.Hour
	}
	data, _ := json.Marshal(cfg)
	file := filepath.Join(t.TempDir(), "pebble.json")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	p := startWith(t, procOptions{name: "pebble", bin: bin,
		env: []string{"PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0"}},
		"-config", file, "-dnsserver", ports.dns)
	p.waitFor(t, `Listening on: `)
	pb := &pebble{proc: p, dir: fmt.Sprintf("https://127.0.0.1:%d/dir", ports.wfe),
		mgmt: fmt.Sprintf("127.0.0.1:%d", ports.mgmt), caRoot: filepath.Join(src, "test/certs/pebble.minica.pem")}
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.exited
	})
	return pb
}

// orders is how many orders pebble has taken.
func (pb *pebble) orders() int { return strings.Count(pb.output(), "Added order") }

// roots returns the root pebble issues under, from its management API.
func (pb *pebble) roots(t *testing.T) *x509.CertPool {
	t.Helper()
	pem, err := os.ReadFile(pb.caRoot)
	if err != nil {
		t.Fatal(err)
	}
	api := x509.NewCertPool()
	api.AppendCertsFromPEM(pem)
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: api}}, Timeout: 10 * time.Second}
	defer c.CloseIdleConnections()
	// Pebble logs "Listening on" for its API; its management listener
	// starts beside it, perhaps a moment later.
	var resp *http.Response
	faultPoll(10*time.Second, func() bool {
		resp, err = c.Get("https://" + pb.mgmt + "/roots/0")
		return err == nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(body) {
		t.Fatalf("pebble's /roots/0: no PEM certificate: %q", body)
	}
	return pool
}

// acmeArgs are the balancer's flags for ports, pebble's directory and
// storage.
func acmeArgs(ports acmePorts, caRoot, storage, backend string, extra ...string) []string {
	return append([]string{
		"--listen", fmt.Sprintf("127.0.0.1:%d", ports.tls), "--http-listen", fmt.Sprintf("127.0.0.1:%d", ports.http),
		"--backend", "http://" + backend, "--acme-domain", acmeName,
		"--acme-ca", fmt.Sprintf("https://127.0.0.1:%d/dir", ports.wfe), "--acme-ca-root", caRoot,
		"--acme-storage", storage,
	}, extra...)
}

// pebbleRoot is the root of pebble's API certificate, for --acme-ca-root
// before pebble runs.
func pebbleRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/letsencrypt/pebble/v2").Output()
	if err != nil {
		t.Skipf("skipped: pebble's module directory: %v", err)
	}
	return filepath.Join(strings.TrimSpace(string(out)), "test/certs/pebble.minica.pem")
}

// httpsGet asks 127.0.0.1:port for https://name/ (SNI name) trusting
// roots, and returns the status, the body and the served certificate.
func httpsGet(port int, name string, roots *x509.CertPool) (int, string, *x509.Certificate, error) {
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: name},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, "127.0.0.1:"+strconv.Itoa(port))
		},
		ForceAttemptHTTP2: true, DisableKeepAlives: true,
	}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	resp, err := c.Get("https://" + name + "/")
	if err != nil {
		return 0, "", nil, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), resp.TLS.PeerCertificates[0], nil
}

func TestACMEObtainsAtStartServesBySNIAndARestartOrdersNothing(t *testing.T) {
	ports := newACMEPorts(t)
	pb := startPebble(t, ports, 0)
	roots := pb.roots(t)
	storage := t.TempDir()
	b := start(t, "backend", "--listen", "127.0.0.1:0", "--name", "b1")
	baddr := b.waitFor(t, listening)

	// Another name's certificate comes from files: served by SNI beside
	// ACME's, and to clients that name no host ACME manages.
	files := testcert.NewAuthority(t, "files CA")
	certFile, keyFile := files.Issue("other", "other.test").WriteFiles(t, t.TempDir())
	lb := start(t, acmeArgs(ports, pb.caRoot, storage, baddr, "--admin", "127.0.0.1:0", "--tls-cert", certFile, "--tls-key", keyFile)...)
	adminAddr := lb.waitFor(t, `listening: .*admin=(127\.0\.0\.1:\d+)`)
	lb.waitFor(t, `certificate ready: name=`+acmeName)
	if status, _, c, err := httpsGet(ports.tls, "other.test", files.Pool()); err != nil || status != http.StatusOK || c.Subject.CommonName != "other" {
		t.Errorf("https://other.test/: %d %v", status, err)
	}
	status, body, cert, err := httpsGet(ports.tls, acmeName, roots)
	if err != nil || status != http.StatusOK || !strings.Contains(body, "Hello from b1") {
		t.Fatalf("GET https://%s/: %d %q %v", acmeName, status, body, err)
	}
	if err := cert.VerifyHostname(acmeName); err != nil {
		t.Errorf("served certificate: %v", err)
	}
	if n := pb.orders(); n != 1 {
		t.Errorf("pebble took %d orders, want 1", n)
	}

	// Its expiry is in /status and in the metrics, and so is the files'
	// certificate's, after it.
	_, js := get(t, "http://"+adminAddr+"/status")
	var st struct {
		Certificates []certEntry `json:"certificates"`
	}
	if err := json.Unmarshal([]byte(js), &st); err != nil || len(st.Certificates) != 2 ||
		st.Certificates[0].Name != acmeName || !st.Certificates[0].Ready || !st.Certificates[0].NotAfter.Equal(cert.NotAfter) ||
		st.Certificates[0].Source != "acme" || st.Certificates[1].Name != "other.test" || st.Certificates[1].Source != "file" {
		t.Errorf("/status certificates: %s (%v), want %s ready until %v from acme, then other.test from file", js, err, acmeName, cert.NotAfter)
	}
	_, metrics := get(t, "http://"+adminAddr+"/metrics")
	for _, line := range []string{
		`roundhouse_certificate_info{name="example.test",source="acme"} 1`,
		`roundhouse_certificate_info{name="other.test",source="file"} 1`,
		`roundhouse_certificate_ready{name="other.test"} 1`,
	} {
		if !strings.Contains(metrics, line) {
			t.Errorf("metrics lack %s", line)
		}
	}
	if _, ok := certificateExpiry(t, metrics, "other.test"); !ok {
		t.Error("metrics lack the expiry of other.test, from --tls-cert")
	}
	m := regexp.MustCompile(`roundhouse_certificate_expiry_timestamp_seconds\{name="example.test"\} (\S+)`).FindStringSubmatch(metrics)
	if m == nil {
		t.Fatalf("no roundhouse_certificate_expiry_timestamp_seconds in the metrics:\n%s", metrics)
	}
	if v, err := strconv.ParseFloat(m[1], 64); err != nil || int64(v) != cert.NotAfter.Unix() {
		t.Errorf("roundhouse_certificate_expiry_timestamp_seconds = %s, want %d", m[1], cert.NotAfter.Unix())
	}

	// The plain-HTTP listener redirects to https, same host and path.
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/a/b?c=d", ports.http), nil)
	req.Host = acmeName
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	want := fmt.Sprintf("https://%s:%d/a/b?c=d", acmeName, ports.tls)
	if resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != want {
		t.Errorf("plain HTTP: %d Location %q, want 308 %q", resp.StatusCode, resp.Header.Get("Location"), want)
	}
	lb.stop(t)

	// A restart on the same storage serves the stored certificate and
	// asks the CA for nothing.
	lb = start(t, acmeArgs(ports, pb.caRoot, storage, baddr)...)
	lb.waitFor(t, `certificate ready: name=`+acmeName)
	if _, _, again, err := httpsGet(ports.tls, acmeName, roots); err != nil || !again.Equal(cert) {
		t.Errorf("after a restart: %v; same certificate: %v", err, again != nil && again.Equal(cert))
	}
	if n := pb.orders(); n != 1 {
		t.Errorf("after a restart pebble took %d orders, want 1", n)
	}
	lb.stop(t)
	b.stop(t)
}

func TestACMEWithTheCADownAtStartRefusesHandshakesThenObtains(t *testing.T) {
	ports := newACMEPorts(t)
	storage := t.TempDir()
	b := start(t, "backend", "--listen", "127.0.0.1:0", "--name", "b1")
	baddr := b.waitFor(t, listening)
	lb := start(t, acmeArgs(ports, pebbleRoot(t), storage, baddr, "--admin", "127.0.0.1:0")...)
	adminAddr := lb.waitFor(t, `listening: .*admin=(127\.0\.0\.1:\d+)`)
	lb.waitFor(t, `certificate not obtained; TLS handshakes for this name are refused until it is: name=`+acmeName)
	if _, _, _, err := httpsGet(ports.tls, acmeName, nil); err == nil {
		t.Fatal("a handshake succeeded without a certificate")
	}
	if _, metrics := get(t, "http://"+adminAddr+"/metrics"); !strings.Contains(metrics, `roundhouse_certificate_ready{name="example.test"} 0`) {
		t.Errorf("the metrics do not say the certificate is not ready:\n%s", metrics)
	}
	lb.alive(t)

	pb := startPebble(t, ports, 0)
	lb.waitFor(t, `certificate ready: name=`+acmeName)
	if status, _, _, err := httpsGet(ports.tls, acmeName, pb.roots(t)); err != nil || status != http.StatusOK {
		t.Fatalf("once pebble is up: %d %v", status, err)
	}
	lb.stop(t)
	b.stop(t)
}

func TestACMETwoInstancesSharingStorageOrderOnce(t *testing.T) {
	ports := newACMEPorts(t)
	pb := startPebble(t, ports, 0)
	storage := t.TempDir()
	b := start(t, "backend", "--listen", "127.0.0.1:0", "--name", "b1")
	baddr := b.waitFor(t, listening)
	// The second instance has ports of its own: pebble validates at the
	// first's, which answers the second's challenges from the storage
	// they share, as instances behind one address do.
	other := ports
	other.http, other.tls = freePort(t), freePort(t)
	one := start(t, acmeArgs(ports, pb.caRoot, storage, baddr)...)
	two := start(t, acmeArgs(other, pb.caRoot, storage, baddr)...)
	one.waitFor(t, `certificate ready: name=`+acmeName)
	two.waitFor(t, `certificate ready: name=`+acmeName)
	roots := pb.roots(t)
	_, _, c1, err1 := httpsGet(ports.tls, acmeName, roots)
	_, _, c2, err2 := httpsGet(other.tls, acmeName, roots)
	if err1 != nil || err2 != nil || !c1.Equal(c2) {
		t.Errorf("the instances serve different certificates (%v, %v)", err1, err2)
	}
	if n := pb.orders(); n != 1 {
		t.Errorf("pebble took %d orders for two instances on one storage, want 1", n)
	}
	one.stop(t)
	two.stop(t)
	b.stop(t)
}

func TestACMERenewsAShortLivedCertificateUnderLoadAndKeepsServingWithTheCADown(t *testing.T) {
	ports := newACMEPorts(t)
	// Certificates valid 20 s: certmagic renews once a third of the
	// lifetime is left, about 13 s after issuance; the balancer checks
	// every second.
	pb := startPebble(t, ports, 20*time.Second)
	roots := pb.roots(t)
	b := start(t, "backend", "--listen", "127.0.0.1:0", "--name", "b1")
	baddr := b.waitFor(t, listening)
	lb := startWith(t, procOptions{env: []string{"ROUNDHOUSE_ACME_RENEW_CHECK=1s"}}, acmeArgs(ports, pb.caRoot, t.TempDir(), baddr)...)
	lb.waitFor(t, `certificate ready: name=`+acmeName)
	_, _, first, err := httpsGet(ports.tls, acmeName, roots)
	if err != nil {
		t.Fatal(err)
	}

	// Requests back to back, each on a new connection, while it renews.
	stop, done := make(chan struct{}), make(chan struct{})
	var requests, failures int // the load goroutine's until done is closed
	var lastErr error
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			status, _, _, err := httpsGet(ports.tls, acmeName, roots)
			requests++
			if err != nil || status != http.StatusOK {
				failures++
				lastErr = fmt.Errorf("status %d: %v", status, err)
			}
		}
	}()
	lb.waitFor(t, `certificate renewed: name=`+acmeName)
	var second *x509.Certificate
	faultPoll(10*time.Second, func() bool {
		_, _, c, err := httpsGet(ports.tls, acmeName, roots)
		if err == nil && !c.Equal(first) {
			second = c
		}
		return second != nil
	})
	close(stop)
	<-done
	if failures > 0 {
		t.Errorf("%d of %d requests failed during the renewal; the last: %v", failures, requests, lastErr)
	}
	if second == nil {
		t.Fatalf("the renewed certificate is not served; output:\n%s", lb.output())
	}
	t.Logf("%d requests during the renewal, none failed", requests)

	// The CA down at the next renewal: the current certificate stays.
	_ = pb.cmd.Process.Kill()
	<-pb.exited
	lb.waitFor(t, `certificate renewal failed; serving the current certificate and retrying with backoff: name=`+acmeName)
	if status, _, c, err := httpsGet(ports.tls, acmeName, roots); err != nil || status != http.StatusOK || !c.Equal(second) {
		t.Errorf("with the CA down: %d %v; the current certificate: %v", status, err, c != nil && c.Equal(second))
	}
	lb.stop(t)
	b.stop(t)
}

func TestBadACMEFlagsExitWithStatus2AndNameTheFlag(t *testing.T) {
	ca := testcert.NewAuthority(t, "test CA")
	certFile, keyFile := ca.Issue("lb", acmeName).WriteFiles(t, t.TempDir())
	backend := "--backend=http://127.0.0.1:1"
	domain := "--acme-domain=" + acmeName
	storage := "--acme-storage=" + t.TempDir()
	expectUsageErrors(t, []usageCase{
		{"an ACME setting without a domain is refused", []string{backend, "--acme-email", "ops@example.test"}, "--acme-email: needs --acme-domain NAME"},
		{"a wildcard is refused", []string{backend, storage, "--acme-domain", "*.example.test"}, "--acme-domain"},
		{"a domain with a port is refused", []string{backend, storage, "--acme-domain", "example.test:443"}, "--acme-domain"},
		{"a CA that is not https is refused", []string{backend, storage, domain, "--acme-ca", "http://127.0.0.1/dir"}, "--acme-ca"},
		{"a name from ACME and from --tls-cert is refused, naming both", []string{backend, storage, domain, "--tls-cert", certFile, "--tls-key", keyFile},
			"--acme-domain: example.test is also covered by --tls-cert"},
		{"h2c with ACME is refused", []string{backend, storage, domain, "--h2c"}, "--h2c"},
		{"a plain-HTTP listener without TLS is refused", []string{backend, "--http-listen", "127.0.0.1:0"}, "--http-listen"},
		{"a plain-HTTP listener on --listen's address is refused", []string{backend, storage, domain, "--listen", "127.0.0.1:8443", "--http-listen", "127.0.0.1:8443"}, "--http-listen"},
		{"a missing CA root is named", []string{backend, storage, domain, "--acme-ca-root", "/nonexistent.pem"}, "--acme-ca-root"},
	})
}

func TestACMEIssuesThroughEitherChallengeAlone(t *testing.T) {
	b := start(t, "backend", "--listen", "127.0.0.1:0", "--name", "b1")
	baddr := b.waitFor(t, listening)
	for _, tt := range []struct {
		name string
		dead func(*acmePorts, int) // points one challenge at a dead port
	}{
		{"HTTP-01 on --http-listen", func(p *acmePorts, port int) { p.vaTLS = port }},
		{"TLS-ALPN-01 on --listen", func(p *acmePorts, port int) { p.vaHTTP = port }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ports := newACMEPorts(t)
			tt.dead(&ports, freePort(t))
			pb := startPebble(t, ports, 0)
			lb := start(t, acmeArgs(ports, pb.caRoot, t.TempDir(), baddr)...)
			lb.waitFor(t, `certificate ready: name=`+acmeName)
			if status, _, _, err := httpsGet(ports.tls, acmeName, pb.roots(t)); err != nil || status != http.StatusOK {
				t.Errorf("GET https://%s/: %d %v", acmeName, status, err)
			}
			lb.stop(t)
		})
	}
	b.stop(t)
}

func TestACMEUpgradeHandsThePlainHTTPListenerOverAndOrdersNothing(t *testing.T) {
	ports := newACMEPorts(t)
	pb := startPebble(t, ports, 0)
	roots := pb.roots(t)
	backend := strings.TrimPrefix(demoBackend(t, "a"), "http://")
	f := startFamily(t, nil, nil, acmeArgs(ports, pb.caRoot, t.TempDir(), backend, "--access-log=false")...)
	f.waitForCount(1, `certificate ready: name=`+acmeName)
	old := f.pids()[0]
	if err := syscall.Kill(old, syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	f.waitForCount(1, `handed over; draining`)
	// The new process took both sockets over and loaded the certificate
	// from storage.
	f.waitForCount(2, `certificate ready: name=`+acmeName)
	if status, body, _, err := httpsGet(ports.tls, acmeName, roots); err != nil || status != http.StatusOK || !strings.HasPrefix(body, "Hello from a") {
		t.Errorf("https after the upgrade: %d %q %v", status, body, err)
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	t.Cleanup(c.CloseIdleConnections)
	resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/", ports.http))
	if err != nil {
		t.Fatalf("plain HTTP after the upgrade: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusPermanentRedirect {
		t.Errorf("plain HTTP after the upgrade: %d, want 308", resp.StatusCode)
	}
	if n := pb.orders(); n != 1 {
		t.Errorf("pebble took %d orders across the upgrade, want 1", n)
	}
	if code := f.reap(old, 20*time.Second); code != 0 {
		t.Errorf("the old process exited with status %d, want 0", code)
	}
	pids := f.pids()
	if err := syscall.Kill(pids[len(pids)-1], syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := f.reap(pids[len(pids)-1], 20*time.Second); code != 0 {
		t.Errorf("the new process exited with status %d, want 0", code)
	}
}

func TestThePlainHTTPListenerRedirectsWithACertificateFromFiles(t *testing.T) {
	ca := testcert.NewAuthority(t, "test CA")
	certFile, keyFile := ca.Issue("lb", "127.0.0.1").WriteFiles(t, t.TempDir())
	backend := demoBackend(t, "a")
	lb := start(t, "--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0", "--backend", backend, "--tls-cert", certFile, "--tls-key", keyFile)
	m := lb.waitForMatch(t, `listening: addr=(127\.0\.0\.1:\d+) .*http=(127\.0\.0\.1:\d+)`)
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	t.Cleanup(c.CloseIdleConnections)
	resp, err := c.Post("http://"+m[2]+"/form?x=1", "text/plain", strings.NewReader("body"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	_, tlsPort, _ := net.SplitHostPort(m[1])
	if want := "https://127.0.0.1:" + tlsPort + "/form?x=1"; resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != want {
		t.Errorf("POST over plain HTTP: %d Location %q, want 308 %q", resp.StatusCode, resp.Header.Get("Location"), want)
	}
	lb.stop(t)
}

// TestSocketActivationOfThePlainHTTPListener passes the balancer its proxy
// socket and a socket named http, as systemd does with
// FileDescriptorName=http: that one replaces --http-listen.
func TestSocketActivationOfThePlainHTTPListener(t *testing.T) {
	ca := testcert.NewAuthority(t, "test CA")
	certFile, keyFile := ca.Issue("lb", "127.0.0.1").WriteFiles(t, t.TempDir())
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	proxyFile, proxyAddr := listenerFile(t)
	httpFile, httpAddr := listenerFile(t)
	f := startFamilyArgv(t, []string{"LISTEN_FDS=2", "LISTEN_FDNAMES=roundhouse:http"}, []*os.File{proxyFile, httpFile},
		"/bin/sh", "-c", activate, binary, "--listen", taken.Addr().String(), "--http-listen", taken.Addr().String(),
		"--backend", demoBackend(t, "a"), "--tls-cert", certFile, "--tls-key", keyFile, "--access-log=false")
	proxyFile.Close()
	httpFile.Close()
	f.waitForCount(1, `listening: addr=`+regexp.QuoteMeta(proxyAddr)+` backends=1 http=`+regexp.QuoteMeta(httpAddr))
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	t.Cleanup(c.CloseIdleConnections)
	resp, err := c.Get("http://" + httpAddr + "/x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	_, port, _ := net.SplitHostPort(proxyAddr)
	if want := "https://127.0.0.1:" + port + "/x"; resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != want {
		t.Errorf("plain HTTP: %d %q, want 308 %q", resp.StatusCode, resp.Header.Get("Location"), want)
	}
	if n := strings.Count(f.output(), "socket-activated"); n != 2 {
		t.Errorf("%d socket-activated lines, want 2:\n%s", n, f.output())
	}
	pid := f.pids()[0]
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := f.reap(pid, 20*time.Second); code != 0 {
		t.Errorf("exit status %d, want 0", code)
	}
}

// TestHTTP3ServesTheACMECertificate: --http3 takes its certificate from
// ACME as well as from files; QUIC offers only h3, so the TLS-ALPN-01
// challenge stays on TCP.
func TestHTTP3ServesTheACMECertificate(t *testing.T) {
	b := start(t, "backend", "--listen", "127.0.0.1:0", "--name", "b1")
	baddr := b.waitFor(t, listening)
	ports := newACMEPorts(t)
	pb := startPebble(t, ports, 0)
	lb := start(t, acmeArgs(ports, pb.caRoot, t.TempDir(), baddr, "--http3")...)
	lb.waitFor(t, `certificate ready: name=`+acmeName)
	tr := &http3.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pb.roots(t), ServerName: acmeName},
		Dial: func(ctx context.Context, _ string, tc *tls.Config, qc *quic.Config) (*quic.Conn, error) {
			return quic.DialAddr(ctx, fmt.Sprintf("127.0.0.1:%d", ports.tls), tc, qc)
		},
	}
	defer func() { _ = tr.Close() }()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	resp, err := c.Get("https://" + acmeName + "/")
	if err != nil {
		t.Fatalf("HTTP/3 GET: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 3 || !strings.Contains(string(body), "Hello from b1") {
		t.Errorf("HTTP/3 GET: %d %s %q", resp.StatusCode, resp.Proto, body)
	}
	if got := resp.TLS.PeerCertificates[0].DNSNames; len(got) != 1 || got[0] != acmeName {
		t.Errorf("served certificate names %v, want the ACME one for %s", got, acmeName)
	}
	lb.stop(t)
	b.stop(t)
}
