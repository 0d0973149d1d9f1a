package actors

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/roundhouse/roundhouse/internal/testenv"
)

// Probe sequences in these tests are strings, one probe a character:
// "+" passes, "-" fails. Expected transitions are strings of the same
// length: "." no change, "D" the backend went DOWN, "U" it came back UP.

func TestHysteresis(t *testing.T) {
	tests := []struct {
		name       string
		rise, fall int
		startUp    bool
		probes     string
		want       string
	}{
		{"passes keep an up backend up", 2, 3, true, "++++", "...."},
		{"fall failures in a row take an up backend down", 2, 3, true, "---", "..D"},
		{"fewer than fall failures change nothing", 2, 3, true, "--", ".."},
		{"a pass resets the failure streak", 2, 3, true, "--+--+---", "........D"},
		{"a long failure streak goes down only once", 2, 3, true, "-------", "..D...."},
		{"failures keep a down backend down", 2, 3, false, "----", "...."},
		{"rise passes in a row bring a down backend up", 2, 3, false, "++", ".U"},
		{"a failure resets the passing streak", 2, 3, false, "+-+-++", ".....U"},
		{"a long passing streak goes up only once", 2, 3, false, "+++++", ".U..."},
		{"a full cycle goes down and comes back up", 3, 2, true, "+--+-+++-", "..D....U."},
		{"rise and fall of one flip on every change", 1, 1, true, "+-+-", ".DUD"},
		{"fall of one goes down on the first failure", 2, 1, true, "-", "D"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := hysteresis{rise: tt.rise, fall: tt.fall, up: tt.startUp}
			if got := transitions(&h, tt.probes); got != tt.want {
				t.Errorf("probes %s: transitions %s, want %s", tt.probes, got, tt.want)
			}
		})
	}
}

// transitions feeds probes to h and returns what changed after each.
func transitions(h *hysteresis, probes string) string {
	var b strings.Builder
	for _, c := range probes {
		switch {
		case !h.observe(c == '+'):
			b.WriteByte('.')
		case h.up:
			b.WriteByte('U')
		default:
			b.WriteByte('D')
		}
	}
	return b.String()
}

func TestHysteresisMarkDown(t *testing.T) {
	tests := []struct {
		name          string
		before, after string // probes before and after markDown
		want          string // transitions of after
	}{
		{"rise passes after markDown bring it up", "+", "++", ".U"},
		{"failures after markDown send nothing", "+", "---++", "....U"},
		{"markDown clears a failing streak", "--", "-++", "..U"},
		{"markDown clears a passing streak of a down backend", "---+", "+++", ".U."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := hysteresis{rise: 2, fall: 3, up: true}
			transitions(&h, tt.before)
			h.markDown()
			if h.up {
				t.Fatal("up after markDown")
			}
			if got := transitions(&h, tt.after); got != tt.want {
				t.Errorf("after markDown, probes %s: transitions %s, want %s", tt.after, got, tt.want)
			}
		})
	}
}

func TestHysteresisReason(t *testing.T) {
	h := hysteresis{rise: 2, fall: 3}
	if got, want := h.reason(errRefused), "3 consecutive failed probes, last: connect: connection refused"; got != want {
		t.Errorf("reason(err) = %q, want %q", got, want)
	}
	if got, want := h.reason(nil), "2 consecutive passing probes"; got != want {
		t.Errorf("reason(nil) = %q, want %q", got, want)
	}
}

// runMonitor runs m inside the current synctest bubble with an unbuffered
// out channel (as the selector's) and a suspect channel of capacity 1. stop
// cancels Run and returns its error; it is called when the test ends.
func runMonitor(t *testing.T, m *Monitor) (out chan Health, suspect chan struct{}, stop func() error) {
	t.Helper()
	out, suspect = make(chan Health), make(chan struct{}, 1)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx, out, suspect) }()
	stopped := false
	var runErr error
	stop = func() error {
		if stopped {
			return runErr
		}
		stopped = true
		cancel()
		select {
		case runErr = <-done:
		case <-time.After(time.Hour): // fake time: only if Run ignores ctx
			runErr = errors.New("Run still running an hour after cancel")
		}
		return runErr
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return out, suspect, stop
}

