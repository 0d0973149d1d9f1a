package transport

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/sourcegraph/conc"

	"github.com/roundhouse/roundhouse/actors"
	"github.com/roundhouse/roundhouse/internal/testenv"
	"github.com/roundhouse/roundhouse/routing"
)

// stressKinds are the requests TestStressPools sends: a Host and a path
// prefix, and the pools that may answer them across every table the test
// swaps in (backends are named after their pool's letter).
var stressKinds = []struct {
	host, prefix string
	pools        string
}{
	{"a.test", "", "ab"},      // route host-a: pool a, or b while a is dropped
	{"x.b.test", "", "b"},     // route host-b, a wildcard host
	{"c.test", "/c", "c"},     // route prefix-c, which strips /c
	{"m.test", "", "abce"},    // route mover: a, b, c, then an ephemeral pool e
	{"M.Test:80", "", "abce"}, // the same, in mixed case with a port
}

// stressRoutes are the routes of one table: host-a goes to hostA, mover
// to mover.
func stressRoutes(hostA, mover string) []routing.Route {
	return []routing.Route{
		{Name: "host-a", Hosts: []string{"a.test"}, Pool: hostA},
		{Name: "host-b", Hosts: []string{"*.b.test"}, Pool: "b"},
		{Name: "prefix-c", PathPrefix: "/c", StripPrefix: true, Pool: "c"},
		{Name: "mover", Hosts: []string{"m.test"}, Pool: mover},
	}
}

// TestStressPools is TestStress with three pools behind host and prefix
// routes, each its own selector over an anchor that stays healthy and two
// backends that flap, while the Router's table is swapped every few
// milliseconds through a cycle that
//
//   - moves the mover route from pool a to b, to c, and to an ephemeral
//     pool e;
//   - drops pool a (its route goes to b) and adds it back: its selector
//     keeps running, and keeps its state;
//   - removes e and stops its selector at once, without draining it. e's
//     backends take one request at a time and queue the others
//     (ephemeralLimits): a request waiting in e's queue when it stops, like
//     one that took the table before the removal and picks after the stop,
//     routes again (Proxy.route); one already in flight finishes. The
//     next cycle starts a new e over the same two steady backends.
//
// Every request must reach a pool its route allows (hosts in any case,
// with a port); GETs and POSTs must succeed as in TestStress, and none may
// go unrouted. Afterwards each running selector's counts must agree with
// its backends exactly, as in TestStress; an ephemeral selector's last
// counts, taken just before it stopped, may miss the requests that ended
// after (they are logged as late); and the backends must have served
// exactly the requests that succeeded.
func TestStressPools(t *testing.T) {
	if testing.Short() {
		t.Skip("stress test skipped in -short mode")
	}
	duration := testenv.Duration(t, stressDuration, "ROUNDHOUSE_STRESS_DURATION", 2*time.Second)
	pools := map[string][]*flappy{}
	var flaps []*flappy
	for _, name := range []string{"a", "b", "c"} {
		pools[name] = []*flappy{newFlappy(t, name+"0"), newFlappy(t, name+"1"), newFlappy(t, name+"2")}
		flaps = append(flaps, pools[name][1:]...)
	}
	s := newStressSite(t, pools)
	steady := []*flappy{newFlappy(t, "e1"), newFlappy(t, "e2")}

	ctx, cancel := context.WithTimeout(context.Background(), duration)
	defer cancel()
	chaos := startChaos(ctx, t, flaps)
	var swapper conc.WaitGroup
	var sw swaps
	swapper.Go(func() { sw = s.swap(ctx, t, steady) })
	load := hammer(ctx, t, func(post bool) (string, error) {
		k := stressKinds[rand.IntN(len(stressKinds))]
		backend, err := stressRequest(s.client, s.url, k.host, k.prefix, post)
		if err != nil && !errors.Is(err, errUnsaved) {
			err = fmt.Errorf("Host %s: %w", k.host, err)
		}
		if err == nil && (backend == "" || !strings.Contains(k.pools, backend[:1])) {
			err = fmt.Errorf("Host %s: answered by %q, want a backend of pool %s", k.host, backend, strings.Join(strings.Split(k.pools, ""), " or "))
		}
		return backend, err
	})
	chaos.Wait()
	swapper.Wait()

	var served, late int64
	for _, name := range []string{"a", "b", "c"} {
		p := s.pools[name]
		// settled only asks p.sel (see balancer.settled).
		reconcile(t, (&balancer{sel: p.sel}).settled(t), p.backends)
		for _, f := range p.backends {
			served += f.served.Load()
		}
	}
	for _, f := range steady {
		n := f.served.Load()
		served += n
		if n < sw.answered[f.name] {
			t.Errorf("%s: served %d requests, fewer than its ephemeral selectors counted (%d)", f.name, n, sw.answered[f.name])
		}
		late += n - sw.answered[f.name]
	}
	if served != load.requests.Load() {
		t.Errorf("backends served %d requests, clients completed %d", served, load.requests.Load())
	}
	if n, err := s.router.Unrouted(context.Background()); err != nil || n != 0 {
		t.Errorf("Unrouted = %d, %v; want every request routed", n, err)
	}
	checkResets(t, s.log, load.unsaved.Load())
	t.Logf("%s in %v; %d tables set, %d ephemeral pools started and stopped, %d of their requests ended after the stop; "+
		"%d health transitions", load, duration, sw.tables, sw.generations, late,
		s.log.count("backend down")+s.log.count("backend up"))
}

