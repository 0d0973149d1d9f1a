package actors

// The message trace: with Config.TraceMessages and a logger at trace level
// ("roundhouse demo --log-level trace"), the selector logs every message it
// takes and every answer it sends, each with a sequence number, so a reader
// can watch the actors talk. docs/TOUR.md follows one request through it.
//
// The loop traces what it takes with one call, traceIn. The answers are
// traced where they are sent (pick replies, queued picks, suspect notes,
// command and query replies), each behind a check of s.trace, so that the
// hot path builds no log arguments when tracing is off.

// traceIn logs the message the loop has just taken, when tracing is on.
func (s *Selector) traceIn(m message) {
	if s.trace {
		s.traceMessage(m)
	}
}

// traceMessage logs m. A taken offer is logged as sent: the selector sent
// it, and the step is the handler taking it.
func (s *Selector) traceMessage(m message) {
	switch m := m.(type) {
	case offerTaken:
		s.traceMsg("sent", "offer", "backend", name(m.b), "full", m.full)
	case pickRequest:
		s.traceMsg("received", "pick request", "key", m.key, "tried", len(m.exclude))
	case withdrawal:
		s.traceMsg("received", "withdrawal")
	case Report:
		s.traceReport(m)
	case Health:
		s.traceMsg("received", "health", "backend", m.Backend.Name, "up", m.Up)
	case command:
		s.traceMsg("received", "command", "op", m.op, "id", m.id)
	case query:
		s.traceMsg("received", "query")
	case tick:
		s.traceMsg("received", "timer")
	}
}

// traceMsg logs one message at trace level with its sequence number, so a
// reader can watch the actors talk (--log-level trace). Callers check
// s.trace first, so that the hot path pays nothing when tracing is off.
func (s *Selector) traceMsg(dir, msg string, kv ...any) {
	s.seq++
	s.log.Trace(dir+" "+msg, append([]any{"seq", s.seq}, kv...)...)
}

// traceReport traces a report; a final report that only counts a request
// whose last attempt was reported already names that backend as last.
func (s *Selector) traceReport(r Report) {
	kv := []any{"backend", name(r.Backend), "outcome", r.Outcome, "status", r.Status, "final", r.Final}
	if r.Last != nil {
		kv = append(kv, "last", r.Last.Name)
	}
	s.traceMsg("received", "report", kv...)
}

// name is a backend's name for logs; "-" for none.
func name(b *Backend) string {
	if b == nil {
		return "-"
	}
	return b.Name
}
