package actors

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"time"
)

// Errors from the operator commands.
var (
	ErrUnknownBackend   = errors.New("no such backend")
	ErrDuplicateBackend = errors.New("backend already configured")
	// ErrNotOwner refuses a Feed's change to a backend that another source
	// manages: the static configuration or another discovery provider.
	ErrNotOwner = errors.New("backend managed by another source")
)

// answerCommand applies c and replies, in the step that took it.
func (s *Selector) answerCommand(c command) {
	res := s.apply(c)
	c.reply <- res // capacity 1: never blocks
	if s.trace {
		s.traceMsg("sent", "command reply", "op", c.op, "error", res.err)
	}
}

// send delivers a command and waits for its answer.
func (s *Selector) send(ctx context.Context, c command) (result, error) {
	c.reply = make(chan result, 1)
	if err := ask[message](ctx, s, s.mail, c); err != nil {
		return result{}, err
	}
	r := <-c.reply // answered in the same step that took the command
	return r, r.err
}

// Add starts balancing to a new backend and returns its ID. It starts UP and
// its monitor probes it at once. A backend that is still finishing its
// requests after Remove is taken back instead, with its health and counters.
func (s *Selector) Add(ctx context.Context, bc BackendConfig) (string, error) {
	r, err := s.send(ctx, command{op: opAdd, backend: bc})
	return r.id, err
}

// Remove stops sending new requests to the backend and forgets it once its
// in-flight requests have finished.
func (s *Selector) Remove(ctx context.Context, id string) error {
	_, err := s.send(ctx, command{op: opRemove, id: id})
	return err
}

// Drain stops sending new requests to the backend; in-flight ones finish. It
// stays in the set (state "draining") until enabled again or removed.
func (s *Selector) Drain(ctx context.Context, id string) error {
	_, err := s.send(ctx, command{op: opDrain, id: id})
	return err
}

// SetEnabled puts the backend back in rotation (ending a drain too) or takes
// it out. A disabled backend is still probed.
func (s *Selector) SetEnabled(ctx context.Context, id string, enabled bool) error {
	_, err := s.send(ctx, command{op: enableOp(enabled), id: id})
	return err
}

// enableOp is the command that enables or disables a backend.
func enableOp(enabled bool) opKind {
	if enabled {
		return opEnable
	}
	return opDisable
}

// SetWeight changes the backend's weight (0 makes it a standby). It keeps
// its health, counters, connections and any slow-start ramp.
func (s *Selector) SetWeight(ctx context.Context, id string, weight int) error {
	_, err := s.send(ctx, command{op: opWeight, id: id, weight: weight})
	return err
}

// Feed returns the handle through which the discovery provider named
// source changes the backend set. source must not be "".
func (s *Selector) Feed(source string) *Feed { return &Feed{s: s, source: source} }

// Feed is a discovery provider's handle on the selector: the operator
// commands Add, Remove, SetEnabled and SetWeight, each message stamped with
// the provider's source. A backend a Feed adds carries that source, so
// Reconfigure (a reload of the static configuration) leaves it alone; and a
// Feed may change or remove only backends of its own source (otherwise
// ErrNotOwner), so a provider never removes one that the static
// configuration or another provider gave. A Feed is a value: safe to use
// from any goroutine, like the Selector.
type Feed struct {
	s      *Selector
	source string
}

// Source returns the name the Feed stamps on its messages.
func (f *Feed) Source() string { return f.source }

// Add is Selector.Add for a backend of the Feed's source. A URL that
// another source already has is refused with ErrDuplicateBackend, and
// stays theirs: the first source to add a URL keeps it, and the static
// configuration takes it over on its next Reconfigure (static wins).
func (f *Feed) Add(ctx context.Context, bc BackendConfig) (string, error) {
	if err := f.check(); err != nil {
		return "", err
	}
	bc.Source = f.source
	r, err := f.s.send(ctx, command{op: opAdd, backend: bc, source: f.source})
	return r.id, err
}

// Remove is Selector.Remove for one of the Feed's backends: it drains,
// then goes.
func (f *Feed) Remove(ctx context.Context, id string) error {
	return f.do(ctx, command{op: opRemove, id: id})
}

