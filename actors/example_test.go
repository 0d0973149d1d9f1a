package actors_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/sourcegraph/conc"

	"github.com/roundhouse/roundhouse/actors"
)

// A selector is one goroutine that owns every piece of balancing state.
// Handlers never touch that state: they take a pick from the selector and
// send back a report, both over channels hidden behind Pick and Report.
func ExampleSelector() {
	var backends []actors.BackendConfig
	for _, raw := range []string{"http://127.0.0.1:8081", "http://127.0.0.1:8082", "http://127.0.0.1:8083"} {
		u, err := url.Parse(raw)
		if err != nil {
			panic(err)
		}
		backends = append(backends, actors.BackendConfig{URL: u, Weight: 1})
	}
	sel, err := actors.New(actors.Config{
		Backends: backends,
		// The selector starts one monitor per backend. This fake probe
		// always passes, so no backend is dialled and none goes down.
		Monitor: actors.MonitorConfig{
			Probe: func(context.Context, *actors.Backend) error { return nil },
		},
	})
	if err != nil {
		panic(err)
	}

	// The owner of the selector's goroutine starts it and waits for it.
	// Cancelling ctx stops Run, which stops the monitors and waits for
	// them in turn, so after wg.Wait no goroutine is left.
	ctx, cancel := context.WithCancel(context.Background())
	var wg conc.WaitGroup
	wg.Go(func() { _ = sel.Run(ctx) })
	defer wg.Wait() // deferred calls run last-first: cancel, then wait
	defer cancel()

	// A handler's side of the conversation: pick, forward, report.
	for range 4 {
		b, err := sel.Pick(ctx)
		if err != nil {
			panic(err) // only when ctx is done or the selector stopped
		}
		if b == nil {
			fmt.Println("no backend is up: answer 503")
			continue
		}
		fmt.Println("forward to", b)
		// Every non-nil pick is counted in flight until its report.
		sel.Report(actors.Report{Backend: b, Outcome: actors.Success, Status: 200})
	}
	// Output:
	// forward to http://127.0.0.1:8081
	// forward to http://127.0.0.1:8082
	// forward to http://127.0.0.1:8083
	// forward to http://127.0.0.1:8081
}

// A monitor probes one backend and sends a Health message only when the
// rise/fall rules change its state, never for every probe. Normally the
// selector runs it and reads out; here the example plays the selector.
func ExampleMonitor() {
	u, _ := url.Parse("http://127.0.0.1:8081")
	backend := &actors.Backend{URL: u, Name: u.String()}

	// A fake probe: fails twice, then passes. Only the monitor's goroutine
	// calls it, so its counter needs no lock.
	calls := 0
	probe := func(context.Context, *actors.Backend) error {
		calls++
		if calls <= 2 {
			return errors.New("connection refused")
		}
		return nil
	}
	m := &actors.Monitor{
		Backend: backend,
		Config:  actors.MonitorConfig{Probe: probe, Interval: time.Millisecond, Rise: 2, Fall: 2},
	}

	out := make(chan actors.Health) // monitor → selector: transitions only
	ctx, cancel := context.WithCancel(context.Background())
	var wg conc.WaitGroup
	wg.Go(func() { _ = m.Run(ctx, out, nil) }) // nil suspect: no passive notes
	defer wg.Wait()
	defer cancel()

	// Four probes give two transitions; the passes after them send nothing.
	for range 2 {
		h := <-out
		state := "down"
		if h.Up {
			state = "up"
		}
		fmt.Printf("%s is %s: %s\n", h.Backend, state, h.Reason)
	}
	// Output:
	// http://127.0.0.1:8081 is down: 2 consecutive failed probes, last: connection refused
	// http://127.0.0.1:8081 is up: 2 consecutive passing probes
}

// A Policy is plain state owned by the selector goroutine: Choose looks,
// Taken moves. The selector may Choose more than once (it offers a pick in
// advance) before a handler takes it.
func ExampleRoundRobin() {
	names := []string{"A", "B", "C"}
	eligible := []actors.Candidate{ // B is down
		{Eligible: true, Weight: 1}, {Eligible: false, Weight: 1}, {Eligible: true, Weight: 1},
	}

	var rr actors.RoundRobin // the zero value starts at the first backend
	fmt.Println("offered:", names[rr.Choose(eligible, "")])
	fmt.Println("offered again:", names[rr.Choose(eligible, "")]) // Choose changes nothing
	for range 4 {
		i := rr.Choose(eligible, "")
		rr.Taken(eligible, i) // handed out: move past it
		fmt.Println("taken:", names[i])
	}
	// Output:
	// offered: A
	// offered again: A
	// taken: A
	// taken: C
	// taken: A
	// taken: C
}

// Smooth weighted round-robin spreads a heavy backend's picks out instead of
// sending them in a burst: with weights 5, 1 and 1, a gets five picks in
// seven, but never more than two in a row.
func ExampleWeightedRoundRobin() {
	names := []string{"a", "b", "c"}
	cands := []actors.Candidate{
		{Eligible: true, Weight: 5}, {Eligible: true, Weight: 1}, {Eligible: true, Weight: 1},
	}

	var w actors.WeightedRoundRobin // the zero value is ready
	var picks []string
	for range 7 {
		i := w.Choose(cands, "")
		w.Taken(cands, i)
		picks = append(picks, names[i])
	}
	fmt.Println(strings.Join(picks, " "))
	// Output:
	// a a b a c a a
}

// A request whose backend refused the connection may try another: PickFor
// takes the backends already tried and never returns one of them. Unlike
// Pick, which takes the selector's ready offer, PickFor sends a request with
// its own reply channel, since the answer depends on what the caller sends.
func ExampleSelector_PickFor() {
	var backends []actors.BackendConfig
	for _, raw := range []string{"http://127.0.0.1:8081", "http://127.0.0.1:8082", "http://127.0.0.1:8083"} {
		u, err := url.Parse(raw)
		if err != nil {
			panic(err)
		}
		backends = append(backends, actors.BackendConfig{URL: u, Weight: 1})
	}
	sel, err := actors.New(actors.Config{
		Backends: backends,
		Monitor: actors.MonitorConfig{
			Probe: func(context.Context, *actors.Backend) error { return nil },
		},
	})
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg conc.WaitGroup
	wg.Go(func() { _ = sel.Run(ctx) })
	defer wg.Wait()
	defer cancel()
	all, _ := sel.Backends(ctx) // the set is the selector's: ask for it

	first, _ := sel.Pick(ctx)
	fmt.Println("first attempt:", first)
	// Say the connection was refused. The handler reports that, which ends
	// the pick (the selector also marks the backend DOWN at once), and asks
	// again, naming what it has tried.
	sel.Report(actors.Report{Backend: first, Outcome: actors.ConnectFailed})
	tried := []*actors.Backend{first}
	retry, _ := sel.PickFor(ctx, "", tried)
	fmt.Println("retry:", retry)
	sel.Report(actors.Report{Backend: retry, Outcome: actors.Success, Status: 200, Final: true})

	// With every backend tried, nothing is left: the handler answers 502.
	if b, _ := sel.PickFor(ctx, "", all); b == nil {
		fmt.Println("after trying all three: none")
	}
	// Output:
	// first attempt: http://127.0.0.1:8081
	// retry: http://127.0.0.1:8082
	// after trying all three: none
}
