package actors

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// Connection cap and queue tests. Each backend takes one request at a time
// (MaxConnsPerBackend 1), so the test holds picks to fill backends and
// reports them to free a slot. Waiting picks run on their own goroutines;
// settleQueued waits until the selector has queued them, so they are
// started, and served, in a known order.

// limitsConfig is testConfig over raws, with one request in flight per
// backend and a queue of 10 that waits up to a minute.
func limitsConfig(t *testing.T, probe ProbeFunc, raws ...string) Config {
	t.Helper()
	cfg := testConfig(t, probe, raws...)
	cfg.Limits = Limits{MaxConnsPerBackend: 1, QueueSize: 10, QueueTimeout: time.Minute}
	return cfg
}

// picking is a pick running on its own goroutine.
type picking struct {
	done   chan struct{} // closed when the pick has returned
	b      *Backend
	err    error
	waited time.Duration
}

// startPick calls pick on a new goroutine and returns at once. The
// goroutine ends when pick returns; every test ends its picks by freeing
// a connection, by their context, or by stopping the selector.
func startPick(pick func() (*Backend, error)) *picking {
	p := &picking{done: make(chan struct{})}
	go func() {
		defer close(p.done)
		start := time.Now()
		p.b, p.err = pick()
		p.waited = time.Since(start)
	}()
	return p
}

// answered reports whether the pick has returned, without waiting.
func (p *picking) answered() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// result waits for the pick and returns its backend, how long it waited,
// and its error.
func (p *picking) result() (*Backend, time.Duration, error) {
	<-p.done
	return p.b, p.waited, p.err
}

// mustPick takes the offered pick, failing the test unless it is the
// backend called want.
func mustPick(t *testing.T, s *Selector, want string) *Backend {
	t.Helper()
	b, err := s.Pick(t.Context())
	if err != nil || b == nil || b.Name != want {
		t.Fatalf("Pick = %v, %v; want %s", b, err, want)
	}
	return b
}

// metrics returns s.Metrics, failing the test on an error.
func metrics(t *testing.T, s *Selector) Metrics {
	t.Helper()
	m, err := s.Metrics(t.Context())
	if err != nil {
		t.Fatalf("Metrics: %v", err)
	}
	return m
}

// settleQueued waits until every goroutine in the bubble is blocked, then
// checks that n picks wait in the queue.
func settleQueued(t *testing.T, s *Selector, n int) {
	t.Helper()
	synctest.Wait()
	if got := metrics(t, s).Queued; got != n {
		t.Fatalf("%d picks queued, want %d", got, n)
	}
}

// inFlight returns each backend's in-flight count, in configuration order,
// once the selector has taken in every report sent so far.
func inFlight(t *testing.T, s *Selector) []int {
	t.Helper()
	synctest.Wait()
	var n []int
	for _, st := range status(t, s) {
		n = append(n, st.InFlight)
	}
	return n
}

// wantServed checks that p has returned the backend called want after
// waiting exactly waited.
func wantServed(t *testing.T, p *picking, want string, waited time.Duration) *Backend {
	t.Helper()
	synctest.Wait()
	if !p.answered() {
		t.Fatalf("pick still waiting, want %s", want)
	}
	b, w, err := p.result()
	if err != nil || b == nil || b.Name != want || w != waited {
		t.Fatalf("pick = %v, %v after %v; want %s after %v", b, err, w, want, waited)
	}
	return b
}

// wantRefused checks that p has returned no backend and err after waiting
// exactly waited.
func wantRefused(t *testing.T, p *picking, err error, waited time.Duration) {
	t.Helper()
	synctest.Wait()
	if !p.answered() {
		t.Fatalf("pick still waiting, want it refused with %v", err)
	}
	b, w, gotErr := p.result()
	if b != nil || !errors.Is(gotErr, err) || (err == nil && gotErr != nil) || w != waited {
		t.Fatalf("pick = %v, %v after %v; want nil, %v after %v", b, gotErr, w, err, waited)
	}
}

