package admin

import (
	"crypto/x509"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Where a certificate comes from: CertificateStatus.Source, and the
// source label of roundhouse_certificate_info.
const (
	SourceACME = "acme" // obtained and renewed by ACME (--acme-domain)
	SourceFile = "file" // loaded from --tls-cert (tls.cert), reloaded on SIGHUP
)

// CertificateStatus is the certificate served for one name, in GET
// /status's certificates field and the certificate metrics: an ACME
// name's, or one of the names a certificate from files covers. A name
// appears once: it gets its certificate from ACME or from the files, never
// both (package config refuses the overlap).
type CertificateStatus struct {
	Name     string    `json:"name"`               // the DNS name (or, from files, IP address) it is for
	Ready    bool      `json:"ready"`              // false: not obtained yet, handshakes for Name are refused; always true from files
	NotAfter time.Time `json:"not_after,omitzero"` // the end of its validity; zero when not ready
	Issuer   string    `json:"issuer,omitempty"`   // the issuing CA's common name
	Source   string    `json:"source,omitempty"`   // SourceACME or SourceFile; "" from a balancer that predates files here
	File     string    `json:"file,omitempty"`     // with SourceFile: the certificate's file (--tls-cert)
}

// FileCertificates lists a certificate loaded from file (leaf is its
// first certificate) under each name it covers (CertificateNames), all
// ready, with its expiry and issuer. A nil leaf lists nothing.
func FileCertificates(leaf *x509.Certificate, file string) []CertificateStatus {
	if leaf == nil {
		return nil
	}
	names := CertificateNames(leaf)
	out := make([]CertificateStatus, 0, len(names))
	for _, n := range names {
		out = append(out, CertificateStatus{
			Name: n, Ready: true, NotAfter: leaf.NotAfter, Issuer: leaf.Issuer.CommonName,
			Source: SourceFile, File: file,
		})
	}
	return out
}

// CertificateNames are the names leaf is served for, each once, in its
// order: its DNS names (SANs, wildcards as written, "*.example.com"), then
// its IP addresses. A certificate with neither (a legacy one that names
// its host only in the subject) is listed under its subject's common
// name, and one without that either under "" (it still has an expiry to
// watch).
func CertificateNames(leaf *x509.Certificate) []string {
	var names []string
	seen := make(map[string]bool)
	add := func(n string) {
		if !seen[n] {
			seen[n] = true
			names = append(names, n)
		}
	}
	for _, n := range leaf.DNSNames {
		add(n)
	}
	for _, ip := range leaf.IPAddresses {
		add(ip.String())
	}
	if len(names) == 0 {
		add(leaf.Subject.CommonName)
	}
	return names
}

var (
	certExpiryDesc = prometheus.NewDesc("roundhouse_certificate_expiry_timestamp_seconds",
		"When the certificate served for a name expires, in Unix seconds: a name obtained by ACME (absent until it is obtained), or one a --tls-cert certificate covers (each of its DNS and IP SANs), following reloads. Alert on roundhouse_certificate_expiry_timestamp_seconds - time() < 14*86400: ACME renewal starts when a third of its lifetime is left.",
		[]string{"name"}, nil)
	certReadyDesc = prometheus.NewDesc("roundhouse_certificate_ready",
		"1 when a name has a certificate, 0 while an ACME name has none and its TLS handshakes are refused. Always 1 for a --tls-cert name.",
		[]string{"name"}, nil)
	certInfoDesc = prometheus.NewDesc("roundhouse_certificate_info",
		`Always 1, one per name in roundhouse_certificate_ready: its source label says where the name's certificate comes from, "acme" or "file" (--tls-cert). Join on name to tell them apart.`,
		[]string{"name", "source"}, nil)
)

// certificates reports the certificates at each scrape. list reads
// certmagic's certificate cache, which guards itself, and asks the
// certificate store for the files' certificate (a message it answers at
// once); it does not block for long.
type certificates struct {
	list func() []CertificateStatus
}

func (c *certificates) Describe(ch chan<- *prometheus.Desc) {
	ch <- certExpiryDesc
	ch <- certReadyDesc
	ch <- certInfoDesc
}

// Collect emits each name once, the first time the list has it: the
// registry fails a whole scrape that repeats a series.
func (c *certificates) Collect(ch chan<- prometheus.Metric) {
	seen := make(map[string]bool)
	for _, st := range c.list() {
		if seen[st.Name] {
			continue
		}
		seen[st.Name] = true
		ready := 0.0
		if st.Ready {
			ready = 1
			ch <- prometheus.MustNewConstMetric(certExpiryDesc, prometheus.GaugeValue, float64(st.NotAfter.Unix()), st.Name)
		}
		ch <- prometheus.MustNewConstMetric(certReadyDesc, prometheus.GaugeValue, ready, st.Name)
		if st.Source != "" {
			ch <- prometheus.MustNewConstMetric(certInfoDesc, prometheus.GaugeValue, 1, st.Name, st.Source)
		}
	}
}
