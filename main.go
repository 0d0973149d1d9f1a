// Command roundhouse is an HTTP load balancer built in the actor style: one
// selector goroutine owns all balancing state and every other goroutine
// talks to it by message. See README.md for usage and actors/doc.go for the
// model.
//
// This file is the wiring: it takes the settings from the command line and
// the configuration file (package config), builds the selector (package
// actors) and the proxy handler (package transport), serves, and shuts down
// in order on SIGINT or SIGTERM.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	mathrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/sourcegraph/conc"

	"github.com/roundhouse/roundhouse/actors"
	"github.com/roundhouse/roundhouse/admin"
	"github.com/roundhouse/roundhouse/config"
	"github.com/roundhouse/roundhouse/demo"
	"github.com/roundhouse/roundhouse/discovery"
	"github.com/roundhouse/roundhouse/internal/logbatch"
	"github.com/roundhouse/roundhouse/transport"
	"github.com/roundhouse/roundhouse/upgrade"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3";
// otherwise the module version from the build info is used.
var version = ""

const usage = `usage:
  roundhouse serve [flags]        run the load balancer (the default when the first argument is a flag)
  roundhouse backend --listen ADDR [--name NAME]
                                  run a demo backend
  roundhouse demo [flags]         run 3 demo backends and the balancer in one process
  roundhouse validate FILE        check a configuration file (see serve --config)
  roundhouse upgrade --pid-file FILE | --pid PID
                                  hand a running balancer's sockets to a new copy of its binary
  roundhouse status [--admin ADDR] [--admin-token-file FILE]
                                  print the backends' state from a balancer's admin API
  roundhouse version              print the version

Run "roundhouse serve -h" for the balancer's flags.
`

// Exit statuses (the command-line contract in README.md).
const (
	exitOK      = 0
	exitRuntime = 1
	exitUsage   = 2
)

// usageError marks an error as the user's: exit status 2.
type usageError struct{ error }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// run executes one command line and returns the exit status. ctx ends the
// long-running commands gracefully.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	} else if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	var err error
	switch cmd {
	case "serve":
		err = runServe(ctx, args, stderr, false, stdout)
	case "demo":
		err = runServe(ctx, args, stderr, true, stdout)
	case "backend":
		err = runBackend(ctx, args, stderr)
	case "validate":
		return runValidate(args, stdout, stderr)
	case "status":
		err = runStatus(ctx, args, stdout, stderr)
	case "upgrade":
		err = runUpgrade(ctx, args, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "roundhouse", buildVersion())
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		err = usageError{fmt.Errorf("unknown command %q", cmd)}
		fmt.Fprint(stderr, usage)
	}
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	for line := range strings.Lines(err.Error()) { // config.Problems: one per line
		fmt.Fprint(stderr, "roundhouse: ", strings.TrimSuffix(line, "\n"), "\n")
	}
	if errors.As(err, new(usageError)) {
		return exitUsage
	}
	return exitRuntime
}

func buildVersion() string {
	v := version
	if info, ok := debug.ReadBuildInfo(); ok && v == "" {
		v = info.Main.Version
	}
	if v == "" {
		v = "(devel)"
	}
	return v + " " + strings.TrimPrefix(runtimeVersion(), "go")
}

func runtimeVersion() string {
	if info, ok := debug.ReadBuildInfo(); ok {
		return info.GoVersion
	}
	return "unknown"
}

func newLogger(s *config.Settings, out io.Writer) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name: "roundhouse", Level: s.LogLevel(), JSONFormat: s.Log.Format == "json", Output: out,
	})
}

// runServe runs the balancer ("serve") or the balancer with its own three
// demo backends ("demo") until ctx ends. Package config reads the flags and
// the --config file and checks them.
func runServe(ctx context.Context, args []string, stderr io.Writer, withDemo bool, stdout io.Writer) error {
	name := "serve"
	if withDemo {
		name = "demo"
	}
	s, err := config.Load(args, config.Options{Name: "roundhouse " + name, Output: stderr, OwnBackends: withDemo})
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	// Log lines go out through a batching writer, an actor of its own, so
	// that the access log costs one write(2) per batch, not per request.
	// It stops last, once everything that logs has.
	out := logbatch.New(stderr, 0)
	logCtx, stopLog := context.WithCancel(context.WithoutCancel(ctx))
	var logging conc.WaitGroup
	logging.Go(func() { _ = out.Run(logCtx) })
	defer logging.Wait()
	defer stopLog()
	log := newLogger(s, out)
	if withDemo {
		return runDemo(ctx, s, log, stdout)
	}
	var reload func() (*config.Settings, error)
	if s.File != "" {
		// A reload reads the file again under the same command line.
		reload = func() (*config.Settings, error) {
			return config.Load(args, config.Options{Name: "roundhouse " + name})
		}
	}
	return serve(ctx, s, log, serveOptions{reload: reload})
}

// runValidate is the "validate" command: it loads FILE as serve --config
// FILE would and prints a summary (exit 0) or every problem, one per line
// (exit 1).
func runValidate(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("roundhouse validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintln(stderr, "usage: roundhouse validate FILE") }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return exitUsage
	}
	file := fs.Arg(0)
	s, err := config.Load([]string{"--config", file}, config.Options{Name: "roundhouse validate"})
	var problems config.Problems
	switch {
	case errors.As(err, &problems):
		for _, p := range problems {
			fmt.Fprintln(stderr, p)
		}
		return exitRuntime
	case err != nil:
		fmt.Fprintln(stderr, "roundhouse:", err)
		return exitRuntime
	}
	fmt.Fprintf(stdout, "%s: ok: %s\n", file, s.Summary())
	return exitOK
}