func TestLimitsQueue(t *testing.T) {
	t.Run("a pick beyond every backend's cap waits for a report and gets its backend", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s, _ := startSelector(t, limitsConfig(t, newSwitchProbe().Probe, urlA, urlB))
			a, b := mustPick(t, s, urlA), mustPick(t, s, urlB)
			w := startPick(func() (*Backend, error) { return s.Pick(t.Context()) })
			settleQueued(t, s, 1)
			advance(5 * time.Second)
			if w.answered() {
				t.Fatal("third pick answered while both backends are at their cap")
			}
			s.Report(Report{Backend: a})
			got := wantServed(t, w, urlA, 5*time.Second)
			settleQueued(t, s, 0)
			if got, want := inFlight(t, s), []int{1, 1}; !slices.Equal(got, want) {
				t.Errorf("in flight %v, want %v", got, want)
			}
			s.Report(Report{Backend: b})
			s.Report(Report{Backend: got})
			if got, want := inFlight(t, s), []int{0, 0}; !slices.Equal(got, want) {
				t.Errorf("after every report: in flight %v, want %v", got, want)
			}
		})
	})

	t.Run("waiters are served in arrival order", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s, _ := startSelector(t, limitsConfig(t, newSwitchProbe().Probe, urlA, urlB))
			held := []*Backend{mustPick(t, s, urlA), mustPick(t, s, urlB)}
			var waiters []*picking
			for i := range 4 {
				pick := func() (*Backend, error) { return s.Pick(t.Context()) }
				if i%2 == 1 {
					pick = func() (*Backend, error) { return s.PickFor(t.Context(), "", nil) }
				}
				waiters = append(waiters, startPick(pick))
				settleQueued(t, s, i+1)
				advance(time.Second)
			}
			// Free B, then A, then what the first two waiters got: each
			// slot goes to the oldest waiter left, whatever its backend.
			frees := []int{1, 0}
			wants := []string{urlB, urlA, urlB, urlA}
			for i, want := range wants {
				var free *Backend
				if i < len(frees) {
					free = held[frees[i]]
				} else {
					free = waiters[i-len(frees)].b
				}
				s.Report(Report{Backend: free})
				wantServed(t, waiters[i], want, 4*time.Second)
				for j, w := range waiters[i+1:] {
					if w.answered() {
						t.Fatalf("waiter %d answered before waiter %d", i+1+j, i)
					}
				}
				settleQueued(t, s, len(waiters)-i-1)
				advance(time.Second)
			}
			for _, w := range waiters[2:] {
				s.Report(Report{Backend: w.b})
			}
			if got, want := inFlight(t, s), []int{0, 0}; !slices.Equal(got, want) {
				t.Errorf("after every report: in flight %v, want %v", got, want)
			}
		})
	})

	t.Run("a pick that arrives while others wait queues behind them", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s, _ := startSelector(t, limitsConfig(t, newSwitchProbe().Probe, urlA, urlB))
			a, b := mustPick(t, s, urlA), mustPick(t, s, urlB)
			first := startPick(func() (*Backend, error) { return s.Pick(t.Context()) })
			settleQueued(t, s, 1)
			// A connection frees up as a newcomer arrives, in either
			// order: the oldest waiter gets it and the newcomer waits.
			s.Report(Report{Backend: a})
			late := startPick(func() (*Backend, error) { return s.Pick(t.Context()) })
			wantServed(t, first, urlA, 0)
			settleQueued(t, s, 1)
			if late.answered() {
				t.Fatal("the newcomer was answered before the waiter ahead of it")
			}
			s.Report(Report{Backend: b})
			s.Report(Report{Backend: wantServed(t, late, urlB, 0)})
			s.Report(Report{Backend: first.b})
			if got, want := inFlight(t, s), []int{0, 0}; !slices.Equal(got, want) {
				t.Errorf("after every report: in flight %v, want %v", got, want)
			}
		})
	})

	t.Run("a full queue refuses further picks at once", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			cfg := limitsConfig(t, newSwitchProbe().Probe, urlA, urlB)
			cfg.Limits.QueueSize = 2
			s, _ := startSelector(t, cfg)
			a, b := mustPick(t, s, urlA), mustPick(t, s, urlB)
			var waiters []*picking
			for i := range 2 {
				waiters = append(waiters, startPick(func() (*Backend, error) { return s.Pick(t.Context()) }))
				settleQueued(t, s, i+1)
			}
			wantRefused(t, startPick(func() (*Backend, error) { return s.Pick(t.Context()) }), ErrBusy, 0)
			wantRefused(t, startPick(func() (*Backend, error) { return s.PickFor(t.Context(), "", nil) }), ErrBusy, 0)
			if m := metrics(t, s); m.QueueFull != 2 || m.QueueTimeouts != 0 {
				t.Errorf("queue full %d, timeouts %d; want 2 and 0", m.QueueFull, m.QueueTimeouts)
			}
			settleQueued(t, s, 2)
			if got, want := inFlight(t, s), []int{1, 1}; !slices.Equal(got, want) {
				t.Errorf("in flight %v, want %v: a refused pick holds nothing", got, want)
			}
			s.Report(Report{Backend: a})
			s.Report(Report{Backend: b})
			for i, w := range waiters {
				s.Report(Report{Backend: wantServed(t, w, []string{urlA, urlB}[i], 0)})
			}
		})
	})

	t.Run("with no queue a pick beyond the cap is refused at once", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			cfg := limitsConfig(t, newSwitchProbe().Probe, urlA, urlB)
			cfg.Limits.QueueSize = 0
			s, _ := startSelector(t, cfg)
			mustPick(t, s, urlA)
			mustPick(t, s, urlB)
			wantRefused(t, startPick(func() (*Backend, error) { return s.Pick(t.Context()) }), ErrBusy, 0)
			wantRefused(t, startPick(func() (*Backend, error) { return s.PickFor(t.Context(), "", nil) }), ErrBusy, 0)
			settleQueued(t, s, 0)
		})
	})
}

