package e2e

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/roundhouse/roundhouse/internal/testcert"
)

// certEntry is one of GET /status's certificates.
type certEntry struct {
	Name     string    `json:"name"`
	Ready    bool      `json:"ready"`
	NotAfter time.Time `json:"not_after"`
	Issuer   string    `json:"issuer"`
	Source   string    `json:"source"`
	File     string    `json:"file"`
}

// statusCertificates is GET /status's certificates field.
func statusCertificates(t *testing.T, adminAddr string) []certEntry {
	t.Helper()
	_, js := get(t, "http://"+adminAddr+"/status")
	var st struct {
		Certificates []certEntry `json:"certificates"`
	}
	if err := json.Unmarshal([]byte(js), &st); err != nil {
		t.Fatalf("/status: %v\n%s", err, js)
	}
	return st.Certificates
}

// certificateExpiry is roundhouse_certificate_expiry_timestamp_seconds
// for name in metrics; false when the series is absent.
func certificateExpiry(t *testing.T, metrics, name string) (int64, bool) {
	t.Helper()
	re := regexp.MustCompile(`(?m)^roundhouse_certificate_expiry_timestamp_seconds\{name="` + regexp.QuoteMeta(name) + `"\} (\S+)$`)
	m := re.FindStringSubmatch(metrics)
	if m == nil {
		return 0, false
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatalf("expiry of %s: %v", name, err)
	}
	return int64(v), true
}

// expectFileCertificate checks that each of names has, in /status and in
// the metrics, the certificate from certFile valid until notAfter, and
// that no other name has.
func expectFileCertificate(t *testing.T, adminAddr, certFile string, notAfter time.Time, names ...string) {
	t.Helper()
	certs := statusCertificates(t, adminAddr)
	var got []string
	for _, c := range certs {
		got = append(got, c.Name)
		if !c.Ready || !c.NotAfter.Equal(notAfter) || c.Source != "file" || c.File != certFile || c.Issuer != "test CA" {
			t.Errorf("/status certificate %+v, want ready, until %v, source file, file %s, issuer test CA", c, notAfter, certFile)
		}
	}
	if !slices.Equal(got, names) {
		t.Errorf("/status certificates for %q, want %q", got, names)
	}
	_, metrics := get(t, "http://"+adminAddr+"/metrics")
	for _, n := range names {
		if v, ok := certificateExpiry(t, metrics, n); !ok || v != notAfter.Unix() {
			t.Errorf("roundhouse_certificate_expiry_timestamp_seconds{name=%q} = %d (present %v), want %d", n, v, ok, notAfter.Unix())
		}
		for _, line := range []string{
			fmt.Sprintf(`roundhouse_certificate_ready{name=%q} 1`, n),
			fmt.Sprintf(`roundhouse_certificate_info{name=%q,source="file"} 1`, n),
		} {
			if !strings.Contains(metrics, line) {
				t.Errorf("metrics lack %s", line)
			}
		}
	}
	if n := strings.Count(metrics, "\nroundhouse_certificate_expiry_timestamp_seconds{"); n != len(names) {
		t.Errorf("%d expiry series, want %d:\n%s", n, len(names), metrics)
	}
}

func TestTLSCertificateExpiryIsInStatusAndMetricsAndFollowsSIGHUP(t *testing.T) {
	ca := testcert.NewAuthority(t, "test CA")
	dir := t.TempDir()
	first := ca.Issue("first", "lb.test", "127.0.0.1")
	certFile, keyFile := first.WriteFiles(t, dir)
	b := start(t, "backend", "--listen", "127.0.0.1:0")
	baddr := b.waitFor(t, listening)
	lb := start(t, "--listen", "127.0.0.1:0", "--backend", "http://"+baddr, "--admin", "127.0.0.1:0",
		"--tls-cert", certFile, "--tls-key", keyFile)
	adminAddr := lb.waitFor(t, `listening: .*admin=(127\.0\.0\.1:\d+)`)

	// One entry per name the certificate covers: its DNS name, its IP.
	expectFileCertificate(t, adminAddr, certFile, first.Cert.Leaf.NotAfter, "lb.test", "127.0.0.1")

	// A reload to a certificate for another name: the metrics and
	// /status follow it, the old name's series go.
	second := ca.Issue("second", "renewed.test")
	second.WriteFiles(t, dir)
	lb.signal(t, syscall.SIGHUP)
	lb.waitFor(t, `certificate reloaded: subject=CN=second`)
	expectFileCertificate(t, adminAddr, certFile, second.Cert.Leaf.NotAfter, "renewed.test")

	lb.stop(t)
	b.stop(t)
}

func TestTLSCertificateFromTheConfigFileHasAnExpiry(t *testing.T) {
	ca := testcert.NewAuthority(t, "test CA")
	leaf := ca.Issue("site", "site.test", "www.site.test")
	certFile, keyFile := leaf.WriteFiles(t, t.TempDir())
	b := start(t, "backend", "--listen", "127.0.0.1:0")
	baddr := b.waitFor(t, listening)
	conf := writeConfig(t, fmt.Sprintf("backend %q {}\ntls {\n  cert = %q\n  key  = %q\n}\n", "http://"+baddr, certFile, keyFile))
	lb := start(t, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--config", conf)
	adminAddr := lb.waitFor(t, `listening: .*admin=(127\.0\.0\.1:\d+)`)
	expectFileCertificate(t, adminAddr, certFile, leaf.Cert.Leaf.NotAfter, "site.test", "www.site.test")
	lb.stop(t)
	b.stop(t)
}

func TestCleartextHasNoCertificates(t *testing.T) {
	b := start(t, "backend", "--listen", "127.0.0.1:0")
	baddr := b.waitFor(t, listening)
	lb := start(t, "--listen", "127.0.0.1:0", "--backend", "http://"+baddr, "--admin", "127.0.0.1:0")
	adminAddr := lb.waitFor(t, `listening: .*admin=(127\.0\.0\.1:\d+)`)
	if _, js := get(t, "http://"+adminAddr+"/status"); strings.Contains(js, `"certificates"`) {
		t.Errorf("cleartext /status has certificates: %s", js)
	}
	if _, metrics := get(t, "http://"+adminAddr+"/metrics"); strings.Contains(metrics, "roundhouse_certificate") {
		t.Error("cleartext metrics have certificate series")
	}
	lb.stop(t)
	b.stop(t)
}
