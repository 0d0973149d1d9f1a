package actors

import (
	"context"
	"errors"
	"maps"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sourcegraph/conc"
)

// Selector tests run in a synctest bubble with fake probes: no network, and
// fake time moves only when the test sleeps. advance(testInterval) lets
// every monitor probe once more and the selector take in what they sent.

func TestNew(t *testing.T) {
	tests := []struct {
		name     string
		backends []*url.URL
		wantErr  string // "" for success
	}{
		{"no backends is allowed", nil, ""},
		{"distinct backends are accepted", parseURLs(t, urlA, urlB, urlC), ""},
		{"a backend listed twice is rejected", parseURLs(t, urlA, urlB, urlA), "backend " + urlA + ": backend already configured"},
		{"a URL without a host is rejected", parseURLs(t, urlA, "http:///health"), "missing host"},
		{"a host:port without a scheme is rejected", parseURLs(t, "localhost:8081"), "missing host"},
		{"a nil URL is rejected", []*url.URL{nil}, "missing host"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New(Config{Backends: configs(tt.backends)})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("New = %v, want an error containing %q", err, tt.wantErr)
				}
				if s != nil {
					t.Error("New returned a selector with its error")
				}
				return
			}
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			var names, want []string
			for _, st := range s.backends { // before Run, New's work is there to read
				names = append(names, st.Name)
			}
			for _, u := range tt.backends {
				want = append(want, u.String())
			}
			if !slices.Equal(names, want) {
				t.Errorf("backends after New = %v, want %v", names, want)
			}
		})
	}
}

func TestSelectorRoundRobin(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, _ := startSelector(t, testConfig(t, newSwitchProbe().Probe, urlA, urlB, urlC))
		want := []string{urlA, urlB, urlC, urlA, urlB, urlC}
		if got := pickNames(t, s, 6); !slices.Equal(got, want) {
			t.Errorf("picks = %v, want %v", got, want)
		}
	})
}

func TestSelectorPickAndPickExceptShareThePosition(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, _ := startSelector(t, testConfig(t, newSwitchProbe().Probe, urlA, urlB, urlC))
		var got []string
		for i := range 6 {
			pick := s.Pick
			if i%2 == 1 {
				pick = func(ctx context.Context) (*Backend, error) { return s.PickFor(ctx, "", nil) }
			}
			b, err := pick(t.Context())
			if err != nil || b == nil {
				t.Fatalf("pick %d = %v, %v", i, b, err)
			}
			got = append(got, b.Name)
			s.Report(Report{Backend: b})
		}
		if want := []string{urlA, urlB, urlC, urlA, urlB, urlC}; !slices.Equal(got, want) {
			t.Errorf("picks = %v, want %v", got, want)
		}
	})
}

func TestSelectorSkipsDownBackend(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		probe := newSwitchProbe()
		probe.set(urlB, errRefused)
		cfg := testConfig(t, probe.Probe, urlA, urlB, urlC)
		cfg.Monitor.Fall = 2
		logger, logs := newLogger()
		cfg.Logger = logger
		s, _ := startSelector(t, cfg)
		synctest.Wait() // the first probes run at once

		// One failure is below fall: B still gets its turn.
		if got, want := pickNames(t, s, 3), []string{urlA, urlB, urlC}; !slices.Equal(got, want) {
			t.Errorf("after one failed probe: picks = %v, want %v", got, want)
		}
		advance(testInterval) // the second failure: B goes down
		if got, want := pickNames(t, s, 4), []string{urlA, urlC, urlA, urlC}; !slices.Equal(got, want) {
			t.Errorf("with B down: picks = %v, want %v", got, want)
		}
		if st := statusOf(t, s, urlB); st.Up || !strings.Contains(st.Reason, errRefused.Error()) {
			t.Errorf("B's status = %+v, want down with a reason naming %q", st, errRefused)
		}

		probe.set(urlB, nil)
		advance(testInterval) // one pass is below rise: B stays down
		if got, want := pickNames(t, s, 2), []string{urlA, urlC}; !slices.Equal(got, want) {
			t.Errorf("after one passing probe: picks = %v, want %v", got, want)
		}
		advance(testInterval) // the second pass: B is back
		if got, want := pickNames(t, s, 6), []string{urlA, urlB, urlC, urlA, urlB, urlC}; !slices.Equal(got, want) {
			t.Errorf("with B back up: picks = %v, want %v", got, want)
		}
		if st := statusOf(t, s, urlB); !st.Up || st.Reason != "2 consecutive passing probes" {
			t.Errorf("B's status = %+v, want up after 2 passing probes", st)
		}

		for _, msg := range []string{"backend down", "backend up"} {
			if n := logs.count(msg); n != 1 {
				t.Errorf("%d %q lines, want 1:\n%s", n, msg, logs)
			}
			if n := logs.count(msg, "backend="+urlB); n != 1 {
				t.Errorf("%d %q lines for B, want 1:\n%s", n, msg, logs)
			}
		}
	})
}

