//go:build exercise

package deadlock

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sourcegraph/conc"
)

// If a test here fails with "the selector has stopped answering", or
// panics with "deadlock: ... blocked", read the goroutine dump below the
// panic: find the goroutine inside (*Selector).Run whose state says
// "(durable), synctest bubble", and the line of selector.go it is blocked
// on.

// start runs s until the test ends. Call it inside a synctest bubble.
func start(t *testing.T, s *Selector) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	var wg conc.WaitGroup
	wg.Go(func() { s.Run(ctx) })
	t.Cleanup(wg.Wait)
	t.Cleanup(cancel)
}

// The ways a caller waiting in the queue can give up. Each returns once
// the caller has given up and the backend it held, held, is released.
var givingUp = []struct {
	name string
	run  func(t *testing.T, s *Selector, held string)
}{
	{"after waiting a while", func(t *testing.T, s *Selector, held string) {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		if b, err := s.Pick(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Pick with every backend full = %q, %v; want it to wait, then give up", b, err)
		}
		s.Release(held) // the selector gives the freed slot to the oldest waiter
	}},
	{"just as its answer arrives", func(t *testing.T, s *Selector, held string) {
		ctx, cancel := context.WithCancel(t.Context())
		var caller conc.WaitGroup
		caller.Go(func() {
			if b, err := s.Pick(ctx); err == nil {
				s.Release(b) // it got an answer after all: done with it
			}
		})
		synctest.Wait() // the caller waits in the queue
		cancel()        // it gives up...
		s.Release(held) // ...and in the same instant the slot it waited for frees up
		waitFor(t, s, "a caller gave up just as its answer arrived")
		caller.Wait()
	}},
}

// waitFor fails the test if the selector no longer answers.
func waitFor(t *testing.T, s *Selector, after string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if _, err := s.InFlight(ctx); err != nil {
		t.Fatalf("InFlight after %s: %v\nthe selector has stopped answering: it is stuck (a deadlock)", after, err)
	}
}

// A caller that gives up must never stop the selector serving everyone else.
func TestExerciseDeadlock(t *testing.T) {
	for _, g := range givingUp {
		t.Run("caller gives up "+g.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := New(1, "a", "b")
				start(t, s)
				a, _ := s.Pick(t.Context())
				b, _ := s.Pick(t.Context())
				if a != "a" || b != "b" {
					t.Fatalf("first picks = %q, %q; want a, b", a, b)
				}
				g.run(t, s, a)
				waitFor(t, s, "a caller gave up")
				s.Release(b)
				ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
				defer cancel()
				if got, err := s.Pick(ctx); err != nil {
					t.Fatalf("Pick after b was released = %q, %v; want a backend", got, err)
				}
			})
		})
	}
}

// Once the deadlock is gone: the slot given to a caller that gave up must
// come back, or its backend loses capacity for good.
func TestExerciseDeadlockNoLostSlot(t *testing.T) {
	for _, g := range givingUp {
		t.Run("caller gives up "+g.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := New(1, "a")
				start(t, s)
				a, _ := s.Pick(t.Context())
				g.run(t, s, a)

				ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
				defer cancel()
				n, err := s.InFlight(ctx)
				if err != nil {
					t.Fatalf("InFlight: %v (make TestExerciseDeadlock pass first)", err)
				}
				if n != 0 {
					t.Errorf("in flight = %d after every pick was released, want 0: the slot given to the caller that gave up never came back", n)
				}
				if got, err := s.Pick(ctx); got != "a" || err != nil {
					t.Fatalf("Pick with a free again = %q, %v; want a at once", got, err)
				}
			})
		})
	}
}