func TestLimitsQueueTimeout(t *testing.T) {
	tests := []struct {
		name    string
		timeout time.Duration // Limits.QueueTimeout
		want    time.Duration
	}{
		{"waiters are refused after exactly the queue timeout and counted", 3 * time.Second, 3 * time.Second},
		{"a zero queue timeout waits five seconds", 0, 5 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cfg := limitsConfig(t, newSwitchProbe().Probe, urlA, urlB)
				cfg.Limits.QueueTimeout = tt.timeout
				s, _ := startSelector(t, cfg)
				a := mustPick(t, s, urlA)
				mustPick(t, s, urlB)
				first := startPick(func() (*Backend, error) { return s.Pick(t.Context()) })
				settleQueued(t, s, 1)
				advance(time.Second)
				second := startPick(func() (*Backend, error) { return s.PickFor(t.Context(), "", nil) })
				settleQueued(t, s, 2)

				advance(tt.want - time.Second - time.Nanosecond)
				if first.answered() || second.answered() {
					t.Fatal("a waiter was answered before its timeout")
				}
				advance(time.Nanosecond)
				wantRefused(t, first, ErrBusy, tt.want)
				if second.answered() {
					t.Fatal("the second waiter was refused with the first")
				}
				if m := metrics(t, s); m.Queued != 1 || m.QueueTimeouts != 1 {
					t.Errorf("queued %d, timeouts %d; want 1 and 1", m.Queued, m.QueueTimeouts)
				}
				advance(time.Second)
				wantRefused(t, second, ErrBusy, tt.want)
				if m := metrics(t, s); m.Queued != 0 || m.QueueTimeouts != 2 {
					t.Errorf("queued %d, timeouts %d; want 0 and 2", m.Queued, m.QueueTimeouts)
				}
				// A connection that frees up now goes to nobody.
				s.Report(Report{Backend: a})
				if got, want := inFlight(t, s), []int{0, 1}; !slices.Equal(got, want) {
					t.Errorf("in flight %v, want %v", got, want)
				}
			})
		})
	}
}