// SetEnabled is Selector.SetEnabled for one of the Feed's backends.
func (f *Feed) SetEnabled(ctx context.Context, id string, enabled bool) error {
	return f.do(ctx, command{op: enableOp(enabled), id: id})
}

// SetWeight is Selector.SetWeight for one of the Feed's backends.
func (f *Feed) SetWeight(ctx context.Context, id string, weight int) error {
	return f.do(ctx, command{op: opWeight, id: id, weight: weight})
}

func (f *Feed) do(ctx context.Context, c command) error {
	if err := f.check(); err != nil {
		return err
	}
	c.source = f.source
	_, err := f.s.send(ctx, c)
	return err
}

func (f *Feed) check() error {
	if f.source == "" {
		return errors.New("feed: empty source")
	}
	return nil
}

// Reconfigure replaces the static configuration, as a reload does: static
// backends not in cfg drain and go; new ones start; kept ones take cfg's
// weight and enabled state (ending any drain an operator started) and keep
// their health and counters; a kept backend's monitor restarts only if its
// settings changed. Backends a discovery provider added through a Feed are
// not the configuration's and stay as they are, unless cfg lists one of
// them: then it becomes static (static wins), and its provider can no
// longer change it.
// Monitor.Probe counts as unchanged only if it is the same func value as
// before (a copy of it); a closure or method value made anew is a change.
// A nil cfg.Policy keeps the current policy. cfg.Logger is ignored. On an
// error nothing has changed.
func (s *Selector) Reconfigure(ctx context.Context, cfg Config) error {
	_, err := s.send(ctx, command{op: opReconfigure, config: cfg})
	return err
}

// apply runs a command in the selector goroutine.
func (s *Selector) apply(c command) result {
	if c.op == opAdd {
		st, err := s.add(c.backend)
		if errors.Is(err, ErrDuplicateBackend) {
			if st, _ := s.byName(c.backend.URL.String()); st.removing {
				s.takeBack(st, c.backend)
				return result{id: st.ID}
			}
		}
		if err != nil {
			return result{err: err}
		}
		st.rampStart = time.Now()
		s.startMonitor(st)
		s.logAdded(st)
		return result{id: st.ID}
	}
	if c.op == opReconfigure {
		return result{err: s.reconfigure(c.config)}
	}
	st, ok := s.byID(c.id)
	if !ok || st.removing {
		return result{err: fmt.Errorf("backend %q: %w", c.id, ErrUnknownBackend)}
	}
	if c.source != "" && st.source != c.source {
		return result{err: fmt.Errorf("backend %s: %w", st.Name, ErrNotOwner)}
	}
	switch c.op {
	case opRemove:
		st.removing = true
		s.log.Info("backend removing", "backend", st.Name, "in_flight", st.inFlight)
		if st.inFlight == 0 {
			s.forget(st)
		}
	case opDrain:
		st.draining = true
		s.log.Info("backend draining", "backend", st.Name, "in_flight", st.inFlight)
	case opEnable:
		st.disabled, st.draining = false, false
		s.log.Info("backend enabled", "backend", st.Name)
	case opDisable:
		st.disabled = true
		s.log.Info("backend disabled", "backend", st.Name)
	case opWeight:
		if c.weight < 0 || c.weight > MaxWeight {
			return result{err: fmt.Errorf("backend %s: weight %d: want 0 to %d", st.Name, c.weight, MaxWeight)}
		}
		st.weight = c.weight
		s.log.Info("backend weight", "backend", st.Name, "weight", st.weight)
	}
	s.limitEjections() // fewer backends in rotation may allow fewer ejected
	return result{id: st.ID}
}

// takeBack cancels the removal of a backend that still has requests in
// flight, for Add. Like an added backend it goes to the end and takes bc's
// settings; it keeps its health, counters and in-flight requests, and its
// monitor unless the monitor settings have changed since it started.
func (s *Selector) takeBack(st *backendState, bc BackendConfig) {
	st.weight, st.disabled, st.draining, st.removing = bc.Weight, bc.Disabled, false, false
	st.source = bc.Source
	s.backends = append(slices.Delete(s.backends, st.index, st.index+1), st)
	for i, x := range s.backends {
		x.index = i
	}
	if !sameMonitor(st.monitor, s.monitor) {
		s.restartMonitor(st, s.monitor)
	}
	s.logAdded(st)
}

