package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/sourcegraph/conc"

	"github.com/roundhouse/roundhouse/admin"
	"github.com/roundhouse/roundhouse/config"
	"github.com/roundhouse/roundhouse/discovery"
	"github.com/roundhouse/roundhouse/internal/accesslog"
	"github.com/roundhouse/roundhouse/internal/parse"
	"github.com/roundhouse/roundhouse/transport"
	"github.com/roundhouse/roundhouse/upgrade"
)

// serve is the balancer's lifetime, one named step each:
//
//	sockets    the process's sockets (inherited or new) and the listeners
//	pools      each pool's selector actor, transport and discovery
//	           providers, and the router that offers the routes to them
//	admin      the admin API's handler and server
//	frontend   the edge actors, the proxy and the client-facing server
//	run        start the goroutines below, wait until ready, log "listening",
//	           then loop on signals until ctx ends or an upgrade hands over
//	drain      after a hand-over: let the connections finish gently
//	stop       shut the servers down, stop the actors, wait for them
//
// Every long-lived goroutine, in the order it ends at shutdown. All but the
// last two are started by run, or by a reload on its loop goroutine, and
// owned by balancer.wg, which stop waits for; the monitors are their
// selector's, which waits for them. The servers end first, so that
// in-flight requests still find the router and their pool's selector,
// then actorCtx is cancelled and the actors end together.
//
//	goroutine                         started by       ends when
//	front.Serve (client connections)  run              stop: front.Shutdown (grace period)
//	h3.Serve (HTTP/3, --http3), and   run; stop or     h3.Shutdown (GOAWAY, grace period), with
//	  its Shutdown (shutdownHTTP3)      the drain        front's, or as the drain after a hand-over begins
//	plain HTTP Serve (--http-listen)  run              stop: its Shutdown, after the proxy's
//	admin server Serve                run (--admin)    stop: adminSrv.Shutdown, after the proxy drained
//	upgrade (proc.Upgrade), one       loop on SIGUSR2  the new process is ready, fails, or ctx ends
//	router Run                        run              actorCtx is cancelled (stop)
//	selector Run, and its monitors,   run; a reload    actorCtx is cancelled (stop), or its
//	  one per pool (startPool)          adds pools       pool's, once a reload removed it and
//	                                                     drainPool found nothing in flight
//	drainPool, one per removed pool   a reload         the pool has stopped, or actorCtx ends
//	edge: tunnels, idle connections   run (edge.run)   actorCtx is cancelled (stop)
//	  (--max-conns), rate limiter,
//	  certificate store, PROXY peers,
//	  ACME manager (its obtainers and
//	  certmagic's maintenance)
//	upgrade.Drainer Run               run              actorCtx is cancelled (stop)
//	discovery providers, one per      run; a reload    as their pool's selector
//	  source of a pool (startPool)      adds pools
//	log batcher (logbatch)            runServe         after serve returns (main.go)
//	signal handling (NotifyContext)   main             process exit
//
// After the goroutines: idle backend connections are closed, the sockets
// and what the process inherited are released, and serve returns nil (exit
// 0). That is DESIGN.md's shutdown order: stop accepting and drain
// (http.Server.Shutdown) → cancel the actors' context → wait → close idle
// connections → exit 0.

// serveOptions are serve's optional parts.
type serveOptions struct {
	// reload, if not nil, reads the settings again; SIGHUP and the admin
	// API's POST /reload apply what it returns to the pools and routes
	// (applyReload, on the loop goroutine).
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
	b := &balancer{s: s, log: log, o: o}
	defer b.release()
	for _, step := range []func() error{b.sockets, b.pools, b.admin, b.frontend} {
		if err := step(); err != nil {
			return err
		}
	}
	return b.run(ctx)
}