// serveOptions are serve's optional parts.
type serveOptions struct {
	// reload, if not nil, reads the settings again; SIGHUP and the admin
	// API's POST /reload apply what it returns to the selector.
	reload func() (*config.Settings, error)
	// ready, if not nil, is called with the listening address.
	ready func(net.Addr)
	// noUpgrade refuses SIGUSR2 (demo: its backends cannot be handed over).
	noUpgrade bool
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
			return applyReload(ctx, sel, o.reload, tr, log, s)
		}
	}
	adminHandler, err := newAdmin(s, sel, apply, log)
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
	var access hclog.Logger
	if s.Log.Access {
		access = log.Named("access")
	}
	ed := newEdge(s, log) // edge.go
	fo := ed.frontend()
	fo.ConnState = drain.ConnState
	front := transport.NewFrontend(ln, drain.Handler(transport.NewProxy(ed.proxy(transport.Config{
		Selector: sel, Transport: tr, Retries: s.Retries, RetryAfter: s.Health.Interval,
		Logger: log.Named("proxy"), AccessLog: access, Key: actors.KeyOf(cfg.Policy), StickySecret: s.StickySecret(),
		RetryBuffer: s.RetryBuffer, RequestTimeout: s.Timeouts.Request,
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
func applyReload(ctx context.Context, sel *actors.Selector, reload func() (*config.Settings, error), tr http.RoundTripper, log hclog.Logger, running *config.Settings) error {
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
	was, err := running.NewPolicy(0)
	if err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	if actors.KeyOf(cfg.Policy) != actors.KeyOf(was) || !bytes.Equal(s.StickySecret(), running.StickySecret()) {
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
func newAdmin(s *config.Settings, sel *actors.Selector, reload func(context.Context) error, log hclog.Logger) (http.Handler, error) {
	if s.Admin.Listen == "" {
		if s.Admin.TokenFile != "" {
			return nil, usageError{errors.New("--admin-token-file: needs --admin ADDR")}
		}
		return nil, nil
	}
	var token []byte
	if s.Admin.TokenFile != "" {
		t, err := admin.ReadTokenFile(s.Admin.TokenFile)
		if err != nil {
			return nil, usageError{fmt.Errorf("--admin-token-file: %w", err)}
		}
		token = t
	}
	switch err := admin.CheckAddr(s.Admin.Listen, token != nil); {
	case errors.Is(err, admin.ErrNotLoopback):
		return nil, usageError{fmt.Errorf("--admin %s: %w: give --admin-token-file FILE, or a loopback address such as %s", s.Admin.Listen, err, admin.DefaultAddr)}
	case err != nil:
		return nil, usageError{fmt.Errorf("--admin %s: %w", s.Admin.Listen, err)}
	}
	return admin.New(admin.Config{Selector: sel, Reload: reload, Logger: log.Named("admin"), Token: token})
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

// runDemo starts three demo backends on the three ports after the
// balancer's (ephemeral ports when it listens on port 0), then the balancer.
func runDemo(ctx context.Context, s *config.Settings, log hclog.Logger, stdout io.Writer) error {
	host, portStr, err := net.SplitHostPort(s.Listen)
	if err != nil {
		return usageError{fmt.Errorf("--listen %s: %w", s.Listen, err)}
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65532 {
		return usageError{fmt.Errorf("--listen %s: demo needs a numeric port below 65533", s.Listen)}
	}
	var wg conc.WaitGroup
	defer wg.Wait()
	backendCtx, stopBackends := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBackends()
	for i := 1; i <= 3; i++ {
		addr := net.JoinHostPort(host, "0")
		if port != 0 {
			addr = net.JoinHostPort(host, strconv.Itoa(port+i))
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("demo backend %s: %w", addr, err)
		}
		name := ln.Addr().String()
		wg.Go(func() { _ = serveBackend(backendCtx, ln, name, log.Named("backend")) })
		s.Backends = append(s.Backends, config.Backend{URL: &url.URL{Scheme: "http", Host: name}, Weight: 1, Source: "demo"})
	}
	// No reload: the demo's backends are its own, not the file's.
	return serve(ctx, s, log, serveOptions{noUpgrade: true, ready: func(addr net.Addr) {
		scheme := "http"
		if s.TLS.Certs != nil {
			scheme = "https"
		}
		fmt.Fprintf(stdout, "roundhouse demo: 3 backends behind %s://%s\ntry: curl %s://%s/\n", scheme, addr, scheme, addr)
	}})
}

// runBackend is the "backend" command: one demo origin until ctx ends.
func runBackend(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("roundhouse backend", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "", "`address` to listen on (required)")
	name := fs.String("name", "", "`name` in responses (default: the listen address)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	if *listen == "" {
		return usageError{errors.New("--listen: required, e.g. --listen 127.0.0.1:8081")}
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("--listen %s: %w", *listen, err)
	}
	if *name == "" {
		*name = ln.Addr().String()
	}
	log := hclog.New(&hclog.LoggerOptions{Name: "roundhouse", Output: stderr}).Named("backend")
	return serveBackend(ctx, ln, *name, log)
}

// serveBackend serves demo.Handler on ln until ctx ends, then shuts down
// gracefully.
func serveBackend(ctx context.Context, ln net.Listener, name string, log hclog.Logger) error {
	srv := newServer(demo.Handler(name), log, 10*time.Second, 120*time.Second)
	serveErr := make(chan error, 1)
	var wg conc.WaitGroup
	defer wg.Wait()
	wg.Go(func() { serveErr <- srv.Serve(ln) })
	log.Info("listening", "addr", ln.Addr().String(), "name", name)
	select {
	case <-ctx.Done():
	case err := <-serveErr:
		return fmt.Errorf("backend %s: %w", name, err)
	}
	graceCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(graceCtx); err != nil {
		_ = srv.Close()
	}
	return nil
}