func TestSelectorNoBackendUp(t *testing.T) {
	tests := []struct {
		name     string
		backends []string
	}{
		{"every backend down", []string{urlA, urlB, urlC}},
		{"no backends configured", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name+" gives nil picks at once", func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				probe := newSwitchProbe()
				for _, name := range tt.backends {
					probe.set(name, errRefused)
				}
				cfg := testConfig(t, probe.Probe, tt.backends...)
				cfg.Monitor.Fall = 1
				s, _ := startSelector(t, cfg)
				synctest.Wait() // the first probes fail and take every backend down
				start := time.Now()
				for i := range 3 {
					if b, err := s.Pick(t.Context()); b != nil || err != nil {
						t.Errorf("Pick %d = %v, %v; want nil, nil", i, b, err)
					}
					if b, err := s.PickFor(t.Context(), "", nil); b != nil || err != nil {
						t.Errorf("PickExcept %d = %v, %v; want nil, nil", i, b, err)
					}
				}
				if waited := time.Since(start); waited != 0 {
					t.Errorf("picks waited %v, want none", waited)
				}
				for _, st := range status(t, s) {
					if st.Up || st.InFlight != 0 {
						t.Errorf("status %+v, want down with nothing in flight", st)
					}
				}
			})
		})
	}
}

func TestSelectorPickExcept(t *testing.T) {
	tests := []struct {
		name  string
		down  []string // backends whose probes fail (fall is 1)
		tried []string
		want  string // "none" for nil
	}{
		{"nothing tried gives the next in turn", nil, nil, urlA},
		{"the backend in turn is skipped once tried", nil, []string{urlA}, urlB},
		{"several tried backends are skipped", nil, []string{urlA, urlB}, urlC},
		{"a tried backend that is not in turn changes nothing", nil, []string{urlC}, urlA},
		{"all backends tried gives none", nil, []string{urlA, urlB, urlC}, "none"},
		{"down backends are skipped as well as tried ones", []string{urlB}, []string{urlA}, urlC},
		{"tried and down together leave none", []string{urlB, urlC}, []string{urlA}, "none"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				probe := newSwitchProbe()
				for _, name := range tt.down {
					probe.set(name, errRefused)
				}
				cfg := testConfig(t, probe.Probe, urlA, urlB, urlC)
				cfg.Monitor.Fall = 1
				s, _ := startSelector(t, cfg)
				synctest.Wait()
				byName := map[string]*Backend{}
				for _, b := range backendsOf(t, s) {
					byName[b.Name] = b
				}
				var tried []*Backend
				for _, name := range tt.tried {
					tried = append(tried, byName[name])
				}
				b, err := s.PickFor(t.Context(), "", tried)
				if err != nil {
					t.Fatalf("PickExcept: %v", err)
				}
				got := "none"
				if b != nil {
					got = b.Name
					s.Report(Report{Backend: b})
				}
				if got != tt.want {
					t.Errorf("PickExcept(%v) = %s, want %s", tt.tried, got, tt.want)
				}
			})
		})
	}
}

func TestSelectorInFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, _ := startSelector(t, testConfig(t, newSwitchProbe().Probe, urlA, urlB, urlC))
		inFlight := func() []int {
			t.Helper()
			var n []int
			for _, st := range status(t, s) {
				n = append(n, st.InFlight)
			}
			return n
		}
		var held []*Backend
		for range 4 { // A B C A
			b, err := s.Pick(t.Context())
			if err != nil || b == nil {
				t.Fatalf("Pick = %v, %v", b, err)
			}
			held = append(held, b)
		}
		if got, want := inFlight(), []int{2, 1, 1}; !slices.Equal(got, want) {
			t.Errorf("after 4 picks: in flight %v, want %v", got, want)
		}
		if b, _ := s.PickFor(t.Context(), "", nil); b != nil { // B
			held = append(held, b)
		}
		if got, want := inFlight(), []int{2, 2, 1}; !slices.Equal(got, want) {
			t.Errorf("after a PickExcept: in flight %v, want %v", got, want)
		}
		s.Report(Report{Backend: held[0]})
		synctest.Wait() // Report is buffered: let the selector take it in
		if got, want := inFlight(), []int{1, 2, 1}; !slices.Equal(got, want) {
			t.Errorf("after one report: in flight %v, want %v", got, want)
		}
		for _, b := range held[1:] {
			s.Report(Report{Backend: b})
		}
		synctest.Wait()
		if got, want := inFlight(), []int{0, 0, 0}; !slices.Equal(got, want) {
			t.Errorf("after every report: in flight %v, want %v", got, want)
		}
	})
}

