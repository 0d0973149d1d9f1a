package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/sourcegraph/conc"

	"github.com/roundhouse/roundhouse/acme"
	"github.com/roundhouse/roundhouse/admin"
	"github.com/roundhouse/roundhouse/config"
	"github.com/roundhouse/roundhouse/upgrade"
)

// Automatic HTTPS: the ACME manager (package acme) and the plain-HTTP
// listener (--http-listen) that answers its HTTP-01 challenges and
// redirects everything else to https. See docs/acme.md.

// newACME returns the ACME manager the settings ask for, not yet running;
// nil when ACME is off. tlsAddr and httpAddr are the listeners that answer
// the challenges (httpAddr nil: no plain-HTTP listener). New starts
// certmagic's maintenance goroutine, which the manager's Run stops: the
// edge runs it (edge.run).
func newACME(s *config.Settings, log hclog.Logger, tlsAddr, httpAddr net.Addr) (*acme.Manager, error) {
	a := s.TLS.ACME
	if !a.On() {
		return nil, nil
	}
	dir, err := a.StorageDir()
	if err != nil {
		return nil, usageError{err}
	}
	check, err := renewCheckInterval()
	if err != nil {
		return nil, usageError{err}
	}
	m, err := acme.New(acme.Options{
		Domains: a.Domains, Email: a.Email, CA: a.CA, CARoots: a.CARoots, Storage: dir,
		TLSAddr: tlsAddr, HTTPAddr: httpAddr, Logger: log, RenewCheckInterval: check,
	})
	if err != nil {
		return nil, err
	}
	log.Info("managing certificates by ACME", "domains", m.Domains(), "ca", a.CA, "storage", dir)
	return m, nil
}

// renewCheckEnv names the environment variable that sets how often ACME
// certificates are checked for renewal (a duration; default 10m). It is
// for tests with short-lived certificates (docs/acme.md), not a setting.
const renewCheckEnv = "ROUNDHOUSE_ACME_RENEW_CHECK"

// renewCheckInterval reads renewCheckEnv; 0 when it is unset.
func renewCheckInterval() (time.Duration, error) {
	v := os.Getenv(renewCheckEnv)
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%s=%q: want a positive duration such as 10m", renewCheckEnv, v)
	}
	return d, nil
}

// plainHTTP is the plain-HTTP listener and its server: ACME's HTTP-01
// challenges, and a 308 to https for everything else. A nil *plainHTTP
// (no --http-listen, no ACME) does nothing.
//
// Its one goroutine, Serve, is started by serve (run) under the
// balancer's WaitGroup and ends with shutdown or close, like the client
// server's.
type plainHTTP struct {
	ln  net.Listener
	srv *http.Server
}

// openPlainHTTP opens (or takes over, on an upgrade) the plain-HTTP
// listener the settings ask for; nil when they ask for none.
func openPlainHTTP(proc *upgrade.Process, s *config.Settings) (*plainHTTP, error) {
	addr := s.TLS.HTTPAddr()
	if addr == "" {
		return nil, nil
	}
	ln, err := proc.Listen("http", addr)
	if err != nil {
		return nil, fmt.Errorf("--http-listen %s: %w", addr, err)
	}
	return &plainHTTP{ln: ln}, nil
}

// addr is the listener's address; nil for no listener.
func (p *plainHTTP) addr() net.Addr {
	if p == nil {
		return nil
	}
	return p.ln.Addr()
}

// build makes the server: m's challenges (m nil: none), then the redirect
// to the TLS listener's port of tlsAddr. Its connections are the
// drainer's, like every server's.
func (p *plainHTTP) build(m *acme.Manager, tlsAddr net.Addr, drain *upgrade.Drainer, log hclog.Logger, s *config.Settings) {
	if p == nil {
		return
	}
	_, port, _ := net.SplitHostPort(tlsAddr.String())
	p.srv = newServer(drain.Handler(m.HTTPHandler(acme.Redirect(port))), log, s.Timeouts.ClientHeader, s.Timeouts.ClientIdle)
	p.srv.ConnState = drain.ConnState
}

// serve starts Serve under wg; its error goes to errs, which must have
// room for it.
func (p *plainHTTP) serve(wg *conc.WaitGroup, errs chan<- error) {
	if p == nil {
		return
	}
	wg.Go(func() { errs <- p.srv.Serve(p.ln) })
}

// shutdown stops the server gently within ctx, then at once.
func (p *plainHTTP) shutdown(ctx context.Context) {
	if p == nil || p.srv == nil {
		return
	}
	if err := p.srv.Shutdown(ctx); err != nil {
		_ = p.srv.Close()
	}
}

// close closes the listener (after a hand-over, and at release).
func (p *plainHTTP) close() {
	if p != nil {
		p.ln.Close()
	}
}

// certificateLister returns, with ACME on or a certificate from files
// (--tls-cert), what lists the certificates for the admin API (GET
// /status, metrics): ACME's names in --acme-domain order, then each name
// the files' certificate covers (admin.FileCertificates), as the
// certificate store serves it now, so a SIGHUP reload shows at the next
// scrape. nil with neither. It reads b.ed, which the frontend step sets
// before any server starts; it runs on the admin server's goroutines.
func (b *balancer) certificateLister() func() []admin.CertificateStatus {
	if !b.s.TLS.ACME.On() && b.s.TLS.Certificate == nil {
		return nil
	}
	return func() []admin.CertificateStatus {
		if b.ed == nil {
			return nil
		}
		var out []admin.CertificateStatus
		if b.ed.acme != nil {
			for _, c := range b.ed.acme.Certificates() {
				out = append(out, admin.CertificateStatus{
					Name: c.Name, Ready: c.Ready, NotAfter: c.NotAfter, Issuer: c.Issuer, Source: admin.SourceACME,
				})
			}
		}
		return append(out, b.ed.fileCertificates()...)
	}
}

// certificateAsk bounds how long a listing waits for the certificate
// store. The store runs from before the admin server serves until after
// it stops, and answers at once; this only guards a scrape against a
// store that does not.
const certificateAsk = 5 * time.Second

// fileCertificates lists the certificate from files that the store serves
// now, under each name it covers, leaving out a name ACME manages (ACME's
// certificate is the one served for it); nil without files, or when the
// store cannot be asked (it has stopped).
func (ed *edge) fileCertificates() []admin.CertificateStatus {
	if ed.certs == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), certificateAsk)
	defer cancel()
	leaf, err := ed.certs.Current(ctx)
	if err != nil {
		ed.log.Debug("certificate store not answering; certificates from files not listed", "error", err)
		return nil
	}
	all := admin.FileCertificates(leaf, ed.s.TLS.Cert)
	out := all[:0]
	for _, c := range all {
		if ed.acme == nil || !ed.acme.Manages(c.Name) {
			out = append(out, c)
		}
	}
	return out
}
