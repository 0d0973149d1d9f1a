package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"

	"github.com/roundhouse/roundhouse/internal/testenv"
)

// TestGRPCBalancerErrorsDecodeAsGRPCCodes checks that the balancer's own
// errors reach a real grpc-go client as gRPC statuses (trailers-only
// responses), with the balancer's reason as the message, and never as
// "unexpected HTTP status code":
//
//   - the only backend refuses connections: UNAVAILABLE;
//   - no healthy backend: UNAVAILABLE;
//   - every backend busy (its --max-conns-per-backend reached, no queue):
//     RESOURCE_EXHAUSTED;
//   - the client's rate limit: RESOURCE_EXHAUSTED;
//   - the request timeout: DEADLINE_EXCEEDED;
//   - no route for the call: UNIMPLEMENTED (no such service here).
func TestGRPCBalancerErrorsDecodeAsGRPCCodes(t *testing.T) {
	backends := startGRPCBackends(t, 1)
	check := func(t *testing.T, err error, want codes.Code) {
		t.Helper()
		st, _ := status.FromError(err)
		switch {
		case st.Code() != want:
			t.Errorf("status %v, want %v", err, want)
		case strings.Contains(st.Message(), "HTTP status"), st.Message() == "":
			t.Errorf("status %v: the message is not the balancer's", err)
		default:
			t.Logf("%v: %q", st.Code(), st.Message())
		}
	}

	t.Run("backend failed", func(t *testing.T) {
		dead := &grpcBackend{addr: testenv.DeadAddr(t), name: "dead"}
		_, addr := startGRPCBalancer(t, []*grpcBackend{dead}, "--h2c", "--health-interval", "1h")
		_, tc := testClient(t, addr, nil)
		c := unaryOnce(context.Background(), tc, 10*time.Second)
		check(t, c.err, codes.Unavailable)
	})

	t.Run("no healthy backend", func(t *testing.T) {
		dead := &grpcBackend{addr: testenv.DeadAddr(t), name: "dead"}
		lb, addr := startGRPCBalancer(t, []*grpcBackend{dead}, "--h2c")
		lb.waitFor(t, "backend down: backend=h2c://"+dead.addr)
		_, tc := testClient(t, addr, nil)
		c := unaryOnce(context.Background(), tc, 10*time.Second)
		check(t, c.err, codes.Unavailable)
	})

	t.Run("every backend busy", func(t *testing.T) {
		_, addr := startGRPCBalancer(t, backends, "--h2c", "--max-conns-per-backend", "1", "--queue-size", "0")
		_, tc := testClient(t, addr, nil)
		s := openStream(t, tc, 10*time.Second) // holds the backend's one slot
		c := unaryOnce(context.Background(), tc, 10*time.Second)
		check(t, c.err, codes.ResourceExhausted)
		if err := closeStream(s); err != nil {
			t.Error(err)
		}
	})

	t.Run("rate limit", func(t *testing.T) {
		_, addr := startGRPCBalancer(t, backends, "--h2c", "--rate-limit", "1/m", "--rate-burst", "1")
		_, tc := testClient(t, addr, nil)
		if c := unaryOnce(context.Background(), tc, 10*time.Second); c.err != nil {
			t.Fatalf("first call: %v", c.err)
		}
		c := unaryOnce(context.Background(), tc, 10*time.Second)
		check(t, c.err, codes.ResourceExhausted)
	})

	t.Run("request timeout", func(t *testing.T) {
		_, addr := startGRPCBalancer(t, backends, "--h2c", "--request-timeout", "300ms")
		_, tc := testClient(t, addr, nil)
		// A server stream whose first message comes after 5 s: the
		// balancer gives up at 300 ms, long before the client's 10 s.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s, err := tc.StreamingOutputCall(ctx, &testgrpc.StreamingOutputCallRequest{
			ResponseParameters: []*testgrpc.ResponseParameters{{Size: 8, IntervalUs: 5_000_000}},
		})
		if err == nil {
			_, err = s.Recv()
		}
		check(t, err, codes.DeadlineExceeded)
	})

	t.Run("no route", func(t *testing.T) {
		file := writeConfig(t, `route "other" {
  path_prefix = "/other.Service/"
  pool        = "default"
}
`)
		_, addr := startGRPCBalancer(t, backends, "--h2c", "--config", file)
		_, tc := testClient(t, addr, nil)
		c := unaryOnce(context.Background(), tc, 10*time.Second)
		check(t, c.err, codes.Unimplemented)
	})
}
