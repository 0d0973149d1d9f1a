package main

import (
	"context"
	"slices"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/sourcegraph/conc"

	"github.com/roundhouse/roundhouse/admin"
	"github.com/roundhouse/roundhouse/config"
	"github.com/roundhouse/roundhouse/internal/testcert"
)

func TestTheCertificateListerListsTheFilesCertificateInService(t *testing.T) {
	ca := testcert.NewAuthority(t, "test CA")
	dir := t.TempDir()
	first := ca.Issue("first", "first.test", "127.0.0.1")
	certFile, keyFile := first.WriteFiles(t, dir)
	s, err := config.Load([]string{"--backend", "http://127.0.0.1:8081", "--tls-cert", certFile, "--tls-key", keyFile}, config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b := &balancer{s: s, log: hclog.NewNullLogger()}
	list := b.certificateLister()
	if list == nil {
		t.Fatal("no lister with --tls-cert")
	}
	if got := list(); got != nil {
		t.Errorf("before the frontend step the list is %+v, want nil", got)
	}
	b.ed = newEdge(s, b.log)
	ctx, cancel := context.WithCancel(context.Background())
	var wg conc.WaitGroup
	wg.Go(func() { b.ed.run(ctx) })
	defer func() { cancel(); wg.Wait() }()

	names := func() []string {
		t.Helper()
		var out []string
		for _, c := range list() {
			if c.Source != admin.SourceFile || c.File != certFile || !c.Ready {
				t.Errorf("entry %+v, want ready, from file %s", c, certFile)
			}
			out = append(out, c.Name)
		}
		return out
	}
	if got := names(); !slices.Equal(got, []string{"first.test", "127.0.0.1"}) {
		t.Errorf("listed %q, want first.test and 127.0.0.1", got)
	}
	ca.Issue("second", "second.test").WriteFiles(t, dir)
	b.ed.reloadCertificate(ctx)
	if got := names(); !slices.Equal(got, []string{"second.test"}) {
		t.Errorf("after a reload listed %q, want second.test", got)
	}

	cancel()
	wg.Wait()
	if got := list(); got != nil {
		t.Errorf("with the store stopped the list is %+v, want nil", got)
	}
}

func TestCleartextHasNoCertificateLister(t *testing.T) {
	s, err := config.Load([]string{"--backend", "http://127.0.0.1:8081"}, config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if (&balancer{s: s, log: hclog.NewNullLogger()}).certificateLister() != nil {
		t.Error("a lister without TLS")
	}
}
