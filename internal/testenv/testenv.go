// Package testenv holds what tests in several packages share about their
// environment: how long the long-running ones run, and free ports.
package testenv

import (
	"net"
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

// FreeAddr returns a loopback address whose port was free a moment ago.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