func TestLimitsQueueCallerGivesUp(t *testing.T) {
	t.Run("a waiter whose context is cancelled leaves the queue", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s, _ := startSelector(t, limitsConfig(t, newSwitchProbe().Probe, urlA, urlB))
			a, b := mustPick(t, s, urlA), mustPick(t, s, urlB)
			ctx, cancel := context.WithCancel(t.Context())
			leaver := startPick(func() (*Backend, error) { return s.PickFor(ctx, "", nil) })
			settleQueued(t, s, 1)
			stayer := startPick(func() (*Backend, error) { return s.Pick(t.Context()) })
			settleQueued(t, s, 2)

			advance(time.Second)
			cancel()
			wantRefused(t, leaver, context.Canceled, time.Second)
			settleQueued(t, s, 1)

			s.Report(Report{Backend: a})
			got := wantServed(t, stayer, urlA, time.Second)
			if got, want := inFlight(t, s), []int{1, 1}; !slices.Equal(got, want) {
				t.Errorf("in flight %v, want %v: the one who left holds nothing", got, want)
			}
			s.Report(Report{Backend: b})
			s.Report(Report{Backend: got})
			if got, want := inFlight(t, s), []int{0, 0}; !slices.Equal(got, want) {
				t.Errorf("after every report: in flight %v, want %v", got, want)
			}
			if m := metrics(t, s); m.QueueTimeouts != 0 {
				t.Errorf("%d queue timeouts, want none", m.QueueTimeouts)
			}
		})
	})

	t.Run("a waiter whose deadline comes before the queue timeout leaves at its deadline", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s, _ := startSelector(t, limitsConfig(t, newSwitchProbe().Probe, urlA))
			mustPick(t, s, urlA)
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
			defer cancel()
			w := startPick(func() (*Backend, error) { return s.Pick(ctx) })
			settleQueued(t, s, 1)
			advance(2 * time.Second)
			wantRefused(t, w, context.DeadlineExceeded, 2*time.Second)
			settleQueued(t, s, 0)
			if m := metrics(t, s); m.QueueTimeouts != 0 {
				t.Errorf("%d queue timeouts, want none", m.QueueTimeouts)
			}
		})
	})

	t.Run("a waiter that leaves keeps nothing alive in the queue", func(t *testing.T) {
		// The queue's backing array outlives its length; what is left
		// beyond it (here, a request naming the backends it excludes) must
		// be cleared, as serveQueue and expire do.
		synctest.Test(t, func(t *testing.T) {
			s, stop := startSelector(t, limitsConfig(t, newSwitchProbe().Probe, urlA))
			mustPick(t, s, urlA)
			ctx, cancel := context.WithCancel(t.Context())
			w := startPick(func() (*Backend, error) { return s.PickFor(ctx, "", []*Backend{newBackend(t, urlB)}) })
			settleQueued(t, s, 1)
			cancel()
			wantRefused(t, w, context.Canceled, 0)
			if err := stop(); err != nil { // Run has returned: its state is ours to read
				t.Fatalf("Run = %v", err)
			}
			for i, left := range s.queue[len(s.queue):cap(s.queue)] {
				if left.req.reply != nil || left.req.exclude != nil {
					t.Errorf("queue slot %d past its end still holds a request", len(s.queue)+i)
				}
			}
		})
	})

	t.Run("a waiter served as its context ends hands the pick back", func(t *testing.T) {
		// Both outcomes are right: the caller takes the pick (and reports
		// it), or PickFor returns the context's error and reports the pick
		// itself as ClientGone. Either way nothing stays in flight. The
		// select between the two is random, so try until both are seen.
		synctest.Test(t, func(t *testing.T) {
			s, _ := startSelector(t, limitsConfig(t, newSwitchProbe().Probe, urlA))
			var kept, handedBack int
			for i := 0; i < 100 && (kept == 0 || handedBack == 0); i++ {
				held := mustPick(t, s, urlA)
				ctx := newRacingContext(t.Context())
				w := startPick(func() (*Backend, error) { return s.PickFor(ctx, "", nil) })
				settleQueued(t, s, 1)
				s.Report(Report{Backend: held}) // the selector serves the waiter...
				settleQueued(t, s, 0)
				before := statusOf(t, s, urlA).Requests
				ctx.cancel() // ...and its context ends before it looks
				b, _, err := w.result()
				switch {
				case err == nil && b != nil && b.Name == urlA:
					kept++
					s.Report(Report{Backend: b})
				case errors.Is(err, context.Canceled) && b == nil:
					handedBack++
				default:
					t.Fatalf("PickFor = %v, %v; want %s, or the context's error", b, err, urlA)
				}
				synctest.Wait()
				st := statusOf(t, s, urlA)
				if st.InFlight != 0 || st.Requests != before+1 || st.Failures != 0 || !st.Up {
					t.Fatalf("status %+v, want up, nothing in flight, one more request, no failures", st)
				}
			}
			if kept == 0 || handedBack == 0 {
				t.Errorf("picks kept %d times and handed back %d times, want both seen", kept, handedBack)
			}
		})
	})
}

