package e2e

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// A unary gRPC load for the fault tests: workers calling
// TestService/UnaryCall, each call checked (the response's payload has
// the size asked for) and recorded with its times, its gRPC code and the
// backend that answered (its "backend" response header).

// unaryCall is one call of a unaryLoad.
type unaryCall struct {
	start, end time.Time
	code       codes.Code
	err        error  // nil when it passed its checks
	backend    string // the answering backend's name; "" when none answered
}

// unaryLoad is a unary gRPC load in progress.
type unaryLoad struct {
	workers sync.WaitGroup // the load's goroutines; wait ends them
	cancel  context.CancelFunc
	mu      sync.Mutex    // guards calls and grew (a test helper may lock)
	calls   []unaryCall   // every call ended so far
	grew    chan struct{} // closed and replaced whenever calls grows
}

// startUnaryLoad starts n workers calling tc.UnaryCall back to back, each
// call bounded by perCall, until stop. Its goroutines end by stop, which
// the test must call (a t.Cleanup does, too).
func startUnaryLoad(t *testing.T, tc testgrpc.TestServiceClient, n int, perCall time.Duration) *unaryLoad {
	ctx, cancel := context.WithCancel(context.Background())
	l := &unaryLoad{cancel: cancel, grew: make(chan struct{})}
	for range n {
		l.workers.Go(func() { // ends when ctx does
			for ctx.Err() == nil {
				c := unaryOnce(ctx, tc, perCall)
				if ctx.Err() != nil && c.err != nil {
					return // cut short by stop: neither a pass nor a failure
				}
				l.mu.Lock()
				l.calls = append(l.calls, c)
				close(l.grew)
				l.grew = make(chan struct{})
				l.mu.Unlock()
			}
		})
	}
	t.Cleanup(l.stop)
	return l
}

// unaryOnce makes one checked UnaryCall within d.
func unaryOnce(ctx context.Context, tc testgrpc.TestServiceClient, d time.Duration) unaryCall {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	const size = 512
	var md metadata.MD
	c := unaryCall{start: time.Now()}
	resp, err := tc.UnaryCall(ctx, &testgrpc.SimpleRequest{
		ResponseType: testgrpc.PayloadType_COMPRESSABLE,
		ResponseSize: size,
		Payload:      &testgrpc.Payload{Body: bytes.Repeat([]byte{'x'}, 256)},
	}, grpc.Header(&md))
	c.end = time.Now()
	if v := md.Get("backend"); len(v) > 0 {
		c.backend = v[0]
	}
	c.code = status.Code(err)
	switch {
	case err != nil:
		c.err = err
	case len(resp.GetPayload().GetBody()) != size:
		c.err = fmt.Errorf("payload of %d bytes, want %d", len(resp.GetPayload().GetBody()), size)
		c.code = codes.DataLoss // the test's mark for a wrong answer
	}
	return c
}

// stop ends the load and waits for its workers. It may be called again.
func (l *unaryLoad) stop() {
	l.cancel()
	l.workers.Wait()
}

// awaitCalls waits up to d until n more calls than now have ended.
func (l *unaryLoad) awaitCalls(t *testing.T, n int, d time.Duration) {
	t.Helper()
	l.mu.Lock()
	want := len(l.calls) + n
	l.mu.Unlock()
	deadline := time.After(d)
	for {
		l.mu.Lock()
		got, grew := len(l.calls), l.grew
		l.mu.Unlock()
		if got >= want {
			return
		}
		select {
		case <-grew:
		case <-deadline:
			t.Fatalf("the load made %d calls in %v, want %d", got-want+n, d, n)
		}
	}
}

// results returns the calls so far.
func (l *unaryLoad) results() []unaryCall {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]unaryCall(nil), l.calls...)
}

// summary describes calls for the test's log: how many, how many failed,
// the failures by code, the calls by backend, and the longest call.
func summary(calls []unaryCall) string {
	failed, byCode, byBackend := 0, map[string]int{}, map[string]int{}
	var longest time.Duration
	for _, c := range calls {
		if c.err != nil {
			failed++
			byCode[c.code.String()]++
		} else {
			byBackend[c.backend]++
		}
		longest = max(longest, c.end.Sub(c.start))
	}
	return fmt.Sprintf("%d calls, %d failed %s; served by %s; longest %v",
		len(calls), failed, sortedCounts(byCode), sortedCounts(byBackend), longest.Round(time.Millisecond))
}

// sortedCounts formats counts as {k1:n1 k2:n2}, keys sorted.
func sortedCounts(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s:%d", k, m[k]))
	}
	return "{" + strings.Join(parts, " ") + "}"
}
