package main

import (
	"context"
	"flag"
	"fmt"
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
	}
	return nil
}

// edge is the running side of the edge flags: the actors the proxy and
// the frontend share. serve builds it, runs it under its actors' context
// and wires it in with proxy and frontend.
type edge struct {
	flags   *edgeFlags
	log     hclog.Logger
	tunnels *transport.Tunnels
}

func (e *edgeFlags) build(log hclog.Logger) *edge {
	return &edge{flags: e, log: log, tunnels: transport.NewTunnels()}
}

// run runs the edge's actors until ctx is done and waits for them.
func (ed *edge) run(ctx context.Context) {
	var wg conc.WaitGroup
	defer wg.Wait()
	wg.Go(func() { _ = ed.tunnels.Run(ctx) })
}

// proxy adds the edge's settings to the proxy's configuration.
func (ed *edge) proxy(cfg transport.Config) transport.Config {
	cfg.TrustedProxies = ed.flags.trusted
	cfg.MaxBody = ed.flags.maxBody
	cfg.Tunnels = ed.tunnels
	return cfg
}

// frontend returns the client-facing options the flags ask for.
func (ed *edge) frontend() transport.FrontendOptions {
	return transport.FrontendOptions{
		ReadHeaderTimeout: ed.flags.readHeaderTimeout,
		IdleTimeout:       ed.flags.idleTimeout,
		MaxConns:          ed.flags.maxConns,
		Tunnels:           ed.tunnels,
		Logger:            ed.log,
	}
}
