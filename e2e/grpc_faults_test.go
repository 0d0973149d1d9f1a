package e2e

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	mathrand "math/rand/v2"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"

	"github.com/roundhouse/roundhouse/internal/testenv"
)

var grpcChaosDuration = flag.Duration("grpcchaos.duration", 0,
	"how long TestGRPCBackendKilledUnderLoad kills backends (default 4s, or $ROUNDHOUSE_GRPC_CHAOS_DURATION)")

// awaitBackendUp waits until the balancer has logged, for backend addr,
// as many "backend up" lines as "backend down" lines (every DOWN it saw
// has been followed by an UP; none if it never noticed a DOWN).
func awaitBackendUp(t *testing.T, lb *proc, addr string) {
	t.Helper()
	lb.waitUntil(t, "backend h2c://"+addr+" UP", func(out string) bool {
		return strings.Count(out, "backend up: backend=h2c://"+addr) >=
			strings.Count(out, "backend down: backend=h2c://"+addr)
	})
}

// pinnedStream is a FullDuplexCall stream that has made one exchange, and
// the backend that serves it.
type pinnedStream struct {
	s       testgrpc.TestService_FullDuplexCallClient
	backend string
	cancel  context.CancelFunc
}

// openStream opens a FullDuplexCall stream bounded by d, makes one
// exchange on it and returns it with its backend.
func openStream(t *testing.T, tc testgrpc.TestServiceClient, d time.Duration) pinnedStream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	s, err := tc.FullDuplexCall(ctx)
	if err != nil {
		t.Fatalf("FullDuplexCall: %v", err)
	}
	if err := exchange(s); err != nil {
		t.Fatalf("first exchange on a new stream: %v", err)
	}
	md, err := s.Header()
	if err != nil || len(md.Get("backend")) == 0 {
		t.Fatalf("stream headers %v, %v: no backend named", md, err)
	}
	return pinnedStream{s: s, backend: md.Get("backend")[0], cancel: cancel}
}

// exchange sends one message on s and reads the answer.
func exchange(s testgrpc.TestService_FullDuplexCallClient) error {
	if err := s.Send(&testgrpc.StreamingOutputCallRequest{
		ResponseParameters: []*testgrpc.ResponseParameters{{Size: 16}},
	}); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	resp, err := s.Recv()
	if err != nil {
		return fmt.Errorf("recv: %w", err)
	}
	if n := len(resp.GetPayload().GetBody()); n != 16 {
		return fmt.Errorf("recv: payload of %d bytes, want 16", n)
	}
	return nil
}

// closeStream ends s cleanly: the client half-closes and the server's
// status must be OK.
func closeStream(s pinnedStream) error {
	defer s.cancel()
	if err := s.s.CloseSend(); err != nil {
		return err
	}
	if _, err := s.s.Recv(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("stream on %s ended with %v, want OK", s.backend, err)
	}
	return nil
}

