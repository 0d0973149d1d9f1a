//go:build racelab

package racelab

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os/exec"
	"strings"
	"testing"

	"github.com/sourcegraph/conc"
	"go.uber.org/goleak"

	"github.com/roundhouse/roundhouse/actors"
)

// TestMain fails the package's tests if any goroutine outlives them.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var backends = []string{"a", "b", "c"}

// Each of clients goroutines sends requestsEach requests, so the picks
// divide evenly among the three backends.
const (
	clients      = 8
	requestsEach = 30
)

// hammer serves h on a real listener and sends it requests from many
// clients at once. net/http serves each client connection on its own
// goroutine, so h runs on many goroutines in parallel. It returns how many
// answers named each backend.
func hammer(t *testing.T, h http.Handler) map[string]int {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	answers := make(chan string, clients*requestsEach)
	var wg conc.WaitGroup
	for range clients {
		wg.Go(func() {
			for range requestsEach {
				resp, err := srv.Client().Get(srv.URL)
				if err != nil {
					t.Errorf("GET: %v", err)
					return
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil {
					t.Errorf("read body: %v", err)
					return
				}
				answers <- strings.TrimSpace(string(body))
			}
		})
	}
	wg.Wait()
	close(answers)
	counts := map[string]int{}
	for b := range answers {
		counts[b]++
	}
	return counts
}

// TestBrokenRoundRobin runs the racy balancer under load. It asserts
// nothing itself: run with -race, the race detector fails it. Without
// -race it is skipped, since then it proves nothing and the racy map could
// even crash the test binary ("fatal error: concurrent map writes").
func TestBrokenRoundRobin(t *testing.T) {
	if !raceDetector {
		t.Skip("run with -race: go test -race -tags racelab ./racelab/")
	}
	lb := NewBrokenBalancer(backends...)
	counts := hammer(t, lb)
	t.Logf("answers per backend: %v (want %d each)", counts, clients*requestsEach/len(backends))
}

// TestActorRoundRobin runs the actor version under the same load. One
// goroutine owns the state, so the counts come out exact, every time, and
// -race has nothing to report.
func TestActorRoundRobin(t *testing.T) {
	a := NewActorBalancer(backends...)
	ctx, cancel := context.WithCancel(t.Context())
	var wg conc.WaitGroup
	wg.Go(func() { a.Run(ctx) })
	t.Cleanup(wg.Wait)
	t.Cleanup(cancel)

	counts := hammer(t, a)
	want := clients * requestsEach / len(backends)
	for _, b := range backends {
		if counts[b] != want {
			t.Errorf("backend %s answered %d requests, want %d (all: %v)", b, counts[b], want, counts)
		}
	}
	inFlight, err := a.InFlight(ctx)
	if err != nil {
		t.Fatalf("InFlight: %v", err)
	}
	for _, b := range backends {
		if inFlight[b] != 0 {
			t.Errorf("backend %s has %d requests in flight after all finished, want 0", b, inFlight[b])
		}
	}
}

// TestSelectorRoundRobin does the same to Roundhouse's own selector: many
// goroutines pick and report at once, and the counts come out exact.
func TestSelectorRoundRobin(t *testing.T) {
	var cfgs []actors.BackendConfig
	for _, b := range backends {
		cfgs = append(cfgs, actors.BackendConfig{URL: &url.URL{Scheme: "http", Host: b + ".invalid"}, Weight: 1})
	}
	sel, err := actors.New(actors.Config{
		Backends: cfgs,
		Monitor:  actors.MonitorConfig{Probe: func(context.Context, *actors.Backend) error { return nil }},
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	var run conc.WaitGroup
	run.Go(func() { _ = sel.Run(ctx) })
	t.Cleanup(run.Wait)
	t.Cleanup(cancel)

	var wg conc.WaitGroup
	for range clients {
		wg.Go(func() {
			for range requestsEach {
				b, err := sel.Pick(ctx)
				if err != nil || b == nil {
					t.Errorf("Pick = %v, %v; want a backend", b, err)
					return
				}
				sel.Report(actors.Report{Backend: b, Status: http.StatusOK, Final: true})
			}
		})
	}
	wg.Wait()
	status, err := sel.Status(ctx)
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	want := uint64(clients * requestsEach / len(backends))
	for _, st := range status {
		if st.Requests != want || st.InFlight != 0 {
			t.Errorf("%s: %d requests, %d in flight; want %d and 0", st.Name, st.Requests, st.InFlight, want)
		}
	}
}

// TestRaceDetectorFires keeps the lab true: it runs TestBrokenRoundRobin
// under the race detector in a child "go test" and checks that the
// detector reports a race in broken.go.
func TestRaceDetectorFires(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the package with -race in a child process")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to run the lab: %v", err)
	}
	cmd := exec.CommandContext(t.Context(), goTool, "test", "-race", "-tags", "racelab",
		"-run", "^TestBrokenRoundRobin$", "-count=1", ".")
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		t.Fatalf("go test -race on the broken balancer: want it to fail, got err = %v\n%s", err, out)
	}
	// The child usually ends with "race detected during execution of test";
	// once in a while the runtime's own check of concurrent map use kills it
	// first ("fatal error: concurrent map read and map write"). Either way
	// the detector has spoken by then.
	for _, want := range []string{"WARNING: DATA RACE", "broken.go", "(*BrokenBalancer)"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the race detector's output lacks %q:\n%s", want, out)
		}
	}
}
