package actors

import (
	"context"
	"fmt"
	"time"
)

// backendState is the selector's private record of one backend. Only the
// selector goroutine touches it.
type backendState struct {
	*Backend
	index    int    // position in Selector.backends, for the policy
	source   string // who manages it: "" static, else a discovery provider
	weight   int    // 0: standby
	disabled bool   // an operator took it out of rotation; still probed
	draining bool   // no new requests; in-flight ones finish
	removing bool   // draining, then forgotten once nothing is in flight
	up       bool
	ejected  bool   // out of rotation until ejectedUntil: outlier detection
	reason   string // why health last changed
	changed  time.Time
	inFlight int
	requests uint64 // attempts completed, any outcome
	failures uint64 // attempts that failed
	counts   requestCounts

	// Outlier detection and slow start.
	consecutive    int           // gateway failures in a row
	recent         failureWindow // the last outcomes, for Ejection.FailureRate
	ejections      int           // the current ejection's multiplier
	ejectionsTotal uint64
	ejectedAt      time.Time
	ejectedUntil   time.Time
	returned       time.Time // when the last ejection ended
	rampStart      time.Time // slow start began; zero: no ramp

	// This backend's monitor: the settings it runs with, how to stop it,
	// and the two mailboxes between them. suspect carries the selector's
	// "a connection failed" note; probes holds the monitor's latest probe
	// statistics, read only when someone asks for a snapshot. Both have
	// capacity 1 and are never closed.
	monitor     MonitorConfig
	running     *Monitor           // the monitor that runs now; nil before Run
	stopMonitor context.CancelFunc // nil while no monitor runs
	suspect     chan struct{}
	probes      chan ProbeStats
	lastProbe   ProbeStats
	probesSince ProbeStats // counts of the monitors before the running one
}

// state names the backend's state for /status: the operator's choice
// first (a backend that is leaving the set is draining, whatever else was
// chosen before), then health.
func (st *backendState) state() string {
	switch {
	case st.removing:
		return "draining"
	case st.disabled:
		return "disabled"
	case st.draining:
		return "draining"
	case !st.up:
		return "down"
	case st.ejected:
		return "ejected"
	}
	return "up"
}

// usable reports whether the backend may take new requests, if it has room.
func (st *backendState) usable() bool {
	return st.up && !st.ejected && !st.disabled && !st.draining && !st.removing
}

// checkBackend checks a backend's configuration on its own.
func checkBackend(bc BackendConfig) error {
	switch {
	case bc.URL == nil || bc.URL.Host == "":
		return fmt.Errorf("backend %q: missing host", bc.URL)
	case bc.Weight < 0 || bc.Weight > MaxWeight:
		return fmt.Errorf("backend %s: weight %d: want 0 to %d", bc.URL, bc.Weight, MaxWeight)
	}
	return nil
}

// add creates a backend's state; Run starts its monitor. Backends start UP.
func (s *Selector) add(bc BackendConfig) (*backendState, error) {
	if err := checkBackend(bc); err != nil {
		return nil, err
	}
	if bc.ProxyProtocol < 0 || bc.ProxyProtocol > 2 {
		return nil, fmt.Errorf("backend %s: PROXY protocol version %d: want 1 or 2", bc.URL, bc.ProxyProtocol)
	}
	b := backendFor(bc.URL)
	b.ProxyProtocol = bc.ProxyProtocol
	if _, dup := s.byName(b.Name); dup {
		return nil, fmt.Errorf("backend %s: %w", b.Name, ErrDuplicateBackend)
	}
	st := &backendState{
		Backend: b, index: len(s.backends), weight: bc.Weight, disabled: bc.Disabled, source: bc.Source,
		up: true, monitor: s.monitor,
		suspect: make(chan struct{}, 1), probes: make(chan ProbeStats, 1),
	}
	s.backends = append(s.backends, st)
	s.byPtr[b] = st
	s.cands = append(s.cands, Candidate{})
	return st, nil
}

