//go:build !race

package transport

// raceEnabled: built with -race (see race_on_test.go).
const raceEnabled = false
