package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/sourcegraph/conc"

	"github.com/roundhouse/roundhouse/transport"
)

// edgeFlags are the serve flags that harden the client-facing side: who is
// trusted, what is limited, and how clients connect. They live apart from
// serveFlags so that the balancing flags and these can grow independently.
type edgeFlags struct {
	trusted           transport.TrustedProxies
	maxBody           int64
	maxConns          int
	readHeaderTimeout time.Duration
	idleTimeout       time.Duration
	tlsCert, tlsKey   string
	h2c               bool
	backendCA         string
	rateLimit         float64 // requests per second per client; 0: off
	rateBurst         int

	// Loaded by validate, so that a bad file is a usage error.
	certs      *transport.CertStore // nil: cleartext
	backendCAs *x509.CertPool       // nil: the system's roots
}

// register adds the edge flags to fs, with their defaults.
func (e *edgeFlags) register(fs *flag.FlagSet) {
	fs.Func("trusted-proxy", "`CIDR` or address of a proxy in front whose X-Forwarded-*/Forwarded headers are kept (repeatable)", func(s string) error {
		p, err := transport.ParseTrustedProxy(s)
		e.trusted = append(e.trusted, p)
		return err
	})
	fs.Func("max-body", "largest request body, e.g. 10MiB; larger gets 413 (default 0: no limit)", func(s string) error {
		n, err := transport.ParseSize(s)
		e.maxBody = n
		return err
	})
	fs.IntVar(&e.maxConns, "max-conns", 10000, "concurrent client connections; more wait to be accepted (0: no limit)")
	fs.DurationVar(&e.readHeaderTimeout, "read-header-timeout", 10*time.Second, "time a client gets to send a request's headers")
	fs.DurationVar(&e.idleTimeout, "idle-timeout", 120*time.Second, "time an idle keep-alive client connection stays open")
	fs.StringVar(&e.tlsCert, "tls-cert", "", "PEM certificate `file` (chain) to terminate TLS with; reloaded on SIGHUP")
	fs.StringVar(&e.tlsKey, "tls-key", "", "PEM private key `file` for --tls-cert")
	fs.BoolVar(&e.h2c, "h2c", false, "accept cleartext HTTP/2 (prior knowledge) on a cleartext listener")
	fs.StringVar(&e.backendCA, "backend-ca", "", "PEM `file` of the authorities that https:// backends are verified against (default: the system's)")
	fs.Func("rate-limit", "requests each client may make, e.g. 10/s or 600/m; more get 429 (default: no limit)", func(s string) error {
		r, err := transport.ParseRate(s)
		e.rateLimit = r
		return err
	})
	fs.IntVar(&e.rateBurst, "rate-burst", 0, "requests a client may make at once under --rate-limit (default: one second's worth)")
}

// validate checks the edge flags together once all are parsed.
func (e *edgeFlags) validate() error {
	switch {
	case e.maxConns < 0:
		return fmt.Errorf("--max-conns: must not be negative, got %d", e.maxConns)
	case e.readHeaderTimeout <= 0:
		return fmt.Errorf("--read-header-timeout: must be positive, got %v", e.readHeaderTimeout)
	case e.idleTimeout <= 0:
		return fmt.Errorf("--idle-timeout: must be positive, got %v", e.idleTimeout)
	case (e.tlsCert == "") != (e.tlsKey == ""):
		return errors.New("--tls-cert and --tls-key: give both or neither")
	case e.rateBurst < 0:
		return fmt.Errorf("--rate-burst: must not be negative, got %d", e.rateBurst)
	case e.rateBurst > 0 && e.rateLimit == 0:
		return errors.New("--rate-burst: needs --rate-limit")
	case e.h2c && e.tlsCert != "":
		return errors.New("--h2c: cleartext HTTP/2 needs a cleartext listener; with --tls-cert, HTTP/2 is negotiated by ALPN")
	}
	if e.tlsCert != "" {
		certs, err := transport.NewCertStore(e.tlsCert, e.tlsKey)
		if err != nil {
			return fmt.Errorf("--tls-cert/--tls-key: %w", err)
		}
		e.certs = certs
	}
	if e.backendCA != "" {
		pool, err := transport.LoadCAs(e.backendCA)
		if err != nil {
			return fmt.Errorf("--backend-ca: %w", err)
		}
		e.backendCAs = pool
	}
	return nil
}