func TestSelectorReportCounts(t *testing.T) {
	tests := []struct {
		name         string
		outcome      Outcome
		wantFailures uint64
		wantUp       bool
	}{
		{"a success counts a request", Success, 0, true},
		{"a broken exchange counts a failure but keeps the backend up", Failed, 1, true},
		{"a client that went away is not the backend's failure", ClientGone, 0, true},
		{"a failed connection counts a failure and takes the backend down", ConnectFailed, 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s, _ := startSelector(t, testConfig(t, newSwitchProbe().Probe, urlA, urlB))
				b, err := s.Pick(t.Context())
				if err != nil || b == nil || b.Name != urlA {
					t.Fatalf("Pick = %v, %v; want %s", b, err, urlA)
				}
				s.Report(Report{Backend: b, Outcome: tt.outcome, Err: errRefused})
				synctest.Wait()
				want := BackendStatus{Name: urlA, Up: tt.wantUp, Requests: 1, Failures: tt.wantFailures}
				if !tt.wantUp {
					want.Reason = "passive: " + errRefused.Error()
				}
				if got := statusOf(t, s, urlA); got != want {
					t.Errorf("status = %+v, want %+v", got, want)
				}
				if got, want := statusOf(t, s, urlB), (BackendStatus{Name: urlB, Up: true}); got != want {
					t.Errorf("other backend's status = %+v, want %+v", got, want)
				}
			})
		})
	}
}

func TestSelectorIgnoresReportForUnknownBackend(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, _ := startSelector(t, testConfig(t, newSwitchProbe().Probe, urlA))
		// Same URL, but not a *Backend this selector handed out.
		s.Report(Report{Backend: newBackend(t, urlA), Outcome: ConnectFailed, Err: errRefused})
		s.Report(Report{Outcome: ConnectFailed})
		synctest.Wait()
		if got, want := statusOf(t, s, urlA), (BackendStatus{Name: urlA, Up: true}); got != want {
			t.Errorf("status = %+v, want %+v", got, want)
		}
	})
}

func TestSelectorPassiveDown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		probe := newSwitchProbe() // every probe passes throughout
		cfg := testConfig(t, probe.Probe, urlA, urlB, urlC)
		logger, logs := newLogger()
		cfg.Logger = logger
		s, _ := startSelector(t, cfg)
		synctest.Wait()

		var held []*Backend
		for range 4 { // A B C A: two picks of A in flight
			b, _ := s.Pick(t.Context())
			held = append(held, b)
		}
		for _, b := range held[1:3] {
			s.Report(Report{Backend: b})
		}
		dialErr := errors.New("dial tcp 127.0.0.1:8081: connect: connection refused")
		s.Report(Report{Backend: held[0], Outcome: ConnectFailed, Err: dialErr})
		synctest.Wait()

		wantDown := BackendStatus{Name: urlA, Reason: "passive: " + dialErr.Error(), InFlight: 1, Requests: 1, Failures: 1}
		if got := statusOf(t, s, urlA); got != wantDown {
			t.Errorf("after a failed connection: status %+v, want %+v", got, wantDown)
		}
		if got, want := pickNames(t, s, 4), []string{urlB, urlC, urlB, urlC}; !slices.Equal(got, want) {
			t.Errorf("with A passively down: picks = %v, want %v", got, want)
		}

		// The other pick of A fails the same way: counted, but A is
		// already down, so no second transition.
		s.Report(Report{Backend: held[3], Outcome: ConnectFailed, Err: dialErr})
		synctest.Wait()
		wantDown.InFlight, wantDown.Requests, wantDown.Failures = 0, 2, 2
		if got := statusOf(t, s, urlA); got != wantDown {
			t.Errorf("after a second failed connection: status %+v, want %+v", got, wantDown)
		}

		// A's probes have passed all along, but its monitor now needs
		// rise (2) fresh passes before A comes back.
		advance(testInterval)
		if st := statusOf(t, s, urlA); st.Up {
			t.Fatalf("after one passing probe: A is up (%s), want down until 2 passes", st.Reason)
		}
		if got, want := pickNames(t, s, 2), []string{urlB, urlC}; !slices.Equal(got, want) {
			t.Errorf("after one passing probe: picks = %v, want %v", got, want)
		}
		advance(testInterval)
		if st := statusOf(t, s, urlA); !st.Up || st.Reason != "2 consecutive passing probes" {
			t.Errorf("after two passing probes: status %+v, want up after 2 passing probes", st)
		}
		if got, want := pickNames(t, s, 3), []string{urlA, urlB, urlC}; !slices.Equal(got, want) {
			t.Errorf("with A back up: picks = %v, want %v", got, want)
		}

		if n := logs.count("backend down", "backend="+urlA, "passive: "); n != 1 {
			t.Errorf("%d passive %q lines for A, want 1:\n%s", n, "backend down", logs)
		}
		if n := logs.count("backend up", "backend="+urlA); n != 1 {
			t.Errorf("%d %q lines for A, want 1:\n%s", n, "backend up", logs)
		}
		if n := logs.count("backend "); n != 2 {
			t.Errorf("%d transition lines in all, want 2:\n%s", n, logs)
		}
	})
}

