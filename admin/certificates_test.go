package admin

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sourcegraph/conc"

	"github.com/roundhouse/roundhouse/actors"
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
		t.Errorf("without ACME /status has certificates: %s", body)
	}
	if body := string(serve(t, without, "GET", "/metrics", "").body); strings.Contains(body, "roundhouse_certificate") {
		t.Error("without ACME the metrics have certificate series")
	}
}
