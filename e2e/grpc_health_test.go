package e2e

import (
	"context"
	"syscall"
	"testing"
	"time"
)

// TestGRPCHealthNotServingGoesDownAndServingComesBack checks the balancer's
// gRPC health checks (--health-grpc) against real grpc-go health servers:
// a backend whose health service says NOT_SERVING is logged "backend
// down" and gets no calls; once it says SERVING again it is logged
// "backend up" and gets calls again.
func TestGRPCHealthNotServingGoesDownAndServingComesBack(t *testing.T) {
	backends := startGRPCBackends(t, 3)
	lb, addr := startGRPCBalancer(t, backends, "--h2c")
	_, tc := testClient(t, addr, nil)
	victim := backends[1]

	victim.signal(t, syscall.SIGUSR1)
	victim.waitFor(t, "health: NOT_SERVING")
	down := lb.waitFor(t, `backend down: backend=h2c://`+victim.addr+`.*`)
	t.Logf("balancer: %s", down)
	for i := range 30 {
		c := unaryOnce(context.Background(), tc, 10*time.Second)
		if c.err != nil {
			t.Fatalf("call %d with %s DOWN: %v", i, victim.name, c.err)
		}
		if c.backend == victim.name {
			t.Fatalf("call %d went to %s, which is DOWN", i, victim.name)
		}
	}

	victim.signal(t, syscall.SIGUSR2)
	victim.waitFor(t, "health: SERVING")
	lb.waitFor(t, `backend up: backend=h2c://`+victim.addr)
	served := false
	for i := 0; i < 30 && !served; i++ {
		c := unaryOnce(context.Background(), tc, 10*time.Second)
		if c.err != nil {
			t.Fatalf("call %d after %s came back: %v", i, victim.name, c.err)
		}
		served = c.backend == victim.name
	}
	if !served {
		t.Errorf("30 calls after %s came back UP, none went to it", victim.name)
	}
	lb.stop(t)
}
