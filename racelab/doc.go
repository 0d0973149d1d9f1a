//go:build racelab

// Package racelab is the race-detector lab of docs/RACE-LAB.md. It builds
// only with -tags racelab, so normal builds and tests never see it.
//
// broken.go is the one place in Roundhouse where goroutines share memory
// without synchronisation, and it is racy on purpose: a balancer whose
// handlers update a shared round-robin position and in-flight map
// directly, as a line-by-line port of a Python asyncio balancer would.
// actor.go is the same balancer in the actor style: one goroutine owns that
// state and handlers send it messages. The tests run both, and check that
// the race detector really does report the broken one.
package racelab
