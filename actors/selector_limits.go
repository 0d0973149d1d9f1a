package actors

import (
	"fmt"
	"slices"
	"time"

	"github.com/roundhouse/roundhouse/internal/defaults"
)

// Limits protects backends from overload. The zero value means no limits.
//
// A backend at MaxConnsPerBackend is not eligible. When that is all that
// stands in the way, the offer says "full" and Pick becomes a PickFor that
// waits in the selector's queue, oldest first. The selector answers a
// queued request when a Report frees a slot. Once QueueTimeout has passed
// (the selector's own timer), or at once when the queue is full, the reply
// names no backend and says the backends are busy (pickReply.busy): PickFor
// returns ErrBusy, and the handler answers 503 saying every backend is
// busy, not that none is healthy. A caller whose context ends first
// withdraws its request by message and, if the answer had already
// arrived, hands the backend back with a Report.
type Limits struct {
	// MaxConnsPerBackend caps each backend's in-flight requests; 0: no cap.
	MaxConnsPerBackend int
	// QueueSize is how many requests may wait, in arrival order, for a
	// backend under its cap; more are refused at once. 0: none wait.
	QueueSize int
	// QueueTimeout is the longest a request waits in the queue before it is
	// refused; 0: defaults.QueueTimeout.
	QueueTimeout time.Duration
}

func (l Limits) withDefaults() Limits {
	if l.QueueTimeout <= 0 {
		l.QueueTimeout = defaults.QueueTimeout
	}
	return l
}

// Ejection takes out of rotation, for a while, a backend that keeps failing
// requests although its health checks pass (passive outlier detection):
// one that fails After requests in a row, or at least FailureRate percent
// of its last Window requests. Each ejection lasts longer than the last,
// never more than MaxPercent of the UP backends are out at once, and the
// selector's own timer brings a backend back. The zero value ejects
// nothing.
type Ejection struct {
	// After is how many consecutive gateway failures eject a backend:
	// failed connections and exchanges, and 502, 503 or 504 responses it
	// sent itself. 0: never eject for a streak.
	After int
	// FailureRate is the percentage of gateway failures (as After counts
	// them), among a backend's last Window requests, that ejects it,
	// failures and successes interleaved or not. 0: never eject for a
	// rate.
	FailureRate int
	// Window is how many of a backend's last requests FailureRate is
	// judged over, and so the fewest it must have completed (since it
	// was last ejected, or its health changed) before it can be ejected
	// for its rate; 0: defaults.FailureWindow.
	Window int
	// Time is how long the first ejection lasts; each further ejection
	// lasts one Time longer, up to MaxTime. A backend that stays in for as
	// long as its last ejection starts again from Time. 0: defaults.EjectTime.
	Time time.Duration
	// MaxTime caps an ejection; 0: 300s or Time, whichever is longer.
	MaxTime time.Duration
	// MaxPercent is the most backends, as a percentage of those UP by
	// their health checks, that may be ejected at once (rounded down); 0:
	// defaults.MaxEjectionPercent.
	MaxPercent int
}

func (e Ejection) withDefaults() Ejection {
	if e.Time <= 0 {
		e.Time = defaults.EjectTime
	}
	if e.MaxTime <= 0 {
		e.MaxTime = max(300*time.Second, e.Time)
	}
	if e.MaxPercent <= 0 {
		e.MaxPercent = defaults.MaxEjectionPercent
	}
	if e.Window <= 0 {
		e.Window = defaults.FailureWindow
	}
	return e
}

// waiter is a pick request waiting in the queue.
type waiter struct {
	req      pickRequest
	deadline time.Time
}

// pick answers a pick request now, or queues it when every backend that
// could take it is at its connection limit.
func (s *Selector) pick(req pickRequest) {
	b, full := s.choose(req.key, req.exclude)
	switch {
	case b != nil:
		s.taken(b)
	case full && len(s.queue) < s.limits.QueueSize:
		s.queue = append(s.queue, waiter{req: req, deadline: time.Now().Add(s.limits.QueueTimeout)})
		s.armWake()
		if s.trace {
			s.traceMsg("queued", "pick request", "waiting", len(s.queue))
		}
		return
	case full:
		s.totals.queueFull++
	}
	req.reply <- pickReply{b: b, busy: full} // capacity 1: never blocks
	if s.trace {
		s.traceMsg("sent", "pick reply", "backend", name(b), "busy", full)
	}
}

