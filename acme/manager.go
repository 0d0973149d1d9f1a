// Package acme obtains, renews and serves certificates from an ACME CA
// (Let's Encrypt, or a private one) with certmagic, Caddy's ACME engine.
//
// A Manager manages a fixed list of DNS names. At start-up (Run) it loads
// each name's certificate from storage or, when there is none, orders one
// from the CA; it proves control of the name with the HTTP-01 challenge,
// answered by HTTPHandler on the plain-HTTP listener, or TLS-ALPN-01,
// answered by GetCertificate on the TLS listener. certmagic's maintenance
// goroutine renews each certificate once two thirds of its lifetime are
// over, retrying with backoff while the CA fails, and staples OCSP
// responses where the CA offers them. Handshakes get the certificate for
// their SNI name.
//
// Failures never take the site down: a name whose certificate could not be
// obtained yet has its handshakes refused (and each failed attempt logged
// with "certificate not obtained") while Run keeps trying with backoff; a
// renewal that fails leaves the current certificate in service.
//
// Storage is a directory (certmagic.FileStorage): accounts, keys,
// certificates and, while an order is under way, a lock file per name, so
// that instances sharing the directory order each certificate once: the
// one holding the lock asks the CA, and the others wait for the lock and
// then load what it stored.
package acme

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/hashicorp/go-hclog"
	"github.com/sourcegraph/conc"
)

// Options configure a Manager.
type Options struct {
	// Domains are the DNS names to manage; New refuses none.
	Domains []string
	// Email is the ACME account's contact; "": none.
	Email string
	// CA is the ACME directory URL; "": Let's Encrypt's production.
	CA string
	// CARoots are trusted for talking to the CA; nil: the system's roots.
	CARoots *x509.CertPool
	// Storage is the directory certificates, keys and locks are kept in;
	// New refuses "".
	Storage string
	// HTTPAddr and TLSAddr are the addresses of the listeners that answer
	// the challenges: the plain-HTTP one (HTTP-01, HTTPHandler) and the
	// TLS one (TLS-ALPN-01, GetCertificate). certmagic opens a challenge
	// listener of its own when it can bind the address; these are bound,
	// so it does not. nil HTTPAddr: HTTP-01 off.
	HTTPAddr, TLSAddr net.Addr
	// Logger receives the manager's lines and certmagic's; nil: none.
	Logger hclog.Logger
	// RenewCheckInterval is how often certificates are checked for
	// renewal; 0: certmagic's default (10 minutes).
	RenewCheckInterval time.Duration
	// RetryMin and RetryMax bound the backoff between attempts to obtain
	// a certificate at start-up; 0: 1s and 2m.
	RetryMin, RetryMax time.Duration
}

// Manager is certmagic's configuration and certificate cache for a list of
// names. Its state is certmagic's (which guards it itself); the Manager
// adds only immutable data. New starts certmagic's maintenance goroutine,
// which Run stops on its way out: every Manager made must be Run.
type Manager struct {
	cfg                *certmagic.Config
	cache              *certmagic.Cache
	issuer             *certmagic.ACMEIssuer
	domains            []string
	names              map[string]bool // domains, lower case
	log                hclog.Logger
	retryMin, retryMax time.Duration
}

// New checks o and builds the Manager; nothing is asked of the CA yet.
func New(o Options) (*Manager, error) {
	if len(o.Domains) == 0 {
		return nil, errors.New("acme: no domain")
	}
	if o.Storage == "" {
		return nil, errors.New("acme: no storage directory")
	}
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
	if o.RetryMin <= 0 {
		o.RetryMin = time.Second
	}
	if o.RetryMax <= 0 {
		o.RetryMax = 2 * time.Minute
	}
	m := &Manager{log: o.Logger, names: map[string]bool{}, retryMin: o.RetryMin, retryMax: o.RetryMax}
	for _, d := range o.Domains {
		d = strings.ToLower(d)
		if !m.names[d] {
			m.names[d] = true
			m.domains = append(m.domains, d)
		}
	}
	zl := zapLogger(o.Logger.Named("certmagic"))
	tmpl := certmagic.Config{
		Storage:            &certmagic.FileStorage{Path: o.Storage},
		Logger:             zl,
		RenewalWindowRatio: certmagic.DefaultRenewalWindowRatio,
		OnEvent:            m.event,
	}
	m.cache = certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert:   func(certmagic.Certificate) (*certmagic.Config, error) { return m.cfg, nil },
		RenewCheckInterval: o.RenewCheckInterval,
		Logger:             zl,
	})
	m.cfg = certmagic.New(m.cache, tmpl)
	ca := o.CA
	if ca == "" {
		ca = certmagic.LetsEncryptProductionCA
	}
	iss := certmagic.ACMEIssuer{
		CA: ca, Email: o.Email, Agreed: true, TrustedRoots: o.CARoots, Logger: zl,
		DisableHTTPChallenge: o.HTTPAddr == nil,
	}
	if err := challengeAddr(o.TLSAddr, &iss.ListenHost, &iss.AltTLSALPNPort); err != nil {
		m.cache.Stop()
		return nil, fmt.Errorf("acme: TLS listener: %w", err)
	}
	if o.HTTPAddr != nil {
		if err := challengeAddr(o.HTTPAddr, &iss.ListenHost, &iss.AltHTTPPort); err != nil {
			m.cache.Stop()
			return nil, fmt.Errorf("acme: HTTP listener: %w", err)
		}
	}
	m.issuer = certmagic.NewACMEIssuer(m.cfg, iss)
	m.cfg.Issuers = []certmagic.Issuer{quietIssuer{m.issuer}}
	return m, nil
}

