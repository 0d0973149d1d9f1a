package actors

import (
	"context"
	"errors"
	"runtime"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/sourcegraph/conc"
)

// ErrStopped is returned to callers whose selector has stopped running.
var ErrStopped = errors.New("selector stopped")

// ErrBusy is PickFor's answer when backends could take the request but
// every one is at its connection limit (Limits.MaxConnsPerBackend) and the
// queue is full or the wait in it timed out.
var ErrBusy = errors.New("every backend is at its connection limit")

// Config describes a selector. Every zero field takes the default named in
// its comment.
type Config struct {
	// Backends are the static backends, in policy order; their Source is
	// ignored (they are static). May be empty: every pick is "none" until
	// a backend is added.
	Backends []BackendConfig
	Policy   Policy        // nil: &RoundRobin{}
	Monitor  MonitorConfig // how each backend's monitor probes it
	Limits   Limits        // the zero value: no limits
	Ejection Ejection      // the zero value: no ejection
	// SlowStart ramps a backend's weight up linearly over this long after
	// it comes back (UP again, back from ejection, or added at runtime),
	// from almost nothing (see rampWeight); 0: no ramp. Only the weighted
	// policies see weights, so only they ramp.
	SlowStart time.Duration
	Logger    hclog.Logger // nil: no logging
	// TraceMessages logs, at trace level, every message the selector
	// receives and sends, with a sequence number: a way to watch the actors
	// talk. It needs Logger at trace level; false: off.
	TraceMessages bool
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
//     SetWeight, Reconfigure) and ask for snapshots (Status, Metrics) or
//     for the backends themselves (Backends).
//
// Create it with New, start exactly one Run, and stop it by cancelling Run's
// context. The methods are safe to call from any goroutine.
type Selector struct {
	// Channels. Run closes offers, which it alone sends on, and stopped
	// on its way out, so that callers never wait on a selector that is
	// gone; it never closes the others.
	offers  chan offer       // unbuffered: the next pick, offered in advance
	picks   chan pickRequest // picks with constraints; answered on reply
	reports chan Report      // buffered: handlers do not wait to be counted
	health  chan Health      // transitions from the monitors
	// mail carries the rarer messages: withdrawals (queued picks whose
	// caller gave up), commands (operator changes) and queries (snapshots,
	// the backend set), each answered on its own reply channel. Sharing one
	// channel keeps Run's select short, and a select costs in proportion to
	// its channels: it locks each one, and to wait it queues on each one.
	mail    chan message
	stopped chan struct{}

	// Everything below is owned by the Run goroutine. New fills it in before
	// Run starts (the go statement orders those writes before Run's reads);
	// after that no other goroutine touches it.
	log       hclog.Logger
	monitor   MonitorConfig
	limits    Limits
	ejection  Ejection
	slowStart time.Duration
	policy    Policy
	trace     bool   // log every message (the logger is at trace level); see trace.go
	seq       uint64 // messages traced so far
	backends  []*backendState
	byPtr     map[*Backend]*backendState
	cands     []Candidate // scratch for policy.Choose, one per backend
	totals    totals      // counters not tied to one backend
	queue     []waiter    // picks waiting for a free connection, oldest first
	wake      *time.Timer // fires at the earliest queue deadline or ejection end
	// waking is wake.C while the timer is armed, nil while it is stopped:
	// a nil channel disables Run's timer case, which spares every step
	// the runtime's check of a timer channel.
	waking <-chan time.Time
	// next is the offer Run sends, valid while fresh; a step that may
	// have made it stale (handle says so) clears fresh. quick counts the
	// steps Run has taken in a row on its quick path (quickStep).
	next  offer
	fresh bool
	quick int
	// monitorCtx, stopMonitors and monitors exist only while Run runs:
	// every monitor is started under them, so Run can stop one or all and
	// wait for them.
	monitorCtx   context.Context
	stopMonitors context.CancelFunc
	monitors     *conc.WaitGroup
}

// New checks cfg and returns a selector that has not started yet. Every
// backend starts UP; its monitor probes it as soon as Run starts.
func New(cfg Config) (*Selector, error) {
	s := &Selector{
		offers:    make(chan offer),
		picks:     make(chan pickRequest),
		limits:    cfg.Limits.withDefaults(),
		ejection:  cfg.Ejection.withDefaults(),
		slowStart: cfg.SlowStart,
		reports:   make(chan Report, 256),
		health:    make(chan Health),
		mail:      make(chan message),
		stopped:   make(chan struct{}),
		log:       cfg.Logger,
		monitor:   cfg.Monitor,
		policy:    cfg.Policy,
		byPtr:     make(map[*Backend]*backendState, len(cfg.Backends)),
	}
	if s.log == nil {
		s.log = hclog.NewNullLogger()
	}
	s.trace = cfg.TraceMessages && s.log.IsTrace()
	if s.policy == nil {
		s.policy = &RoundRobin{}
	}
	for _, bc := range cfg.Backends {
		bc.Source = "" // static
		if _, err := s.add(bc); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Run is the selector's goroutine. It starts one monitor per backend, then
// takes one message at a time until ctx is done, when it answers the queued
// picks with none, stops the monitors, waits for them and returns nil.
// Start it exactly once.
//
// Each step takes one message and applies it (step). Under load most
// steps are a report or a taken offer, and Run first tries to take one of
// those without waiting (quickStep); only when neither is there does it
// select over all its channels. Either way, the offer it sends is chosen
// again first if a step has made it stale (currentOffer).
func (s *Selector) Run(ctx context.Context) error {
	s.start(ctx)
	defer s.stop()

	for {
		if s.quickStep() { // took a report or an offer without waiting
			continue
		}
		var m message
		next := s.currentOffer()
		select {
		case s.offers <- next:
			m = offerTaken(next)
		case req := <-s.picks:
			m = req
		case r := <-s.reports:
			m = r
		case h := <-s.health:
			m = h
		case m = <-s.mail: // a withdrawal, a command or a query
		case now := <-s.waking:
			m = tick(now)
		case <-ctx.Done():
			s.dismissQueue()
			return nil
		}
		s.step(m)
	}
}

// quickStep is Run's quick path: it takes one step when its message is
// one of the two hot ones and already there, a report in the buffer or a
// handler waiting for the offer, and reports whether it did; when it did
// not, Run selects over every channel instead. That select is the costly
// way to take a message: it locks every one of its channels, and one that
// waits queues on every one of them and is woken by the first message, one
// message per wake. quickStep sends or receives on one channel at a time,
// without waiting.
//
// When nothing is there just after a quick step, quickStep lets the
// goroutines that are ready to run go first (runtime.Gosched), so that the
// handlers among them leave their reports and wait for offers, and tries
// once more: busy a moment ago, Run may find many messages on its return
// instead of waking once for each. Yielding is not waiting: Run stays
// ready to run. After maxQuick quick steps in a row, quickStep declines
// once without trying, so that the other messages, and ctx's end, get
// their turn.
func (s *Selector) quickStep() bool {
	if s.quick >= maxQuick {
		s.quick = 0
		return false
	}
	took := s.takeHot()
	if !took && s.quick > 0 {
		runtime.Gosched()
		took = s.takeHot()
	}
	if !took {
		s.quick = 0
		return false
	}
	s.quick++
	return true
}

// takeHot takes one step if a report is already in the buffer, else if a
// handler is already waiting for the offer, and reports whether it did.
// Reports go first: they lower the in-flight counts the offer is chosen
// by.
func (s *Selector) takeHot() bool {
	select {
	case r := <-s.reports:
		s.step(r)
		return true
	default:
	}
	next := s.currentOffer()
	select {
	case s.offers <- next:
		s.step(offerTaken(next))
		return true
	default:
		return false
	}
}

// step applies one message, taken by Run or quickStep: it traces it, hands
// it to handle, and marks the offer stale if handle says it may be.
func (s *Selector) step(m message) {
	s.traceIn(m)
	if s.handle(m) {
		s.fresh = false
	}
}

// maxQuick bounds how many steps in a row Run takes on its quick path
// (quickStep) before it selects over every channel again, so that the
// other messages, and ctx's end, wait at most that many steps.
// BenchmarkSelector256 shows no significant difference between 4, 32 and
// 256.
const maxQuick = 32

// handle applies one message to the selector's state, answering it if it
// asks for an answer, and reports whether the offer may have gone stale.
func (s *Selector) handle(m message) (stale bool) {
	switch m := m.(type) {
	case offerTaken:
		s.taken(m.b)
	case pickRequest:
		s.pick(m)
	case withdrawal:
		s.withdraw(m.reply)
		m.ack <- struct{}{} // capacity 1: never blocks; an emptied queue lets offers resume
	case Report:
		// Stale even when nothing else changed: load-aware policies
		// (least-conn, p2c) must see the in-flight count this report lowered.
		if s.record(m) {
			s.serveQueue()
		}
	case Health:
		if !s.fromRunning(m) || !s.setHealth(m.Backend, m.Up, m.Reason) {
			return false
		}
		s.serveQueue()
	case command:
		s.answerCommand(m)
		s.serveQueue()
	case query:
		s.answer(m)
		return false
	case tick:
		s.expire(time.Time(m))
		s.serveQueue()
	}
	return true
}

// start readies what exists only while Run runs: the monitors, each under
// a context of the selector's, and the wake timer, stopped until a queue
// deadline or an ejection's end arms it.
func (s *Selector) start(ctx context.Context) {
	s.monitorCtx, s.stopMonitors = context.WithCancel(ctx)
	s.monitors = &conc.WaitGroup{}
	for _, st := range s.backends {
		s.startMonitor(st)
	}
	s.wake = time.NewTimer(time.Hour)
	s.wake.Stop()
}

// stop ends what start began, on Run's way out: callers waiting on the
// selector learn it has stopped (offers and stopped are closed), then the
// monitors stop and Run waits for each to return.
func (s *Selector) stop() {
	s.wake.Stop()
	close(s.offers)
	close(s.stopped)
	s.stopMonitors()
	s.monitors.Wait()
}

// currentOffer is the offer Run sends next: next, chosen again first if a
// step has made it stale.
func (s *Selector) currentOffer() offer {
	if !s.fresh {
		s.next, s.fresh = s.nextOffer(), true
	}
	return s.next
}

// nextOffer is what the next keyless request gets: none and full are
// answers too, so that Pick never waits on a decision the selector has
// already made. While requests queue, newcomers queue behind them.
func (s *Selector) nextOffer() offer {
	if len(s.queue) > 0 {
		return offer{full: true}
	}
	b, full := s.choose("", nil)
	return offer{b: b, full: full}
}

// Pick takes the selector's current offer: the backend the policy would
// choose now, or nil when none is eligible (answer 503). When every eligible
// backend is at its connection limit, Pick waits in the selector's queue as
// PickFor does, and like it returns ErrBusy when the queue is full or the
// wait times out. A non-nil pick is counted as in flight until Report is
// called for it. Otherwise Pick returns an error only when ctx is done or
// the selector has stopped.
func (s *Selector) Pick(ctx context.Context) (*Backend, error) {
	select {
	case o, ok := <-s.offers: // closed when Run ends: no need to watch stopped
		switch {
		case !ok:
			return nil, ErrStopped
		case o.full:
			return s.PickFor(ctx, "", nil)
		}
		return o.b, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// PickFor is Pick for a request with a key (for the policies that implement
// Keyed) or for a retry: it returns an eligible backend that is not in
// tried, or nil when there is none. When every such backend is at its
// connection limit, the request waits in the selector's queue, in arrival
// order, until one frees up (a backend), the queue timeout passes (nil and
// ErrBusy, as when the queue is full), ctx ends (ctx's error; the
// request leaves the queue), or the selector stops (ErrStopped).
func (s *Selector) PickFor(ctx context.Context, key string, tried []*Backend) (*Backend, error) {
	req := pickRequest{key: key, exclude: tried, reply: make(chan pickReply, 1)}
	if err := ask(ctx, s, s.picks, req); err != nil {
		return nil, err
	}
	select {
	case r := <-req.reply:
		switch {
		case r.stopped:
			return nil, ErrStopped
		case r.busy:
			return nil, ErrBusy
		}
		return r.b, nil
	case <-s.stopped:
		return nil, ErrStopped
	case <-ctx.Done():
	}
	// The caller gave up. Take the request out of the queue; the selector
	// acknowledges once it is out, and if it had already answered, the pick
	// is in reply and must be handed back.
	ack := make(chan struct{}, 1)
	select {
	case s.mail <- withdrawal{reply: req.reply, ack: ack}:
		<-ack // answered in the same step
	case <-s.stopped:
	}
	select {
	case r := <-req.reply:
		if r.b != nil {
			s.Report(Report{Backend: r.b, Outcome: ClientGone})
		}
	default:
	}
	return nil, ctx.Err()
}

// Report ends a pick: it must be called exactly once for every non-nil
// backend Pick or PickFor returned, even when the client has gone, which
// is why it waits on the selector's life rather than on a request context.
// A Report with a nil Backend only counts a request that never reached one.
func (s *Selector) Report(r Report) {
	select {
	case s.reports <- r: // room in the buffer, the usual case: one channel to lock
	default:
		select {
		case s.reports <- r:
		case <-s.stopped:
		}
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
	if err := ask[message](ctx, s, s.mail, query{status: reply}); err != nil {
		return nil, err
	}
	return <-reply, nil // answered in the same step that took the query
}

// Metrics returns the selector's counters for the metrics endpoint.
func (s *Selector) Metrics(ctx context.Context) (Metrics, error) {
	reply := make(chan Metrics, 1)
	if err := ask[message](ctx, s, s.mail, query{metrics: reply}); err != nil {
		return Metrics{}, err
	}
	return <-reply, nil
}

// Backends returns the backends in the set now, in configuration order,
// draining ones included: the *Backend values that Pick hands out and that
// Report and PickFor's tried list name.
func (s *Selector) Backends(ctx context.Context) ([]*Backend, error) {
	reply := make(chan []*Backend, 1)
	if err := ask[message](ctx, s, s.mail, query{backends: reply}); err != nil {
		return nil, err
	}
	return <-reply, nil
}

// answer replies to a query, in the step that took it.
func (s *Selector) answer(q query) {
	switch {
	case q.status != nil:
		q.status <- s.status() // capacity 1: never blocks
	case q.metrics != nil:
		q.metrics <- s.metricsSnapshot()
	case q.backends != nil:
		out := make([]*Backend, len(s.backends))
		for i, st := range s.backends {
			out[i] = st.Backend
		}
		q.backends <- out
	}
	if s.trace {
		s.traceMsg("sent", "query reply")
	}
}