// racingContext is a context that PickFor sees end at the same moment its
// answer arrives. PickFor asks for Done twice: when it sends its request,
// and when it waits for the answer. From the second time on, Done waits
// until cancel is called and then returns a closed channel, so when PickFor
// selects, the answer the selector sent meanwhile and the end of the
// context are ready together.
type racingContext struct {
	context.Context // for Deadline and Value
	calls           atomic.Int32
	release         chan struct{} // closed by cancel
	once            sync.Once
}

func newRacingContext(parent context.Context) *racingContext {
	return &racingContext{Context: parent, release: make(chan struct{})}
}

func (c *racingContext) cancel() { c.once.Do(func() { close(c.release) }) }

func (c *racingContext) Done() <-chan struct{} {
	if c.calls.Add(1) == 1 {
		return nil // never ready: the request goes through
	}
	<-c.release
	return c.release
}

func (c *racingContext) Err() error {
	select {
	case <-c.release:
		return context.Canceled
	default:
		return nil
	}
}

func TestLimitsQueueConstraints(t *testing.T) {
	t.Run("keyed picks queue too and take the first backend that frees up", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			cfg := limitsConfig(t, newSwitchProbe().Probe, urlA, urlB)
			cfg.Policy = &Hash{Spec: KeySpec{Kind: KeyHeader, Name: "X-User"}}
			s, _ := startSelector(t, cfg)
			const key = "user-1"
			pickKey := func() *Backend {
				t.Helper()
				b, err := s.PickFor(t.Context(), key, nil)
				if err != nil || b == nil {
					t.Fatalf("PickFor(%q) = %v, %v", key, b, err)
				}
				return b
			}
			home := pickKey()
			other := pickKey() // home is at its cap: the key spills over
			if other == home {
				t.Fatalf("both picks went to %s past its cap of 1", home)
			}
			w := startPick(func() (*Backend, error) { return s.PickFor(t.Context(), key, nil) })
			settleQueued(t, s, 1)
			s.Report(Report{Backend: other})
			s.Report(Report{Backend: wantServed(t, w, other.Name, 0)})
			s.Report(Report{Backend: home})
			if got, want := inFlight(t, s), []int{0, 0}; !slices.Equal(got, want) {
				t.Errorf("after every report: in flight %v, want %v", got, want)
			}
		})
	})

	t.Run("a retry waits when the only backends with room are excluded", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s, _ := startSelector(t, limitsConfig(t, newSwitchProbe().Probe, urlA, urlB))
			backends := backendsOf(t, s)
			a := mustPick(t, s, urlA)
			retry := startPick(func() (*Backend, error) { return s.PickFor(t.Context(), "", backends[1:]) })
			settleQueued(t, s, 1)
			if got, want := inFlight(t, s), []int{1, 0}; !slices.Equal(got, want) {
				t.Errorf("in flight %v, want %v: B has room but was tried", got, want)
			}
			// A newcomer may take B: the retry could not use it.
			b := mustPick(t, s, urlB)
			s.Report(Report{Backend: a})
			s.Report(Report{Backend: wantServed(t, retry, urlA, 0)})
			s.Report(Report{Backend: b})
			if got, want := inFlight(t, s), []int{0, 0}; !slices.Equal(got, want) {
				t.Errorf("after every report: in flight %v, want %v", got, want)
			}
		})
	})

	t.Run("a waiter that cannot use the freed backend does not hold up those behind it", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s, _ := startSelector(t, limitsConfig(t, newSwitchProbe().Probe, urlA, urlB))
			backends := backendsOf(t, s)
			a, b := mustPick(t, s, urlA), mustPick(t, s, urlB)
			retry := startPick(func() (*Backend, error) { return s.PickFor(t.Context(), "", backends[1:]) })
			settleQueued(t, s, 1)
			behind := startPick(func() (*Backend, error) { return s.Pick(t.Context()) })
			settleQueued(t, s, 2)
			s.Report(Report{Backend: b})
			s.Report(Report{Backend: wantServed(t, behind, urlB, 0)})
			settleQueued(t, s, 1)
			s.Report(Report{Backend: a})
			s.Report(Report{Backend: wantServed(t, retry, urlA, 0)})
			if got, want := inFlight(t, s), []int{0, 0}; !slices.Equal(got, want) {
				t.Errorf("after every report: in flight %v, want %v", got, want)
			}
		})
	})

	t.Run("a retry that excludes every backend is refused at once even when all are full", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s, _ := startSelector(t, limitsConfig(t, newSwitchProbe().Probe, urlA, urlB))
			backends := backendsOf(t, s)
			mustPick(t, s, urlA)
			mustPick(t, s, urlB)
			wantRefused(t, startPick(func() (*Backend, error) { return s.PickFor(t.Context(), "", backends) }), nil, 0)
			settleQueued(t, s, 0)
		})
	})
}

