// Package testenv holds what tests in several packages share about their
// environment: how long the long-running ones run, and free ports.
package testenv

import (
	"net"
	"os"
	"strconv"
	"syscall"
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

// DeadAddr returns a loopback address where nothing listens and nothing
// will while the test runs: connections to it are refused. Closing a
// listener is not enough for that, since any other test running at the same
// time may be given the freed port for its own server. DeadAddr holds the
// port with a TCP socket that is bound but never listens, without
// SO_REUSEADDR (which Go's listeners set, so none can share the port), and
// closes it when the test ends.
func DeadAddr(t testing.TB) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("dead address: socket: %v", err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatalf("dead address: bind: %v", err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatalf("dead address: getsockname: %v", err)
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(sa.(*syscall.SockaddrInet4).Port))
}

// WaitUntil polls cond every few milliseconds until it holds and returns
// how long that took; if it does not hold within d, it fails the test,
// naming what it waited for.
func WaitUntil(t testing.TB, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := time.After(d)
	for !cond() {
		select {
		case <-deadline:
			t.Fatalf("gave up after %v waiting until %s", d, what)
		case <-time.After(2 * time.Millisecond):
		}
	}
	return time.Since(start)
}