// expectStep checks what the monitor sent after probe i: nothing for '.',
// a DOWN naming probe i's error for 'D', an UP for 'U'. Call it after
// synctest.Wait, so a monitor with a message is blocked sending it.
func expectStep(t *testing.T, out <-chan Health, m *Monitor, i int, want byte) {
	t.Helper()
	var h Health
	select {
	case h = <-out:
	default:
		if want != '.' {
			t.Fatalf("after probe %d: no message, want %c", i, want)
		}
		return
	}
	if h.Backend != m.Backend {
		t.Errorf("after probe %d: message for backend %v, want %v", i, h.Backend, m.Backend)
	}
	switch want {
	case '.':
		t.Fatalf("after probe %d: unexpected message %+v", i, h)
	case 'D':
		wantReason := fmt.Sprintf("%d consecutive failed probes, last: %v", m.Config.withDefaults().Fall, probeErr(i))
		if h.Up || h.Reason != wantReason {
			t.Errorf("after probe %d: got Up=%v Reason=%q, want DOWN with %q", i, h.Up, h.Reason, wantReason)
		}
	case 'U':
		wantReason := fmt.Sprintf("%d consecutive passing probes", m.Config.withDefaults().Rise)
		if !h.Up || h.Reason != wantReason {
			t.Errorf("after probe %d: got Up=%v Reason=%q, want UP with %q", i, h.Up, h.Reason, wantReason)
		}
	}
}

// stepProbes lets the monitor run len(want) probes (the first must already
// be due: at t=0 or one interval from now when first > 0), checking the
// messages after each.
func stepProbes(t *testing.T, out <-chan Health, m *Monitor, first int, want string) {
	t.Helper()
	for k := range len(want) {
		if first+k > 0 {
			advance(m.Config.withDefaults().Interval)
		} else {
			synctest.Wait()
		}
		expectStep(t, out, m, first+k, want[k])
	}
}

func TestMonitorTransitions(t *testing.T) {
	tests := []struct {
		name       string
		rise, fall int
		probes     string
		want       string
	}{
		{"a healthy backend sends nothing", 2, 3, "+++++", "....."},
		{"fall failures send exactly one down", 2, 3, "+----", "...D."},
		{"a failure at the first probe counts", 2, 3, "---", "..D"},
		{"a pass resets the failure streak", 2, 3, "--+---", ".....D"},
		{"rise passes after a down send exactly one up", 2, 3, "---+++", "..D.U."},
		{"a failure resets the passing streak", 2, 3, "---+-++", "..D...U"},
		{"the backend can go down again", 2, 2, "--++--", ".D.U.D"},
		{"rise and fall of one report every change", 1, 1, "+-+-", ".DUD"},
		// E: the probe failed for want of file descriptors, the balancer's
		// own lack (docs/exhaustion.md): no verdict on the backend.
		{"out of file descriptors gives no verdict", 2, 3, "+EEEEE", "......"},
		{"out of file descriptors neither counts nor resets a streak", 2, 3, "--EE-", "....D"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p := &scriptProbe{results: tt.probes}
				m := &Monitor{Backend: newBackend(t, urlA), Config: MonitorConfig{
					Probe: p.Probe, Interval: testInterval, Rise: tt.rise, Fall: tt.fall,
				}}
				out, _, _ := runMonitor(t, m)
				stepProbes(t, out, m, 0, tt.want)
				if got := len(p.calls()); got != len(tt.probes) {
					t.Errorf("probed %d times, want %d", got, len(tt.probes))
				}
			})
		})
	}
}