func TestLimitsQueueBackendSetChanges(t *testing.T) {
	t.Run("waiters are refused as soon as no backend could ever take them", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s, _ := startSelector(t, limitsConfig(t, newSwitchProbe().Probe, urlA, urlB))
			a, b := mustPick(t, s, urlA), mustPick(t, s, urlB)
			var waiters []*picking
			for i := range 2 {
				waiters = append(waiters, startPick(func() (*Backend, error) { return s.Pick(t.Context()) }))
				settleQueued(t, s, i+1)
			}
			advance(time.Second)
			// A goes down; B is still up, though full: keep waiting.
			s.Report(Report{Backend: a, Outcome: ConnectFailed, Err: errRefused})
			settleQueued(t, s, 2)
			advance(time.Second)
			// Now nothing is up: nothing will ever free up for them.
			s.Report(Report{Backend: b, Outcome: ConnectFailed, Err: errRefused})
			for _, w := range waiters {
				wantRefused(t, w, nil, 2*time.Second)
			}
			settleQueued(t, s, 0)
			if got, want := inFlight(t, s), []int{0, 0}; !slices.Equal(got, want) {
				t.Errorf("in flight %v, want %v", got, want)
			}
			if m := metrics(t, s); m.QueueTimeouts != 0 {
				t.Errorf("%d queue timeouts, want none", m.QueueTimeouts)
			}
		})
	})

	t.Run("waiters are refused when health checks take every backend down", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			probe := newSwitchProbe()
			cfg := limitsConfig(t, probe.Probe, urlA)
			cfg.Monitor.Fall = 1
			s, _ := startSelector(t, cfg)
			synctest.Wait()
			a := mustPick(t, s, urlA)
			w := startPick(func() (*Backend, error) { return s.Pick(t.Context()) })
			settleQueued(t, s, 1)
			probe.set(urlA, errRefused)
			advance(testInterval)
			wantRefused(t, w, nil, testInterval)
			s.Report(Report{Backend: a, Outcome: Failed})
			if got, want := inFlight(t, s), []int{0}; !slices.Equal(got, want) {
				t.Errorf("in flight %v, want %v", got, want)
			}
		})
	})

	t.Run("a backend that comes back up takes a waiter", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			probe := newSwitchProbe()
			probe.set(urlA, errRefused)
			cfg := limitsConfig(t, probe.Probe, urlA, urlB)
			cfg.Monitor.Fall, cfg.Monitor.Rise = 1, 1
			s, _ := startSelector(t, cfg)
			synctest.Wait() // A goes down
			b := mustPick(t, s, urlB)
			w := startPick(func() (*Backend, error) { return s.Pick(t.Context()) })
			settleQueued(t, s, 1)
			probe.set(urlA, nil)
			advance(testInterval)
			s.Report(Report{Backend: wantServed(t, w, urlA, testInterval)})
			s.Report(Report{Backend: b})
			if got, want := inFlight(t, s), []int{0, 0}; !slices.Equal(got, want) {
				t.Errorf("in flight %v, want %v", got, want)
			}
		})
	})

	t.Run("a backend back from ejection takes a waiter", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			cfg := limitsConfig(t, newSwitchProbe().Probe, urlA, urlB)
			cfg.Ejection = Ejection{After: 1, Time: 10 * time.Second}
			s, _ := startSelector(t, cfg)
			hit(t, s, urlA, failed)
			b := mustPick(t, s, urlB)
			w := startPick(func() (*Backend, error) { return s.Pick(t.Context()) })
			settleQueued(t, s, 1)
			advance(10 * time.Second)
			s.Report(Report{Backend: wantServed(t, w, urlA, 10*time.Second)})
			s.Report(Report{Backend: b})
		})
	})

	t.Run("a backend added at runtime takes a waiter", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s, _ := startSelector(t, limitsConfig(t, newSwitchProbe().Probe, urlA))
			a := mustPick(t, s, urlA)
			w := startPick(func() (*Backend, error) { return s.Pick(t.Context()) })
			settleQueued(t, s, 1)
			if _, err := s.Add(t.Context(), BackendConfig{URL: parseURLs(t, urlB)[0], Weight: 1}); err != nil {
				t.Fatalf("Add: %v", err)
			}
			s.Report(Report{Backend: wantServed(t, w, urlB, 0)})
			s.Report(Report{Backend: a})
		})
	})

	t.Run("waiters are refused when their only backend is removed", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s, _ := startSelector(t, limitsConfig(t, newSwitchProbe().Probe, urlA))
			a := mustPick(t, s, urlA)
			w := startPick(func() (*Backend, error) { return s.Pick(t.Context()) })
			settleQueued(t, s, 1)
			if err := s.Remove(t.Context(), a.ID); err != nil {
				t.Fatalf("Remove: %v", err)
			}
			wantRefused(t, w, nil, 0)
			settleQueued(t, s, 0)
			s.Report(Report{Backend: a})
		})
	})

	t.Run("a reload that lifts the cap serves the waiters at once", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			cfg := limitsConfig(t, newSwitchProbe().Probe, urlA)
			s, _ := startSelector(t, cfg)
			a := mustPick(t, s, urlA)
			w := startPick(func() (*Backend, error) { return s.Pick(t.Context()) })
			settleQueued(t, s, 1)
			cfg.Limits.MaxConnsPerBackend = 0
			if err := s.Reconfigure(t.Context(), cfg); err != nil {
				t.Fatalf("Reconfigure: %v", err)
			}
			s.Report(Report{Backend: wantServed(t, w, urlA, 0)})
			s.Report(Report{Backend: a})
			if got, want := inFlight(t, s), []int{0}; !slices.Equal(got, want) {
				t.Errorf("after every report: in flight %v, want %v", got, want)
			}
		})
	})

	t.Run("queue deadlines and ejection ends share one timer", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			cfg := limitsConfig(t, newSwitchProbe().Probe, urlA, urlB)
			cfg.Limits.QueueTimeout = 3 * time.Second
			cfg.Ejection = Ejection{After: 1, Time: 10 * time.Second}
			logger, logs := newLogger()
			cfg.Logger = logger
			s, _ := startSelector(t, cfg)
			hit(t, s, urlA, failed)
			b := mustPick(t, s, urlB)
			w := startPick(func() (*Backend, error) { return s.Pick(t.Context()) })
			settleQueued(t, s, 1)
			advance(3 * time.Second)
			wantRefused(t, w, ErrBusy, 3*time.Second)
			advance(7*time.Second - time.Nanosecond)
			if n := logs.count("backend returned"); n != 0 {
				t.Fatalf("A returned before its 10s were up:\n%s", logs)
			}
			advance(time.Nanosecond)
			if n := logs.count("backend returned", "backend="+urlA); n != 1 {
				t.Fatalf("%d %q lines for A after 10s, want 1:\n%s", n, "backend returned", logs)
			}
			s.Report(Report{Backend: b})
		})
	})

	t.Run("waiters get an answer when the selector stops", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s, stop := startSelector(t, limitsConfig(t, newSwitchProbe().Probe, urlA))
			mustPick(t, s, urlA)
			w := startPick(func() (*Backend, error) { return s.Pick(t.Context()) })
			settleQueued(t, s, 1)
			if err := stop(); err != nil {
				t.Fatalf("Run = %v", err)
			}
			synctest.Wait()
			if !w.answered() {
				t.Fatal("waiter still waiting after the selector stopped")
			}
			if b, _, err := w.result(); b != nil || (err != nil && !errors.Is(err, ErrStopped)) {
				t.Errorf("pick = %v, %v; want nil with no error or %v", b, err, ErrStopped)
			}
		})
	})
}