// stressSite is a Proxy with a Router in front of pools of flappy
// backends, each pool its own selector, behind a real listener.
type stressSite struct {
	router *Router
	url    string
	client *http.Client
	log    *logSink
	logger hclog.Logger
	tr     http.RoundTripper
	pools  map[string]*stressPool
	actors context.Context // the pools' and the router's; done at cleanup
	wg     *conc.WaitGroup // the pools' and the router's goroutines
}

// stressPool is a running pool and its backends, in order.
type stressPool struct {
	pool     *Pool
	sel      *actors.Selector
	backends []*flappy
}

// newStressSite starts a selector for each pool (name → backends) and
// the Router, with the first table of the cycle TestStressPools describes,
// and the proxy.
func newStressSite(t *testing.T, pools map[string][]*flappy) *stressSite {
	t.Helper()
	// The actors outlive the frontend: its cleanup, registered later, runs first.
	sink, log, tr, ctx, wg := siteParts(t)
	s := &stressSite{log: sink, logger: log, tr: tr, pools: map[string]*stressPool{}, actors: ctx, wg: wg}
	for name, backends := range pools {
		p, err := s.start(ctx, name, wg, actors.Limits{}, backends)
		if err != nil {
			t.Fatal(err)
		}
		s.pools[name] = p
	}
	first, err := s.table("a", "a", s.pools["a"], s.pools["b"], s.pools["c"])
	if err != nil {
		t.Fatal(err)
	}
	s.router, s.url = serveRouted(t, ctx, wg, first, log, sink)
	s.client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	t.Cleanup(s.client.CloseIdleConnections)
	return s
}

// start runs a selector over backends under ctx (its goroutine is wg's)
// and returns the pool; a request may try every backend of it. Its
// monitors probe every 2ms and take one probe to change their mind.
// limits caps its backends' connections; the zero value: no cap.
func (s *stressSite) start(ctx context.Context, name string, wg *conc.WaitGroup, limits actors.Limits, backends []*flappy) (*stressPool, error) {
	bcs := make([]actors.BackendConfig, len(backends))
	for i, f := range backends {
		u, err := url.Parse("http://" + f.addr)
		if err != nil {
			return nil, err
		}
		bcs[i] = actors.BackendConfig{URL: u, Weight: 1}
	}
	sel, err := actors.New(actors.Config{Backends: bcs, Logger: s.logger.With("pool", name), Limits: limits,
		Monitor: actors.MonitorConfig{Interval: 2 * time.Millisecond, Timeout: time.Second, Rise: 1, Fall: 1, Transport: s.tr}})
	if err != nil {
		return nil, fmt.Errorf("pool %s: %w", name, err)
	}
	wg.Go(func() { _ = sel.Run(ctx) })
	pool := NewPool(Pool{Name: name, Selector: sel, Transport: s.tr, Retries: len(backends) - 1})
	return &stressPool{pool: pool, sel: sel, backends: backends}, nil
}

