package main

import (
	"flag"

	"github.com/hashicorp/go-hclog"

	"github.com/roundhouse/roundhouse/transport"
)

// edgeFlags are the serve flags that harden the client-facing side: who is
// trusted, what is limited, and how clients connect. They live apart from
// serveFlags so that the balancing flags and these can grow independently.
type edgeFlags struct {
	trusted transport.TrustedProxies
}

// register adds the edge flags to fs.
func (e *edgeFlags) register(fs *flag.FlagSet) {
	fs.Func("trusted-proxy", "`CIDR` or address of a proxy in front whose X-Forwarded-*/Forwarded headers are kept (repeatable)", func(s string) error {
		p, err := transport.ParseTrustedProxy(s)
		e.trusted = append(e.trusted, p)
		return err
	})
}

// validate checks the edge flags together once all are parsed.
func (e *edgeFlags) validate() error {
	return nil
}

// frontend returns the client-facing options the flags ask for.
func (e *edgeFlags) frontend(log hclog.Logger) transport.FrontendOptions {
	return transport.FrontendOptions{Logger: log}
}
