//go:build exercise

// Exercise (b) of docs/TOUR.md: add a message type. These tests fail until
// the selector has a Pause method; run them with
//
//	go test -tags exercise ./actors/ -run ExercisePause

package actors_test

import (
	"context"
	"errors"
	"net/url"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sourcegraph/conc"

	"github.com/roundhouse/roundhouse/actors"
)

// pauser is the method the exercise adds to *actors.Selector. The tests
// look for it at run time, so that they compile before it exists.
type pauser interface {
	Pause(ctx context.Context, d time.Duration) error
}

// pausable returns sel as a pauser, or fails the test.
func pausable(t *testing.T, sel *actors.Selector) pauser {
	t.Helper()
	p, ok := any(sel).(pauser)
	if !ok {
		t.Fatal(`*actors.Selector has no method Pause(ctx context.Context, d time.Duration) error yet
add it as a new message to the selector (see docs/TOUR.md, exercise (b))`)
	}
	return p
}

// startPausable runs a selector over a, b and c, whose probes always pass,
// until the test ends. Call it inside a synctest bubble.
func startPausable(t *testing.T) (*actors.Selector, pauser, context.CancelFunc) {
	t.Helper()
	var cfgs []actors.BackendConfig
	for _, host := range []string{"a", "b", "c"} {
		cfgs = append(cfgs, actors.BackendConfig{URL: &url.URL{Scheme: "http", Host: host}, Weight: 1})
	}
	sel, err := actors.New(actors.Config{
		Backends: cfgs,
		Monitor: actors.MonitorConfig{
			Probe:    func(context.Context, *actors.Backend) error { return nil },
			Interval: time.Hour, // no probe results arrive while the tests run
		},
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	p := pausable(t, sel)
	ctx, cancel := context.WithCancel(t.Context())
	var wg conc.WaitGroup
	wg.Go(func() { _ = sel.Run(ctx) })
	t.Cleanup(wg.Wait)
	t.Cleanup(cancel)
	synctest.Wait() // the monitors' first probes have run
	return sel, p, cancel
}

// pick takes one pick and reports it at once; "none" for no backend.
func pick(t *testing.T, sel *actors.Selector) string {
	t.Helper()
	b, err := sel.Pick(t.Context())
	if err != nil {
		t.Fatalf("Pick: %v", err)
	}
	if b == nil {
		return "none"
	}
	sel.Report(actors.Report{Backend: b, Status: 200, Final: true})
	return b.URL.Host
}

// pause calls Pause, failing the test on an error.
func pause(t *testing.T, p pauser, d time.Duration) {
	t.Helper()
	if err := p.Pause(t.Context(), d); err != nil {
		t.Fatalf("Pause(%v): %v", d, err)
	}
}

// at lets fake time pass until d after the bubble started, then waits
// until the selector has handled whatever that time brought.
func at(start time.Time, d time.Duration) {
	time.Sleep(time.Until(start.Add(d)))
	synctest.Wait()
}

func expect(t *testing.T, sel *actors.Selector, when string, want string) {
	t.Helper()
	if got := pick(t, sel); got != want {
		t.Fatalf("%s: Pick = %s, want %s", when, got, want)
	}
}

func TestExercisePauseStopsPicksForItsDuration(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		sel, p, _ := startPausable(t)
		expect(t, sel, "before the pause", "a")

		pause(t, p, 10*time.Second)
		expect(t, sel, "just after Pause returned", "none")
		b, err := sel.PickFor(t.Context(), "", nil)
		if err != nil || b != nil {
			t.Fatalf("PickFor during the pause = %v, %v; want nil, nil", b, err)
		}

		at(start, 10*time.Second-time.Millisecond)
		expect(t, sel, "a moment before the pause ends", "none")

		// Nothing but time happens now: no report, no probe result. The
		// selector must wake itself when the pause ends.
		at(start, 10*time.Second+time.Millisecond)
		expect(t, sel, "once the pause is over (does the selector wake itself when it ends?)", "b")
		expect(t, sel, "after the pause", "c")
	})
}

func TestExercisePauseLaterPauseReplacesTheEnd(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		sel, p, _ := startPausable(t)

		pause(t, p, 10*time.Second)
		at(start, time.Second)
		pause(t, p, 2*time.Second) // shortens: ends at 3s
		at(start, 3*time.Second+time.Millisecond)
		expect(t, sel, "after a shortened pause", "a")

		pause(t, p, time.Second) // ends at 4s...
		pause(t, p, 5*time.Second)
		at(start, 4*time.Second+time.Millisecond) // ...no: at 8s
		expect(t, sel, "during a lengthened pause", "none")
		at(start, 8*time.Second+time.Millisecond)
		expect(t, sel, "after a lengthened pause", "b")
	})
}

func TestExercisePauseZeroResumesAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sel, p, _ := startPausable(t)
		pause(t, p, time.Minute)
		expect(t, sel, "during the pause", "none")
		pause(t, p, 0)
		expect(t, sel, "after Pause(0)", "a")
	})
}

// Only picks stop: the selector still takes every other message.
func TestExercisePauseOtherMessagesFlow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sel, p, _ := startPausable(t)
		b, err := sel.Pick(t.Context())
		if err != nil || b == nil {
			t.Fatalf("Pick = %v, %v; want a backend", b, err)
		}
		pause(t, p, time.Minute)
		sel.Report(actors.Report{Backend: b, Status: 200, Final: true})
		st, err := sel.Status(t.Context())
		if err != nil {
			t.Fatalf("Status during a pause: %v", err)
		}
		if st[0].Requests != 1 || st[0].InFlight != 0 {
			t.Errorf("Status during a pause: %s has %d requests, %d in flight; want 1 and 0",
				st[0].Name, st[0].Requests, st[0].InFlight)
		}
	})
}

// Like every other call, Pause returns at once with ErrStopped once the
// selector has stopped, and with ctx's error when ctx ends first.
func TestExercisePauseAfterStop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, p, stop := startPausable(t)
		stop()
		synctest.Wait()
		if err := p.Pause(t.Context(), time.Second); !errors.Is(err, actors.ErrStopped) {
			t.Errorf("Pause after the selector stopped = %v, want ErrStopped", err)
		}
	})
}