// TestGRPCBackendKilledUnderLoad runs three gRPC backends as processes
// behind the balancer, and 32 concurrent unary callers through it (one
// HTTP/2 connection, many streams), while a loop kill -9's a backend,
// checks the streams that were open on it, restarts it on its address
// and waits for the balancer to see it UP again, never killing the last
// one alive.
//
//   - Unary calls: a call may fail only if it was in flight at a kill
//     (between the SIGKILL and the process's end, the call had started
//     and not ended), and then only with UNAVAILABLE: the backend may have
//     run it, so the balancer cannot resend it. Every other call must
//     pass: a call sent to a dead backend's address is refused before
//     anything is sent, and is retried on another backend.
//   - Streams: the bidirectional streams open on the victim (one exchange
//     made) must end with UNAVAILABLE within 10 s of the kill, never hang;
//     streams on the other backends go on and end cleanly.
func TestGRPCBackendKilledUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos test skipped in -short mode")
	}
	duration := testenv.Duration(t, grpcChaosDuration, "ROUNDHOUSE_GRPC_CHAOS_DURATION", 4*time.Second)
	backends := freeGRPCBackends(t, 3)
	lb, addr := startGRPCBalancer(t, backends, "--h2c", "--retries", "3")
	_, tc := testClient(t, addr, nil)
	load := startUnaryLoad(t, tc, 32, 10*time.Second)
	load.awaitCalls(t, 100, 20*time.Second)

	type window struct{ from, to time.Time } // a kill: SIGKILL sent, process gone
	var kills []window
	var streamsChecked int
	alive := []bool{true, true, true}
	end := time.Now().Add(duration)
	for round := 0; time.Now().Before(end); round++ {
		i := mathrand.IntN(len(backends))
		if !alive[i] {
			backends[i] = startGRPCBackend(t, backends[i].name, backends[i].addr)
			awaitBackendUp(t, lb, backends[i].addr)
			alive[i] = true
			load.awaitCalls(t, 50, 20*time.Second)
			continue
		}
		if countTrue(alive) < 2 {
			continue
		}
		// Six streams; the victim is a backend alive with some of them
		// (one the balancer has ejected after an earlier kill gets none,
		// and a backend it has not seen back cannot be chosen either).
		// The streams on the others are closed at once.
		var opened []pinnedStream
		for range 6 {
			opened = append(opened, openStream(t, tc, 15*time.Second))
		}
		var candidates []int
		for j, b := range backends {
			if alive[j] && slices.ContainsFunc(opened, func(s pinnedStream) bool { return s.backend == b.name }) {
				candidates = append(candidates, j)
			}
		}
		victim := (*grpcBackend)(nil)
		if len(candidates) > 0 {
			i = candidates[mathrand.IntN(len(candidates))]
			victim = backends[i]
		}
		var pinned []pinnedStream
		for _, s := range opened {
			if victim != nil && s.backend == victim.name {
				pinned = append(pinned, s)
			} else if err := closeStream(s); err != nil {
				t.Error(err)
			}
		}
		if victim == nil {
			continue
		}
		w := window{from: time.Now()}
		victim.signal(t, os.Kill)
		victim.wait(t)
		w.to = time.Now()
		kills = append(kills, w)
		alive[i] = false
		for _, s := range pinned {
			_, err := s.s.Recv()
			took := time.Since(w.to)
			if status.Code(err) != codes.Unavailable || took > 10*time.Second {
				t.Errorf("a stream on the killed backend %s ended with %v after %v, want UNAVAILABLE within 10 s", victim.name, err, took)
			}
			s.cancel()
			streamsChecked++
		}
		load.awaitCalls(t, 50, 20*time.Second)
	}
	load.stop()

	calls := load.results()
	excused := 0
	for _, c := range calls {
		if c.err == nil {
			continue
		}
		inFlight := false
		for _, k := range kills {
			if !c.start.After(k.to) && !c.end.Before(k.from) {
				inFlight = true
			}
		}
		switch {
		case inFlight && c.code == codes.Unavailable:
			excused++
		case inFlight:
			t.Errorf("a call in flight at a kill failed with %v, want UNAVAILABLE", c.err)
		default:
			t.Errorf("a call that no kill caught failed after %v: %v", c.end.Sub(c.start), c.err)
		}
	}
	t.Logf("%d kills; %s; %d failed calls were in flight at a kill (UNAVAILABLE, cannot be resent); %d streams on killed backends ended with UNAVAILABLE",
		len(kills), summary(calls), excused, streamsChecked)
	if len(kills) == 0 {
		t.Error("the loop killed nothing")
	}

	if t.Failed() {
		t.Logf("balancer's output (errors):\n%s", grepLines(lb.output(), "grpc_status=14", "grpc_status=13", "grpc_status=2 ", "status=5", "backend down", "backend up", "ERROR", "WARN"))
	}
}

// grepLines returns the lines of out that contain any of subs.
func grepLines(out string, subs ...string) string {
	var lines []string
	for l := range strings.SplitSeq(out, "\n") {
		for _, s := range subs {
			if strings.Contains(l, s) {
				lines = append(lines, l)
				break
			}
		}
	}
	return strings.Join(lines, "\n")
}

// TestGRPCBackendSendingGOAWAYUnderLoadLosesNothing runs three backends
// that send GOAWAY on every connection 300 ms old (keepalive
// MaxConnectionAge, as a backend draining its connections does), under 32
// concurrent unary callers for 3 s: no call may fail. The balancer must
// open new connections and send no new stream on a connection that said
// GOAWAY, and resend any stream the backend refused.
func TestGRPCBackendSendingGOAWAYUnderLoadLosesNothing(t *testing.T) {
	backends := startGRPCBackends(t, 3, "--max-connection-age", "300ms")
	lb, addr := startGRPCBalancer(t, backends, "--h2c")
	_, tc := testClient(t, addr, nil)
	load := startUnaryLoad(t, tc, 32, 10*time.Second)
	// Also streams that outlive a connection's age: they finish on the
	// old connection within its grace.
	for range 3 {
		s := openStream(t, tc, 20*time.Second)
		if err := exchange(s.s); err != nil {
			t.Errorf("second exchange on a stream: %v", err)
		}
		if err := closeStream(s); err != nil {
			t.Error(err)
		}
	}
	// 3 s is ten connection ages on each backend.
	<-time.After(3 * time.Second)
	load.stop()
	calls := load.results()
	failed := 0
	for _, c := range calls {
		if c.err != nil {
			failed++
			if failed <= 10 {
				t.Errorf("call failed after %v: %v", c.end.Sub(c.start), c.err)
			}
		}
	}
	t.Logf("%s", summary(calls))
	if len(calls) < 100 {
		t.Errorf("only %d calls in 3 s", len(calls))
	}
	if t.Failed() {
		t.Logf("balancer's output (errors):\n%s", grepLines(lb.output(), "grpc_status=14", "grpc_status=13", "grpc_status=2 ", "status=5", "ERROR", "WARN", "error", "attempts="))
	}
}

