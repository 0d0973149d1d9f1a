// Package logtest is a log output for tests: goroutines log to it while the
// test reads it, counts lines and waits for them. It locks, as test helpers
// may; it is not for the balancer itself.
package logtest

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"
)

// Sink collects everything written to it. The zero value is ready to use.
type Sink struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{} // closed and replaced on every write; nil before the first wait
}

// Write appends p and wakes those waiting.
func (s *Sink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buf.Write(p)
	if s.changed != nil {
		close(s.changed)
		s.changed = nil
	}
	return len(p), nil
}

// String returns everything written so far.
func (s *Sink) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// Count returns how many lines contain every one of substrs.
func (s *Sink) Count(substrs ...string) int {
	n := 0
	for line := range strings.Lines(s.String()) {
		if containsAll(line, substrs) {
			n++
		}
	}
	return n
}

func containsAll(line string, substrs []string) bool {
	for _, sub := range substrs {
		if !strings.Contains(line, sub) {
			return false
		}
	}
	return true
}

// WaitFor waits, up to 10 s, until at least n lines contain all of
// substrs, and fails the test if they do not come.
func (s *Sink) WaitFor(t testing.TB, n int, substrs ...string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		s.mu.Lock()
		if s.changed == nil {
			s.changed = make(chan struct{})
		}
		changed := s.changed
		s.mu.Unlock()
		if s.Count(substrs...) >= n {
			return
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("timed out waiting for %d log lines with %q; log:\n%s", n, substrs, s)
		}
	}
}
