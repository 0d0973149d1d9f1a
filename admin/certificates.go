package admin

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// CertificateStatus is one automatically managed (ACME) certificate, in
// GET /status's certificates field and the certificate metrics.
type CertificateStatus struct {
	Name     string    `json:"name"`               // the DNS name it is for
	Ready    bool      `json:"ready"`              // false: not obtained yet, handshakes for Name are refused
	NotAfter time.Time `json:"not_after,omitzero"` // the end of its validity; zero when not ready
	Issuer   string    `json:"issuer,omitempty"`   // the issuing CA's common name
}

var (
	certExpiryDesc = prometheus.NewDesc("roundhouse_certificate_expiry_timestamp_seconds",
		"When the certificate served for a name obtained by ACME expires, in Unix seconds; absent until it is obtained. Alert on roundhouse_certificate_expiry_timestamp_seconds - time() < 14*86400: renewal starts when a third of its lifetime is left.",
		[]string{"name"}, nil)
	certReadyDesc = prometheus.NewDesc("roundhouse_certificate_ready",
		"1 when a name managed by ACME has a certificate, 0 while it has none and its TLS handshakes are refused.",
		[]string{"name"}, nil)
)

// certificates reports the managed certificates at each scrape. list reads
// certmagic's certificate cache, which guards itself; it does not block.
type certificates struct {
	list func() []CertificateStatus
}

func (c *certificates) Describe(ch chan<- *prometheus.Desc) {
	ch <- certExpiryDesc
	ch <- certReadyDesc
}

func (c *certificates) Collect(ch chan<- prometheus.Metric) {
	for _, st := range c.list() {
		ready := 0.0
		if st.Ready {
			ready = 1
			ch <- prometheus.MustNewConstMetric(certExpiryDesc, prometheus.GaugeValue, float64(st.NotAfter.Unix()), st.Name)
		}
		ch <- prometheus.MustNewConstMetric(certReadyDesc, prometheus.GaugeValue, ready, st.Name)
	}
}
