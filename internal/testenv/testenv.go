// Package testenv holds what the long-running tests (stress, soak, chaos)
// share about their settings.
package testenv

import (
	"os"
	"testing"
	"time"
)

// Duration is how long a long-running test runs: the flag's value if
// given, else the environment variable env if set, else def. A bad value in
// env fails the test.
func Duration(t testing.TB, flag *time.Duration, env string, def time.Duration) time.Duration {
	t.Helper()
	if *flag > 0 {
		return *flag
	}
	if v := os.Getenv(env); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("%s: %v", env, err)
		}
		return d
	}
	return def
}
