package actors

import (
	"context"
	"errors"
	"fmt"

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
//   - anyone may ask for a snapshot (Status).
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
	statuses chan chan []BackendStatus
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
}

// backendState is the selector's private record of one backend.
type backendState struct {
	*Backend
	index    int // position in Selector.backends, for the policy
	weight   int // 0: standby
	up       bool
	reason   string
	inFlight int
	requests uint64
	failures uint64
	suspect  chan struct{} // capacity 1, to this backend's monitor; never closed
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
		statuses: make(chan chan []BackendStatus),
		stopped:  make(chan struct{}),
		log:      cfg.Logger,
		monitor:  cfg.Monitor,
		policy:   cfg.Policy,
		byPtr:    make(map[*Backend]*backendState, len(cfg.Backends)),
		cands:    make([]Candidate, len(cfg.Backends)),
	}
	if s.log == nil {
		s.log = hclog.NewNullLogger()
	}
	if s.policy == nil {
		s.policy = &RoundRobin{}
	}
	for _, bc := range cfg.Backends {
		if bc.URL == nil || bc.URL.Host == "" {
			return nil, fmt.Errorf("backend %q: missing host", bc.URL)
		}
		if bc.Weight < 0 {
			return nil, fmt.Errorf("backend %s: negative weight %d", bc.URL, bc.Weight)
		}
		b := backendFor(bc.URL)
		if _, dup := s.byName(b.Name); dup {
			return nil, fmt.Errorf("backend %s: listed twice", b.Name)
		}
		st := &backendState{Backend: b, index: len(s.backends), weight: bc.Weight, up: true, suspect: make(chan struct{}, 1)}
		s.backends = append(s.backends, st)
		s.byPtr[b] = st
	}
	return s, nil
}

func (s *Selector) byName(name string) (*backendState, bool) {
	for _, st := range s.backends {
		if st.Name == name {
			return st, true
		}
	}
	return nil, false
}

// Backends returns the configured backends in order. It reads no state that
// Run changes, so it is safe at any time.
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
	var monitors conc.WaitGroup
	defer monitors.Wait()
	defer stopMonitors()
	defer close(s.stopped)
	for _, st := range s.backends {
		m := &Monitor{Backend: st.Backend, Config: s.monitor, Logger: s.log.Named("monitor").With("backend", st.Name)}
		monitors.Go(func() { _ = m.Run(monitorCtx, s.health, st.suspect) })
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
			if s.setHealth(h.Backend, h.Up, h.Reason) {
				fresh = false
			}
		case reply := <-s.statuses:
			reply <- s.status() // capacity 1: never blocks
		case <-ctx.Done():
			return nil
		}
	}
}

// choose asks the policy for an eligible backend not in exclude; nil means
// none. Eligible means UP; backends with weight 0 are standbys, eligible
// only when no weighted backend is.
func (s *Selector) choose(key string, exclude []*Backend) *Backend {
	active := false
	for i, st := range s.backends {
		usable := st.up && !contains(exclude, st.Backend)
		s.cands[i] = Candidate{Backend: st.Backend, Eligible: usable && st.weight > 0, Weight: st.weight, InFlight: st.inFlight}
		active = active || s.cands[i].Eligible
	}
	if !active {
		for i, st := range s.backends {
			if st.weight == 0 && st.up && !contains(exclude, st.Backend) {
				s.cands[i].Eligible, s.cands[i].Weight = true, 1
			}
		}
	}
	i := s.policy.Choose(s.cands, key)
	if i < 0 {
		return nil
	}
	return s.backends[i].Backend
}

func contains(list []*Backend, b *Backend) bool {
	for _, x := range list {
		if x == b {
			return true
		}
	}
	return false
}

// taken counts a pick that a handler now holds; it must come back as a
// Report. b is the answer of the most recent choose.
func (s *Selector) taken(b *Backend) {
	if b == nil {
		return
	}
	st := s.byPtr[b]
	st.inFlight++
	s.policy.Taken(s.cands, st.index)
}

// record applies a handler's report and says whether health changed.
func (s *Selector) record(r Report) bool {
	st, ok := s.byPtr[r.Backend]
	if !ok {
		return false
	}
	st.inFlight--
	st.requests++
	switch r.Outcome {
	case Failed:
		st.failures++
	case ConnectFailed:
		st.failures++
		if !st.up {
			return false
		}
		select { // tell the monitor; one pending note is enough
		case st.suspect <- struct{}{}:
		default:
		}
		reason := "passive: connection failed"
		if r.Err != nil {
			reason = "passive: " + r.Err.Error()
		}
		return s.setHealth(r.Backend, false, reason)
	}
	return false
}

// setHealth applies a transition, logging it once; it reports whether the
// state changed. A message that repeats the current state is ignored.
func (s *Selector) setHealth(b *Backend, up bool, reason string) bool {
	st, ok := s.byPtr[b]
	if !ok || st.up == up {
		return false
	}
	st.up, st.reason = up, reason
	if up {
		s.log.Info("backend up", "backend", st.Name, "reason", reason)
	} else {
		s.log.Info("backend down", "backend", st.Name, "reason", reason)
	}
	return true
}

func (s *Selector) status() []BackendStatus {
	out := make([]BackendStatus, len(s.backends))
	for i, st := range s.backends {
		out[i] = BackendStatus{
			Name: st.Name, ID: st.ID, Up: st.up, Weight: st.weight, Reason: st.reason,
			InFlight: st.inFlight, Requests: st.requests, Failures: st.failures,
		}
	}
	return out
}

// Pick takes the selector's current offer: the backend the policy would
// choose now, or nil when none is UP (answer 503). A non-nil pick is counted
// as in flight until Report is called for it. Pick returns an error only
// when ctx is done or the selector has stopped.
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
func (s *Selector) Report(r Report) {
	select {
	case s.reports <- r:
	case <-s.stopped:
	}
}

// Status returns a snapshot of every backend, in configuration order.
func (s *Selector) Status(ctx context.Context) ([]BackendStatus, error) {
	reply := make(chan []BackendStatus, 1)
	select {
	case s.statuses <- reply:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-s.stopped:
		return nil, ErrStopped
	}
	return <-reply, nil // answered in the same step that took the request
}