// serveQueue answers the queued requests that can now be answered, oldest
// first: with a backend that has room, or with none when no backend that
// could take them is left at all.
func (s *Selector) serveQueue() {
	kept := s.queue[:0]
	for _, w := range s.queue {
		b, full := s.choose(w.req.key, w.req.exclude)
		if b == nil && full {
			kept = append(kept, w)
			continue
		}
		s.taken(b)
		w.req.reply <- pickReply{b: b} // capacity 1: never blocks
		if s.trace {
			s.traceMsg("sent", "pick reply from the queue", "backend", name(b), "busy", false)
		}
	}
	clear(s.queue[len(kept):])
	s.queue = kept
}

// dismissQueue answers every queued request, as Run ends: the selector
// has stopped (PickFor returns ErrStopped).
func (s *Selector) dismissQueue() {
	for _, w := range s.queue {
		w.req.reply <- pickReply{stopped: true} // capacity 1: never blocks
		if s.trace {
			s.traceMsg("sent", "pick reply from the queue", "backend", "-", "busy", false)
		}
	}
}

// withdraw removes the queued request answered on reply, if still queued.
func (s *Selector) withdraw(reply chan pickReply) {
	for i, w := range s.queue {
		if w.req.reply == reply {
			s.queue = slices.Delete(s.queue, i, i+1) // clears the vacated slot
			return
		}
	}
}

// expire refuses queued requests whose time is up and ends ejections that
// are over, then sets the timer for the next deadline.
func (s *Selector) expire(now time.Time) {
	kept := s.queue[:0]
	for _, w := range s.queue {
		if now.Before(w.deadline) {
			kept = append(kept, w)
			continue
		}
		w.req.reply <- pickReply{busy: true} // capacity 1: never blocks
		s.totals.queueTimeouts++
		if s.trace {
			s.traceMsg("sent", "pick reply from the queue", "backend", "-", "busy", true)
		}
	}
	clear(s.queue[len(kept):])
	s.queue = kept
	for _, st := range s.backends {
		if st.ejected && !now.Before(st.ejectedUntil) {
			s.endEjection(st, now, "after", st.ejectedUntil.Sub(st.ejectedAt).Round(time.Millisecond))
		}
	}
	s.armWake()
}

// armWake sets the timer to the earliest queue deadline or ejection end.
func (s *Selector) armWake() {
	var next time.Time
	for _, w := range s.queue {
		if next.IsZero() || w.deadline.Before(next) {
			next = w.deadline
		}
	}
	for _, st := range s.backends {
		if st.ejected && (next.IsZero() || st.ejectedUntil.Before(next)) {
			next = st.ejectedUntil
		}
	}
	s.wake.Stop()
	s.waking = nil
	if !next.IsZero() {
		s.wake.Reset(time.Until(next))
		s.waking = s.wake.C
	}
}

// gatewayFailure reports whether r counts towards ejecting its backend.
func gatewayFailure(r Report) bool {
	switch r.Outcome {
	case ConnectFailed, Failed:
		return true
	case Success:
		return r.Status == 502 || r.Status == 503 || r.Status == 504
	}
	return false
}

// observe feeds a report into the backend's outlier detection and reports
// whether it was ejected: for a streak of After gateway failures, or for
// FailureRate percent of them among its last Window requests.
func (s *Selector) observe(st *backendState, r Report) bool {
	e := &s.ejection
	if (e.After <= 0 && e.FailureRate <= 0) || r.Outcome == ClientGone || !st.up || st.ejected {
		return false // out of rotation already; late results from before do not count
	}
	failed := gatewayFailure(r)
	if failed {
		st.consecutive++
	} else {
		st.consecutive = 0
	}
	judgeRate := false
	if e.FailureRate > 0 {
		// A success can only lower the rate of a full window, so the rate
		// is judged after a failure, and after the report (success or
		// not) that brings the window to its minimum volume.
		filling := !st.recent.full()
		st.recent.add(failed, e.Window)
		judgeRate = (failed || filling) && st.recent.full() && st.recent.fails*100 >= e.FailureRate*e.Window
	}
	switch {
	case e.After > 0 && st.consecutive >= e.After: // only after a failure
		return s.eject(st, false)
	case judgeRate:
		return s.eject(st, true)
	}
	return false
}