func (s *Selector) byName(name string) (*backendState, bool) {
	for _, st := range s.backends {
		if st.Name == name {
			return st, true
		}
	}
	return nil, false
}

func (s *Selector) byID(id string) (*backendState, bool) {
	for _, st := range s.backends {
		if st.ID == id {
			return st, true
		}
	}
	return nil, false
}

// startMonitor starts st's monitor under the selector's monitor group. The
// monitor assumes the health the selector has now, so the two agree.
func (s *Selector) startMonitor(st *backendState) {
	ctx, stop := context.WithCancel(s.monitorCtx)
	st.stopMonitor = stop
	m := &Monitor{
		Backend: st.Backend, Config: st.monitor, StartDown: !st.up, Stats: st.probes,
		Logger: s.log.Named("monitor").With("backend", st.Name),
	}
	st.running = m
	health, suspect := s.health, st.suspect
	s.monitors.Go(func() { _ = m.Run(ctx, health, suspect) })
}

// restartMonitor replaces st's monitor with one that runs with cfg. The new
// monitor gets mailboxes of its own, since the old one may still leave a
// last copy of its statistics in the old one, or take a suspect note meant
// for its successor from it; its counts carry on from the old one's.
func (s *Selector) restartMonitor(st *backendState, cfg MonitorConfig) {
	st.stopMonitor()
	st.collectProbes()
	st.probesSince = ProbeStats{Probes: st.lastProbe.Probes, Failures: st.lastProbe.Failures}
	st.probes = make(chan ProbeStats, 1)
	st.suspect = make(chan struct{}, 1)
	st.monitor = cfg
	s.startMonitor(st)
}

// fromRunning reports whether h comes from its backend's running monitor. A
// monitor that has been stopped may still deliver one last transition
// (its send raced with the stop), and its successor, which started from the
// selector's view of the backend, would not agree with it.
func (s *Selector) fromRunning(h Health) bool {
	st, ok := s.byPtr[h.Backend]
	return ok && h.from == st.running
}

// forget drops a backend that is being removed and has nothing in flight.
func (s *Selector) forget(st *backendState) {
	if st.stopMonitor != nil {
		st.stopMonitor()
	}
	s.backends = append(s.backends[:st.index], s.backends[st.index+1:]...)
	for i, x := range s.backends {
		x.index = i
	}
	s.cands = s.cands[:len(s.backends)]
	delete(s.byPtr, st.Backend)
	s.log.Info("backend removed", "backend", st.Name)
}

// choose asks the policy for an eligible backend not in exclude. Eligible
// means UP, in rotation, not ejected, and under the connection limit;
// backends with weight 0 are standbys, eligible only when no weighted
// backend is, and ejected backends that are UP are eligible only when no
// other backend is. It returns nil when none is eligible, and full when
// that is only because of the connection limit (the request may queue).
func (s *Selector) choose(key string, exclude []*Backend) (b *Backend, full bool) {
	var now time.Time
	if s.slowStart > 0 {
		now = time.Now()
	}
	active, standby := false, false
	for i, st := range s.backends {
		usable := st.usable() && !contains(exclude, st.Backend)
		room := s.hasRoom(st)
		full = full || (usable && !room)
		s.cands[i] = Candidate{
			Backend: st.Backend, Eligible: usable && room && st.weight > 0,
			Weight: s.rampWeight(st, now), InFlight: st.inFlight,
		}
		active = active || s.cands[i].Eligible
		standby = standby || (usable && room && st.weight == 0)
	}
	if !active && standby {
		for i, st := range s.backends {
			if st.weight == 0 && st.usable() && !contains(exclude, st.Backend) && s.hasRoom(st) {
				s.cands[i].Eligible, s.cands[i].Weight = true, 1
			}
		}
	}
	if !active && !standby && !full {
		// Ejection steers requests away from a backend; it never turns
		// one away. When nothing else can take a request, now or after
		// a wait in the queue (a retry has tried the others), an ejected
		// backend that is UP does, as limitEjections returns ejected
		// backends when too few are UP.
		for i, st := range s.backends {
			if st.ejected && st.up && !st.disabled && !st.draining && !st.removing &&
				!contains(exclude, st.Backend) && s.hasRoom(st) {
				s.cands[i].Eligible, s.cands[i].Weight = true, max(s.cands[i].Weight, 1)
			}
		}
	}
	i := s.policy.Choose(s.cands, key)
	if i < 0 {
		return nil, full
	}
	return s.backends[i].Backend, false
}

