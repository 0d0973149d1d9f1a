//go:build race

package transport

// raceEnabled: built with -race, which makes some allocations that a
// normal build does not (TestProxyAllocations allows for them).
const raceEnabled = true
