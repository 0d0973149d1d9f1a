package actors

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	grpcstatus "google.golang.org/grpc/status"

	"github.com/roundhouse/roundhouse/internal/testcert"
	"github.com/roundhouse/roundhouse/internal/testenv"
)

// The gRPC health check against real grpc-go servers on loopback, each
// with the standard health service (health.NewServer). No fake time here:
// grpc-go's goroutines do real I/O, so these tests use real time with
// short intervals, and step the monitor by the server's calls instead of
// by the clock.

// grpcBackend is a gRPC server with the standard health service on
// 127.0.0.1. Its health status is set with health.SetServingStatus.
type grpcBackend struct {
	URL    string // http://127.0.0.1:PORT, or https:// with TLS
	health *health.Server
}

// startGRPCBackend starts a gRPC server with the health service, over TLS
// with creds when not nil, and stops it when the test ends. gate, if not
// nil, receives a value once each call has its answer (after the handler
// read the status), so a test can step the prober call by call.
func startGRPCBackend(t *testing.T, creds credentials.TransportCredentials, gate chan<- struct{}) *grpcBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var opts []grpc.ServerOption
	scheme := "http"
	if creds != nil {
		opts = append(opts, grpc.Creds(creds))
		scheme = "https"
	}
	if gate != nil {
		// The gate opens once the call has read the status it answers
		// with, not before: a test that sets the next status as soon as
		// the gate opens must not race the handler still reading this one.
		opts = append(opts, grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			resp, err := h(ctx, req)
			select {
			case gate <- struct{}{}:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			return resp, err
		}))
	}
	srv := grpc.NewServer(opts...)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Stop()
		// ErrServerStopped: Stop came before Serve began.
		if err := <-served; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			t.Errorf("Serve: %v", err)
		}
	})
	return &grpcBackend{URL: scheme + "://" + ln.Addr().String(), health: hs}
}

// grpcMonitorConfig probes every few milliseconds with rise 2 and fall 3,
// by the gRPC check c. The timeout is long: a probe waits at the test's
// gate for as long as the test takes to set the next status, which on a
// loaded machine (CI, under -race) has taken over a second, and a probe
// that timed out there would count as a failure the script did not ask
// for.
func grpcMonitorConfig(c GRPCCheck) MonitorConfig {
	return MonitorConfig{GRPC: &c, Interval: 5 * time.Millisecond, Timeout: 10 * time.Second, Rise: 2, Fall: 3}
}

// startGRPCMonitor runs a monitor of raw by cfg on its own goroutine,
// with an unbuffered out channel like the selector's. stop cancels Run and
// waits for it; it is called when the test ends.
func startGRPCMonitor(t *testing.T, raw string, cfg MonitorConfig) (out chan Health, stop func()) {
	t.Helper()
	m := &Monitor{Backend: newBackend(t, raw), Config: cfg}
	out = make(chan Health)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx, out, nil) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
	t.Cleanup(stop)
	return out, stop
}