func TestMonitorSchedule(t *testing.T) {
	tests := []struct {
		name       string
		probeTakes time.Duration
	}{
		{"a quick probe runs at once and then every interval", 0},
		{"a slow probe does not push back the schedule", 3 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				start := time.Now()
				p := &scriptProbe{}
				b := newBackend(t, urlA)
				m := &Monitor{Backend: b, Config: MonitorConfig{
					Interval: testInterval, Timeout: 5 * time.Second,
					Probe: func(ctx context.Context, b *Backend) error {
						err := p.Probe(ctx, b)
						time.Sleep(tt.probeTakes)
						return err
					},
				}}
				runMonitor(t, m)
				synctest.Wait()
				if got := len(p.calls()); got != 1 {
					t.Fatalf("probes at t=0: %d, want 1 (the first probe runs at once)", got)
				}
				const n = 5
				advance(n*testInterval + testInterval/2)
				calls := p.calls()
				if len(calls) != n+1 {
					t.Fatalf("probes after %d intervals: %d, want %d", n, len(calls), n+1)
				}
				for i, at := range calls {
					if got, want := at.Sub(start), time.Duration(i)*testInterval; got != want {
						t.Errorf("probe %d at %v, want %v", i, got, want)
					}
					if got, _ := p.call(i); got != b {
						t.Errorf("probe %d got backend %v, want the monitor's", i, got)
					}
				}
			})
		})
	}
}

func TestMonitorDefaults(t *testing.T) {
	// Only Probe is set: Interval 10s, Timeout 2s, Rise 2, Fall 3.
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		p := &scriptProbe{results: "---++"}
		m := &Monitor{Backend: newBackend(t, urlA), Config: MonitorConfig{Probe: p.Probe}}
		out, _, _ := runMonitor(t, m)
		stepProbes(t, out, m, 0, "..D.U")
		for i, at := range p.calls() {
			if got, want := at.Sub(start), time.Duration(i)*10*time.Second; got != want {
				t.Errorf("probe %d at %v, want %v", i, got, want)
			}
			if _, deadline := p.call(i); deadline.Sub(at) != 2*time.Second {
				t.Errorf("probe %d has %v to run, want %v", i, deadline.Sub(at), 2*time.Second)
			}
		}
	})
}

func TestMonitorProbeTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const timeout = 3 * time.Second
		start := time.Now()
		type result struct {
			took time.Duration
			err  error
		}
		results := make(chan result, 2)
		m := &Monitor{Backend: newBackend(t, urlA), Config: MonitorConfig{
			Interval: testInterval, Timeout: timeout, Fall: 1,
			// A probe that hangs until its context gives up.
			Probe: func(ctx context.Context, _ *Backend) error {
				began := time.Now()
				<-ctx.Done()
				results <- result{time.Since(began), ctx.Err()}
				return ctx.Err()
			},
		}}
		out, _, _ := runMonitor(t, m)
		synctest.Wait()
		select {
		case r := <-results:
			t.Fatalf("probe returned before its timeout: %+v", r)
		default:
		}
		time.Sleep(timeout)
		r := <-results
		if r.took != timeout || !errors.Is(r.err, context.DeadlineExceeded) {
			t.Errorf("probe ended after %v with %v, want %v and %v", r.took, r.err, timeout, context.DeadlineExceeded)
		}
		h := <-out
		if h.Up || !strings.Contains(h.Reason, context.DeadlineExceeded.Error()) {
			t.Errorf("message %+v, want DOWN with a reason naming the deadline", h)
		}
		if got := time.Since(start); got != timeout {
			t.Errorf("DOWN sent at %v, want %v", got, timeout)
		}
	})
}

func TestMonitorSuspect(t *testing.T) {
	tests := []struct {
		name          string
		before, after string // probes before and after the selector's note
		want          string // transitions of after
	}{
		{"rise passes after a note bring the backend back up", "+", "++", ".U"},
		{"the note needs a full rise even after a passing streak", "+++", "+++", ".U."},
		{"failures after a note send no down", "+", "----++", ".....U"},
		{"a note clears a failing streak", "--", "-++", "..U"},
		{"a failure after a note restarts the rise count", "+", "+-++", "...U"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p := &scriptProbe{results: tt.before + tt.after}
				m := &Monitor{Backend: newBackend(t, urlA), Config: MonitorConfig{
					Probe: p.Probe, Interval: testInterval, Rise: 2, Fall: 3,
				}}
				out, suspect, _ := runMonitor(t, m)
				stepProbes(t, out, m, 0, strings.Repeat(".", len(tt.before)))
				suspect <- struct{}{}
				synctest.Wait()
				if len(suspect) != 0 {
					t.Fatal("the monitor did not take the note")
				}
				expectStep(t, out, m, len(tt.before)-1, '.') // the note itself sends nothing
				stepProbes(t, out, m, len(tt.before), tt.want)
			})
		})
	}
}

