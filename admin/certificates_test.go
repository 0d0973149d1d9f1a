package admin

import (
	"context"
	"crypto/x509"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sourcegraph/conc"

	"github.com/roundhouse/roundhouse/actors"
	"github.com/roundhouse/roundhouse/internal/testcert"
)

func TestCertificatesAppearInStatusAndMetricsOnlyWhenGiven(t *testing.T) {
	sel, err := actors.New(actors.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg conc.WaitGroup
	wg.Go(func() { _ = sel.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })

	expiry := time.Date(2027, 3, 7, 7, 27, 10, 0, time.UTC)
	list := func() []CertificateStatus {
		return []CertificateStatus{
			{Name: "example.com", Ready: true, NotAfter: expiry, Issuer: "R11"},
			{Name: "www.example.com"},
		}
	}
	with, err := New(Config{Selector: sel, Certificates: list})
	if err != nil {
		t.Fatal(err)
	}
	var st StatusResponse
	serve(t, with, "GET", "/status", "").json(t, &st)
	if len(st.Certificates) != 2 || !st.Certificates[0].NotAfter.Equal(expiry) || st.Certificates[1].Ready {
		t.Errorf("/status certificates = %+v", st.Certificates)
	}
	metrics := string(serve(t, with, "GET", "/metrics", "").body)
	for _, want := range []string{
		`roundhouse_certificate_expiry_timestamp_seconds{name="example.com"} 1.80440443e+09`,
		`roundhouse_certificate_ready{name="example.com"} 1`,
		`roundhouse_certificate_ready{name="www.example.com"} 0`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(metrics, `roundhouse_certificate_expiry_timestamp_seconds{name="www.example.com"}`) {
		t.Error("a name without a certificate has an expiry")
	}

	without, err := New(Config{Selector: sel})
	if err != nil {
		t.Fatal(err)
	}
	if body := string(serve(t, without, "GET", "/status", "").body); strings.Contains(body, "certificates") {
		t.Errorf("without certificates /status has certificates: %s", body)
	}
	if body := string(serve(t, without, "GET", "/metrics", "").body); strings.Contains(body, "roundhouse_certificate") {
		t.Error("without certificates the metrics have certificate series")
	}
}

// newLeaf returns a certificate for hosts (DNS names or IP addresses)
// with subject commonName, valid until notAfter, issued by a throwaway CA
// named "Test CA".
func newLeaf(t *testing.T, commonName string, notAfter time.Time, hosts ...string) *x509.Certificate {
	t.Helper()
	return testcert.NewAuthority(t, "Test CA").IssueUntil(notAfter, commonName, hosts...).Cert.Leaf
}

func TestCertificateNamesAreTheSANsOnceEachElseTheCommonName(t *testing.T) {
	at := time.Date(2027, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name  string
		leaf  *x509.Certificate
		names []string
	}{
		{"DNS names then IP addresses, a repeated one once",
			newLeaf(t, "site", at, "example.com", "*.example.com", "127.0.0.1", "example.com", "::1"),
			[]string{"example.com", "*.example.com", "127.0.0.1", "::1"}},
		{"no SANs: the common name", newLeaf(t, "legacy.example.com", at), []string{"legacy.example.com"}},
		{"no SANs and no common name: the empty name", newLeaf(t, "", at), []string{""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := CertificateNames(tt.leaf); !slices.Equal(got, tt.names) {
				t.Errorf("names %q, want %q", got, tt.names)
			}
		})
	}
	if got := FileCertificates(nil, "cert.pem"); got != nil {
		t.Errorf("FileCertificates(nil) = %+v, want nil", got)
	}
}

func TestFileCertificatesHaveAnExpiryPerNameBesideACMEs(t *testing.T) {
	sel, err := actors.New(actors.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg conc.WaitGroup
	wg.Go(func() { _ = sel.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })

	// The list changes between scrapes, as a SIGHUP reload changes the
	// certificate the store serves: the metrics follow it.
	soon := time.Date(2026, 12, 20, 0, 0, 0, 0, time.UTC)
	later := time.Date(2027, 6, 1, 12, 0, 0, 0, time.UTC)
	acmeExpiry := time.Date(2027, 3, 7, 7, 27, 10, 0, time.UTC)
	files := FileCertificates(newLeaf(t, "site", soon, "files.example", "127.0.0.1"), "/etc/site.pem")
	lists := make(chan []CertificateStatus, 2)
	list := func() []CertificateStatus {
		l := <-lists
		lists <- l // the same list again until the test changes it
		return l
	}
	lists <- append([]CertificateStatus{
		{Name: "example.com", Ready: true, NotAfter: acmeExpiry, Issuer: "R11", Source: SourceACME},
		{Name: "www.example.com", Source: SourceACME},
	}, files...)
	h, err := New(Config{Selector: sel, Certificates: list})
	if err != nil {
		t.Fatal(err)
	}

	var st StatusResponse
	serve(t, h, "GET", "/status", "").json(t, &st)
	want := []CertificateStatus{
		{Name: "example.com", Ready: true, NotAfter: acmeExpiry, Issuer: "R11", Source: SourceACME},
		{Name: "www.example.com", Source: SourceACME},
		{Name: "files.example", Ready: true, NotAfter: soon, Issuer: "Test CA", Source: SourceFile, File: "/etc/site.pem"},
		{Name: "127.0.0.1", Ready: true, NotAfter: soon, Issuer: "Test CA", Source: SourceFile, File: "/etc/site.pem"},
	}
	if !slices.EqualFunc(st.Certificates, want, sameStatus) {
		t.Errorf("/status certificates = %+v\nwant %+v", st.Certificates, want)
	}
	metrics := string(serve(t, h, "GET", "/metrics", "").body)
	for _, line := range []string{
		`roundhouse_certificate_expiry_timestamp_seconds{name="example.com"} 1.80440443e+09`,
		`roundhouse_certificate_expiry_timestamp_seconds{name="files.example"} 1.7977248e+09`,
		`roundhouse_certificate_expiry_timestamp_seconds{name="127.0.0.1"} 1.7977248e+09`,
		`roundhouse_certificate_ready{name="files.example"} 1`,
		`roundhouse_certificate_ready{name="127.0.0.1"} 1`,
		`roundhouse_certificate_info{name="example.com",source="acme"} 1`,
		`roundhouse_certificate_info{name="www.example.com",source="acme"} 1`,
		`roundhouse_certificate_info{name="files.example",source="file"} 1`,
	} {
		if !strings.Contains(metrics, line) {
			t.Errorf("metrics lack %s", line)
		}
	}

	// A reload to a certificate for another name, valid longer: the old
	// name's series go, the new one's come.
	<-lists
	lists <- FileCertificates(newLeaf(t, "site", later, "renewed.example"), "/etc/site.pem")
	metrics = string(serve(t, h, "GET", "/metrics", "").body)
	if !strings.Contains(metrics, `roundhouse_certificate_expiry_timestamp_seconds{name="renewed.example"} 1.8118512e+09`) {
		t.Errorf("after the reload the metrics lack renewed.example's expiry:\n%s", metrics)
	}
	if strings.Contains(metrics, `name="files.example"`) {
		t.Error("after the reload the metrics still have files.example")
	}
}

// sameStatus compares two entries, their times by Equal (JSON drops the
// monotonic reading and the location).
func sameStatus(a, b CertificateStatus) bool {
	ta, tb := a.NotAfter, b.NotAfter
	a.NotAfter, b.NotAfter = time.Time{}, time.Time{}
	return a == b && ta.Equal(tb)
}

func TestARepeatedNameIsCollectedOnceAndTheScrapeSucceeds(t *testing.T) {
	at := time.Date(2027, 1, 2, 3, 4, 5, 0, time.UTC)
	list := func() []CertificateStatus {
		return []CertificateStatus{
			{Name: "a.example", Ready: true, NotAfter: at, Source: SourceACME},
			{Name: "a.example", Ready: true, NotAfter: at.Add(time.Hour), Source: SourceFile},
		}
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(&certificates{list: list})
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, f := range families {
		if n := len(f.GetMetric()); n != 1 {
			t.Errorf("%s has %d series, want 1", f.GetName(), n)
		}
		if f.GetName() == "roundhouse_certificate_expiry_timestamp_seconds" && f.GetMetric()[0].GetGauge().GetValue() != float64(at.Unix()) {
			t.Errorf("expiry %v, want the first entry's %d", f.GetMetric()[0].GetGauge().GetValue(), at.Unix())
		}
	}
}