// TestGRPCCheckRiseAndFall steps a monitor probe by probe: before each
// probe the server's status for the service is set as the script says
// ("S" SERVING, "N" NOT_SERVING, "u" SERVICE_UNKNOWN), and the monitor's
// messages are read until the next probe arrives, so each is pinned to
// the probe that caused it.
func TestGRPCCheckRiseAndFall(t *testing.T) {
	tests := []struct {
		name, service, script, want string
	}{
		{"not serving takes the backend down after fall probes", "", "SNNN", "...D"},
		{"serving brings it back up after rise probes", "", "NNNSS", "..D.U"},
		{"a serving probe resets the failing streak", "", "NNSNNN", ".....D"},
		{"a named service is asked about", "api.v1.Users", "NNNSNSS", "..D...U"},
		{"service unknown fails like not serving", "api", "uuuS", "..D."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gate := make(chan struct{})
			be := startGRPCBackend(t, nil, gate)
			statuses := map[byte]healthpb.HealthCheckResponse_ServingStatus{
				'S': healthpb.HealthCheckResponse_SERVING,
				'N': healthpb.HealthCheckResponse_NOT_SERVING,
				'u': healthpb.HealthCheckResponse_SERVICE_UNKNOWN,
			}
			// Probe 0's status is set before the monitor starts; probe i's
			// before the test reads what probe i-1 made the monitor send,
			// which the monitor must have sent before probe i begins.
			be.health.SetServingStatus(tt.service, statuses[tt.script[0]])
			out, stop := startGRPCMonitor(t, be.URL, grpcMonitorConfig(GRPCCheck{Service: tt.service}))
			got := []byte(strings.Repeat(".", len(tt.script)))
			var last Health
			for i := 0; i <= len(tt.script); i++ {
				if i > 0 && i < len(tt.script) {
					be.health.SetServingStatus(tt.service, statuses[tt.script[i]])
				}
				// Read what probe i-1 made the monitor send, until probe i
				// has its answer (the monitor sends before it waits for
				// its next tick, and out is unbuffered).
			next:
				for {
					select {
					case h := <-out:
						if i == 0 {
							t.Fatalf("a message before the first probe: %+v", h)
						}
						got[i-1] = "DU"[btoi(h.Up)]
						last = h
					case <-gate:
						break next
					case <-time.After(10 * time.Second):
						t.Fatalf("probe %d never reached the server", i)
					}
				}
			}
			stop()
			if string(got) != tt.want {
				t.Errorf("statuses %s: transitions %s, want %s", tt.script, got, tt.want)
			}
			if !last.Up && last.Backend != nil && !strings.Contains(last.Reason, "3 consecutive failed probes, last: health probe: grpc ") {
				t.Errorf("DOWN reason %q, want the gRPC probe's error", last.Reason)
			}
		})
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestGRPCProbe calls the prober directly and checks what each answer
// means: the error's gRPC code, or its status, and that it is wrapped.
func TestGRPCProbe(t *testing.T) {
	be := startGRPCBackend(t, nil, nil)
	be.health.SetServingStatus("up", healthpb.HealthCheckResponse_SERVING)
	be.health.SetServingStatus("down", healthpb.HealthCheckResponse_NOT_SERVING)
	tests := []struct {
		name, service string
		code          codes.Code // OK: no gRPC error
		errText       string     // "" for a pass
	}{
		{"the whole server serving passes", "", codes.OK, ""},
		{"a serving service passes", "up", codes.OK, ""},
		{"a service not serving fails", "down", codes.OK, `service "down": status NOT_SERVING`},
		{"an unknown service fails with NOT_FOUND", "nobody", codes.NotFound, `service "nobody": rpc error: code = NotFound`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := probeOnce(t, be.URL, GRPCCheck{Service: tt.service}, time.Second)
			switch {
			case tt.errText == "" && err != nil:
				t.Fatalf("Probe: %v, want a pass", err)
			case tt.errText == "":
				return
			case err == nil:
				t.Fatalf("Probe passed, want %q", tt.errText)
			case !strings.HasPrefix(err.Error(), "health probe: grpc ") || !strings.Contains(err.Error(), tt.errText):
				t.Errorf("Probe: %v, want %q", err, tt.errText)
			}
			if tt.code != codes.OK && grpcstatus.Code(err) != tt.code {
				t.Errorf("code %v, want %v", grpcstatus.Code(err), tt.code)
			}
		})
	}
}

// probeOnce makes a prober of raw by c, probes once within timeout and
// closes it.
func probeOnce(t *testing.T, raw string, c GRPCCheck, timeout time.Duration) error {
	t.Helper()
	p, err := newGRPCProber(newBackend(t, raw), c, time.Second, timeout)
	if err != nil {
		t.Fatalf("newGRPCProber: %v", err)
	}
	defer p.Close()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	return p.Probe(ctx)
}

// TestGRPCProbeNoAnswer: a backend that does not answer within the
// timeout fails, whether it never completes the HTTP/2 handshake (a
// listener nobody accepts on: the kernel takes the connection, nothing
// answers), holds the call, or refuses the connection.
func TestGRPCProbeNoAnswer(t *testing.T) {
	const timeout = 200 * time.Millisecond
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { silent.Close() })
	hold := make(chan struct{}) // never sent on: every call waits for its deadline
	holding := startGRPCBackend(t, nil, hold)
	tests := []struct{ name, url, says string }{
		{"a listener that never answers", "http://" + silent.Addr().String(), "DeadlineExceeded"},
		{"a server that holds the call", holding.URL, "DeadlineExceeded"},
		{"a refused connection", "http://" + testenv.DeadAddr(t), "connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			err := probeOnce(t, tt.url, GRPCCheck{}, timeout)
			if err == nil {
				t.Fatal("Probe passed, want a failure")
			}
			if grpcstatus.Code(err) != codes.DeadlineExceeded || !strings.Contains(err.Error(), tt.says) {
				t.Errorf("Probe: %v, want DeadlineExceeded saying %q", err, tt.says)
			}
			if took := time.Since(start); took > 5*timeout {
				t.Errorf("Probe took %v, timeout %v", took, timeout)
			}
		})
	}
}

