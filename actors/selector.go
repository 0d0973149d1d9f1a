package actors

import (
	"context"
	"errors"

	"github.com/hashicorp/go-hclog"
	"github.com/sourcegraph/conc"
)

// ErrStopped is returned to callers whose selector has stopped running.
var ErrStopped = errors.New("selector stopped")

// Config describes a selector. Every zero field takes the default named in
// its comment.
type Config struct {
	Backends []BackendConfig // in policy order; may be empty (every pick is "none")
	Policy   Policy          // nil: &RoundRobin{}
	Monitor  MonitorConfig   // how each backend's monitor probes it
	Logger   hclog.Logger    // nil: no logging
}

// Selector is the one goroutine that owns all balancing state: the backend
// set, each backend's health, the policy's position, in-flight counts and
// statistics. Everything else talks to it by message:
//
//   - handlers take a pick (Pick, PickFor) and report each outcome (Report);
//   - monitors, which the selector starts and stops itself, send health
//     transitions; the selector tells a monitor when a request saw its
//     backend's connection fail;
//   - operators change the backend set (Add, Remove, Drain, SetEnabled,
//     Reconfigure) and ask for snapshots (Status, Metrics).
//
// Create it with New, start exactly one Run, and stop it by cancelling Run's
// context. The methods are safe to call from any goroutine.
type Selector struct {
	// Channels. The selector never closes them; stopped is closed by Run on
	// its way out so that callers never wait on a selector that is gone.
	offers   chan *Backend    // unbuffered: the next pick, offered in advance
	picks    chan pickRequest // picks with constraints; answered on reply
	reports  chan Report      // buffered: handlers do not wait to be counted
	health   chan Health      // transitions from the monitors
	commands chan command     // operator changes; answered on reply
	queries  chan query       // snapshots; answered on reply
	stopped  chan struct{}

	// Everything below is owned by the Run goroutine. New fills it in before
	// Run starts (the go statement orders those writes before Run's reads);
	// after that no other goroutine touches it.
	log      hclog.Logger
	monitor  MonitorConfig
	policy   Policy
	backends []*backendState
	byPtr    map[*Backend]*backendState
	cands    []Candidate // scratch for policy.Choose, one per backend
	totals   totals      // counters not tied to one backend
	// monitorCtx and monitors exist only while Run runs: every monitor is
	// started under them, so Run can stop one or all and wait for them.
	monitorCtx context.Context
	monitors   *conc.WaitGroup
}

// pickRequest asks for a backend for a request with the given key that is
// not in exclude. The selector answers on reply, which must have capacity 1
// so the answer never blocks it.
type pickRequest struct {
	key     string
	exclude []*Backend
	reply   chan *Backend
}