// grpcPing is the ping bound the black-hole test configures: a silent
// backend connection is pinged after grpcPing and closed when the ping is
// not answered within grpcPing more.
const grpcPing = 500 * time.Millisecond

// TestGRPCBlackHoledBackendIsFoundByPings stops one of three backends with
// SIGSTOP (its connections stay open, its kernel still accepts new ones,
// nothing answers) under 16 concurrent unary callers, with
// --backend-h2-ping 500ms and gRPC health checks of 300 ms timeout:
//
//   - no call hangs: every call ends within twice the ping time (plus
//     1 s of slack for the race detector), long before its 10 s deadline;
//   - calls in flight on the stopped backend fail with UNAVAILABLE (it
//     may have run them) and no other way;
//   - once the bound has passed (two ping times, then a health check's
//     interval and timeout, plus 1 s), every call passes, on the others.
//
// The backend is resumed with SIGCONT at the end, and comes back UP.
func TestGRPCBlackHoledBackendIsFoundByPings(t *testing.T) {
	backends := startGRPCBackends(t, 3)
	lb, addr := startGRPCBalancer(t, backends, "--h2c", "--backend-h2-ping", grpcPing.String(),
		"--health-timeout", "300ms", "--retries", "3")
	_, tc := testClient(t, addr, nil)
	load := startUnaryLoad(t, tc, 16, 10*time.Second)
	load.awaitCalls(t, 200, 20*time.Second)

	victim := backends[1]
	stoppedAt := time.Now()
	victim.signal(t, syscall.SIGSTOP)
	resumed := false
	resume := func() {
		if !resumed {
			victim.signal(t, syscall.SIGCONT)
			resumed = true
		}
	}
	t.Cleanup(resume)
	lb.waitFor(t, "backend down: backend=h2c://"+victim.addr)
	downAfter := time.Since(stoppedAt)
	bound := 2*grpcPing + 100*time.Millisecond + 300*time.Millisecond + time.Second
	<-time.After(max(0, bound-time.Since(stoppedAt)) + time.Second) // then a second of calls after the bound
	load.stop()
	resume()
	awaitBackendUp(t, lb, victim.addr)

	calls := load.results()
	var failedInFlight, afterBound int
	for _, c := range calls {
		if took := c.end.Sub(c.start); took > 2*grpcPing+time.Second {
			t.Errorf("a call took %v (%v), more than twice the ping time and 1 s", took, c.err)
		}
		switch {
		case c.start.After(stoppedAt.Add(bound)):
			afterBound++
			if c.err != nil {
				t.Errorf("a call started %v after the SIGSTOP (bound %v) failed: %v", c.start.Sub(stoppedAt), bound, c.err)
			} else if c.backend == victim.name {
				t.Errorf("a call started %v after the SIGSTOP was served by the stopped backend", c.start.Sub(stoppedAt))
			}
		case c.err != nil && c.code == codes.Unavailable:
			failedInFlight++
		case c.err != nil:
			t.Errorf("a call around the SIGSTOP failed with %v, want UNAVAILABLE", c.err)
		}
	}
	t.Logf("%s; stopped backend DOWN after %v; %d calls failed with UNAVAILABLE before the bound (%v), %d calls after it",
		summary(calls), downAfter.Round(time.Millisecond), failedInFlight, bound, afterBound)
	if afterBound < 50 {
		t.Errorf("only %d calls after the bound", afterBound)
	}
	if t.Failed() {
		t.Logf("balancer's output (errors):\n%s", grepLines(lb.output(), "grpc_status=14", "grpc_status=13", "grpc_status=2 ", "status=5", "backend down", "backend up", "ERROR", "WARN"))
	}
	// A call on a fresh client after the resumption reaches every backend
	// again (the balancer sees the resumed one UP).
	_, tc2 := testClient(t, addr, nil)
	seen := map[string]bool{}
	for i := 0; len(seen) < 3 && i < 60; i++ {
		if c := unaryOnce(context.Background(), tc2, 10*time.Second); c.err != nil {
			t.Fatalf("call after SIGCONT: %v", c.err)
		} else {
			seen[c.backend] = true
		}
	}
	if !seen[victim.name] {
		t.Errorf("after SIGCONT, 60 calls never reached %s: %v", victim.name, seen)
	}
}