func TestSelectorPassiveDownThenProbesFail(t *testing.T) {
	// The monitor adopts the selector's DOWN, so its own failures that
	// follow send nothing and the log keeps one line per transition.
	synctest.Test(t, func(t *testing.T) {
		probe := newSwitchProbe()
		cfg := testConfig(t, probe.Probe, urlA, urlB)
		logger, logs := newLogger()
		cfg.Logger = logger
		s, _ := startSelector(t, cfg)
		synctest.Wait()
		b, _ := s.Pick(t.Context())
		s.Report(Report{Backend: b, Outcome: ConnectFailed, Err: errRefused})
		probe.set(urlA, errRefused)
		for range 5 {
			advance(testInterval)
		}
		probe.set(urlA, nil)
		advance(testInterval)
		if st := statusOf(t, s, urlA); st.Up || !strings.HasPrefix(st.Reason, "passive:") {
			t.Errorf("after 5 failures and 1 pass: status %+v, want still the passive down", st)
		}
		advance(testInterval)
		if st := statusOf(t, s, urlA); !st.Up {
			t.Errorf("after 2 passes: status %+v, want up", st)
		}
		if n := logs.count("backend down"); n != 1 {
			t.Errorf("%d %q lines, want 1:\n%s", n, "backend down", logs)
		}
		if n := logs.count("backend up"); n != 1 {
			t.Errorf("%d %q lines, want 1:\n%s", n, "backend up", logs)
		}
	})
}

func TestSelectorIgnoresRepeatedDown(t *testing.T) {
	// A's monitor is in the middle of the probe that makes fall when a
	// request sees A's connection fail. The selector marks A down at once;
	// the monitor's own DOWN then arrives for a backend that is already
	// down and must change nothing: one transition, one log line.
	synctest.Test(t, func(t *testing.T) {
		probe := newSwitchProbe()
		probe.set(urlA, errRefused)
		cfg := testConfig(t, func(ctx context.Context, b *Backend) error {
			time.Sleep(time.Second) // a slow probe
			return probe.Probe(ctx, b)
		}, urlA, urlB)
		cfg.Monitor.Fall, cfg.Monitor.Timeout = 2, 5*time.Second
		logger, logs := newLogger()
		cfg.Logger = logger
		s, _ := startSelector(t, cfg)
		b, err := s.Pick(t.Context())
		if err != nil || b == nil || b.Name != urlA {
			t.Fatalf("Pick = %v, %v; want %s", b, err, urlA)
		}
		advance(testInterval) // t=10s: the first probe failed at 1s, the second is running
		s.Report(Report{Backend: b, Outcome: ConnectFailed, Err: errRefused})
		synctest.Wait()
		wantReason := "passive: " + errRefused.Error()
		if st := statusOf(t, s, urlA); st.Up || st.Reason != wantReason {
			t.Fatalf("after the failed connection: status %+v, want down with %q", st, wantReason)
		}
		advance(time.Second) // the second probe fails: the monitor sends DOWN
		if st := statusOf(t, s, urlA); st.Up || st.Reason != wantReason {
			t.Errorf("after the monitor's DOWN: status %+v, want the passive down kept", st)
		}
		if n := logs.count("backend down"); n != 1 {
			t.Errorf("%d %q lines, want 1:\n%s", n, "backend down", logs)
		}

		probe.set(urlA, nil)
		advance(2 * testInterval) // two passes, each finished a second after its tick
		advance(time.Second)
		if st := statusOf(t, s, urlA); !st.Up {
			t.Errorf("after two passing probes: status %+v, want up", st)
		}
		if n := logs.count("backend up", "backend="+urlA); n != 1 {
			t.Errorf("%d %q lines, want 1:\n%s", n, "backend up", logs)
		}
	})
}

