package logbatch

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/sourcegraph/conc"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// lockedBuffer records writes; test helpers may lock.
type lockedBuffer struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	writes int
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.writes++
	return b.buf.Write(p)
}

func TestEveryLineWrittenOrHandedOverArrivesWholeAndInOrderPerWriter(t *testing.T) {
	out := &lockedBuffer{}
	w := New(out, 8)
	ctx, cancel := context.WithCancel(context.Background())
	var run conc.WaitGroup
	run.Go(func() { _ = w.Run(ctx) })
	var writers sync.WaitGroup
	for g := range 8 {
		writers.Go(func() {
			line := make([]byte, 0, 64)
			for i := range 500 {
				if i%2 == 1 { // handed over: Run owns it now
					w.WriteLine(fmt.Appendf(w.Line(), "g%d line %d\n", g, i))
					continue
				}
				line = fmt.Appendf(line[:0], "g%d line %d\n", g, i)
				if _, err := w.Write(line); err != nil {
					t.Errorf("Write: %v", err)
				}
				line[0] = 'X' // the writer must have copied the line
			}
		})
	}
	writers.Wait()
	cancel()
	run.Wait()
	lines := strings.Split(strings.TrimSuffix(out.buf.String(), "\n"), "\n")
	if len(lines) != 8*500 {
		t.Fatalf("%d lines, want %d", len(lines), 8*500)
	}
	next := map[string]int{}
	for _, l := range lines {
		var g, i int
		if _, err := fmt.Sscanf(l, "g%d line %d", &g, &i); err != nil {
			t.Fatalf("torn or changed line %q", l)
		}
		if key := fmt.Sprint(g); i != next[key] {
			t.Fatalf("writer %d: line %d after %d", g, i, next[key]-1)
		} else {
			next[key]++
		}
	}
	if out.writes >= len(lines) {
		t.Logf("%d writes for %d lines: no batching happened this run", out.writes, len(lines))
	}
}

func TestAfterRunReturnsWritesGoStraightOut(t *testing.T) {
	out := &lockedBuffer{}
	w := New(out, 0)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = w.Run(ctx)
	if _, err := w.Write([]byte("late\n")); err != nil || out.buf.String() != "late\n" {
		t.Errorf("after Run: %q, %v", out.buf.String(), err)
	}
	w.WriteLine(append(w.Line(), "later\n"...))
	if out.buf.String() != "late\nlater\n" {
		t.Errorf("WriteLine after Run: %q", out.buf.String())
	}
}
