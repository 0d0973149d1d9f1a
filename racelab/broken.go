//go:build racelab

package racelab

import (
	"fmt"
	"net/http"
	"time"
)

// forwardTime stands in for the round trip to a backend: while one
// handler waits for its backend, others pick.
const forwardTime = 2 * time.Millisecond

// BrokenBalancer is DELIBERATELY RACY. Do not copy it.
//
// It is a line-by-line port of a Python asyncio balancer. In asyncio every
// handler runs on one thread and only yields at an await, so the handlers
// below could share next and inFlight safely there. net/http runs each
// connection's handler on its own goroutine, and goroutines run in
// parallel: every field below is read and written by many goroutines at
// once, with nothing ordering those accesses. That is a data race.
type BrokenBalancer struct {
	backends []string       // never written after NewBrokenBalancer: safe to share
	next     int            // RACE: the round-robin position, shared by every handler
	inFlight map[string]int // RACE: requests in flight per backend, shared by every handler
}

// NewBrokenBalancer returns a balancer over backends.
func NewBrokenBalancer(backends ...string) *BrokenBalancer {
	return &BrokenBalancer{backends: backends, inFlight: map[string]int{}}
}

// ServeHTTP "forwards" the request to the backend it picked (it waits
// forwardTime and answers with the backend's name). net/http calls it on
// many goroutines at once.
func (lb *BrokenBalancer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b := lb.pick()
	defer lb.done(b)
	time.Sleep(forwardTime)
	fmt.Fprintln(w, b)
}

// pick is the Python original's
//
//	backend = self.backends[self.next]
//	self.next = (self.next + 1) % len(self.backends)
//	self.in_flight[backend] += 1
func (lb *BrokenBalancer) pick() string {
	b := lb.backends[lb.next]
	lb.next = (lb.next + 1) % len(lb.backends)
	lb.inFlight[b]++
	return b
}

// done is the Python original's self.in_flight[backend] -= 1.
func (lb *BrokenBalancer) done(b string) {
	lb.inFlight[b]--
}