// balancer is what serve builds, step by step, and runs. Its fields are
// set by the steps in order and read by the later ones; everything runs
// on serve's goroutine but the goroutines in the table above.
type balancer struct {
	s   *config.Settings
	log hclog.Logger
	o   serveOptions

	proc        *upgrade.Process // sockets
	ln, adminLn net.Listener     // sockets; adminLn nil without --admin
	plain       *plainHTTP       // sockets: --http-listen; nil without (https.go)
	drain       *upgrade.Drainer // sockets: every server's connections

	// pools: the transports, one per distinct set of options (shared by
	// the pools that have it), closed idle last; the pools in order, and
	// the router that offers the routes to them. After start-up, pools
	// and transports belong to the loop goroutine, which runs reloads.
	transports map[transport.Options]http.RoundTripper
	shared     []*transport.Transport
	running    []*pool
	router     *transport.Router
	apply      func(context.Context) error // admin: a reload; nil without --config
	reloads    chan reloadRequest          // admin: POST /reload, to the loop
	adminSrv   *http.Server                // admin; nil without --admin
	ed         *edge                       // frontend
	front      *transport.Frontend         // frontend
	udp        net.PacketConn              // frontend (http3.go): HTTP/3's socket; nil without --http3
	h3         *transport.HTTP3            // frontend (http3.go); nil without --http3
	h3Done     chan error                  // shutdownHTTP3: h3.Shutdown's result; nil before

	actorCtx   context.Context    // run: the actors' context, outlives ctx
	stopActors context.CancelFunc // run: cancels actorCtx
	wg         conc.WaitGroup     // run: owns every goroutine in the table
	serveErr   chan error         // run: the servers' Serve errors
}

// sockets reads what the process inherited and opens (or takes over) the
// client listener and, with --admin, the admin API's.
func (b *balancer) sockets() error {
	s := b.s
	proc, err := upgrade.New(upgrade.Options{PIDFile: s.PIDFile, Logger: b.log.Named("upgrade")})
	if err != nil {
		return err
	}
	b.proc, b.drain = proc, upgrade.NewDrainer()
	if b.ln, err = proc.Listen("listen", s.Listen); err != nil {
		return fmt.Errorf("--listen %s: %w", s.Listen, err)
	}
	if b.plain, err = openPlainHTTP(proc, s); err != nil {
		return err
	}
	if s.Admin.Listen == "" {
		return nil
	}
	if b.adminLn, err = proc.Listen("admin", s.Admin.Listen); err != nil {
		return fmt.Errorf("--admin %s: %w", s.Admin.Listen, err)
	}
	// A socket from systemd replaces --admin: check the one we got.
	if err := parse.AdminAddr(b.adminLn.Addr().String(), s.Admin.TokenFile != ""); err != nil {
		return usageError{fmt.Errorf("admin API socket %s: %w: give --admin-token-file FILE", b.adminLn.Addr(), err)}
	}
	return nil
}

// pools builds each pool (buildPool: its transport, selector and
// discovery providers; the selector's health probes go through the
// pool's transport) and the router with the table of routes to them.
func (b *balancer) pools() error {
	b.transports = map[transport.Options]http.RoundTripper{}
	for _, ps := range b.s.EveryPool() {
		p, err := b.buildPool(ps)
		if err != nil {
			return usageError{err}
		}
		b.running = append(b.running, p)
	}
	t, err := table(b.s, b.running)
	if err != nil {
		return usageError{err}
	}
	b.router = transport.NewRouter(t)
	return nil
}

// admin builds the reload (with --config) and, with --admin, the admin
// API's server. config.Load has checked the address and the token rules
// and read the token.
func (b *balancer) admin() error {
	b.reloads = make(chan reloadRequest)
	if b.o.reload != nil {
		b.apply = b.askReload
	}
	if b.adminLn == nil {
		return nil
	}
	var idleReclaimed func(context.Context) (uint64, error)
	if b.s.Edge.MaxConns > 0 { // b.ed: made by the frontend step, before any scrape
		idleReclaimed = func(ctx context.Context) (uint64, error) { return b.ed.idleReclaimed(ctx) }
	}
	h, err := admin.New(admin.Config{
		Pools: b.adminPools, Routes: b.adminRoutes, Unrouted: b.router.Unrouted,
		Reload: b.apply, Logger: b.log.Named("admin"), Token: b.s.Admin.Token, LogDropped: b.o.logDropped,
		Certificates: b.certificateLister(), IdleReclaimed: idleReclaimed,
	})
	if err != nil {
		return err
	}
	b.adminSrv = newServer(b.drain.Handler(h), b.log, b.s.Timeouts.ClientHeader, b.s.Timeouts.ClientIdle)
	b.adminSrv.ConnState = b.drain.ConnState
	return nil
}

// frontend builds the edge's actors (edge.go), the proxy and the
// client-facing server on the listener.
func (b *balancer) frontend() error {
	s := b.s
	b.ed = newEdge(s, b.log)
	acm, err := newACME(s, b.log.Named("acme"), b.ln.Addr(), b.plain.addr())
	if err != nil {
		return err
	}
	b.ed.acme = acm
	b.plain.build(acm, b.ln.Addr(), b.drain, b.log, s)
	fo := b.ed.frontend()
	fo.ConnState = b.drain.ConnState
	proxy := transport.NewProxy(b.ed.proxy(transport.Config{
		Router: b.router, Logger: b.log.Named("proxy"), AccessLog: b.o.access,
		RetryBuffer: s.RetryBuffer, BodyTimeout: s.Timeouts.ClientBody,
	}))
	h, err := b.http3(proxy, b.drain.Handler(proxy), fo.TLS)
	if err != nil {
		return err
	}
	b.front = transport.NewFrontend(b.ln, h, fo)
	return nil
}