// hasRoom reports whether st is under the connection cap, if there is one.
func (s *Selector) hasRoom(st *backendState) bool {
	return s.limits.MaxConnsPerBackend <= 0 || st.inFlight < s.limits.MaxConnsPerBackend
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

// record applies a handler's report and says whether the set of eligible
// backends changed.
func (s *Selector) record(r Report) bool {
	s.count(r)
	st, ok := s.byPtr[r.Backend]
	if !ok {
		return false // a request that reached no backend: counted above
	}
	st.inFlight--
	st.requests++
	changed := s.limits.MaxConnsPerBackend > 0 // a slot freed up
	if s.observe(st, r) {
		changed = true
	}
	switch r.Outcome {
	case Failed:
		st.failures++
	case ConnectFailed:
		st.failures++
		if st.up {
			select { // tell the monitor; one pending note is enough
			case st.suspect <- struct{}{}:
				if s.trace {
					s.traceMsg("sent", "suspect note", "backend", st.Name)
				}
			default:
			}
			reason := "passive: connection failed"
			if r.Err != nil {
				reason = "passive: " + r.Err.Error()
			}
			changed = s.setHealth(r.Backend, false, reason) || changed
		}
	}
	if st.removing && st.inFlight == 0 {
		s.forget(st)
		changed = true
	}
	return changed
}

// setHealth applies a transition, logging it once; it reports whether the
// state changed. A message that repeats the current state is ignored.
func (s *Selector) setHealth(b *Backend, up bool, reason string) bool {
	st, ok := s.byPtr[b]
	if !ok || st.up == up {
		return false
	}
	st.up, st.reason, st.changed = up, reason, time.Now()
	st.consecutive = 0
	st.recent.reset()
	s.limitEjections()
	if up {
		st.rampStart = st.changed
		s.log.Info("backend up", "backend", st.Name, "reason", reason)
	} else {
		s.log.Info("backend down", "backend", st.Name, "reason", reason)
	}
	return true
}

// status snapshots every backend. It first collects each monitor's latest
// probe statistics from its mailbox, without waiting.
func (s *Selector) status() []BackendStatus {
	out := make([]BackendStatus, len(s.backends))
	for i, st := range s.backends {
		st.collectProbes()
		out[i] = BackendStatus{
			Name: st.Name, ID: st.ID, State: st.state(), Up: st.up, Weight: st.weight, Source: st.source, Reason: st.reason,
			Changed: st.changed, InFlight: st.inFlight, Requests: st.requests, Failures: st.failures,
			EjectedUntil: st.ejectedIf(), Ejections: st.ejectionsTotal,
			LastProbe: st.lastProbe.At, LastProbeError: st.lastProbe.Err,
			Probes: st.lastProbe.Probes, ProbeFailures: st.lastProbe.Failures,
		}
	}
	return out
}

// ejectedIf returns when the current ejection ends; zero if not ejected.
func (st *backendState) ejectedIf() time.Time {
	if st.ejected {
		return st.ejectedUntil
	}
	return time.Time{}
}

// collectProbes takes the monitor's latest statistics if it left some.
func (st *backendState) collectProbes() {
	select {
	case p := <-st.probes:
		p.Probes += st.probesSince.Probes
		p.Failures += st.probesSince.Failures
		st.lastProbe = p
	default:
	}
}