// eject takes st out of rotation for its next ejection's length, unless
// MaxPercent forbids, and reports whether it did; byRate says why, for the
// log: its failure rate, or a streak. Skipped, st's counts stand, and its
// next failure tries again.
func (s *Selector) eject(st *backendState, byRate bool) bool {
	if up, ejected := s.ejectedShare(); (ejected+1)*100 > s.ejection.MaxPercent*up {
		s.log.Debug("ejection skipped: too many backends ejected", "backend", st.Name,
			"ejected", ejected, "up", up, "max_percent", s.ejection.MaxPercent)
		return false
	}
	now := time.Now()
	if !st.returned.IsZero() && now.Sub(st.returned) >= st.ejectedUntil.Sub(st.ejectedAt) {
		st.ejections = 0 // it stayed in as long as it was last out: start afresh
	}
	reason := fmt.Sprintf("%d consecutive gateway failures", s.ejection.After)
	if byRate {
		reason = fmt.Sprintf("%d gateway failures in the last %d requests", st.recent.fails, s.ejection.Window)
	}
	st.ejections++
	st.ejectionsTotal++
	d := min(time.Duration(st.ejections)*s.ejection.Time, s.ejection.MaxTime)
	st.ejected, st.ejectedAt, st.ejectedUntil, st.consecutive = true, now, now.Add(d), 0
	st.recent.reset()
	s.log.Info("backend ejected", "backend", st.Name, "for", d, "reason", reason)
	s.armWake()
	return true
}

// ejectedShare counts the backends in rotation and UP by their health
// checks, and how many of those are ejected.
func (s *Selector) ejectedShare() (up, ejected int) {
	for _, x := range s.backends {
		if x.counted() {
			up++
			if x.ejected {
				ejected++
			}
		}
	}
	return up, ejected
}

// counted reports whether st counts towards MaxPercent: UP by its health
// checks and in rotation as far as the operator is concerned.
func (st *backendState) counted() bool {
	return st.up && !st.disabled && !st.draining && !st.removing
}

// limitEjections ends ejections early, soonest-ending first, while more
// backends are ejected than MaxPercent allows of those UP: when health
// checks take backends away, ejected ones must be able to serve again.
func (s *Selector) limitEjections() {
	for {
		up, ejected := s.ejectedShare()
		if ejected == 0 || ejected*100 <= s.ejection.MaxPercent*up {
			return
		}
		var first *backendState
		for _, x := range s.backends {
			if x.counted() && x.ejected && (first == nil || x.ejectedUntil.Before(first.ejectedUntil)) {
				first = x
			}
		}
		s.endEjection(first, time.Now(), "reason", "too many backends ejected")
	}
}

// endEjection puts an ejected backend back in rotation at now, starting its
// slow-start ramp, and logs it once with why.
func (s *Selector) endEjection(st *backendState, now time.Time, why ...any) {
	st.ejected, st.returned, st.rampStart = false, now, now
	s.log.Info("backend returned", append([]any{"backend", st.Name}, why...)...)
}

// rampWeight is a backend's weight as its policy sees it: scaled by 100 when
// slow start is on, so that a ramp can start small, and reduced in
// proportion to how far into its ramp it is.
func (s *Selector) rampWeight(st *backendState, now time.Time) int {
	if s.slowStart <= 0 || st.weight == 0 {
		return st.weight
	}
	w := st.weight * 100
	if st.rampStart.IsZero() {
		return w
	}
	if elapsed := now.Sub(st.rampStart); elapsed < s.slowStart {
		w = max(1, int(float64(w)*float64(elapsed)/float64(s.slowStart)))
	}
	return w
}
