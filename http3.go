package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"

	"github.com/roundhouse/roundhouse/transport"
)

// HTTP/3 (--http3): serve's part. The UDP socket is bound to the TLS
// listener's address, port included, and, like the listeners,
// comes from package upgrade, so a seamless upgrade hands it over. The
// HTTP/3 server serves the proxy itself, without the drainer's handler:
// HTTP/3 has no "Connection: close"; its connections drain by GOAWAY.
//
// Its goroutine (HTTP3.Serve) is started by run with the other servers
// and owned by balancer.wg; it ends when shutdownHTTP3's Shutdown (also on
// balancer.wg) stops the server, which happens as the TCP server stops:
// at shutdown, or at the start of the drain after a hand-over.

// http3 opens the UDP socket and builds the HTTP/3 server, with
// --http3; it returns the handler for the TCP listener: h, advertising
// HTTP/3 by Alt-Svc when it is on. tc is the TCP listener's TLS
// configuration (the edge's): HTTP/3 takes its certificates from the same
// source, whatever that is.
func (b *balancer) http3(proxy, h http.Handler, tc *tls.Config) (http.Handler, error) {
	if !b.s.TLS.HTTP3 {
		return h, nil
	}
	if tc == nil { // config.Load refuses --http3 without a certificate
		return nil, usageError{errors.New("--http3: HTTP/3 runs over TLS only: give --tls-cert and --tls-key")}
	}
	// The TCP listener's own address: the port the kernel chose for
	// --listen's port 0, or the address of systemd's socket, which
	// replaces --listen; a wildcard stays one ([::] is both IPv4 and IPv6).
	addr := b.ln.Addr().String()
	var err error
	if b.udp, err = b.proc.ListenPacket("quic", addr); err != nil {
		return nil, fmt.Errorf("--http3: UDP %s: %w", addr, err)
	}
	s := b.s
	b.h3, err = transport.NewHTTP3(b.udp, proxy, transport.HTTP3Options{
		TLS:              tc,
		HandshakeTimeout: s.Timeouts.ClientHeader,
		IdleTimeout:      s.Timeouts.ClientIdle,
		MaxConns:         s.Edge.MaxConns,
		Logger:           b.log,
	})
	if err != nil {
		return nil, fmt.Errorf("--http3: %w", err)
	}
	return transport.AdvertiseHTTP3(h, b.h3.AltSvc()), nil
}

// startHTTP3 starts the HTTP/3 server, if there is one; its Serve error
// comes back on serveErr, which has room for it.
func (b *balancer) startHTTP3() {
	if b.h3 != nil {
		b.wg.Go(func() { b.serveErr <- b.h3.Serve() })
	}
}

// shutdownHTTP3 starts, once, the HTTP/3 server's graceful shutdown:
// stop accepting, a GOAWAY on every connection, the requests in flight
// finish within graceCtx (then the rest are closed). After a hand-over
// (handedOver) the connections are closed as soon as no request is in
// flight (HTTP3.HandOver says why). Its result comes back on h3Done
// (capacity 1) for waitHTTP3.
func (b *balancer) shutdownHTTP3(graceCtx context.Context, handedOver bool) {
	if b.h3 == nil || b.h3Done != nil {
		return
	}
	b.h3Done = make(chan error, 1)
	shutdown := b.h3.Shutdown
	if handedOver {
		shutdown = b.h3.HandOver
	}
	b.wg.Go(func() { b.h3Done <- shutdown(graceCtx) })
}

// waitHTTP3 waits for shutdownHTTP3's shutdown to end.
func (b *balancer) waitHTTP3() {
	if b.h3Done == nil {
		return
	}
	if err := <-b.h3Done; err != nil {
		b.log.Warn("grace period over, closing remaining HTTP/3 connections", "error", err)
	}
}
