//go:build racelab

package racelab

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"time"
)

var errStopped = errors.New("balancer stopped")

// ActorBalancer is BrokenBalancer in the actor style. The same state, the
// round-robin position and the in-flight map, belongs to one goroutine,
// Run; handlers never touch it. They receive a pick and send back a done,
// as actors.Selector's handlers do with Pick and Report.
type ActorBalancer struct {
	offers  chan string              // unbuffered: the next pick, offered in advance
	dones   chan string              // a handler has finished with a backend
	queries chan chan map[string]int // a snapshot of the counts; reply has capacity 1
	stopped chan struct{}            // closed by Run when it returns

	// Owned by the Run goroutine alone.
	backends []string
	next     int
	inFlight map[string]int
}

// NewActorBalancer returns a balancer over backends; start its Run.
func NewActorBalancer(backends ...string) *ActorBalancer {
	return &ActorBalancer{
		offers: make(chan string), dones: make(chan string),
		queries: make(chan chan map[string]int), stopped: make(chan struct{}),
		backends: backends, inFlight: map[string]int{},
	}
}

// Run is the goroutine that owns the balancer's state, until ctx is done.
func (a *ActorBalancer) Run(ctx context.Context) {
	defer close(a.stopped)
	for {
		b := a.backends[a.next]
		select {
		case a.offers <- b: // a handler took the offer: it now holds b
			a.next = (a.next + 1) % len(a.backends)
			a.inFlight[b]++
		case b := <-a.dones:
			a.inFlight[b]--
		case reply := <-a.queries:
			reply <- maps.Clone(a.inFlight) // a copy: the map itself never leaves Run
		case <-ctx.Done():
			return
		}
	}
}

// ServeHTTP is BrokenBalancer.ServeHTTP with messages instead of shared
// fields.
func (a *ActorBalancer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var b string
	select {
	case b = <-a.offers:
	case <-r.Context().Done():
		return
	case <-a.stopped:
		http.Error(w, errStopped.Error(), http.StatusServiceUnavailable)
		return
	}
	defer a.done(b)
	time.Sleep(forwardTime)
	fmt.Fprintln(w, b)
}

func (a *ActorBalancer) done(b string) {
	select {
	case a.dones <- b:
	case <-a.stopped:
	}
}

// InFlight returns a copy of the in-flight counts.
func (a *ActorBalancer) InFlight(ctx context.Context) (map[string]int, error) {
	reply := make(chan map[string]int, 1)
	select {
	case a.queries <- reply:
		return <-reply, nil // answered in the same step that took the query
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-a.stopped:
		return nil, errStopped
	}
}
