package main

import (
	"bytes"
	"context"
	"fmt"
	mathrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/sourcegraph/conc"

	"github.com/roundhouse/roundhouse/actors"
	"github.com/roundhouse/roundhouse/admin"
	"github.com/roundhouse/roundhouse/config"
	"github.com/roundhouse/roundhouse/discovery"
	"github.com/roundhouse/roundhouse/internal/accesslog"
	"github.com/roundhouse/roundhouse/transport"
	"github.com/roundhouse/roundhouse/upgrade"
)

// serveOptions are serve's optional parts.
type serveOptions struct {
	// reload, if not nil, reads the settings again; SIGHUP and the admin
	// API's POST /reload apply what it returns to the selector.
	reload func() (*config.Settings, error)
	// ready, if not nil, is called with the listening address.
	ready func(net.Addr)
	// noUpgrade refuses SIGUSR2 (demo: its backends cannot be handed over).
	noUpgrade bool
	// access is the access log (see newAccessLog); nil: none.
	access *accesslog.Logger
	// logDropped counts log lines lost to a failing output, for the
	// admin API's metrics; nil: not counted.
	logDropped func(context.Context) (uint64, error)
}

// serve runs the balancer (and the admin API, with --admin) until ctx ends,
// then shuts down in order: stop accepting and let in-flight requests
// finish (up to the grace period), stop the admin API, stop the actors and
// wait for them, close idle backend connections.
//
// Its sockets come from package upgrade: inherited from the process that
// is handing over to this one, from systemd's socket activation, or new.
// SIGUSR2 starts a new copy of the process with them (a seamless
// upgrade); once it is ready, this one stops accepting, drains its
// connections (upgrade.Drainer) within the grace period and returns nil.
func serve(ctx context.Context, s *config.Settings, log hclog.Logger, o serveOptions) error {
	proc, err := upgrade.New(upgrade.Options{PIDFile: s.PIDFile, Logger: log.Named("upgrade")})
	if err != nil {
		return err
	}
	defer proc.Close()
	trOpts := transport.Options{
		DialTimeout: s.Timeouts.Dial, TLSHandshakeTimeout: s.Timeouts.TLSHandshake,
		ResponseHeaderTimeout: s.Timeouts.ResponseHeader, IdleConnTimeout: s.Timeouts.BackendIdle,
		BackendCAs: s.TLS.BackendCAs,
	}
	shared := transport.New(trOpts)
	defer shared.CloseIdleConnections()
	// Backends with proxy-protocol get transports of their own (see
	// transport/proxyproto_out.go); the rest share one pool.
	tr := transport.WithProxyProtocol(shared, trOpts)
	cfg, err := selectorConfig(s, tr)
	if err != nil {
		return usageError{err}
	}
	cfg.Logger = log.Named("selector")
	cfg.TraceMessages = true // shown at --log-level trace
	sel, err := actors.New(cfg)
	if err != nil {
		return usageError{err}
	}
	providers, err := discovery.NewAll(s.Discover, discovery.Options{Logger: log, DNSServer: s.DNSServer})
	if err != nil {
		return err
	}
	var apply func(context.Context) error
	if o.reload != nil {
		// SIGHUP and POST /reload alike tell systemd a reload runs.
		apply = func(ctx context.Context) error {
			proc.Reloading()
			defer proc.Reloaded()
			return applyReload(ctx, sel, o.reload, tr, log, s, actors.KeyOf(cfg.Policy))
		}
	}
	adminHandler, err := newAdmin(s, sel, apply, log, o.logDropped)
	if err != nil {
		return err
	}
	ln, err := proc.Listen("listen", s.Listen)
	if err != nil {
		return fmt.Errorf("--listen %s: %w", s.Listen, err)
	}
	defer ln.Close()
	drain := upgrade.NewDrainer()
	// The admin API, when asked for, has its own listener and server.
	var adminSrv *http.Server
	var adminLn net.Listener
	if adminHandler != nil {
		if adminLn, err = proc.Listen("admin", s.Admin.Listen); err != nil {
			return fmt.Errorf("--admin %s: %w", s.Admin.Listen, err)
		}
		defer adminLn.Close()
		// A socket from systemd replaces --admin: check the one we got.
		if err := admin.CheckAddr(adminLn.Addr().String(), s.Admin.TokenFile != ""); err != nil {
			return usageError{fmt.Errorf("admin API socket %s: %w: give --admin-token-file FILE", adminLn.Addr(), err)}
		}
		adminSrv = newServer(drain.Handler(adminHandler), log, s.Timeouts.ClientHeader, s.Timeouts.ClientIdle)
		adminSrv.ConnState = drain.ConnState
	}
	ed := newEdge(s, log) // edge.go
	fo := ed.frontend()
	fo.ConnState = drain.ConnState
	front := transport.NewFrontend(ln, drain.Handler(transport.NewProxy(ed.proxy(transport.Config{
		Selector: sel, Transport: tr, Retries: s.Retries, RetryAfter: s.Health.Interval,
		Logger: log.Named("proxy"), AccessLog: o.access, Key: actors.KeyOf(cfg.Policy), StickySecret: s.StickySecret(),
		RetryBuffer: s.RetryBuffer, RequestTimeout: s.Timeouts.Request, BodyTimeout: s.Timeouts.ClientBody,
	}))), fo)

	// SIGHUP reloads; asked for before "listening", so that no SIGHUP
	// after it can kill the process.
	hup, usr2 := make(chan os.Signal, 1), make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	signal.Notify(usr2, syscall.SIGUSR2)
	defer signal.Stop(usr2)

	// The actors outlive ctx: in-flight requests still need the selector
	// while the server drains, so they get their own context, cancelled last.
	actorCtx, stopActors := context.WithCancel(context.WithoutCancel(ctx))
	defer stopActors()
	var wg conc.WaitGroup
	defer wg.Wait()
	wg.Go(func() { _ = sel.Run(actorCtx) })
	wg.Go(func() { ed.run(actorCtx) })
	wg.Go(func() { drain.Run(actorCtx) })
	// Each discovery provider feeds the selector until the actors stop. The
	// balancer waits a little for their first answers, so that it does not
	// start with an empty set when a source is up.
	for _, p := range providers {
		wg.Go(func() {
			if err := p.Run(actorCtx, sel.Feed(p.Source())); err != nil {
				log.Error("discovery stopped", "source", p.Source(), "error", err)
			}
		})
	}
	if late := discovery.WaitReady(ctx, providers, discoveryWait); len(late) > 0 {
		log.Warn("discovery sources not answering yet; serving the backends known so far", "sources", late)
	}
	serveErr := make(chan error, 2) // room for both servers: neither send blocks
	wg.Go(func() { serveErr <- front.Serve() })
	listening := []any{"addr", ln.Addr().String(), "backends", len(s.Backends)}
	if len(providers) > 0 {
		listening = append(listening, "discover", len(providers))
	}
	if adminSrv != nil {
		wg.Go(func() { serveErr <- adminSrv.Serve(adminLn) })
		listening = append(listening, "admin", adminLn.Addr().String())
	}
	// abort stops what runs, for an error before the loop.
	abort := func(err error) error {
		shut, cancel := context.WithCancel(context.Background())
		cancel() // close at once: something already failed
		_ = front.Shutdown(shut)
		if adminSrv != nil {
			_ = adminSrv.Close()
		}
		stopActors()
		return err
	}
	// Ready means accepting and the selector answering.
	if _, err := sel.Status(actorCtx); err != nil {
		return abort(fmt.Errorf("selector: %w", err))
	}
	if err := proc.Ready(); err != nil {
		return abort(err)
	}
	log.Info("listening", append(listening, "pid", os.Getpid())...)
	if o.ready != nil {
		o.ready(ln.Addr())
	}

	// The loop owns the upgrade: at most one runs, in its own goroutine,
	// and its outcome comes back on upgraded (capacity 1: the send never
	// blocks, even after the loop has ended).
	upgraded := make(chan error, 1)
	upgrading, handedOver := false, false
	for running := true; running; {
		select {
		case <-ctx.Done():
			log.Info("shutting down", "grace", s.ShutdownGrace)
			running = false
		case <-hup:
			ed.reloadCertificate(ctx)
			if apply != nil {
				if err := apply(ctx); err != nil {
					log.Error("reload failed; the running configuration stays", "error", err)
				}
			} else if s.TLS.Certs == nil {
				log.Warn("reload ignored: no configuration file (--config) and no certificate (--tls-cert)")
			}
		case <-usr2:
			switch {
			case o.noUpgrade:
				log.Warn("upgrade ignored: demo cannot hand its backends over")
			case upgrading:
				log.Warn("upgrade ignored: one is under way")
			default:
				upgrading = true
				log.Info("upgrading: starting a new process")
				wg.Go(func() {
					_, err := proc.Upgrade(ctx)
					upgraded <- err
				})
			}
		case err := <-upgraded:
			upgrading = false
			if err != nil {
				log.Error("upgrade failed; this process keeps serving", "error", err)
				break
			}
			log.Info("handed over; draining", "grace", s.ShutdownGrace)
			running, handedOver = false, true
		case err := <-serveErr:
			return abort(fmt.Errorf("serve: %w", err))
		}
	}
	graceCtx, cancel := context.WithTimeout(context.Background(), s.ShutdownGrace)
	defer cancel()
	if handedOver {
		// The new process accepts on the same sockets; finish ours gently:
		// every response from now on closes its connection, and once the
		// last one is closed the servers shut down with nothing to cut.
		if drained, err := drain.Drain(graceCtx); err == nil {
			ln.Close()
			if adminLn != nil {
				adminLn.Close()
			}
			select {
			case <-drained:
				log.Info("drained")
			case <-graceCtx.Done():
			}
		}
	} else {
		proc.Stopping()
	}
	if err := front.Shutdown(graceCtx); err != nil {
		log.Warn("grace period over, closing remaining connections", "error", err)
	}
	// The admin API goes after the proxy has drained, so operators can
	// watch the drain, and before the actors it asks.
	if adminSrv != nil {
		if err := adminSrv.Shutdown(graceCtx); err != nil {
			_ = adminSrv.Close()
		}
	}
	stopActors()
	wg.Wait()
	log.Info("stopped", "pid", os.Getpid())
	return nil
}

