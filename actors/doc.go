// Package actors holds Roundhouse's balancing state and the goroutines that
// own it, written in the actor style: share memory by communicating.
//
// # One owner
//
// All balancing state (the backend set, each backend's health, the policy's
// position, in-flight counts, the queue, statistics) belongs to one
// goroutine, the Selector's Run loop. No other goroutine reads or writes
// it, so it needs no lock. Everyone else sends the selector a message and,
// when they need an answer, receives one on a channel:
//
//	handler ── Pick, PickFor ─▶ selector ◀── Health ────────── monitor
//	handler ◀── offer, reply ──          ── suspect note ───▶ monitor
//	handler ── Report ─────────▶         ◀╌╌ ProbeStats ╌╌╌╌╌ monitor
//	                                     (one monitor per backend)
//	operator ── commands, Status, Metrics ──▶ selector
//	discovery provider ── commands, through a Feed ──▶ selector
//
// The loop is a for-select over its inbound channels. It never blocks
// anywhere else: every reply goes on a channel with room for it (capacity
// 1), and the note to a monitor is dropped if one is already pending.
//
// # Offers
//
// A pick is the hottest message, so the selector computes the next pick in
// advance and offers it on an unbuffered channel; Pick is a single
// receive. The selector recomputes the offer after each one is taken and
// after every report, pick request, withdrawal, command and timer, and
// after a health transition that changes the backend's state, so an offer
// never names a backend that has gone DOWN and load-aware policies see
// current in-flight counts. When no backend is eligible the offer names no
// backend (offer{}): Pick returns nil and the handler answers 503 at once
// instead of waiting. A retry needs a pick that avoids the backends
// already tried, and the hashing and sticky policies need the request's
// key; such a request carries its constraints and its own reply channel
// (PickFor).
//
// # Policies
//
// Which backend comes next is a Policy's decision, one small type per file
// (policy_*.go). The selector calls it from its own goroutine with one
// Candidate per backend, so a policy keeps its state (a position, a random
// generator) in plain fields. Choose only looks, since an offer may be
// recomputed before anyone takes it; Taken commits.
//
// With Config.SlowStart set, a backend that comes back (UP again, back
// from ejection, or added at runtime) does not get its full share at once:
// rampWeight scales the weight the policy sees up linearly from almost
// nothing over that period, so only the weighted policies ramp.
//
// # Connection caps and the queue
//
// With Limits.MaxConnsPerBackend set, a backend at its cap is not eligible.
// When that is all that stands in the way, the offer says "full" and Pick
// becomes a PickFor that waits in the selector's queue, oldest first, up to
// Limits.QueueSize requests. The selector answers a queued request when a
// Report frees a slot. Once Limits.QueueTimeout has passed (its own timer),
// or at once when the queue is full, the reply names no backend and says
// the backends are busy (pickReply.busy): PickFor returns ErrBusy, and the
// handler answers 503 saying every backend is busy, not that none is
// healthy. A caller whose context ends first withdraws its request by
// message and, if the answer had already arrived, hands the backend back
// with a Report.
//
// # Health
//
// The selector starts one Monitor goroutine per backend, stops it when the
// backend goes and stops them all when Run ends. A monitor probes its
// backend, applies the rise/fall rules and sends a Health message only when
// the state changes. When a
// handler reports that it could not connect, the selector marks the backend
// DOWN at once and leaves its monitor a suspect note; the monitor adopts
// DOWN and needs Rise passing probes to bring it back. Probe statistics
// travel through a mailbox instead, a channel of capacity 1 in which the
// monitor keeps only its latest ProbeStats: the selector reads it only for
// Status and Metrics, so statistics never wake it.
//
// Ejection (passive outlier detection) takes a backend that passes its
// probes but keeps failing requests out of rotation for a while, longer
// each time, never more than Ejection.MaxPercent of the UP backends at
// once; the selector's timer brings it back.
//
// # Changing the backend set
//
// Add, Remove, Drain, SetEnabled and Reconfigure are commands: the selector
// applies each in its own goroutine, between two other messages, and
// answers on the command's reply channel. A removed backend drains: it gets
// no new picks, and once its last in-flight request has reported, the
// selector stops its monitor and forgets it. SetWeight changes a weight.
// Reconfigure swaps in a whole static configuration, as a reload does; the
// backends it keeps keep their health and counters. When Reconfigure keeps
// a backend, or Add takes back one that was draining, and its monitor
// settings have changed, the selector stops the old monitor and starts a
// new one with fresh mailboxes (the old one may still leave statistics or
// take a note in the old ones); a late Health from the old monitor is
// ignored.
//
// Every backend has a source: "" for the static configuration (the file,
// the flags, the admin API), or a discovery provider's URL. A provider
// sends the same commands (Add, Remove, SetEnabled, SetWeight) through a
// Feed, which stamps them with its source: it adds backends of that source
// and may change only those (ErrNotOwner otherwise). Reconfigure manages
// only the static backends: it leaves a provider's alone unless the
// configuration lists one of them, which makes it static.
//
// # Lifetimes
//
// Run returns when its context is done, after answering queued requests
// with nil and after its monitors have returned. Pick, PickFor, Status,
// Metrics and the commands watch both the caller's context and the
// selector's end, so no caller waits on a selector that has stopped.
// Report watches only the selector's end: a pick must be reported even
// when the client has gone, or the in-flight count would never come down.
// Each attempt's pick ends with exactly one Report; the request's last
// report is marked Final. When the last attempt failed and was reported
// already (no backend was left to retry on), the Final report names no
// Backend and carries the one tried last in Last, so that the request
// still counts against it.
//
// To watch the messages go by, run "roundhouse demo --log-level trace": the
// selector logs every message it receives, every offer a handler takes,
// every reply it sends (to picks, commands and queries) and every suspect
// note it leaves, each with a sequence number. docs/TOUR.md follows one
// request through that trace.
package actors