func TestMonitorRunReturnsWhenCancelled(t *testing.T) {
	tests := []struct {
		name  string
		fall  int
		probe ProbeFunc
	}{
		{"while waiting for the next probe", 3, func(context.Context, *Backend) error { return nil }},
		{"while blocked sending to an unread out channel", 1, func(context.Context, *Backend) error { return errRefused }},
		{"while a probe is running, without sending the probe's failure", 1, func(ctx context.Context, _ *Backend) error {
			<-ctx.Done()
			return ctx.Err()
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				m := &Monitor{Backend: newBackend(t, urlA), Config: MonitorConfig{
					Probe: tt.probe, Interval: testInterval, Timeout: time.Hour, Fall: tt.fall,
				}}
				out, _, stop := runMonitor(t, m)
				synctest.Wait()
				cancelled := time.Now()
				if err := stop(); err != nil {
					t.Fatalf("Run = %v, want nil", err)
				}
				if took := time.Since(cancelled); took != 0 {
					t.Errorf("Run returned %v after cancel, want at once", took)
				}
				select {
				case h := <-out:
					t.Errorf("message after cancel: %+v", h)
				default:
				}
			})
		})
	}
}

func TestMonitorDiscardsProbeCutShortByCancel(t *testing.T) {
	// A probe that ends because Run's context ended says nothing about the
	// backend: it is neither logged nor reported, even to a ready reader.
	synctest.Test(t, func(t *testing.T) {
		logs := &logBuffer{}
		m := &Monitor{
			Backend: newBackend(t, urlA),
			Logger:  hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Trace, DisableTime: true}),
			Config: MonitorConfig{Interval: testInterval, Timeout: time.Hour, Fall: 1,
				Probe: func(ctx context.Context, _ *Backend) error {
					<-ctx.Done()
					return ctx.Err()
				},
			},
		}
		out, _, stop := runMonitor(t, m)
		got := make(chan Health, 1)
		go func() { // the selector, always ready to read
			for h := range out {
				got <- h
			}
		}()
		synctest.Wait()
		if err := stop(); err != nil {
			t.Fatalf("Run = %v, want nil", err)
		}
		close(out) // Run has returned: nobody sends any more
		synctest.Wait()
		select {
		case h := <-got:
			t.Errorf("the cut-short probe was reported: %+v", h)
		default:
		}
		if n := logs.count("probe"); n != 0 {
			t.Errorf("%d probe lines for a cut-short probe, want none:\n%s", n, logs)
		}
	})
}

func TestMonitorRunWithCancelledContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		m := &Monitor{Backend: newBackend(t, urlA), Config: MonitorConfig{
			Probe: func(ctx context.Context, _ *Backend) error { return ctx.Err() }, Fall: 1,
		}}
		if err := m.Run(ctx, make(chan Health), nil); err != nil {
			t.Errorf("Run = %v, want nil", err)
		}
	})
}

// HTTPProbe tests use real loopback servers, outside any synctest bubble.

// probeTimeout bounds every real-network probe call.
const probeTimeout = 10 * time.Second

// countingServer starts a loopback server running h and counts the
// connections it accepts. It is closed when the test ends.
func countingServer(t *testing.T, h http.Handler) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	var conns atomic.Int32
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, &conns
}

// newTransport returns a private transport whose idle connections are
// closed when the test ends.
func newTransport(t *testing.T) *http.Transport {
	t.Helper()
	tr := &http.Transport{Proxy: nil}
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}

// callProbe runs probe once with ctx and fails the test if it has not
// returned within probeTimeout.
func callProbe(t *testing.T, ctx context.Context, probe ProbeFunc, b *Backend) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- probe(ctx, b) }()
	select {
	case err := <-done:
		return err
	case <-time.After(probeTimeout):
		t.Fatalf("probe of %s still running after %v", b, probeTimeout)
		return nil
	}
}