// discoveryWait is how long serve waits for the discovery sources' first
// answers before it serves.
const discoveryWait = 5 * time.Second

// selectorConfig is what the selector needs from the settings; its health
// probes go through tr.
func selectorConfig(s *config.Settings, tr http.RoundTripper) (actors.Config, error) {
	policy, err := s.NewPolicy(mathrand.Uint64())
	if err != nil {
		return actors.Config{}, err
	}
	return actors.Config{
		Backends: s.ActorBackends(), Policy: policy, Monitor: s.Monitor(tr),
		Limits: s.ActorLimits(), Ejection: s.ActorEjection(), SlowStart: s.SlowStart,
	}, nil
}

// applyReload reads the settings again and hands the selector what it can
// change while running: backends, policy, health checks, limits, ejection
// and slow start. An invalid file changes nothing. Listeners, timeouts of
// the servers and the transport, logging and the discovery sources
// (running, the ones serve started with) need a restart; backends the
// sources found are not the file's, and stay.
//
// key is the request key the running proxy extracts (see actors.KeyOf),
// which a reload cannot change.
func applyReload(ctx context.Context, sel *actors.Selector, reload func() (*config.Settings, error), tr http.RoundTripper, log hclog.Logger, running *config.Settings, key actors.KeySpec) error {
	s, err := reload()
	if err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	cfg, err := selectorConfig(s, tr)
	if err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	// The proxy reads the request key (ip-hash, header-hash, cookie) and
	// signs sticky cookies with what it was started with.
	if actors.KeyOf(cfg.Policy) != key || !bytes.Equal(s.StickySecret(), running.StickySecret()) {
		return fmt.Errorf("reload: policy %q keys requests differently from %q, or the sticky secret changed: that needs a restart", s.Policy, running.Policy)
	}
	if err := sel.Reconfigure(ctx, cfg); err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	if !slices.Equal(s.Discover, running.Discover) || s.DNSServer != running.DNSServer {
		log.Warn("discover and dns_server changes take effect at the next start", "running", running.Discover)
	}
	log.Info("reloaded", "file", s.File, "backends", len(s.Backends), "policy", s.Policy)
	return nil
}

// newAdmin checks the admin settings and returns the admin API's handler,
// or nil when --admin is not given. Without a token the admin API must
// listen on loopback.
func newAdmin(s *config.Settings, sel *actors.Selector, reload func(context.Context) error, log hclog.Logger, logDropped func(context.Context) (uint64, error)) (http.Handler, error) {
	// config.Load has checked the address and the token rules (a token
	// file needs an address; a non-loopback address needs a token) and
	// read the token.
	if s.Admin.Listen == "" {
		return nil, nil
	}
	return admin.New(admin.Config{Selector: sel, Reload: reload, Logger: log.Named("admin"), Token: s.Admin.Token, LogDropped: logDropped})
}

// newServer returns an http.Server with hardened defaults: slow clients
// cannot hold a connection open by trickling headers, idle keep-alive
// connections are closed, and headers are bounded. net/http's own messages
// go through the logger.
func newServer(h http.Handler, log hclog.Logger, headerTimeout, idleTimeout time.Duration) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: headerTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          log.Named("http").StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}),
	}
}
