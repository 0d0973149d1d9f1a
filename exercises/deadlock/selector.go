//go:build exercise

// Package deadlock is exercise (c) of docs/TOUR.md: a small selector in
// the actor style of package actors, with a connection cap and a queue,
// and a deadlock in it. Find it and fix it, so that
//
//	go test -tags exercise ./exercises/deadlock/
//
// passes. The package builds only with -tags exercise.
package deadlock

import (
	"context"
	"errors"
)

// ErrStopped is returned to callers whose selector has stopped.
var ErrStopped = errors.New("selector stopped")

// Selector hands out backends round-robin, with at most Max requests in
// flight on each. A request that finds every backend full waits in a
// queue, in arrival order, until a backend is released.
type Selector struct {
	picks    chan pickRequest
	releases chan string
	queries  chan chan int
	stopped  chan struct{} // closed when Run returns

	// Owned by the Run goroutine.
	backends []string
	max      int
	next     int
	inFlight map[string]int
	queue    []pickRequest
}

// pickRequest asks for a backend; the selector answers on reply.
type pickRequest struct {
	reply chan string
}

// New returns a selector over backends that allows max requests in flight
// on each; start its Run.
func New(max int, backends ...string) *Selector {
	return &Selector{
		picks: make(chan pickRequest), releases: make(chan string),
		queries: make(chan chan int), stopped: make(chan struct{}),
		backends: backends, max: max, inFlight: map[string]int{},
	}
}

// Run serves messages until ctx is done.
func (s *Selector) Run(ctx context.Context) {
	defer close(s.stopped)
	for {
		select {
		case req := <-s.picks:
			if b, ok := s.choose(); ok {
				s.inFlight[b]++
				req.reply <- b
			} else {
				s.queue = append(s.queue, req)
			}
		case b := <-s.releases:
			s.inFlight[b]--
			if len(s.queue) > 0 { // the freed slot goes to the oldest waiter
				req := s.queue[0]
				s.queue = s.queue[1:]
				s.inFlight[b]++
				req.reply <- b
			}
		case reply := <-s.queries:
			n := 0
			for _, c := range s.inFlight {
				n += c
			}
			reply <- n
		case <-ctx.Done():
			return
		}
	}
}

// choose returns the next backend round-robin that is under the cap.
func (s *Selector) choose() (string, bool) {
	for k := range s.backends {
		i := (s.next + k) % len(s.backends)
		if b := s.backends[i]; s.inFlight[b] < s.max {
			s.next = i + 1
			return b, true
		}
	}
	return "", false
}

// Pick returns a backend, waiting in the queue if every backend is full,
// until ctx ends. Every backend it returns must be released.
func (s *Selector) Pick(ctx context.Context) (string, error) {
	req := pickRequest{reply: make(chan string)}
	select {
	case s.picks <- req:
	case <-ctx.Done():
		return "", ctx.Err()
	case <-s.stopped:
		return "", ErrStopped
	}
	select {
	case b := <-req.reply:
		return b, nil
	case <-ctx.Done():
		return "", ctx.Err()
	case <-s.stopped:
		return "", ErrStopped
	}
}

// Release ends a pick.
func (s *Selector) Release(b string) {
	select {
	case s.releases <- b:
	case <-s.stopped:
	}
}

// InFlight returns how many picks have not been released yet.
func (s *Selector) InFlight(ctx context.Context) (int, error) {
	reply := make(chan int, 1)
	select {
	case s.queries <- reply:
		return <-reply, nil
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-s.stopped:
		return 0, ErrStopped
	}
}