// New checks cfg and returns a selector that has not started yet. Every
// backend starts UP; its monitor probes it as soon as Run starts.
func New(cfg Config) (*Selector, error) {
	s := &Selector{
		offers:   make(chan *Backend),
		picks:    make(chan pickRequest),
		reports:  make(chan Report, 256),
		health:   make(chan Health),
		commands: make(chan command),
		queries:  make(chan query),
		stopped:  make(chan struct{}),
		log:      cfg.Logger,
		monitor:  cfg.Monitor,
		policy:   cfg.Policy,
		byPtr:    make(map[*Backend]*backendState, len(cfg.Backends)),
	}
	if s.log == nil {
		s.log = hclog.NewNullLogger()
	}
	if s.policy == nil {
		s.policy = &RoundRobin{}
	}
	for _, bc := range cfg.Backends {
		if _, err := s.add(bc); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Backends returns the backends New was given, in order. Call it before Run
// starts; afterwards the set is the selector's, and Status reports it.
func (s *Selector) Backends() []*Backend {
	out := make([]*Backend, len(s.backends))
	for i, st := range s.backends {
		out[i] = st.Backend
	}
	return out
}

// Run is the selector's goroutine. It starts one monitor per backend, serves
// messages until ctx is done, then stops the monitors, waits for them and
// returns nil. Start it exactly once.
func (s *Selector) Run(ctx context.Context) error {
	monitorCtx, stopMonitors := context.WithCancel(ctx)
	s.monitorCtx, s.monitors = monitorCtx, &conc.WaitGroup{}
	defer s.monitors.Wait()
	defer stopMonitors()
	defer close(s.stopped)
	for _, st := range s.backends {
		s.startMonitor(st)
	}

	var offer *Backend
	fresh := false // whether offer reflects the current state
	for {
		if !fresh {
			offer, fresh = s.choose("", nil), true
		}
		select {
		case s.offers <- offer:
			s.taken(offer)
			fresh = false
		case req := <-s.picks:
			b := s.choose(req.key, req.exclude)
			s.taken(b)
			req.reply <- b // capacity 1: never blocks
			fresh = false
		case r := <-s.reports:
			if s.record(r) {
				fresh = false
			}
		case h := <-s.health:
			if s.fromRunning(h) && s.setHealth(h.Backend, h.Up, h.Reason) {
				fresh = false
			}
		case c := <-s.commands:
			c.reply <- s.apply(c) // capacity 1: never blocks
			fresh = false
		case q := <-s.queries:
			q.answer(s) // replies on a channel of capacity 1
		case <-ctx.Done():
			return nil
		}
	}
}

// Pick takes the selector's current offer: the backend the policy would
// choose now, or nil when none is eligible (answer 503). A non-nil pick is
// counted as in flight until Report is called for it. Pick returns an error
// only when ctx is done or the selector has stopped.
func (s *Selector) Pick(ctx context.Context) (*Backend, error) {
	select {
	case b := <-s.offers:
		return b, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-s.stopped:
		return nil, ErrStopped
	}
}

// PickFor is Pick for a request with a key (for the policies that implement
// Keyed) or for a retry: it returns an eligible backend that is not in
// tried, or nil when there is none. Once the selector has taken the request
// it answers at once, so a counted pick always reaches the caller.
func (s *Selector) PickFor(ctx context.Context, key string, tried []*Backend) (*Backend, error) {
	req := pickRequest{key: key, exclude: tried, reply: make(chan *Backend, 1)}
	select {
	case s.picks <- req:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-s.stopped:
		return nil, ErrStopped
	}
	// The selector took the request, and it answers every request it takes
	// in the same step, so this receive cannot block for long.
	return <-req.reply, nil
}

// Report ends a pick: it must be called exactly once for every non-nil
// backend Pick or PickFor returned, even when the client has gone, which
// is why it waits on the selector's life rather than on a request context.
// A Report with a nil Backend only counts a request that never reached one.
func (s *Selector) Report(r Report) {
	select {
	case s.reports <- r:
	case <-s.stopped:
	}
}

// ask sends a message whose answer arrives on a channel of capacity 1 that
// the selector fills in the same step it takes the message.
func ask[M any](ctx context.Context, s *Selector, ch chan<- M, m M) error {
	select {
	case ch <- m:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-s.stopped:
		return ErrStopped
	}
}

// Status returns a snapshot of every backend, in configuration order.
func (s *Selector) Status(ctx context.Context) ([]BackendStatus, error) {
	reply := make(chan []BackendStatus, 1)
	if err := ask(ctx, s, s.queries, query{status: reply}); err != nil {
		return nil, err
	}
	return <-reply, nil // answered in the same step that took the query
}

// Metrics returns the selector's counters for the metrics endpoint.
func (s *Selector) Metrics(ctx context.Context) (Metrics, error) {
	reply := make(chan Metrics, 1)
	if err := ask(ctx, s, s.queries, query{metrics: reply}); err != nil {
		return Metrics{}, err
	}
	return <-reply, nil
}

// query asks for a snapshot; exactly one of its channels is set.
type query struct {
	status  chan []BackendStatus
	metrics chan Metrics
}

func (q query) answer(s *Selector) {
	switch {
	case q.status != nil:
		q.status <- s.status()
	case q.metrics != nil:
		q.metrics <- s.metricsSnapshot()
	}
}
