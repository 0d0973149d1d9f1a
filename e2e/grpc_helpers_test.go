package e2e

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/grpclog"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"

	"github.com/roundhouse/roundhouse/internal/testcert"
	"github.com/roundhouse/roundhouse/internal/testenv"
)

// The gRPC tests' helpers: gRPC backends as processes (the grpcbackend
// command, built once), a balancer in front of them, grpc-go clients, and
// a way to run gRPC's own interop cases, which report a failure with
// grpclog's Fatal (os.Exit) rather than with an error.

// grpcBackendBuild builds internal/grpcbackend once, next to the binary
// (TestMain removes that directory), without the race detector: it is a
// test tool, not the code under test.
var grpcBackendBuild = sync.OnceValues(func() (string, error) {
	out := filepath.Join(filepath.Dir(binary), "grpcbackend")
	if b, err := exec.Command("go", "build", "-o", out, "github.com/roundhouse/roundhouse/internal/grpcbackend").CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build grpcbackend: %w\n%s", err, b)
	}
	return out, nil
})

// grpcBackend is a running grpcbackend process.
type grpcBackend struct {
	*proc
	addr string // host:port it serves on
	name string // what it sends in its "backend" response header
	tls  bool   // it serves TLS (an https:// backend), not h2c
}

// url is the backend's URL as the balancer is given it.
func (b *grpcBackend) url() string {
	if b.tls {
		return "https://" + b.addr
	}
	return "h2c://" + b.addr
}

// startGRPCBackend starts a gRPC backend named name on addr ("127.0.0.1:0"
// for any port, or a fixed address to restart one on the same port) and
// waits until it serves. It is killed, if still running, when the test ends.
func startGRPCBackend(t *testing.T, name, addr string, extra ...string) *grpcBackend {
	t.Helper()
	prog, err := grpcBackendBuild()
	if err != nil {
		t.Fatal(err)
	}
	p := startProgram(t, prog, append([]string{"--listen", addr, "--name", name}, extra...)...)
	return &grpcBackend{proc: p, addr: p.waitFor(t, listening), name: name, tls: slices.Contains(extra, "--tls-cert")}
}

// startGRPCBackends starts n gRPC backends named b1, b2, ... on free ports.
func startGRPCBackends(t *testing.T, n int, extra ...string) []*grpcBackend {
	t.Helper()
	var bs []*grpcBackend
	for i := range n {
		bs = append(bs, startGRPCBackend(t, fmt.Sprintf("b%d", i+1), "127.0.0.1:0", extra...))
	}
	return bs
}

// freeGRPCBackends starts n gRPC backends named b1, b2, ... on fixed free
// ports, so that each can be killed and restarted on its address.
func freeGRPCBackends(t *testing.T, n int, extra ...string) []*grpcBackend {
	t.Helper()
	var bs []*grpcBackend
	for i := range n {
		bs = append(bs, startGRPCBackend(t, fmt.Sprintf("b%d", i+1), testenv.FreeAddr(t), extra...))
	}
	return bs
}

// grpcHealthArgs make the balancer check its gRPC backends with
// grpc.health.v1.Health/Check, often, and change state on one probe.
var grpcHealthArgs = []string{"--health-grpc", "--health-interval", "100ms", "--rise", "1", "--fall", "1"}

// startGRPCBalancer runs the balancer on a free port with the backends (as
// h2c:// backends, or https:// for TLS ones), grpcHealthArgs and args, and
// returns it with its address.
func startGRPCBalancer(t *testing.T, backends []*grpcBackend, args ...string) (*proc, string) {
	t.Helper()
	all := []string{"--listen", "127.0.0.1:0"}
	for _, b := range backends {
		all = append(all, "--backend", b.url())
	}
	all = append(append(all, grpcHealthArgs...), args...)
	lb := start(t, all...)
	return lb, lb.waitFor(t, listening)
}

