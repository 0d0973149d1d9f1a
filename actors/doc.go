// Package actors holds Roundhouse's balancing state and the goroutines that
// own it, written in the actor style: share memory by communicating.
//
// # One owner
//
// All balancing state (the backend set, each backend's health, the policy's
// position, in-flight counts, the queue, statistics) belongs to one
// goroutine, the Selector's Run loop. No other goroutine reads or writes
// it, so it needs no lock. With pools there is one selector per pool, each
// this same actor with state of its own; nothing in this package knows
// about pools (the routes to them are package transport's, and package
// main starts and stops each pool's selector). Everyone else sends the selector a message
// (messages.go holds them all) and, when they need an answer, receives one
// on a channel they sent along:
//
//	handler ── Pick, PickFor ─▶ selector ◀── Health ────────── monitor
//	handler ◀── offer, reply ──          ── suspect note ───▶ monitor
//	handler ── Report ─────────▶         ◀╌╌ ProbeStats ╌╌╌╌╌ monitor
//	                                     (one monitor per backend)
//	operator ── commands, Status, Metrics, Backends ──▶ selector
//	discovery provider ── commands, through a Feed ──▶ selector
//
// # Three rules
//
//   - The selector's loop is a for-select over its inbound channels
//     (Selector.Run), one message per step, and it blocks nowhere else:
//     every reply goes on a channel of capacity 1 that the asker made, and
//     a note to a monitor is dropped when one is already pending. Between
//     two full selects it may take a few steps on a quick path
//     (Selector.quickStep), the two hot messages alone and only when they
//     are already there (a report in the buffer, a handler waiting for the
//     offer), since a select's cost grows with its cases; and before it
//     waits, it lets the goroutines that are ready run first (it yields,
//     which is not blocking), so that it finds many messages at once on
//     its return.
//   - Every caller's send and wait also watches its own context and the
//     selector's end, so no caller waits on a selector that has stopped.
//     Report alone watches only the selector's end: a pick must be reported
//     even when the client has gone, or its in-flight count would never
//     come down.
//   - Every goroutine has an owner that waits for it. The selector starts
//     one Monitor per backend, stops it when the backend goes, and stops
//     and waits for them all when Run ends; whoever starts Run waits for it.
//     A monitor with a gRPC check owns its grpc.ClientConn, and so the
//     goroutines grpc-go runs for it: it closes the connection before Run
//     returns (monitor_grpc.go).
//
// # Where the details are
//
// A pick is the hottest message, so the selector offers the next one in
// advance (Pick is one receive); a retry, or a request whose policy needs
// its key, asks with its own reply channel (PickFor). Which backend comes
// next is a Policy's decision, one small type per file (policy_*.go) that
// registers itself. Connection caps and the queue are Limits, passive
// outlier detection is Ejection, health probing is Monitor, and changes to
// the backend set are the commands (Add, Remove, Drain, SetEnabled,
// SetWeight, Reconfigure) and a discovery provider's Feed.
//
// To watch the messages go by, run "roundhouse demo --log-level trace": the
// selector logs every message it takes and every answer it sends, each with
// a sequence number (trace.go). docs/TOUR.md follows one request through
// that trace.
package actors
