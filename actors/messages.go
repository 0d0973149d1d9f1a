package actors

import "time"

// This file holds every message the actors exchange, grouped by sender.
// The selector's inbound messages travel on its channels (see Selector):
// offers, pick requests, reports and health transitions each on a channel
// of its own type, and the rarer withdrawals, commands and queries together
// on one channel of message values, the selector's mail. Taking one is one
// step of its loop (see message and Selector.handle).
// Replies travel on channels of capacity 1 that the asker makes and sends
// along, so the selector never waits to answer.
//
// Two exchanges between the selector and a monitor carry no message of
// their own type. The suspect note is an empty struct the selector leaves
// in a monitor's mailbox (capacity 1) when a request saw that backend's
// connection fail; one pending note is enough, so the selector drops a
// second. ProbeStats go the other way, in a mailbox of capacity 1 that the
// selector empties only when asked for a snapshot.

// message is one thing the selector's loop takes in a step: a value of one
// of the types below that implement isMessage. Selector.handle applies it;
// with Config.TraceMessages the loop traces it first.
type message interface{ isMessage() }

func (offerTaken) isMessage()  {}
func (pickRequest) isMessage() {}
func (withdrawal) isMessage()  {}
func (Report) isMessage()      {}
func (Health) isMessage()      {}
func (command) isMessage()     {}
func (query) isMessage()       {}
func (tick) isMessage()        {}

// From handlers: picks, withdrawals and reports.

// offer is the selector's ready answer for the next keyless request: a
// backend, or none (nil), or full: every eligible backend is at its
// connection limit, so the request must queue with PickFor. A pick is the
// hottest message, so the selector computes it in advance and offers it on
// an unbuffered channel: Pick is a single receive. It computes it again
// after each step that may have changed the answer (see Selector.handle):
// after an offer is taken, after every report, pick request, withdrawal,
// command and timer, and after a health transition that changes the
// backend's state. So an offer never names a backend that has gone DOWN,
// and load-aware policies see current in-flight counts. With none, Pick
// returns nil and the handler answers 503 at once instead of waiting.
type offer struct {
	b    *Backend
	full bool
}

// pickRequest asks for a backend for a request with the given key that is
// not in exclude. The selector answers on reply, which must have capacity 1
// so the answer never blocks it; the answer may come later if the request
// has to queue for a free connection.
type pickRequest struct {
	key     string
	exclude []*Backend
	reply   chan pickReply
}

// pickReply answers a pickRequest: a backend, or none. With none, busy
// says why: true when backends could take the request but every one is at
// its connection limit (the queue was full, or the wait timed out), false
// when no backend could take it at all.
type pickReply struct {
	b       *Backend
	busy    bool
	stopped bool // Run ended with the request still queued
}

// withdrawal takes a queued pick request out of the queue; the selector
// acknowledges on ack (capacity 1). It travels in the selector's mail.
type withdrawal struct {
	reply chan pickReply // identifies the request
	ack   chan struct{}
}

// offerTaken is the step in which a handler took the offer (Pick).
type offerTaken offer

// Outcome is what happened to one forwarded attempt, as the handler saw it.
type Outcome int

// The outcomes a handler reports. The zero value is Success.
const (
	// Success: the backend answered with response headers (any status)
	// and, if the client stayed, its whole body.
	Success Outcome = iota
	// ConnectFailed: no connection could be made (refused, dial timeout).
	// The request never reached the backend. The selector marks the backend
	// DOWN at once (passive health) and its monitor must see it pass again.
	ConnectFailed
	// Failed: the exchange broke after the request was sent (reset, EOF,
	// response header timeout), or the response body broke off after its
	// header went to the client.
	Failed
	// ClientGone: the client went away first. Not the backend's fault.
	ClientGone
)

var outcomeNames = [...]string{"success", "connect-failed", "failed", "client-gone"}

