package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/sourcegraph/conc"

	"github.com/roundhouse/roundhouse/config"
	"github.com/roundhouse/roundhouse/demo"
	"github.com/roundhouse/roundhouse/internal/accesslog"
	"github.com/roundhouse/roundhouse/internal/defaults"
)

// runDemo starts three demo backends on the three ports after the
// balancer's (ephemeral ports when it listens on port 0), then the balancer.
func runDemo(ctx context.Context, s *config.Settings, log hclog.Logger, access *accesslog.Logger, stdout io.Writer) error {
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
	// The demo has one pool (config refuses pool blocks for it), made of
	// its backends: EveryPool makes it from the top-level fields.
	s.Pools = nil
	// No reload: the demo's backends are its own, not the file's.
	return serve(ctx, s, log, serveOptions{noUpgrade: true, access: access, ready: func(addr net.Addr) {
		scheme := "http"
		if s.TLS.Certificate != nil {
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
	if err := parseCommand(fs, args); err != nil {
		return err
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
	srv := newServer(demo.Handler(name), log, defaults.ClientHeaderTimeout, defaults.ClientIdleTimeout)
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