// table builds a table of stressRoutes(hostA, mover) over pools.
func (s *stressSite) table(hostA, mover string, pools ...*stressPool) (*Table, error) {
	list := make([]*Pool, len(pools))
	for i, p := range pools {
		list[i] = p.pool
	}
	return NewTable(stressRoutes(hostA, mover), list)
}

// ephemeralLimits lets each backend of pool e take one request at a time
// and queues the others, so that a request often waits in e's queue when e
// stops: it then routes again (see Proxy.route), as one that took the old
// table just before the swap and picks just after the stop does. Without
// the queue that window is too short for the test to hit.
var ephemeralLimits = actors.Limits{MaxConnsPerBackend: 1, QueueSize: 64, QueueTimeout: 10 * time.Second}

// ephemeralTicks is how many of the swapper's ticks each pool e lives:
// long enough for its queue to fill.
const ephemeralTicks = 10

// swaps is what the swapper did: how many tables it set, how many
// ephemeral pools it ran, and the answered attempts (Requests-Failures)
// their selectors counted for each backend, just before each stopped.
type swaps struct {
	tables, generations int
	answered            map[string]int64
}

// swap sets a new table every 2ms (every ephemeralTicks × 2ms for the one
// with pool e) until ctx is done, in the cycle that
// TestStressPools describes, starting a new ephemeral pool e over steady
// each cycle. It ends with the first table set and no ephemeral pool
// running. The caller owns the goroutine that runs it; it reports with
// t.Errorf, and stops early after an error.
func (s *stressSite) swap(ctx context.Context, t *testing.T, steady []*flappy) swaps {
	sw := swaps{answered: map[string]int64{}}
	a, b, c := s.pools["a"], s.pools["b"], s.pools["c"]
	var e *stressPool // the ephemeral pool; nil while there is none
	var eStop context.CancelFunc
	var eWG conc.WaitGroup // e's selector
	stopE := func() {      // e is no longer in the table: count, then stop it
		if e == nil {
			return
		}
		stCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		st, err := e.sel.Status(stCtx)
		if err != nil {
			t.Errorf("pool e: %v", err)
		}
		for _, b := range st {
			sw.answered[b.Name] += int64(b.Requests - b.Failures)
		}
		eStop()
		eWG.Wait()
		e, eStop = nil, nil
	}
	defer stopE()
	set := func(ctx context.Context, tab *Table, err error) bool {
		if err == nil {
			err = s.router.Set(ctx, tab)
		}
		if err != nil {
			if ctx.Err() == nil {
				t.Errorf("setting a table: %v", err)
			}
			return false
		}
		sw.tables++
		return true
	}
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
cycle:
	for step := 0; ; step = (step + 1) % 5 {
		var tab *Table
		var err error
		switch step {
		case 0:
			tab, err = s.table("a", "a", a, b, c)
		case 1: // pool a dropped; its selector keeps running
			tab, err = s.table("b", "b", b, c)
		case 2: // a back, with its state
			tab, err = s.table("a", "c", a, b, c)
		case 3: // a new pool e, and the mover route to it
			ectx, stop := context.WithCancel(s.actors)
			if e, err = s.start(ectx, "e", &eWG, ephemeralLimits, steady); err != nil {
				stop()
				break
			}
			eStop = stop
			sw.generations++
			tab, err = s.table("a", "e", a, b, c, e)
		case 4: // e removed, and stopped at once
			tab, err = s.table("a", "a", a, b, c)
		}
		if !set(ctx, tab, err) {
			break cycle
		}
		if step == 4 {
			stopE()
		}
		ticks := 1
		if step == 3 {
			ticks = ephemeralTicks
		}
		for range ticks {
			select {
			case <-ctx.Done():
				break cycle
			case <-tick.C:
			}
		}
	}
	// The load has stopped; no request is left to route.
	end, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	tab, err := s.table("a", "a", a, b, c)
	set(end, tab, err)
	return sw
}