func TestHTTPProbeStatus(t *testing.T) {
	tests := []struct {
		code int
		pass bool
	}{
		{200, true}, {204, true}, {299, true},
		{301, true}, {302, true}, {304, true}, {307, true}, {399, true},
		{400, false}, {404, false}, {429, false},
		{500, false}, {502, false}, {503, false},
	}
	for _, tt := range tests {
		verb := "fails"
		if tt.pass {
			verb = "passes"
		}
		t.Run(fmt.Sprintf("status %d %s", tt.code, verb), func(t *testing.T) {
			mux := http.NewServeMux()
			mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Location", "/elsewhere")
				w.WriteHeader(tt.code)
			})
			mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
				t.Errorf("the probe requested %s: redirects must not be followed", r.URL.Path)
			})
			srv, _ := countingServer(t, mux)
			probe := HTTPProbe(newTransport(t), HTTPCheck{Path: "/health"})
			err := callProbe(t, t.Context(), probe, newBackend(t, srv.URL))
			switch {
			case tt.pass && err != nil:
				t.Errorf("probe = %v, want a pass", err)
			case !tt.pass && err == nil:
				t.Error("probe passed, want a failure")
			case !tt.pass && !strings.Contains(err.Error(), fmt.Sprintf("status %d", tt.code)):
				t.Errorf("probe = %q, want it to name status %d", err, tt.code)
			}
		})
	}
}

func TestHTTPProbeRequest(t *testing.T) {
	tests := []struct {
		name     string
		prefix   string // the backend URL's path
		path     string // the probe's path
		wantPath string
	}{
		{"a bare backend gets the path as is", "", "/health", "/health"},
		{"a path without a slash gets one", "", "health", "/health"},
		{"a root backend gets the path as is", "/", "/health", "/health"},
		{"a prefix and a slashed path join", "/api", "/health", "/api/health"},
		{"a slashed prefix and a slashed path join with one slash", "/api/", "/health", "/api/health"},
		{"a prefix and a bare path join with one slash", "/api", "health", "/api/health"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			type seen struct{ method, path, agent string }
			got := make(chan seen, 1)
			srv, _ := countingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				select {
				case got <- seen{r.Method, r.URL.Path, r.UserAgent()}:
				default:
					t.Errorf("more than one request: %s %s", r.Method, r.URL.Path)
				}
			}))
			probe := HTTPProbe(newTransport(t), HTTPCheck{Path: tt.path})
			if err := callProbe(t, t.Context(), probe, newBackend(t, srv.URL+tt.prefix)); err != nil {
				t.Fatalf("probe = %v, want a pass", err)
			}
			want := seen{http.MethodGet, tt.wantPath, "roundhouse-health-check"}
			if s := <-got; s != want {
				t.Errorf("server saw %+v, want %+v", s, want)
			}
		})
	}
}

func TestHTTPProbeReusesConnection(t *testing.T) {
	const probes = 5
	tests := []struct {
		name      string
		code      int
		body      int  // bytes
		chunked   bool // flush before writing so there is no Content-Length
		wantConns int32
	}{
		{"a passing probe's short body is drained", 200, 3, false, 1},
		{"a failing probe's body is drained", 503, 4 << 10, false, 1},
		{"a redirect's body is drained", 302, 1 << 10, false, 1},
		{"a chunked body is drained", 200, 8 << 10, true, 1},
		{"a body of exactly 64 KiB is drained", 200, 64 << 10, false, 1},
		// The drain is capped so a probe never reads without bound; past
		// the cap the body is closed early and the connection dropped.
		{"a body over 64 KiB costs a connection per probe", 200, 1 << 20, false, probes},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := strings.Repeat("x", tt.body)
			srv, conns := countingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tt.chunked {
					w.WriteHeader(tt.code)
					w.(http.Flusher).Flush()
				} else {
					w.Header().Set("Content-Length", fmt.Sprint(len(body)))
					w.WriteHeader(tt.code)
				}
				_, _ = w.Write([]byte(body)) // fails when the probe drops a huge body
			}))
			probe := HTTPProbe(newTransport(t), HTTPCheck{Path: "/health"})
			b := newBackend(t, srv.URL)
			for i := range probes {
				err := callProbe(t, t.Context(), probe, b)
				if pass := tt.code < 400; pass != (err == nil) {
					t.Fatalf("probe %d = %v, want pass=%v", i, err, pass)
				}
			}
			if got := conns.Load(); got != tt.wantConns {
				t.Errorf("%d probes opened %d connections, want %d", probes, got, tt.wantConns)
			}
		})
	}
}