// scheme is the URL scheme clients use.
func (e *edgeFlags) scheme() string {
	if e.tlsCert != "" {
		return "https"
	}
	return "http"
}

// edge is the running side of the edge flags: the actors the proxy and
// the frontend share. serve builds it, runs it under its actors' context
// and wires it in with proxy and frontend.
type edge struct {
	flags   *edgeFlags
	log     hclog.Logger
	tunnels *transport.Tunnels
	limiter *transport.RateLimiter // nil: no rate limit
	hup     chan os.Signal         // SIGHUP, when there is a certificate to reload
}

// build makes the edge's actors. With TLS it starts catching SIGHUP at
// once (its default action would end the process); run handles it.
func (e *edgeFlags) build(log hclog.Logger) *edge {
	ed := &edge{flags: e, log: log, tunnels: transport.NewTunnels()}
	if e.rateLimit > 0 {
		// The flags are checked, so the options are valid.
		ed.limiter, _ = transport.NewRateLimiter(transport.RateLimitOptions{Rate: e.rateLimit, Burst: e.rateBurst})
	}
	if e.certs != nil {
		ed.hup = make(chan os.Signal, 1)
		signal.Notify(ed.hup, syscall.SIGHUP)
		if leaf := e.certs.Leaf(); leaf != nil {
			log.Info("serving TLS", "subject", leaf.Subject.String(), "not_after", leaf.NotAfter)
		}
	}
	return ed
}

// run runs the edge's actors until ctx is done and waits for them.
func (ed *edge) run(ctx context.Context) {
	if ed.hup != nil {
		defer signal.Stop(ed.hup) // after the Wait below
	}
	var wg conc.WaitGroup
	defer wg.Wait()
	wg.Go(func() { _ = ed.tunnels.Run(ctx) })
	if ed.limiter != nil {
		wg.Go(func() { _ = ed.limiter.Run(ctx) })
	}
	if ed.hup != nil {
		wg.Go(func() { _ = ed.flags.certs.Run(ctx) })
		wg.Go(func() { ed.reloadOnSIGHUP(ctx) })
	}
}

// reloadOnSIGHUP reloads the TLS certificate on each SIGHUP until ctx is
// done. A certificate that does not load is logged and the current one
// kept.
func (ed *edge) reloadOnSIGHUP(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-ed.hup:
		}
		leaf, err := ed.flags.certs.Reload(ctx)
		if err != nil {
			ed.log.Error("certificate reload failed; keeping the current certificate", "error", err)
			continue
		}
		ed.log.Info("certificate reloaded", "subject", leaf.Subject.String(), "not_after", leaf.NotAfter)
	}
}

// proxy adds the edge's settings to the proxy's configuration.
func (ed *edge) proxy(cfg transport.Config) transport.Config {
	cfg.TrustedProxies = ed.flags.trusted
	cfg.MaxBody = ed.flags.maxBody
	cfg.Tunnels = ed.tunnels
	cfg.Limiter = ed.limiter
	return cfg
}

// frontend returns the client-facing options the flags ask for.
func (ed *edge) frontend() transport.FrontendOptions {
	return transport.FrontendOptions{
		ReadHeaderTimeout: ed.flags.readHeaderTimeout,
		IdleTimeout:       ed.flags.idleTimeout,
		MaxConns:          ed.flags.maxConns,
		Tunnels:           ed.tunnels,
		H2C:               ed.flags.h2c,
		TLS:               ed.tlsConfig(),
		Logger:            ed.log,
	}
}

func (ed *edge) tlsConfig() *tls.Config {
	if ed.flags.certs == nil {
		return nil
	}
	return transport.ServerTLSConfig(ed.flags.certs.GetCertificate)
}
