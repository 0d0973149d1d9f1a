package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"testing"

	"github.com/sourcegraph/conc"

	"github.com/roundhouse/roundhouse/internal/testcert"
)

func TestCertStoreCurrentFollowsReloadsAndFailsOnceStopped(t *testing.T) {
	ca := testcert.NewAuthority(t, "test CA")
	first := ca.Issue("first", "first.test")
	dir := t.TempDir()
	certFile, keyFile := first.WriteFiles(t, dir)
	store, err := NewCertStore(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg conc.WaitGroup
	wg.Go(func() { _ = store.Run(ctx) })
	defer func() { cancel(); wg.Wait() }()

	current := func() string {
		t.Helper()
		leaf, err := store.Current(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		return leaf.DNSNames[0]
	}
	if got := current(); got != "first.test" {
		t.Fatalf("Current is for %q, want first.test", got)
	}
	ca.Issue("second", "second.test").WriteFiles(t, dir)
	if _, err := store.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := current(); got != "second.test" {
		t.Errorf("after a reload Current is for %q, want second.test", got)
	}
	if err := writeFile(certFile, "not a certificate"); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Reload(t.Context()); err == nil {
		t.Fatal("Reload of a broken certificate file succeeded")
	}
	if got := current(); got != "second.test" {
		t.Errorf("after a failed reload Current is for %q, want second.test still", got)
	}

	cancel()
	wg.Wait()
	if _, err := store.Current(t.Context()); !errors.Is(err, errCertStoreStopped) {
		t.Errorf("Current of a stopped store: %v, want %v", err, errCertStoreStopped)
	}
}

func TestCertStoreCurrentGivesUpWithItsContextBeforeRun(t *testing.T) {
	ca := testcert.NewAuthority(t, "test CA")
	leaf := ca.Issue("only", "only.test")
	store := NewCertStoreWith(&leaf.Cert, "cert.pem", "key.pem")
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := store.Current(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Current without Run, its context cancelled: %v, want %v", err, context.Canceled)
	}
}

func TestLeafOfParsesTheFirstCertificateWhenLeafIsUnset(t *testing.T) {
	ca := testcert.NewAuthority(t, "test CA")
	cert := ca.Issue("parsed", "parsed.test").Cert
	cert.Leaf = nil
	leaf, err := leafOf(&cert)
	if err != nil || leaf.Subject.CommonName != "parsed" {
		t.Errorf("leafOf: %v, %v; want the certificate for parsed", leaf, err)
	}
	if _, err := leafOf(&tls.Certificate{}); err == nil {
		t.Error("leafOf of an empty chain succeeded")
	}
}