func TestLimitsCapHoldsUnderLoad(t *testing.T) {
	// Many handlers pick, hold for a while, and report, in fake time.
	// Every pick must get a backend (the queue is long and patient enough),
	// and no backend may ever hold more than its cap.
	synctest.Test(t, func(t *testing.T) {
		const (
			workers = 24
			each    = 20
			maxConn = 2
		)
		cfg := limitsConfig(t, newSwitchProbe().Probe, urlA, urlB, urlC)
		cfg.Limits = Limits{MaxConnsPerBackend: maxConn, QueueSize: workers, QueueTimeout: time.Hour}
		cfg.Policy = &LeastConn{}
		s, _ := startSelector(t, cfg)
		var (
			mu      sync.Mutex
			holding = map[string]int{}
			most    = map[string]int{}
			served  int
		)
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				for i := range each {
					var b *Backend
					var err error
					if (w+i)%2 == 0 {
						b, err = s.Pick(t.Context())
					} else {
						b, err = s.PickFor(t.Context(), "", nil)
					}
					if err != nil || b == nil {
						t.Errorf("worker %d pick %d = %v, %v", w, i, b, err)
						return
					}
					mu.Lock()
					holding[b.Name]++
					most[b.Name] = max(most[b.Name], holding[b.Name])
					served++
					mu.Unlock()
					time.Sleep(time.Duration(1+(w*7+i*3)%10) * time.Millisecond)
					mu.Lock()
					holding[b.Name]--
					mu.Unlock()
					s.Report(Report{Backend: b, Outcome: Success, Status: 200})
				}
			})
		}
		wg.Wait()
		if served != workers*each {
			t.Errorf("%d picks served, want %d", served, workers*each)
		}
		for name, n := range most {
			if n > maxConn {
				t.Errorf("%s held %d requests at once, want at most %d", name, n, maxConn)
			}
		}
		if got, want := inFlight(t, s), []int{0, 0, 0}; !slices.Equal(got, want) {
			t.Errorf("after every report: in flight %v, want %v", got, want)
		}
		if m := metrics(t, s); m.Queued != 0 || m.QueueTimeouts != 0 {
			t.Errorf("queued %d, timeouts %d; want none", m.Queued, m.QueueTimeouts)
		}
	})
}