// String names the outcome for logs.
func (o Outcome) String() string {
	if int(o) < len(outcomeNames) {
		return outcomeNames[o]
	}
	return "unknown"
}

// Report is a handler's message to the selector after each attempt: it ends
// the in-flight count the pick started and feeds statistics and passive
// health. The last Report of a request is marked Final and also counts the
// request for metrics; a request that never reached a backend sends just a
// Final Report with a nil Backend and a nil Last.
type Report struct {
	Backend  *Backend // nil: the request reached no backend
	Outcome  Outcome
	Status   int           // response status; for a Final report, what the client got (499: it left)
	Duration time.Duration // the attempt's; for a Final report, the whole request's
	Err      error         // the transport's error, nil on Success
	Method   string        // the request's method, for metrics
	Final    bool          // the request's last report
	Attempt  int           // 0 for the first attempt, 1 for the first retry, ...
	// Proto is the request's protocol, for metrics (ProtoClass: "HTTP/1.1",
	// "HTTP/2", "HTTP/3"); read in a Final report only; "": not counted by
	// protocol.
	Proto string
	// Last is set only in a Final report with a nil Backend whose request
	// did reach a backend: the one its last attempt went to, that attempt
	// already reported (it failed, and no further attempt was made: no
	// backend was left, every one was busy, the client left or the request
	// timed out). The request counts as that backend's; no pick ends.
	Last *Backend
	// GRPC marks, in a Final report, a gRPC call; GRPCStatus is then the
	// gRPC status it ended with (its grpc-status, which Status, 200 for
	// most gRPC calls, does not tell), counted for metrics.
	GRPC       bool
	GRPCStatus int
}

// From monitors: health transitions and probe statistics.

// Health is a monitor's message to the selector: Backend has changed state.
// Monitors send transitions only (UP→DOWN, DOWN→UP), never every probe.
type Health struct {
	Backend *Backend
	Up      bool
	// Reason says why, for the log line and /status: the last probe error
	// for a DOWN, the passing streak for an UP.
	Reason string
	// from is the monitor that sent it, so that the selector can tell a
	// monitor it has replaced from the one that replaced it.
	from *Monitor
}

// ProbeStats is a monitor's running account of its probes. The monitor
// leaves its latest copy in a mailbox of capacity 1 that the selector reads
// only when asked for a snapshot: statistics, unlike health transitions,
// never wake the selector.
type ProbeStats struct {
	At       time.Time // when the last probe finished
	Err      string    // its error; "" when it passed
	Probes   uint64    // probes so far
	Failures uint64    // failed probes so far
}

// From operators and discovery providers: commands and queries.

// command is an operator's change to the backend set, sent in the
// selector's mail. The selector applies it in its own goroutine and answers
// on reply (capacity 1).
type command struct {
	op      opKind
	id      string        // the backend, for remove, drain, enable, disable, weight
	backend BackendConfig // for add
	config  Config        // for reconfigure
	weight  int           // for weight
	// source, when not "", limits the command to the backends of that
	// source (a Feed's commands); "" is an operator's, allowed on any.
	source string
	reply  chan result
}

type result struct {
	id  string // the backend added
	err error
}

type opKind int

var opNames = [...]string{"add", "remove", "drain", "enable", "disable", "reconfigure", "weight"}

func (o opKind) String() string { return opNames[o] }

const (
	opAdd opKind = iota
	opRemove
	opDrain
	opEnable
	opDisable
	opReconfigure
	opWeight
)

// query asks for a snapshot or for the backend set, in the selector's
// mail; exactly one of its channels is set, and has capacity 1. The
// selector answers in the step that takes the query (Selector.answer).
type query struct {
	status   chan []BackendStatus
	metrics  chan Metrics
	backends chan []*Backend
}

// From the selector's own timer.

// tick is the step in which the selector's timer fired, at the time it
// carries: a queued pick's deadline or an ejection's end has come.
type tick time.Time