// TestGRPCCheckTLS: an https:// backend is probed over TLS, verified
// against RootCAs for the URL's host; without the right roots it fails.
func TestGRPCCheckTLS(t *testing.T) {
	ca := testcert.NewAuthority(t, "backends")
	leaf := ca.Issue("localhost", "localhost", "127.0.0.1")
	be := startGRPCBackend(t, credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{leaf.Cert}}), nil)
	if err := probeOnce(t, be.URL, GRPCCheck{RootCAs: ca.Pool()}, time.Second); err != nil {
		t.Errorf("Probe with the backends' CA: %v, want a pass", err)
	}
	other := testcert.NewAuthority(t, "other")
	err := probeOnce(t, be.URL, GRPCCheck{RootCAs: other.Pool()}, 300*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("Probe with another CA: %v, want a certificate error", err)
	}
}

// TestGRPCCheckPort: Port is probed instead of the URL's.
func TestGRPCCheckPort(t *testing.T) {
	be := startGRPCBackend(t, nil, nil)
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(be.URL, "http://"))
	n, err := strconv.Atoi(port)
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + testenv.DeadAddr(t)
	if err := probeOnce(t, dead, GRPCCheck{Port: n}, time.Second); err != nil {
		t.Errorf("Probe of a dead URL on a live port: %v, want a pass", err)
	}
}

// TestGRPCMonitorEndsItsGoroutines: once Run returns, nothing the
// monitor started (grpc-go's goroutines for its connection included) is
// left running.
func TestGRPCMonitorEndsItsGoroutines(t *testing.T) {
	gate := make(chan struct{})
	be := startGRPCBackend(t, nil, gate)
	before := goleak.IgnoreCurrent()
	_, stop := startGRPCMonitor(t, be.URL, grpcMonitorConfig(GRPCCheck{}))
	for range 2 { // the connection is up and used
		select {
		case <-gate:
		case <-time.After(10 * time.Second):
			t.Fatal("no probe reached the server")
		}
	}
	stop()
	if err := goleak.Find(before); err != nil {
		t.Errorf("after Run returned: %v", err)
	}
}

// TestGRPCCheckEqual: checks compare by contents, so a reload that reads
// the same settings again keeps the monitors.
func TestGRPCCheckEqual(t *testing.T) {
	ca := testcert.NewAuthority(t, "backends")
	a := MonitorConfig{GRPC: &GRPCCheck{Service: "x", RootCAs: ca.Pool()}}
	b := MonitorConfig{GRPC: &GRPCCheck{Service: "x", RootCAs: ca.Pool()}}
	if !sameMonitor(a, b) {
		t.Error("equal gRPC checks differ")
	}
	for name, c := range map[string]MonitorConfig{
		"no gRPC":         {},
		"another service": {GRPC: &GRPCCheck{Service: "y", RootCAs: ca.Pool()}},
		"other roots":     {GRPC: &GRPCCheck{Service: "x"}},
	} {
		if sameMonitor(a, c) {
			t.Errorf("%s: the same as %+v", name, a.GRPC)
		}
	}
}

// TestGRPCCheckFollowsARestartedBackend: the monitor's one connection
// breaks when its backend stops, the backend goes DOWN, and once a new
// server listens on the same address the monitor reconnects and brings it
// back UP.
func TestGRPCCheckFollowsARestartedBackend(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	serve := func(ln net.Listener) (stop func()) {
		srv := grpc.NewServer()
		healthpb.RegisterHealthServer(srv, health.NewServer())
		served := make(chan error, 1)
		go func() { served <- srv.Serve(ln) }()
		return sync.OnceFunc(func() {
			srv.Stop()
			if err := <-served; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
				t.Errorf("Serve: %v", err)
			}
		})
	}
	stopFirst := serve(ln)
	t.Cleanup(stopFirst)
	cfg := grpcMonitorConfig(GRPCCheck{})
	cfg.Timeout = 200 * time.Millisecond
	out, _ := startGRPCMonitor(t, "http://"+addr, cfg)
	expect := func(up bool) {
		t.Helper()
		select {
		case h := <-out:
			if h.Up != up {
				t.Fatalf("got %+v, want up=%v", h, up)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("no transition to up=%v", up)
		}
	}
	stopFirst()
	expect(false)
	again, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot listen on %s again: %v", addr, err)
	}
	t.Cleanup(serve(again))
	expect(true)
}