// challengeAddr sets *port to addr's port and, for an address that is not a
// wildcard, *host to its host: certmagic then finds the address bound and
// leaves the challenge to us.
func challengeAddr(addr net.Addr, host *string, port *int) error {
	if addr == nil {
		return errors.New("no address")
	}
	h, p, err := net.SplitHostPort(addr.String())
	if err != nil {
		return err
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		return err
	}
	*port = n
	if ip := net.ParseIP(h); ip != nil && !ip.IsUnspecified() {
		*host = h
	}
	return nil
}

// Domains are the names the manager manages, lower case, in the order
// given.
func (m *Manager) Domains() []string { return m.domains }

// Manages reports whether name's certificate comes from the manager.
func (m *Manager) Manages(name string) bool { return m.names[strings.ToLower(name)] }

// Run obtains (or loads) each name's certificate, each in a goroutine of
// its own that retries with backoff until it has one, and keeps them
// renewed until ctx is done. Then it waits for those goroutines, stops
// certmagic's maintenance and returns nil.
func (m *Manager) Run(ctx context.Context) error {
	defer m.cache.Stop()
	var wg conc.WaitGroup
	defer wg.Wait()
	for _, d := range m.domains {
		wg.Go(func() { m.obtain(ctx, d) })
	}
	<-ctx.Done()
	return nil
}

// obtain loads name's certificate from storage or orders it, until it
// succeeds or ctx is done. certmagic tries once per call (ManageSync);
// obtain waits RetryMin after the first failure, doubling up to RetryMax.
// Once the certificate is cached, certmagic's maintenance renews it.
func (m *Manager) obtain(ctx context.Context, name string) {
	wait := m.retryMin
	for {
		start := time.Now()
		err := m.cfg.ManageSync(ctx, []string{name})
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			if c, ok := m.certificate(name); ok {
				m.log.Info("certificate ready", "name", name, "not_after", c.NotAfter, "issuer", c.Issuer,
					"took", time.Since(start).Round(time.Millisecond))
			}
			return
		}
		if _, ok := m.certificate(name); ok {
			// A stored certificate is in service; only its renewal failed,
			// which certmagic's maintenance retries.
			m.log.Warn("certificate renewal failed; serving the stored certificate and retrying in the background", "name", name, "error", err)
			return
		}
		m.log.Error("certificate not obtained; TLS handshakes for this name are refused until it is",
			"name", name, "error", err, "retry_in", wait)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
		wait = min(2*wait, m.retryMax)
	}
}

// GetCertificate is the tls.Config hook for the managed names: their
// certificate, or the TLS-ALPN-01 challenge's certificate when the CA
// validates. A name without a certificate yet fails the handshake.
func (m *Manager) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	c, err := m.cfg.GetCertificate(hello)
	if err != nil {
		return nil, fmt.Errorf("acme: %s: %w", hello.ServerName, err)
	}
	return c, nil
}

// ChallengeProto is the ALPN protocol of TLS-ALPN-01: the TLS listener
// offers it, and closes a connection that negotiated it once the handshake
// is done.
const ChallengeProto = "acme-tls/1"

// IsChallenge reports whether hello is the CA's TLS-ALPN-01 validation.
func IsChallenge(hello *tls.ClientHelloInfo) bool {
	return len(hello.SupportedProtos) == 1 && hello.SupportedProtos[0] == ChallengeProto
}

// Certificate is a managed name's certificate, for /status and metrics.
type Certificate struct {
	Name     string
	Ready    bool      // false: not obtained yet; handshakes are refused
	NotAfter time.Time // the end of its validity
	Issuer   string    // the issuing CA's common name
}

// Certificates lists each managed name's certificate in service, in the
// order of Domains.
func (m *Manager) Certificates() []Certificate {
	out := make([]Certificate, 0, len(m.domains))
	for _, d := range m.domains {
		c, _ := m.certificate(d)
		out = append(out, c)
	}
	return out
}

// certificate is name's certificate in certmagic's cache, the one valid
// longest when there are several (during a renewal).
func (m *Manager) certificate(name string) (Certificate, bool) {
	out := Certificate{Name: name}
	for _, c := range m.cache.AllMatchingCertificates(name) {
		leaf := c.Leaf
		if leaf == nil && len(c.Certificate.Certificate) > 0 {
			leaf, _ = x509.ParseCertificate(c.Certificate.Certificate[0])
		}
		if leaf == nil || !leaf.NotAfter.After(out.NotAfter) {
			continue
		}
		out.Ready, out.NotAfter, out.Issuer = true, leaf.NotAfter, leaf.Issuer.CommonName
	}
	return out, out.Ready
}

// event logs certmagic's renewals, which its maintenance goroutine runs:
// one line when a certificate is renewed, and one per failed attempt
// (certmagic retries with backoff, and the current certificate stays in
// service until it expires). It runs on certmagic's goroutines and only
// logs.
func (m *Manager) event(_ context.Context, event string, data map[string]any) error {
	if renewal, _ := data["renewal"].(bool); !renewal {
		return nil
	}
	name, _ := data["identifier"].(string)
	switch event {
	case "cert_obtained":
		m.log.Info("certificate renewed", "name", name)
	case "cert_failed":
		m.log.Error("certificate renewal failed; serving the current certificate and retrying with backoff",
			"name", name, "remaining", data["remaining"], "error", data["error"])
	}
	return nil
}

// quietIssuer is certmagic's ACME issuer, except that it never asks for an
// e-mail address on the terminal: certmagic does when a certificate is
// obtained "interactively" (ManageSync) without one, and a daemon has no
// one to answer. Without --acme-email the account has no contact.
type quietIssuer struct{ *certmagic.ACMEIssuer }

func (q quietIssuer) PreCheck(ctx context.Context, names []string, _ bool) error {
	return q.ACMEIssuer.PreCheck(ctx, names, false)
}