// release closes, once everything has stopped, what the steps opened:
// the listeners, the idle backend connections, what the process inherited.
func (b *balancer) release() {
	if b.adminLn != nil {
		b.adminLn.Close()
	}
	if b.ln != nil {
		b.ln.Close()
	}
	if b.udp != nil {
		b.udp.Close()
	}
	b.plain.close()
	for _, tr := range b.shared {
		tr.CloseIdleConnections()
	}
	if b.proc != nil {
		b.proc.Close()
	}
}

// run starts the goroutines, serves until ctx ends or an upgrade hands
// over, then drains and stops.
func (b *balancer) run(ctx context.Context) error {
	// SIGHUP reloads; asked for before "listening", so that no SIGHUP
	// after it can kill the process.
	hup, usr2 := make(chan os.Signal, 1), make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	signal.Notify(usr2, syscall.SIGUSR2)
	defer signal.Stop(usr2)

	// The actors outlive ctx: in-flight requests still need the selector
	// while the server drains, so they get their own context, cancelled last.
	b.actorCtx, b.stopActors = context.WithCancel(context.WithoutCancel(ctx))
	defer b.stopActors()
	defer b.wg.Wait()
	b.startActors(ctx)
	b.startServers()
	if err := b.ready(); err != nil {
		return b.abort(err)
	}
	handedOver, err := b.loop(ctx, hup, usr2)
	if err != nil {
		return b.abort(err)
	}
	graceCtx, cancel := context.WithTimeout(context.Background(), b.s.ShutdownGrace)
	defer cancel()
	if handedOver {
		b.drainConnections(graceCtx)
	} else {
		b.proc.Stopping()
	}
	b.stop(graceCtx)
	return nil
}

// startActors starts the router, each pool's selector and discovery
// providers (startPool), the edge's actors and the drainer under
// actorCtx. Each provider feeds its pool's selector until the pool stops. The balancer waits a little for their first
// answers, so that it does not start with an empty set when a source is up.
func (b *balancer) startActors(ctx context.Context) {
	b.wg.Go(func() { _ = b.router.Run(b.actorCtx) })
	var feeds []discovery.Provider
	for _, p := range b.running {
		b.startPool(p)
		feeds = append(feeds, p.feeds...)
	}
	b.wg.Go(func() { b.ed.run(b.actorCtx) })
	b.wg.Go(func() { b.drain.Run(b.actorCtx) })
	if late := discovery.WaitReady(ctx, feeds, discoveryWait); len(late) > 0 {
		b.log.Warn("discovery sources not answering yet; serving the backends known so far", "sources", late)
	}
}

// discoveryWait is how long serve waits for the discovery sources' first
// answers before it serves.
const discoveryWait = 5 * time.Second

// startServers starts the client-facing servers (TCP, and HTTP/3's with
// --http3), the plain-HTTP one (--http-listen) and the admin API's. Their
// Serve errors come back on serveErr, which has room for all four: no send
// blocks.
func (b *balancer) startServers() {
	b.serveErr = make(chan error, 4)
	b.wg.Go(func() { b.serveErr <- b.front.Serve() })
	b.startHTTP3()
	b.plain.serve(&b.wg, b.serveErr)
	if b.adminSrv != nil {
		b.wg.Go(func() { b.serveErr <- b.adminSrv.Serve(b.adminLn) })
	}
}

// ready waits for each pool's selector to answer, tells the parent or
// systemd that this process serves, and logs "listening".
func (b *balancer) ready() error {
	for _, p := range b.running {
		if _, err := p.sel.Status(b.actorCtx); err != nil {
			return fmt.Errorf("selector of pool %s: %w", p.s.Name, err)
		}
	}
	if err := b.proc.Ready(); err != nil {
		return err
	}
	backends := 0
	for _, p := range b.running {
		backends += len(p.s.Backends)
	}
	listening := []any{"addr", b.ln.Addr().String(), "backends", backends}
	if b.h3 != nil {
		listening = append(listening, "http3", b.h3.Addr().String())
	}
	if len(b.s.Discover) > 0 {
		listening = append(listening, "discover", len(b.s.Discover))
	}
	if len(b.running) > 1 || b.running[0].s.Name != config.DefaultPool {
		listening = append(listening, "pools", len(b.running), "routes", len(b.s.Routes))
	}
	if b.adminSrv != nil {
		listening = append(listening, "admin", b.adminLn.Addr().String())
	}
	if b.plain != nil {
		listening = append(listening, "http", b.plain.addr().String())
	}
	b.log.Info("listening", append(listening, "pid", os.Getpid())...)
	if b.o.ready != nil {
		b.o.ready(b.ln.Addr())
	}
	return nil
}