// TestLimitsCallersGiveUpUnderLoad runs in real time, to let -race and the
// scheduler try interleavings that fake time would not: many callers pick
// with short, random deadlines against a small, short queue, and hold
// what they get for a moment. However each pick ends (served, refused,
// timed out in the queue, or abandoned at any point), no pick may stay in
// flight and no request may stay queued.
func TestLimitsCallersGiveUpUnderLoad(t *testing.T) {
	cfg := limitsConfig(t, newSwitchProbe().Probe, urlA, urlB)
	cfg.Limits.QueueSize, cfg.Limits.QueueTimeout = 5, 3*time.Millisecond
	s, _ := startSelector(t, cfg)
	var wg sync.WaitGroup
	var served atomic.Int64
	for w := range 32 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 0))
			for range 100 {
				ctx, cancel := context.WithTimeout(t.Context(), time.Duration(rng.IntN(2000))*time.Microsecond)
				var b *Backend
				if rng.IntN(2) == 0 {
					b, _ = s.Pick(ctx)
				} else {
					b, _ = s.PickFor(ctx, "", nil)
				}
				cancel()
				if b != nil {
					served.Add(1)
					time.Sleep(time.Duration(rng.IntN(300)) * time.Microsecond)
					s.Report(Report{Backend: b})
				}
			}
		})
	}
	wg.Wait()
	if served.Load() == 0 {
		t.Fatal("no pick was served")
	}
	// Reports are buffered, and a pick handed back by PickFor is reported
	// as the caller returns: ask until nothing is left in flight.
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	var last Metrics
	for {
		m, err := s.Metrics(ctx)
		if err != nil {
			t.Fatalf("waiting for nothing to be in flight or queued: %v (last: %d queued, %+v)", err, last.Queued, last.Backends)
		}
		last = m
		idle := m.Queued == 0
		for _, b := range m.Backends {
			idle = idle && b.InFlight == 0
			if b.InFlight < 0 || b.InFlight > cfg.Limits.MaxConnsPerBackend {
				t.Fatalf("%s: %d in flight, want 0 to %d", b.Name, b.InFlight, cfg.Limits.MaxConnsPerBackend)
			}
		}
		if idle {
			return
		}
		time.Sleep(time.Millisecond)
	}
}