// logAdded logs a backend joining the set, with its source if it has one.
func (s *Selector) logAdded(st *backendState) {
	if st.source != "" {
		s.log.Info("backend added", "backend", st.Name, "id", st.ID, "source", st.source)
		return
	}
	s.log.Info("backend added", "backend", st.Name, "id", st.ID)
}

// reconfigure applies a whole new configuration; see Reconfigure.
func (s *Selector) reconfigure(cfg Config) error {
	wanted := make(map[string]BackendConfig, len(cfg.Backends))
	for _, bc := range cfg.Backends {
		if err := checkBackend(bc); err != nil {
			return err
		}
		name := bc.URL.String()
		if _, dup := wanted[name]; dup {
			return fmt.Errorf("backend %s: %w", name, ErrDuplicateBackend)
		}
		wanted[name] = bc
		// The version is part of every connection the transport makes to
		// the backend, read without a lock: it is fixed for a Backend's life.
		if st, ok := s.byName(name); ok && st.ProxyProtocol != bc.ProxyProtocol {
			return fmt.Errorf("backend %s: PROXY protocol version %d → %d cannot change on a running backend: remove it and add it again (once it has drained), or restart",
				name, st.ProxyProtocol, bc.ProxyProtocol)
		}
	}
	if cfg.Policy != nil {
		s.policy = cfg.Policy
	}
	s.monitor = cfg.Monitor
	s.limits, s.ejection, s.slowStart = cfg.Limits.withDefaults(), cfg.Ejection.withDefaults(), cfg.SlowStart

	// The new order: the static backends as cfg lists them, then the
	// discovered ones as they were, then those on their way out.
	var order []*backendState
	for _, bc := range cfg.Backends {
		bc.Source = "" // static
		st, ok := s.byName(bc.URL.String())
		if !ok {
			st, _ = s.add(bc) // checked above
			st.rampStart = time.Now()
			s.startMonitor(st)
			s.logAdded(st)
		} else {
			if st.source != "" {
				s.log.Info("backend now static", "backend", st.Name, "was", st.source)
				st.source = ""
			}
			st.weight, st.disabled, st.draining, st.removing = bc.Weight, bc.Disabled, false, false
			if !sameMonitor(st.monitor, cfg.Monitor) {
				s.restartMonitor(st, cfg.Monitor)
			}
		}
		order = append(order, st)
	}
	var gone []*backendState
	for _, st := range s.backends {
		if _, listed := wanted[st.Name]; listed {
			continue
		}
		if st.source != "" {
			// A provider's: kept as it is, but its monitor follows the
			// new health settings like every other backend's.
			if !st.removing && !sameMonitor(st.monitor, cfg.Monitor) {
				s.restartMonitor(st, cfg.Monitor)
			}
			if !st.removing {
				order = append(order, st)
				continue
			}
		} else if !st.removing {
			st.removing = true
			s.log.Info("backend removing", "backend", st.Name, "in_flight", st.inFlight)
		}
		gone = append(gone, st)
	}
	order = append(order, gone...)
	s.backends = order
	for i, st := range s.backends {
		st.index = i
	}
	s.cands = slices.Grow(s.cands[:0], len(s.backends))[:len(s.backends)]
	for _, st := range gone {
		if st.inFlight == 0 {
			s.forget(st)
		}
	}
	s.limitEjections()
	s.totals.reloads++
	return nil
}

// sameMonitor reports whether two monitor settings probe the same way.
// Probe, a hook for tests and embedders, is compared by its code alone:
// two closures of one function literal, or two method values of one method,
// count as the same probe. Checks are compared by their contents (see
// HTTPCheck.equal and GRPCCheck.equal), so a reload that reads the same check again does not
// restart the monitors.
func sameMonitor(a, b MonitorConfig) bool {
	return reflect.ValueOf(a.Probe).Pointer() == reflect.ValueOf(b.Probe).Pointer() &&
		a.Check.equal(b.Check) && a.Transport == b.Transport && a.Interval == b.Interval &&
		a.Timeout == b.Timeout && a.Rise == b.Rise && a.Fall == b.Fall &&
		(a.GRPC == nil) == (b.GRPC == nil) && (a.GRPC == nil || a.GRPC.equal(*b.GRPC))
}
