//go:build racelab && !race

package racelab

// raceDetector reports whether this binary was built with -race.
const raceDetector = false