// abort stops what runs, at once, for an error before the shutdown steps.
func (b *balancer) abort(err error) error {
	shut, cancel := context.WithCancel(context.Background())
	cancel() // close at once: something already failed
	b.shutdownHTTP3(shut, false)
	_ = b.front.Shutdown(shut)
	b.waitHTTP3()
	b.plain.shutdown(shut)
	if b.adminSrv != nil {
		_ = b.adminSrv.Close()
	}
	b.stopActors()
	return err
}

// loop serves until ctx ends (false), an upgrade has handed over (true),
// or a server fails (the error). SIGHUP reloads; SIGUSR2 upgrades. The loop
// owns the upgrade: at most one runs, in its own goroutine, and its
// outcome comes back on upgraded (capacity 1: the send never blocks, even
// after the loop has ended).
func (b *balancer) loop(ctx context.Context, hup, usr2 <-chan os.Signal) (handedOver bool, err error) {
	upgraded := make(chan error, 1)
	upgrading := false
	for {
		select {
		case <-ctx.Done():
			b.log.Info("shutting down", "grace", b.s.ShutdownGrace)
			return false, nil
		case <-hup:
			b.reload(ctx)
		case req := <-b.reloads:
			req.reply <- b.applyReload(ctx)
		case <-usr2:
			upgrading = b.upgrade(ctx, upgrading, upgraded)
		case err := <-upgraded:
			upgrading = false
			if err != nil {
				b.log.Error("upgrade failed; this process keeps serving", "error", err)
				continue
			}
			b.log.Info("handed over; draining", "grace", b.s.ShutdownGrace)
			return true, nil
		case err := <-b.serveErr:
			return false, fmt.Errorf("serve: %w", err)
		}
	}
}

// upgrade starts a seamless upgrade unless one is under way (upgrading)
// or serve may not (demo); it reports whether one is under way now.
func (b *balancer) upgrade(ctx context.Context, upgrading bool, upgraded chan<- error) bool {
	switch {
	case b.o.noUpgrade:
		b.log.Warn("upgrade ignored: demo cannot hand its backends over")
	case upgrading:
		b.log.Warn("upgrade ignored: one is under way")
	default:
		b.log.Info("upgrading: starting a new process")
		b.wg.Go(func() {
			_, err := b.proc.Upgrade(ctx)
			upgraded <- err
		})
		return true
	}
	return upgrading
}

// drainConnections finishes this process's connections gently once the
// new process accepts on the same sockets: every response from now on
// closes its connection, and once the last one is closed the servers shut
// down with nothing to cut.
func (b *balancer) drainConnections(graceCtx context.Context) {
	drained, err := b.drain.Drain(graceCtx)
	if err != nil {
		return
	}
	b.shutdownHTTP3(graceCtx, true) // the new process serves the UDP socket too
	b.ln.Close()
	b.plain.close()
	if b.adminLn != nil {
		b.adminLn.Close()
	}
	select {
	case <-drained:
		b.log.Info("drained")
	case <-graceCtx.Done():
	}
}

// stop shuts the servers down within the grace period, then stops the
// actors and waits for every goroutine. The admin API goes after the
// proxy has drained, so operators can watch the drain, and before the
// actors it asks.
func (b *balancer) stop(graceCtx context.Context) {
	b.shutdownHTTP3(graceCtx, false) // alongside the TCP server's, within the same grace period
	if err := b.front.Shutdown(graceCtx); err != nil {
		b.log.Warn("grace period over, closing remaining connections", "error", err)
	}
	b.waitHTTP3()
	b.plain.shutdown(graceCtx)
	if b.adminSrv != nil {
		if err := b.adminSrv.Shutdown(graceCtx); err != nil {
			_ = b.adminSrv.Close()
		}
	}
	b.stopActors()
	b.wg.Wait()
	b.log.Info("stopped", "pid", os.Getpid())
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
