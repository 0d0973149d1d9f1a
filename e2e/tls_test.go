package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/roundhouse/roundhouse/internal/testcert"
)

func TestBadTLSFlagsExitWithStatus2AndNameTheFlag(t *testing.T) {
	ca := testcert.NewAuthority(t, "test CA")
	dir := t.TempDir()
	certFile, keyFile := ca.Issue("lb", "127.0.0.1").WriteFiles(t, dir)
	junk := filepath.Join(dir, "junk.pem")
	if err := os.WriteFile(junk, []byte("not PEM"), 0o600); err != nil {
		t.Fatal(err)
	}
	backend := "--backend=http://127.0.0.1:1"
	tests := []usageCase{
		{"a certificate without a key is refused", []string{backend, "--tls-cert", certFile}, "--tls-cert and --tls-key"},
		{"a key without a certificate is refused", []string{backend, "--tls-key", keyFile}, "--tls-cert and --tls-key"},
		{"a missing certificate file is named", []string{backend, "--tls-cert", filepath.Join(dir, "nope.pem"), "--tls-key", keyFile}, "--tls-cert"},
		{"a certificate that is not PEM is refused", []string{backend, "--tls-cert", junk, "--tls-key", keyFile}, "--tls-cert"},
		{"h2c with TLS is refused", []string{backend, "--tls-cert", certFile, "--tls-key", keyFile, "--h2c"}, "--h2c"},
		{"a backend CA file without certificates is refused", []string{backend, "--backend-ca", junk}, "--backend-ca"},
		{"a missing backend CA file is named", []string{backend, "--backend-ca", filepath.Join(dir, "nope.pem")}, "--backend-ca"},
	}
	expectUsageErrors(t, tests)
}

// servedCert fetches / over HTTP/2 and returns the protocol and the
// common name of the certificate the balancer presented.
func servedCert(t *testing.T, url string, pool *x509.CertPool) (proto, name string) {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %d", url, resp.StatusCode)
	}
	return resp.Proto, resp.TLS.PeerCertificates[0].Subject.CommonName
}

func TestTLSServesHTTP2AndReloadsItsCertificateOnSIGHUP(t *testing.T) {
	ca := testcert.NewAuthority(t, "test CA")
	dir := t.TempDir()
	certFile, keyFile := ca.Issue("first", "127.0.0.1").WriteFiles(t, dir)
	b := start(t, "backend", "--listen", "127.0.0.1:0")
	baddr := b.waitFor(t, listening)
	lb := start(t, "--listen", "127.0.0.1:0", "--backend", "http://"+baddr, "--tls-cert", certFile, "--tls-key", keyFile)
	url := "https://" + lb.waitFor(t, listening) + "/"
	lb.waitFor(t, `serving TLS: subject=CN=first`)

	if proto, name := servedCert(t, url, ca.Pool()); proto != "HTTP/2.0" || name != "first" {
		t.Fatalf("got %s with certificate %q, want HTTP/2.0 with first", proto, name)
	}

	ca.Issue("second", "127.0.0.1").WriteFiles(t, dir)
	lb.signal(t, syscall.SIGHUP)
	lb.waitFor(t, `certificate reloaded: subject=CN=second`)
	if _, name := servedCert(t, url, ca.Pool()); name != "second" {
		t.Errorf("after SIGHUP the certificate is %q, want second", name)
	}

	if err := os.WriteFile(certFile, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	lb.signal(t, syscall.SIGHUP)
	lb.waitFor(t, `certificate reload failed; keeping the current certificate`)
	if _, name := servedCert(t, url, ca.Pool()); name != "second" {
		t.Errorf("after a failed reload the certificate is %q, want second still", name)
	}

	lb.stop(t)
	b.stop(t)
}