func TestHTTPProbeConnectionRefused(t *testing.T) {
	addr := testenv.DeadAddr(t)
	probe := HTTPProbe(newTransport(t), HTTPCheck{Path: "/health"})
	err := callProbe(t, t.Context(), probe, newBackend(t, "http://"+addr))
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("probe = %v, want connection refused", err)
	}
	if err != nil && !strings.HasPrefix(err.Error(), "health probe: ") {
		t.Errorf("probe = %q, want it to start with %q", err, "health probe: ")
	}
}

func TestHTTPProbeTimeout(t *testing.T) {
	release := make(chan struct{})
	srv, _ := countingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select { // hang until the probe gives up or the test ends
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(func() { close(release) }) // runs before srv.Close
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	err := callProbe(t, ctx, HTTPProbe(newTransport(t), HTTPCheck{Path: "/health"}), newBackend(t, srv.URL))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("probe = %v, want %v", err, context.DeadlineExceeded)
	}
}

func TestHTTPProbeNilTransportUsesDefault(t *testing.T) {
	srv, _ := countingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(http.DefaultTransport.(*http.Transport).CloseIdleConnections)
	if err := callProbe(t, t.Context(), HTTPProbe(nil, HTTPCheck{Path: "/health"}), newBackend(t, srv.URL)); err != nil {
		t.Errorf("probe = %v, want a pass", err)
	}
}

func TestHTTPProbeKeepsEscapedPrefix(t *testing.T) {
	got := make(chan string, 1)
	srv, _ := countingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.RequestURI
	}))
	probe := HTTPProbe(newTransport(t), HTTPCheck{Path: "/health"})
	if err := callProbe(t, t.Context(), probe, newBackend(t, srv.URL+"/a%2Fb")); err != nil {
		t.Fatalf("probe = %v, want a pass", err)
	}
	if uri, want := <-got, "/a%2Fb/health"; uri != want {
		t.Errorf("server saw %s, want %s", uri, want)
	}
}

func TestMonitorStaleSuspectNote(t *testing.T) {
	// The interleaving: the monitor is blocked sending a DOWN when the
	// selector (still UP) sees a failed connection, marks the backend DOWN
	// and leaves a note. A tick is due by the time the monitor is free (the
	// selector was slow to read, or a probe took longer than Interval), so
	// its wait loop may take the tick before the note: the probe passes
	// and, with rise 1, it sends UP and the selector goes UP. Only then
	// does it read the note and adopt DOWN. From there on failing probes
	// agree with its idea of the state and it never reports DOWN. select
	// picks among ready cases at random, so try a few times.
	for try := range 40 {
		diverged := false
		synctest.Test(t, func(t *testing.T) {
			p := &scriptProbe{results: "-+" + strings.Repeat("-", 10)}
			m := &Monitor{Backend: newBackend(t, urlA), Config: MonitorConfig{
				Probe: p.Probe, Interval: testInterval, Rise: 1, Fall: 1,
			}}
			out, suspect, _ := runMonitor(t, m)
			synctest.Wait()       // probe 0 fails: the monitor is sending DOWN
			suspect <- struct{}{} // the selector went DOWN passively first
			advance(testInterval) // a tick is due meanwhile
			if h := <-out; h.Up { // the selector reads the DOWN (a no-op for it)
				t.Fatalf("first message %+v, want DOWN", h)
			}
			synctest.Wait()
			select {
			case h := <-out: // the monitor took the tick: probe 1 passed
				if !h.Up {
					t.Fatalf("message %+v, want UP", h)
				}
				// The selector now has the backend UP; every probe fails.
				advance(5 * testInterval)
				select {
				case <-out:
				default:
					diverged = true
				}
			default: // it took the note first: no race this time
			}
		})
		if diverged {
			t.Errorf("try %d: after UP was sent, 5 failing probes (fall 1) sent no DOWN", try)
			return
		}
	}
}
