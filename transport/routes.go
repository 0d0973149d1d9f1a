package transport

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/roundhouse/roundhouse/routing"
)

// Table is an immutable routing table: the routes in order, each with the
// pool it sends to, and every pool. Handlers read it from many goroutines
// at once; nothing changes it after NewTable. A reload builds a new one and
// hands it to the Router.
type Table struct {
	routes *routing.Table // nil: no routes, every request goes to def
	to     []*Pool        // to[i] is route i's pool
	def    *Pool          // with no routes: the pool every request goes to
	pools  []*Pool        // every pool, in the order given
}

// NewTable builds a table from the routes, in order, and the pools they
// name. With no routes, every request goes to the pool named "default", or
// to the only pool there is.
func NewTable(routes []routing.Route, pools []*Pool) (*Table, error) {
	t := &Table{pools: pools}
	byName := make(map[string]*Pool, len(pools))
	for _, p := range pools {
		if _, dup := byName[p.Name]; dup {
			return nil, fmt.Errorf("pool %q: defined twice", p.Name)
		}
		byName[p.Name] = p
	}
	if len(routes) == 0 {
		switch {
		case byName["default"] != nil:
			t.def = byName["default"]
		case len(pools) == 1:
			t.def = pools[0]
		default:
			return nil, errors.New(`no routes: every request needs a pool named "default"`)
		}
		return t, nil
	}
	var err error
	if t.routes, err = routing.Compile(routes); err != nil {
		return nil, err
	}
	for _, r := range routes {
		p := byName[r.Pool]
		if p == nil {
			return nil, fmt.Errorf("route %q: no pool %q", r.Name, r.Pool)
		}
		t.to = append(t.to, p)
	}
	return t, nil
}

// Pools returns every pool of the table, in order. The caller must not
// change the slice.
func (t *Table) Pools() []*Pool { return t.pools }

// Routes returns the table's routes in order; none when every request
// goes to one pool.
func (t *Table) Routes() []routing.Route {
	if t.routes == nil {
		return nil
	}
	rs := make([]routing.Route, t.routes.Len())
	for i := range rs {
		rs[i] = t.routes.Route(i)
	}
	return rs
}

// Routed reports whether requests are routed (there are routes), as
// opposed to all going to one pool.
func (t *Table) Routed() bool { return t.routes != nil }

// match returns the pool r goes to and the route that sends it there (-1
// with no routes), or ok false when no route matches. path is r's path,
// cleaned (see routing.CleanPath).
func (t *Table) match(r *http.Request, path string) (p *Pool, route int, ok bool) {
	if t.routes == nil {
		return t.def, -1, true
	}
	i, ok := t.routes.Match(r.Host, r.Method, path, r.Header)
	if !ok {
		return nil, -1, false
	}
	return t.to[i], i, true
}

// Router is an actor: it owns the current routing Table and hands it to
// every handler. A reload replaces the table whole (Set); a handler that
// took the old one finishes with it. It also counts the requests no route
// matched, for the metrics.
//
// The table reaches handlers as copies of its pointer in a buffered
// channel (offers) that Run fills: a handler takes one without waiting for
// Run's goroutine to be scheduled, which an unbuffered offer, as the
// selector makes, costs on every request (about 0.7µs of a goroutine
// switch on a loaded machine; see BenchmarkRoute). A handler that finds
// the channel empty asks Run to fill it (refills) and waits for a copy.
// Set empties the channel before it makes the new table current and fills
// the channel again, so no handler gets the old table after Set returns.
//
// Its goroutine is Run: serve starts it with the actors, and it ends when
// their context is done. After that, every method returns
// ErrRouterStopped instead of waiting.
type Router struct {
	offers  chan *Table      // offerBatch copies of the current table, at most; Run fills it
	refills chan struct{}    // capacity 1: a handler found offers empty
	sets    chan setTable    // a new table, and a signal when it is current
	misses  chan struct{}    // one per request no route matched
	counts  chan chan uint64 // asks for the unrouted count (reply capacity 1)
	stopped chan struct{}    // closed when Run returns
	initial *Table           // the table until the first Set; Run's from then
}

// offerBatch is how many copies of the table Run puts in offers at a
// time: Run wakes once per offerBatch requests, not once per request.
const offerBatch = 64

type setTable struct {
	t    *Table
	done chan struct{} // closed once the table is current
}

// ErrRouterStopped is returned by the Router's methods once its Run has
// returned.
var ErrRouterStopped = errors.New("router stopped")

// NewRouter returns a Router whose table is t until Set replaces it.
func NewRouter(t *Table) *Router {
	return &Router{
		offers: make(chan *Table, offerBatch), refills: make(chan struct{}, 1), sets: make(chan setTable),
		misses: make(chan struct{}, 64), counts: make(chan chan uint64), stopped: make(chan struct{}), initial: t,
	}
}

// Run is the router's loop; it returns nil once ctx is done.
func (rt *Router) Run(ctx context.Context) error {
	defer close(rt.stopped)
	defer rt.empty() // no handler takes a table once Run has returned
	cur, unrouted := rt.initial, uint64(0)
	rt.fill(cur)
	for {
		select {
		case <-rt.refills:
			rt.fill(cur)
		case s := <-rt.sets:
			rt.empty()
			cur = s.t
			rt.fill(cur)
			close(s.done)
		case <-rt.misses:
			unrouted++
		case reply := <-rt.counts:
			reply <- unrouted // capacity 1: never blocks
		case <-ctx.Done():
			return nil
		}
	}
}

// fill puts copies of t in offers until it is full; Run only.
func (rt *Router) fill(t *Table) {
	for {
		select {
		case rt.offers <- t:
		default:
			return
		}
	}
}

// empty takes every copy left in offers; Run only. Handlers may take some
// meanwhile: they asked before the table changed.
func (rt *Router) empty() {
	for {
		select {
		case <-rt.offers:
		default:
			return
		}
	}
}

// Table returns the current table.
func (rt *Router) Table(ctx context.Context) (*Table, error) {
	for {
		select {
		case t := <-rt.offers:
			return t, nil
		default:
		}
		select {
		case t := <-rt.offers:
			return t, nil
		case rt.refills <- struct{}{}: // then take a copy of the refill
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-rt.stopped:
			return nil, ErrRouterStopped
		}
	}
}

// Set makes t the current table. Once it returns, every handler that asks
// gets t.
func (rt *Router) Set(ctx context.Context, t *Table) error {
	s := setTable{t: t, done: make(chan struct{})}
	select {
	case rt.sets <- s:
	case <-ctx.Done():
		return ctx.Err()
	case <-rt.stopped:
		return ErrRouterStopped
	}
	<-s.done // Run closes it in the same step
	return nil
}

// Unrouted returns how many requests no route matched so far.
func (rt *Router) Unrouted(ctx context.Context) (uint64, error) {
	reply := make(chan uint64, 1)
	select {
	case rt.counts <- reply:
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-rt.stopped:
		return 0, ErrRouterStopped
	}
	return <-reply, nil
}

// miss counts a request no route matched. The channel is buffered, so a
// burst of 404s does not wait on the router; a full buffer waits like any
// other send, bounded by the request's context.
func (rt *Router) miss(ctx context.Context) {
	select {
	case rt.misses <- struct{}{}:
	case <-ctx.Done():
	case <-rt.stopped:
	}
}