// callers are the Selector methods that take a context and may wait.
var callers = []struct {
	name string
	call func(ctx context.Context, s *Selector) error
}{
	{"Pick", func(ctx context.Context, s *Selector) error { _, err := s.Pick(ctx); return err }},
	{"PickExcept", func(ctx context.Context, s *Selector) error { _, err := s.PickFor(ctx, "", nil); return err }},
	{"Status", func(ctx context.Context, s *Selector) error { _, err := s.Status(ctx); return err }},
}

func TestSelectorContextDone(t *testing.T) {
	// The selector is created but not running, so nothing answers and only
	// the caller's context can end the wait.
	for _, c := range callers {
		t.Run(c.name+" returns Canceled at once for a cancelled context", func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s, err := New(testConfig(t, nil, urlA))
				if err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithCancel(t.Context())
				cancel()
				start := time.Now()
				if err := c.call(ctx, s); !errors.Is(err, context.Canceled) {
					t.Errorf("%s = %v, want %v", c.name, err, context.Canceled)
				}
				if waited := time.Since(start); waited != 0 {
					t.Errorf("%s waited %v, want none", c.name, waited)
				}
			})
		})
		t.Run(c.name+" returns DeadlineExceeded when its deadline passes", func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s, err := New(testConfig(t, nil, urlA))
				if err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
				defer cancel()
				start := time.Now()
				if err := c.call(ctx, s); !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("%s = %v, want %v", c.name, err, context.DeadlineExceeded)
				}
				if waited := time.Since(start); waited != 3*time.Second {
					t.Errorf("%s waited %v, want 3s", c.name, waited)
				}
			})
		})
	}
}

func TestSelectorStopped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		probe := newSwitchProbe()
		s, stop := startSelector(t, testConfig(t, probe.Probe, urlA, urlB))
		b, err := s.Pick(t.Context())
		if err != nil || b == nil {
			t.Fatalf("Pick = %v, %v", b, err)
		}
		start := time.Now()
		if err := stop(); err != nil {
			t.Fatalf("Run = %v, want nil", err)
		}
		if took := time.Since(start); took != 0 {
			t.Errorf("Run took %v to return after cancel, want at once", took)
		}

		for _, c := range callers {
			if err := c.call(t.Context(), s); !errors.Is(err, ErrStopped) {
				t.Errorf("%s after stop = %v, want %v", c.name, err, ErrStopped)
			}
		}
		// More reports than the channel buffers: none may block. (If one
		// did, every goroutine in the bubble would be blocked and
		// synctest would fail the test as a deadlock.)
		for range 2 * cap(s.reports) {
			s.Report(Report{Backend: b})
		}

		// Run stopped the monitors and waited for them: no more probes.
		calls := probe.count(urlA)
		advance(10 * testInterval)
		if got := probe.count(urlA); got != calls {
			t.Errorf("probes after stop: %d, want none", got-calls)
		}
	})
}

func TestSelectorStatusSnapshot(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, _ := startSelector(t, testConfig(t, newSwitchProbe().Probe, urlA, urlB))
		first := status(t, s)
		first[0].Requests = 99 // a snapshot is the caller's to keep
		b, _ := s.Pick(t.Context())
		s.Report(Report{Backend: b, Outcome: Failed, Err: errRefused})
		synctest.Wait()
		want := []BackendStatus{
			{Name: urlA, Up: true, Requests: 1, Failures: 1},
			{Name: urlB, Up: true},
		}
		if got := status(t, s); !slices.Equal(got, want) {
			t.Errorf("Status = %+v, want %+v", got, want)
		}
	})
}

