package actors

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/go-hclog"
	"go.uber.org/goleak"

	"github.com/roundhouse/roundhouse/internal/logtest"
)

// TestMain fails the package's tests if any goroutine outlives them: every
// selector, monitor, server and example must be stopped and waited for.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// Backend URLs for tests that use fake probes: nothing ever dials them.
const (
	urlA = "http://127.0.0.1:8081"
	urlB = "http://127.0.0.1:8082"
	urlC = "http://127.0.0.1:8083"
)

// errRefused is what a failing fake probe returns.
var errRefused = errors.New("connect: connection refused")

// parseURLs parses raw URLs, failing the test on a bad one.
func parseURLs(t testing.TB, raws ...string) []*url.URL {
	t.Helper()
	out := make([]*url.URL, len(raws))
	for i, raw := range raws {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatalf("parse %q: %v", raw, err)
		}
		out[i] = u
	}
	return out
}

// configs gives each URL weight 1.
func configs(urls []*url.URL) []BackendConfig {
	out := make([]BackendConfig, len(urls))
	for i, u := range urls {
		out[i] = BackendConfig{URL: u, Weight: 1}
	}
	return out
}

// newBackend returns a Backend for raw, as New would build it.
func newBackend(t testing.TB, raw string) *Backend {
	t.Helper()
	return backendFor(parseURLs(t, raw)[0])
}

// switchProbe is a fake ProbeFunc for all of a selector's monitors. Every
// backend passes until the test makes it fail with set; it counts calls.
// Monitors call it from their own goroutines, so it locks.
type switchProbe struct {
	mu    sync.Mutex
	errs  map[string]error // by backend name; absent means pass
	calls map[string]int
}

func newSwitchProbe() *switchProbe {
	return &switchProbe{errs: map[string]error{}, calls: map[string]int{}}
}

// Probe is the ProbeFunc.
func (p *switchProbe) Probe(_ context.Context, b *Backend) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls[b.Name]++
	return p.errs[b.Name]
}

// set makes name's probes return err from now on; nil makes them pass.
func (p *switchProbe) set(name string, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err == nil {
		delete(p.errs, name)
	} else {
		p.errs[name] = err
	}
}

// count returns how many times name has been probed.
func (p *switchProbe) count(name string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls[name]
}

// scriptProbe is a fake ProbeFunc for one monitor: call i returns
// results[i] ("+" pass, "-" fail with an error naming the call, "E" fail
// as a dial does when the balancer is out of file descriptors), and every
// call past the script passes. It records when each call was made and the
// context deadline it was given.
type scriptProbe struct {
	mu        sync.Mutex
	results   string
	times     []time.Time
	deadlines []time.Time
	backends  []*Backend
}

// Probe is the ProbeFunc.
func (p *scriptProbe) Probe(ctx context.Context, b *Backend) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	i := len(p.times)
	p.times = append(p.times, time.Now())
	d, _ := ctx.Deadline()
	p.deadlines = append(p.deadlines, d)
	p.backends = append(p.backends, b)
	if i < len(p.results) {
		switch p.results[i] {
		case '-':
			return probeErr(i)
		case 'E': // the balancer out of file descriptors, as a dial reports it
			return &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("socket", syscall.EMFILE)}
		}
	}
	return nil
}

// calls returns the times of the calls so far.
func (p *scriptProbe) calls() []time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]time.Time(nil), p.times...)
}

// call returns what call i was given: its backend and its context deadline
// (zero for none).
func (p *scriptProbe) call(i int) (b *Backend, deadline time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.backends[i], p.deadlines[i]
}

// probeErr is the error a scriptProbe returns from call i.
func probeErr(i int) error { return fmt.Errorf("probe %d: %w", i, errRefused) }

// logBuffer is an hclog output that tests read while the selector writes
// (see internal/logtest).
type logBuffer struct{ logtest.Sink }

// count returns how many lines contain every one of substrs.
func (l *logBuffer) count(substrs ...string) int { return l.Count(substrs...) }

// newLogger returns an info-level logger writing to a fresh logBuffer.
func newLogger() (hclog.Logger, *logBuffer) {
	buf := &logBuffer{}
	return hclog.New(&hclog.LoggerOptions{Name: "selector", Output: buf, Level: hclog.Info, DisableTime: true}), buf
}

// testConfig is a selector over raws whose monitors use probe every 10s,
// with rise 2 and fall 3.
func testConfig(t testing.TB, probe ProbeFunc, raws ...string) Config {
	t.Helper()
	return Config{
		Backends: configs(parseURLs(t, raws...)),
		Monitor:  MonitorConfig{Probe: probe, Interval: testInterval, Timeout: time.Second, Rise: 2, Fall: 3},
	}
}

// testInterval is the probe interval of testConfig.
const testInterval = 10 * time.Second

// startSelector creates a selector from cfg and runs it on its own
// goroutine. stop cancels Run, waits for it and returns its error; it is
// safe to call more than once and is called when the test ends.
func startSelector(t testing.TB, cfg Config) (s *Selector, stop func() error) {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	stop = sync.OnceValue(func() error {
		cancel()
		return <-done
	})
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("Run returned %v, want nil", err)
		}
	})
	return s, stop
}

// backendsOf asks the running selector s for its backends, in order.
func backendsOf(t testing.TB, s *Selector) []*Backend {
	t.Helper()
	backends, err := s.Backends(context.Background())
	if err != nil {
		t.Fatalf("Backends: %v", err)
	}
	return backends
}

// advance lets fake time pass inside a synctest bubble, then waits until
// every other goroutine in the bubble is blocked again: probes due by then
// have run and the selector has taken in what they sent.
func advance(d time.Duration) {
	time.Sleep(d)
	synctest.Wait()
}

// pickNames takes n picks from s, reporting each at once as a Success, and
// returns the backends' names ("none" for a nil pick).
func pickNames(t *testing.T, s *Selector, n int) []string {
	t.Helper()
	var names []string
	for range n {
		b, err := s.Pick(t.Context())
		if err != nil {
			t.Fatalf("Pick: %v", err)
		}
		if b == nil {
			names = append(names, "none")
			continue
		}
		names = append(names, b.Name)
		s.Report(Report{Backend: b, Outcome: Success, Status: 200})
	}
	return names
}

// status returns s.Status, failing the test on an error.
//
// It keeps only the health and request counters: it clears ID, Weight,
// State, Changed and the probe statistics so that expectations can name only
// what the test is about (selector_admin_test.go covers those).
func status(t *testing.T, s *Selector) []BackendStatus {
	t.Helper()
	st, err := s.Status(t.Context())
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	for i := range st {
		st[i] = BackendStatus{
			Name: st[i].Name, Up: st[i].Up, Reason: st[i].Reason,
			InFlight: st[i].InFlight, Requests: st[i].Requests, Failures: st[i].Failures,
		}
	}
	return st
}

// statusOf returns the status of the backend called name.
func statusOf(t *testing.T, s *Selector, name string) BackendStatus {
	t.Helper()
	for _, st := range status(t, s) {
		if st.Name == name {
			return st
		}
	}
	t.Fatalf("Status has no backend %s", name)
	return BackendStatus{}
}
