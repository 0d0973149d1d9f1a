package main

import (
	"context"
	"crypto/tls"

	"github.com/hashicorp/go-hclog"
	"github.com/sourcegraph/conc"

	"github.com/roundhouse/roundhouse/acme"
	"github.com/roundhouse/roundhouse/config"
	"github.com/roundhouse/roundhouse/transport"
)

// edge is the running side of the client-facing settings: the actors the
// proxy and the frontend share. serve builds it, runs it under its actors'
// context and wires it in with the proxy and the frontend.
type edge struct {
	s       *config.Settings
	log     hclog.Logger
	tunnels *transport.Tunnels
	limiter *transport.RateLimiter   // nil: no rate limit
	pp      *transport.ProxyProtocol // nil: no PROXY protocol on the listener
	certs   *transport.CertStore     // nil: no certificate from files
	acme    *acme.Manager            // nil: no ACME; set by serve (newACME) before frontend
	idle    *transport.IdleConns     // nil: no connection cap (--max-conns 0)
}

func newEdge(s *config.Settings, log hclog.Logger) *edge {
	ed := &edge{s: s, log: log, tunnels: transport.NewTunnels(), limiter: newRateLimiter(s), certs: newCertStore(s)}
	if s.Edge.ProxyProtocol {
		ed.pp = transport.NewProxyProtocol(transport.ProxyProtocolOptions{
			Trusted: trustedProxies(s), Logger: log.Named("proxyproto"),
		})
	}
	if s.Edge.MaxConns > 0 {
		ed.idle = transport.NewIdleConns(transport.IdleConnsOptions{Logger: log.Named("limits")})
	}
	if ed.certs != nil {
		if leaf := ed.certs.Leaf(); leaf != nil {
			log.Info("serving TLS", "subject", leaf.Subject.String(), "not_after", leaf.NotAfter)
		}
	}
	return ed
}

// run runs the edge's actors until ctx is done and waits for them.
func (ed *edge) run(ctx context.Context) {
	var wg conc.WaitGroup
	defer wg.Wait()
	wg.Go(func() { _ = ed.tunnels.Run(ctx) })
	if ed.idle != nil {
		wg.Go(func() { _ = ed.idle.Run(ctx) })
	}
	if ed.limiter != nil {
		wg.Go(func() { _ = ed.limiter.Run(ctx) })
	}
	if ed.certs != nil {
		wg.Go(func() { _ = ed.certs.Run(ctx) })
	}
	if ed.pp != nil {
		wg.Go(func() { _ = ed.pp.Run(ctx) })
	}
	if ed.acme != nil {
		wg.Go(func() { _ = ed.acme.Run(ctx) })
	}
}

// reloadCertificate reloads the TLS certificate (on SIGHUP). One that does
// not load is logged and the current one kept.
func (ed *edge) reloadCertificate(ctx context.Context) {
	if ed.certs == nil {
		return
	}
	leaf, err := ed.certs.Reload(ctx)
	if err != nil {
		ed.log.Error("certificate reload failed; keeping the current certificate", "error", err)
		return
	}
	ed.log.Info("certificate reloaded", "subject", leaf.Subject.String(), "not_after", leaf.NotAfter)
}

// proxy adds the edge's settings to the proxy's configuration.
func (ed *edge) proxy(cfg transport.Config) transport.Config {
	cfg.TrustedProxies = trustedProxies(ed.s)
	cfg.MaxBody = ed.s.Edge.MaxBody
	cfg.Tunnels = ed.tunnels
	cfg.Limiter = ed.limiter
	cfg.RequestIDHeader = ed.s.Edge.RequestIDHeader
	return cfg
}

// idleReclaimed counts the idle client connections closed to make room at
// the connection cap, for the admin API's metrics.
func (ed *edge) idleReclaimed(ctx context.Context) (uint64, error) {
	return ed.idle.Reclaimed(ctx)
}

// frontend returns the client-facing options the settings ask for.
func (ed *edge) frontend() transport.FrontendOptions {
	var tc *tls.Config
	switch {
	case ed.acme != nil:
		tc = transport.ServerTLSConfig(ed.getCertificate)
		tc.NextProtos = append(tc.NextProtos, acme.ChallengeProto) // TLS-ALPN-01
	case ed.certs != nil:
		tc = transport.ServerTLSConfig(ed.certs.GetCertificate)
	}
	return transport.FrontendOptions{
		ReadHeaderTimeout: ed.s.Timeouts.ClientHeader,
		IdleTimeout:       ed.s.Timeouts.ClientIdle,
		MaxConns:          ed.s.Edge.MaxConns,
		IdleConns:         ed.idle,
		Tunnels:           ed.tunnels,
		H2C:               ed.s.Edge.H2C,
		TLS:               tc,
		ProxyProtocol:     ed.pp,
		Logger:            ed.log,
	}
}

// getCertificate chooses, with ACME on, where a handshake's certificate
// comes from: ACME for the names it manages and for its TLS-ALPN-01
// challenges, the files (--tls-cert) for every other name, and ACME again
// when there are no files (which refuses a name it does not manage).
func (ed *edge) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if ed.certs == nil || ed.acme.Manages(hello.ServerName) || acme.IsChallenge(hello) {
		return ed.acme.GetCertificate(hello)
	}
	return ed.certs.GetCertificate(hello)
}
