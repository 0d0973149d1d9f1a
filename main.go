// Command roundhouse is an HTTP load balancer built in the actor style: one
// selector goroutine owns all balancing state and every other goroutine
// talks to it by message. See README.md for usage and actors/doc.go for the
// model.
//
// This file is the wiring: it parses the command line, builds the selector
// (package actors) and the proxy handler (package transport), serves, and
// shuts down in order on SIGINT or SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/sourcegraph/conc"

	"github.com/roundhouse/roundhouse/actors"
	"github.com/roundhouse/roundhouse/demo"
	"github.com/roundhouse/roundhouse/transport"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3";
// otherwise the module version from the build info is used.
var version = ""

const usage = `usage:
  roundhouse serve [flags]        run the load balancer (the default when the first argument is a flag)
  roundhouse backend --listen ADDR [--name NAME]
                                  run a demo backend
  roundhouse demo [flags]         run 3 demo backends and the balancer in one process
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
	case "version":
		fmt.Fprintln(stdout, "roundhouse", buildVersion())
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		err = usageError{fmt.Errorf("unknown command %q", cmd)}
		fmt.Fprint(stderr, usage)
	}
	var ue usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintln(stderr, "roundhouse:", err)
		return exitUsage
	default:
		fmt.Fprintln(stderr, "roundhouse:", err)
		return exitRuntime
	}
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

// serveFlags is the balancer's configuration from the command line.
type serveFlags struct {
	listen                string
	backends              []*url.URL
	policy                string
	healthPath            string
	healthInterval        time.Duration
	healthTimeout         time.Duration
	rise, fall            int
	dialTimeout           time.Duration
	responseHeaderTimeout time.Duration
	retries               int
	shutdownGrace         time.Duration
	accessLog             bool
	logLevel              hclog.Level
	logJSON               bool
	edge                  edgeFlags // edge.go
}

func parseServeFlags(name string, args []string, stderr io.Writer) (*serveFlags, error) {
	c := &serveFlags{logLevel: hclog.Info}
	fs := flag.NewFlagSet("roundhouse "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.listen, "listen", "127.0.0.1:8080", "`address` to accept client connections on")
	fs.Func("backend", "backend `URL` http://host:port (repeatable)", func(s string) error {
		u, err := parseBackendURL(s)
		c.backends = append(c.backends, u)
		return err
	})
	fs.StringVar(&c.policy, "policy", "round-robin", "balancing `policy`: round-robin")
	fs.StringVar(&c.healthPath, "health-path", "/health", "`path` probed with GET; 2xx or 3xx passes")
	fs.DurationVar(&c.healthInterval, "health-interval", 10*time.Second, "time between health probes")
	fs.DurationVar(&c.healthTimeout, "health-timeout", 2*time.Second, "timeout of one health probe")
	fs.IntVar(&c.rise, "rise", 2, "consecutive passing probes that mark a DOWN backend UP")
	fs.IntVar(&c.fall, "fall", 3, "consecutive failed probes that mark an UP backend DOWN")
	fs.DurationVar(&c.dialTimeout, "dial-timeout", 3*time.Second, "timeout to connect to a backend")
	fs.DurationVar(&c.responseHeaderTimeout, "response-header-timeout", 30*time.Second, "wait for a backend's response headers (exceeded: 504)")
	fs.IntVar(&c.retries, "retries", 2, "other backends tried when a request fails in a way that is safe to retry")
	fs.DurationVar(&c.shutdownGrace, "shutdown-grace", 15*time.Second, "time in-flight requests get to finish on shutdown")
	fs.BoolVar(&c.accessLog, "access-log", true, "log one line per request")
	fs.Func("log-level", "`level`: trace|debug|info|warn|error (default info)", func(s string) error {
		c.logLevel = hclog.LevelFromString(s)
		if c.logLevel == hclog.NoLevel || c.logLevel == hclog.Off {
			return errors.New("want trace, debug, info, warn or error")
		}
		return nil
	})
	fs.Func("log-format", "`format`: text|json (default text)", func(s string) error {
		switch s {
		case "text", "json":
			c.logJSON = s == "json"
			return nil
		}
		return errors.New("want text or json")
	})
	c.edge.register(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, usageError{err} // the flag package has printed the details
	}
	if fs.NArg() > 0 {
		return nil, usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	if err := c.validate(); err != nil {
		return nil, usageError{err}
	}
	return c, nil
}

func (c *serveFlags) validate() error {
	positive := []struct {
		flag string
		d    time.Duration
	}{
		{"health-interval", c.healthInterval}, {"health-timeout", c.healthTimeout},
		{"dial-timeout", c.dialTimeout}, {"response-header-timeout", c.responseHeaderTimeout},
		{"shutdown-grace", c.shutdownGrace},
	}
	for _, p := range positive {
		if p.d <= 0 {
			return fmt.Errorf("--%s: must be positive, got %v", p.flag, p.d)
		}
	}
	switch {
	case c.rise < 1:
		return fmt.Errorf("--rise: must be at least 1, got %d", c.rise)
	case c.fall < 1:
		return fmt.Errorf("--fall: must be at least 1, got %d", c.fall)
	case c.retries < 0:
		return fmt.Errorf("--retries: must not be negative, got %d", c.retries)
	case c.policy != "round-robin":
		return fmt.Errorf("--policy: unknown policy %q (known: round-robin)", c.policy)
	case !strings.HasPrefix(c.healthPath, "/"):
		return fmt.Errorf("--health-path: must start with /, got %q", c.healthPath)
	}
	if err := c.edge.validate(); err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, u := range c.backends {
		if seen[u.String()] {
			return fmt.Errorf("--backend %s: given twice", u)
		}
		seen[u.String()] = true
	}
	return nil
}

// parseBackendURL accepts http(s)://host[:port][/path].
func parseBackendURL(s string) (*url.URL, error) {
	if !strings.Contains(s, "://") {
		return nil, fmt.Errorf("want a URL such as http://%s", s)
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, err
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("scheme %q: want http or https", u.Scheme)
	case u.Hostname() == "":
		return nil, errors.New("missing host")
	case u.User != nil, u.RawQuery != "", u.Fragment != "":
		return nil, errors.New("must not carry user info, a query or a fragment")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("bad port %q", p)
		}
	}
	return u, nil
}

func newLogger(c *serveFlags, out io.Writer) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name: "roundhouse", Level: c.logLevel, JSONFormat: c.logJSON, Output: out,
	})
}

// runServe runs the balancer ("serve") or the balancer with its own three
// demo backends ("demo") until ctx ends.
func runServe(ctx context.Context, args []string, stderr io.Writer, withDemo bool, stdout io.Writer) error {
	name := "serve"
	if withDemo {
		name = "demo"
	}
	c, err := parseServeFlags(name, args, stderr)
	if err != nil {
		return err
	}
	log := newLogger(c, stderr)
	if !withDemo {
		if len(c.backends) == 0 {
			return usageError{errors.New("no backend: give at least one --backend http://host:port")}
		}
		return serve(ctx, c, log, nil)
	}
	if len(c.backends) > 0 {
		return usageError{errors.New("--backend: demo starts its own backends")}
	}
	return runDemo(ctx, c, log, stdout)
}

// serve runs the balancer until ctx ends, then shuts down in order: stop
// accepting and let in-flight requests finish (up to the grace period), stop
// the actors and wait for them, close idle backend connections. ready, if
// not nil, is called with the listening address.
func serve(ctx context.Context, c *serveFlags, log hclog.Logger, ready func(net.Addr)) error {
	tr := transport.New(transport.Options{DialTimeout: c.dialTimeout, ResponseHeaderTimeout: c.responseHeaderTimeout,
		BackendCAs: c.edge.backendCAs})
	defer tr.CloseIdleConnections()
	sel, err := actors.New(actors.Config{
		Backends: c.backends,
		Policy:   &actors.RoundRobin{},
		Monitor: actors.MonitorConfig{
			Probe:    actors.HTTPProbe(tr, c.healthPath),
			Interval: c.healthInterval, Timeout: c.healthTimeout, Rise: c.rise, Fall: c.fall,
		},
		Logger: log.Named("selector"),
	})
	if err != nil {
		return usageError{err}
	}
	ln, err := net.Listen("tcp", c.listen)
	if err != nil {
		return fmt.Errorf("--listen %s: %w", c.listen, err)
	}
	var access hclog.Logger
	if c.accessLog {
		access = log.Named("access")
	}
	ed := c.edge.build(log) // edge.go
	front := transport.NewFrontend(ln, transport.NewProxy(ed.proxy(transport.Config{
		Selector: sel, Transport: tr, Retries: c.retries, RetryAfter: c.healthInterval,
		Logger: log.Named("proxy"), AccessLog: access,
	})), ed.frontend())

	// The actors outlive ctx: in-flight requests still need the selector
	// while the server drains, so they get their own context, cancelled last.
	actorCtx, stopActors := context.WithCancel(context.WithoutCancel(ctx))
	defer stopActors()
	var wg conc.WaitGroup
	defer wg.Wait()
	wg.Go(func() { _ = sel.Run(actorCtx) })
	wg.Go(func() { ed.run(actorCtx) })
	serveErr := make(chan error, 1)
	wg.Go(func() { serveErr <- front.Serve() })
	log.Info("listening", "addr", ln.Addr().String(), "backends", len(c.backends))
	if ready != nil {
		ready(ln.Addr())
	}

	select {
	case <-ctx.Done():
		log.Info("shutting down", "grace", c.shutdownGrace)
	case err := <-serveErr:
		stopActors()
		return fmt.Errorf("serve: %w", err)
	}
	graceCtx, cancel := context.WithTimeout(context.Background(), c.shutdownGrace)
	defer cancel()
	if err := front.Shutdown(graceCtx); err != nil {
		log.Warn("grace period over, closing remaining connections", "error", err)
	}
	stopActors()
	wg.Wait()
	log.Info("stopped")
	return nil
}

// newServer returns an http.Server with hardened defaults: slow clients
// cannot hold a connection open by trickling headers, idle keep-alive
// connections are closed, and headers are bounded. net/http's own messages
// go through the logger.
func newServer(h http.Handler, log hclog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          log.Named("http").StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}),
	}
}

// runDemo starts three demo backends on the three ports after the
// balancer's (ephemeral ports when it listens on port 0), then the balancer.
func runDemo(ctx context.Context, c *serveFlags, log hclog.Logger, stdout io.Writer) error {
	host, portStr, err := net.SplitHostPort(c.listen)
	if err != nil {
		return usageError{fmt.Errorf("--listen %s: %w", c.listen, err)}
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65532 {
		return usageError{fmt.Errorf("--listen %s: demo needs a numeric port below 65533", c.listen)}
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
		c.backends = append(c.backends, &url.URL{Scheme: "http", Host: name})
	}
	return serve(ctx, c, log, func(addr net.Addr) {
		scheme := c.edge.scheme() // edge.go
		fmt.Fprintf(stdout, "roundhouse demo: 3 backends behind %s://%s\ntry: curl %s://%s/\n", scheme, addr, scheme, addr)
	})
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
	srv := newServer(demo.Handler(name), log)
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