// dialGRPC returns a grpc-go client of addr, over h2c when ca is nil, else
// over TLS (HTTP/2 by ALPN) verifying the server against ca. The client is
// closed when the test ends.
func dialGRPC(t *testing.T, addr string, ca *testcert.Authority, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	creds := insecure.NewCredentials()
	if ca != nil {
		creds = credentials.NewTLS(&tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS12})
	}
	cc, err := grpc.NewClient("passthrough:///"+addr, append([]grpc.DialOption{grpc.WithTransportCredentials(creds)}, opts...)...)
	if err != nil {
		t.Fatalf("grpc.NewClient(%s): %v", addr, err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// testClient is dialGRPC's connection as an interop TestService client.
func testClient(t *testing.T, addr string, ca *testcert.Authority) (*grpc.ClientConn, testgrpc.TestServiceClient) {
	t.Helper()
	cc := dialGRPC(t, addr, ca)
	return cc, testgrpc.NewTestServiceClient(cc)
}

// interopFatal carries the message of a grpclog Fatal call, which gRPC's
// interop cases make when they fail, from interopLogger to runInterop.
var interopFatal = make(chan string, 1)

// interopLogger is grpc-go's logger in this test binary: it drops
// everything but Fatal calls, whose message it hands to runInterop before
// ending the calling goroutine with runtime.Goexit, so that grpclog never
// reaches its os.Exit. Only runInterop's goroutines call Fatal.
type interopLogger struct{}

func init() { grpclog.SetLoggerV2(interopLogger{}) }

func (interopLogger) Info(...any)                    {}
func (interopLogger) Infoln(...any)                  {}
func (interopLogger) Infof(string, ...any)           {}
func (interopLogger) Warning(...any)                 {}
func (interopLogger) Warningln(...any)               {}
func (interopLogger) Warningf(string, ...any)        {}
func (interopLogger) Error(...any)                   {}
func (interopLogger) Errorln(...any)                 {}
func (interopLogger) Errorf(string, ...any)          {}
func (interopLogger) V(int) bool                     { return false }
func (interopLogger) InfoDepth(int, ...any)          {}
func (interopLogger) WarningDepth(int, ...any)       {}
func (interopLogger) ErrorDepth(int, ...any)         {}
func (l interopLogger) Fatal(args ...any)            { l.fatal(fmt.Sprint(args...)) }
func (l interopLogger) Fatalln(args ...any)          { l.fatal(fmt.Sprintln(args...)) }
func (l interopLogger) Fatalf(f string, args ...any) { l.fatal(fmt.Sprintf(f, args...)) }
func (l interopLogger) FatalDepth(_ int, args ...any) {
	l.fatal(fmt.Sprint(args...))
}

func (interopLogger) fatal(msg string) {
	select {
	case interopFatal <- strings.TrimSpace(msg):
	default: // a message is already waiting: the first one counts
	}
	runtime.Goexit()
}

// runInterop runs one of gRPC's interop cases, which ends the goroutine
// with a grpclog Fatal when it fails, and returns nil if it passed, its
// message if it failed, or an error if it did not end within d (its
// goroutine is then left running, and goleak will say so).
func runInterop(d time.Duration, fn func()) error {
	select { // a stale message from an earlier case
	case <-interopFatal:
	default:
	}
	passed := make(chan bool, 1)
	go func() { // ends when fn returns, or ends it with Goexit
		ok := false
		defer func() { passed <- ok }()
		fn()
		ok = true
	}()
	select {
	case ok := <-passed:
		if ok {
			return nil
		}
		select {
		case msg := <-interopFatal:
			return errors.New(msg)
		default:
			return errors.New("the case ended its goroutine without a message")
		}
	case <-time.After(d):
		return fmt.Errorf("did not end within %v", d)
	}
}

// callCtx is a context for one call or exchange of a test: d long, and
// cancelled when the test ends.
func callCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