// recordingPolicy is round robin that counts calls, to check how the
// selector drives a Policy. Only the selector goroutine calls it; the test
// reads under the lock.
type recordingPolicy struct {
	mu     sync.Mutex
	rr     RoundRobin
	taken  []int
	chosen int
}

func (p *recordingPolicy) Choose(cands []Candidate, key string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.chosen++
	return p.rr.Choose(cands, key)
}

func (p *recordingPolicy) Taken(cands []Candidate, i int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.taken = append(p.taken, i)
	p.rr.Taken(cands, i)
}

func TestSelectorCallsTakenOncePerPick(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		probe := newSwitchProbe()
		policy := &recordingPolicy{}
		cfg := testConfig(t, probe.Probe, urlA, urlB, urlC)
		cfg.Policy = policy
		cfg.Monitor.Fall = 1
		s, _ := startSelector(t, cfg)
		synctest.Wait()
		pickNames(t, s, 2) // A B; C is offered next
		probe.set(urlC, errRefused)
		advance(testInterval) // C goes down: the offer is recomputed
		pickNames(t, s, 1)    // A
		// Every backend excluded: a nil pick, and nothing is taken.
		if b, err := s.PickFor(t.Context(), "", backendsOf(t, s)); b != nil || err != nil {
			t.Fatalf("PickExcept(all) = %v, %v; want nil, nil", b, err)
		}
		synctest.Wait()
		policy.mu.Lock()
		defer policy.mu.Unlock()
		if want := []int{0, 1, 0}; !slices.Equal(policy.taken, want) {
			t.Errorf("Taken calls %v, want %v (once per handed-out pick)", policy.taken, want)
		}
		if policy.chosen < 4 {
			t.Errorf("Choose called %d times, want at least one per pick", policy.chosen)
		}
	})
}

// TestSelectorConcurrentPicks runs in real time: many handlers pick and
// report at once, as under load. Run it with -race.
func TestSelectorConcurrentPicks(t *testing.T) {
	const (
		workers = 30
		each    = 10
		total   = workers * each
	)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	s, _ := startSelector(t, testConfig(t, newSwitchProbe().Probe, urlA, urlB, urlC))

	var (
		mu    sync.Mutex
		picks = map[string]int{}
	)
	var wg conc.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for range each {
				var b *Backend
				var err error
				if w%2 == 0 {
					b, err = s.Pick(ctx)
				} else {
					b, err = s.PickFor(ctx, "", nil)
				}
				if err != nil || b == nil {
					t.Errorf("worker %d: pick = %v, %v", w, b, err)
					return
				}
				mu.Lock()
				picks[b.Name]++
				mu.Unlock()
				s.Report(Report{Backend: b, Outcome: Success, Status: 200})
			}
		})
	}
	// Someone reads /status meanwhile.
	wg.Go(func() {
		for range 50 {
			if _, err := s.Status(ctx); err != nil {
				t.Errorf("Status: %v", err)
				return
			}
		}
	})
	wg.Wait()

	want := map[string]int{urlA: total / 3, urlB: total / 3, urlC: total / 3}
	if !maps.Equal(picks, want) {
		t.Errorf("picks per backend %v, want %v", picks, want)
	}
	// Reports are buffered, so a snapshot may lag reports that have
	// returned; ask until every report is counted.
	var st []BackendStatus
	for {
		var err error
		if st, err = s.Status(ctx); err != nil {
			t.Fatalf("waiting for %d reports to be counted: %v (last status %+v)", total, err, st)
		}
		var n uint64
		for _, b := range st {
			n += b.Requests
		}
		if n == total {
			break
		}
	}
	for _, b := range st {
		if b.Requests != total/3 || b.InFlight != 0 || b.Failures != 0 || !b.Up {
			t.Errorf("status %+v, want up with %d requests, none in flight", b, total/3)
		}
	}
}

func TestSelectorIdentity(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig(t, newSwitchProbe().Probe, urlA, urlB)
		cfg.Backends[1].Weight = 0
		s, _ := startSelector(t, cfg)
		st, err := s.Status(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		again := backendFor(parseURLs(t, urlA)[0])
		if st[0].ID == "" || st[0].ID != again.ID || st[0].ID == st[1].ID {
			t.Errorf("IDs %q and %q: want non-empty, distinct and derived from the URL alone (%q)", st[0].ID, st[1].ID, again.ID)
		}
		if st[0].Weight != 1 || st[1].Weight != 0 {
			t.Errorf("weights %d and %d, want 1 and 0", st[0].Weight, st[1].Weight)
		}
	})
}
