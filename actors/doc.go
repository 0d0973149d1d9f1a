// Package actors holds Roundhouse's balancing state and the goroutines that
// own it, written in the actor style: share memory by communicating.
//
// # One owner
//
// All balancing state (the backend set, each backend's health, the policy's
// position, in-flight counts, statistics) belongs to one goroutine, the
// selector's Run loop. No other goroutine reads or writes it, so it needs no
// lock. Everyone else sends the selector a message and, when they need an
// answer, receives one on a channel:
//
//	handler ── Pick ──────────▶ selector ◀── Health ── monitor (one per backend)
//	handler ◀── *Backend ─────
//	handler ── Report ────────▶          ── suspect ─▶ monitor
//
// The loop is a for-select over its inbound channels. It never blocks
// anywhere else: replies go on channels with room for them (capacity 1), and
// the note to a monitor is dropped if one is already pending.
//
// # Offers
//
// A pick is the hottest message, so the selector computes the next pick in
// advance and offers it on an unbuffered channel; a handler's Pick is a
// single receive. The offer is recomputed whenever health changes, so it is
// never stale, and when no backend is UP the offer is nil: the handler
// answers 503 at once instead of waiting. A retry needs a pick that avoids
// the backends already tried, and the hashing and sticky policies need the
// request's key; such a request carries its constraints and its own reply
// channel (PickFor).
//
// # Policies
//
// Which backend comes next is a Policy's decision, one small type per file
// (policy_*.go). The selector calls it from its own goroutine with a
// snapshot of the candidates, so a policy keeps its state (a position, a
// random generator) in plain fields.
//
// # Monitors
//
// The selector starts one Monitor goroutine per backend and stops them all
// when its context ends. A monitor probes its backend, applies the rise/fall
// rules and sends a Health message only when the state changes. When a
// handler reports that it could not connect, the selector marks the backend
// DOWN at once and tells its monitor (the suspect channel), which then needs
// Rise passing probes to bring it back.
//
// # Lifetimes
//
// Run returns when its context is done, after its monitors have returned.
// Pick, PickFor, Report and Status watch both the caller's context and the
// selector's end, so no caller waits on a selector that has stopped. Report
// watches only the selector: a pick must be reported even when the client
// has gone, or the in-flight count would never come down.
package actors
