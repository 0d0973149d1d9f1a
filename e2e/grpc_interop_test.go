package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/interop"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"

	"github.com/roundhouse/roundhouse/internal/testcert"
	"github.com/roundhouse/roundhouse/internal/testenv"
)

// interopCases are the cases of gRPC's interop suite
// (https://github.com/grpc/grpc/blob/master/doc/interop-test-descriptions.md)
// that a proxy must pass, as grpc-go's interop client runs them.
var interopCases = []struct {
	name string
	run  func(ctx context.Context, cc *grpc.ClientConn, tc testgrpc.TestServiceClient)
}{
	{"empty_unary", func(ctx context.Context, _ *grpc.ClientConn, tc testgrpc.TestServiceClient) {
		interop.DoEmptyUnaryCall(ctx, tc)
	}},
	{"large_unary", func(ctx context.Context, _ *grpc.ClientConn, tc testgrpc.TestServiceClient) {
		interop.DoLargeUnaryCall(ctx, tc)
	}},
	{"client_streaming", func(ctx context.Context, _ *grpc.ClientConn, tc testgrpc.TestServiceClient) {
		interop.DoClientStreaming(ctx, tc)
	}},
	{"server_streaming", func(ctx context.Context, _ *grpc.ClientConn, tc testgrpc.TestServiceClient) {
		interop.DoServerStreaming(ctx, tc)
	}},
	{"ping_pong", func(ctx context.Context, _ *grpc.ClientConn, tc testgrpc.TestServiceClient) {
		interop.DoPingPong(ctx, tc)
	}},
	{"empty_stream", func(ctx context.Context, _ *grpc.ClientConn, tc testgrpc.TestServiceClient) {
		interop.DoEmptyStream(ctx, tc)
	}},
	{"timeout_on_sleeping_server", func(ctx context.Context, _ *grpc.ClientConn, tc testgrpc.TestServiceClient) {
		interop.DoTimeoutOnSleepingServer(ctx, tc)
	}},
	{"cancel_after_begin", func(ctx context.Context, _ *grpc.ClientConn, tc testgrpc.TestServiceClient) {
		interop.DoCancelAfterBegin(ctx, tc)
	}},
	{"cancel_after_first_response", func(ctx context.Context, _ *grpc.ClientConn, tc testgrpc.TestServiceClient) {
		interop.DoCancelAfterFirstResponse(ctx, tc)
	}},
	{"status_code_and_message", func(ctx context.Context, _ *grpc.ClientConn, tc testgrpc.TestServiceClient) {
		interop.DoStatusCodeAndMessage(ctx, tc)
	}},
	{"special_status_message", func(ctx context.Context, _ *grpc.ClientConn, tc testgrpc.TestServiceClient) {
		interop.DoSpecialStatusMessage(ctx, tc)
	}},
	{"custom_metadata", func(ctx context.Context, _ *grpc.ClientConn, tc testgrpc.TestServiceClient) {
		interop.DoCustomMetadata(ctx, tc)
	}},
	{"unimplemented_method", func(ctx context.Context, cc *grpc.ClientConn, _ testgrpc.TestServiceClient) {
		interop.DoUnimplementedMethod(ctx, cc)
	}},
}

// TestGRPCInteropThroughTheBalancer runs gRPC's own interop cases with
// grpc-go's client against three grpc-go interop servers behind the
// balancer as h2c:// backends: the client speaks h2c to the balancer
// (--h2c), then TLS with HTTP/2 (--tls-cert). Each case runs three times
// in a row, so that every backend serves it (round-robin). A last run
// puts three TLS interop servers behind the balancer as https:// backends
// (HTTP/2 by ALPN, verified with --backend-ca, gRPC health checks over
// TLS), the client speaking h2c. The log ends with a case-by-case table.
func TestGRPCInteropThroughTheBalancer(t *testing.T) {
	dir := t.TempDir()
	ca := testcert.NewAuthority(t, "test CA")
	certFile, keyFile := ca.Issue("lb", "127.0.0.1").WriteFiles(t, dir)
	backendCA := testcert.NewAuthority(t, "backend CA")
	caFile := filepath.Join(dir, "backend-ca.pem")
	if err := os.WriteFile(caFile, backendCA.PEM, 0o600); err != nil {
		t.Fatal(err)
	}
	bCert, bKey := backendCA.Issue("backend", "127.0.0.1").WriteFiles(t, t.TempDir())
	h2cBackends := startGRPCBackends(t, 3)
	tlsBackends := startGRPCBackends(t, 3, "--tls-cert", bCert, "--tls-key", bKey)
	modes := []struct {
		name     string
		args     []string // the balancer's; nil: no balancer
		ca       *testcert.Authority
		backends []*grpcBackend
	}{
		{"direct", nil, nil, h2cBackends}, // the control: the client calls a backend itself
		{"h2c", []string{"--h2c"}, nil, h2cBackends},
		{"tls", []string{"--tls-cert", certFile, "--tls-key", keyFile}, ca, h2cBackends},
		{"https-backends", []string{"--h2c", "--backend-ca", caFile}, nil, tlsBackends},
	}
	results := map[string]map[string]string{} // case -> mode -> PASS or FAIL
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			backends := m.backends
			var lb *proc
			addr := backends[0].addr
			if m.args != nil {
				lb, addr = startGRPCBalancer(t, backends, m.args...)
			}
			cc, tc := testClient(t, addr, m.ca)
			for _, c := range interopCases {
				t.Run(c.name, func(t *testing.T) {
					if results[c.name] == nil {
						results[c.name] = map[string]string{}
					}
					results[c.name][m.name] = "FAIL"
					for i := range len(backends) {
						ctx := callCtx(t, 20*time.Second)
						if err := runInterop(30*time.Second, func() { c.run(ctx, cc, tc) }); err != nil {
							t.Fatalf("run %d: %v", i+1, err)
						}
					}
					results[c.name][m.name] = "PASS"
				})
			}
			if lb == nil {
				return
			}
			for _, b := range backends { // round-robin: every backend served some
				if !strings.Contains(lb.output(), "backend="+b.url()+" ") {
					t.Errorf("no call reached backend %s", b.addr)
				}
			}
			if t.Failed() {
				t.Logf("balancer's output:\n%s", lb.output())
			}
			lb.stop(t)
		})
	}
	var table strings.Builder
	table.WriteString("\n| case | direct (control) | h2c | TLS (h2) | h2c, https:// backends |\n|---|---|---|---|---|\n")
	for _, c := range interopCases {
		r := results[c.name]
		fmt.Fprintf(&table, "| %s | %s | %s | %s | %s |\n", c.name, or(r["direct"], "not run"), or(r["h2c"], "not run"),
			or(r["tls"], "not run"), or(r["https-backends"], "not run"))
	}
	t.Log(table.String())
}

// or returns s, or def when s is empty.
func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// TestGRPCInteropHarnessSeesAFailure checks runInterop itself: a case that
// fails (here, against an address where nothing listens) is reported as
// failed, with the interop client's message, instead of exiting the test
// binary.
func TestGRPCInteropHarnessSeesAFailure(t *testing.T) {
	_, tc := testClient(t, testenv.DeadAddr(t), nil)
	ctx := callCtx(t, 10*time.Second)
	err := runInterop(20*time.Second, func() { interop.DoEmptyUnaryCall(ctx, tc) })
	if err == nil || !strings.Contains(err.Error(), "EmptyCall") {
		t.Fatalf("runInterop = %v, want the failure of EmptyCall", err)
	}
	t.Logf("reported: %v", err)
}
