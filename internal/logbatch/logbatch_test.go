package logbatch

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

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

// fullDisk is an output that fails with ENOSPC while full is set, as a
// file on a full filesystem does, and records what it took otherwise.
type fullDisk struct {
	lockedBuffer
	full bool // guarded by mu
}

func (d *fullDisk) Write(p []byte) (int, error) {
	d.mu.Lock()
	full := d.full
	d.mu.Unlock()
	if full {
		return 0, syscall.ENOSPC
	}
	return d.lockedBuffer.Write(p)
}

func (d *fullDisk) setFull(full bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.full = full
}

// Lines that a full disk refuses are dropped and counted, never waited
// for; the episode is noted once when writing works again.
func TestLinesAFullDiskRefusesAreDroppedCountedAndNotedOnce(t *testing.T) {
	out := &fullDisk{full: true}
	w := New(out, 8)
	ctx, cancel := context.WithCancel(context.Background())
	var run conc.WaitGroup
	run.Go(func() { _ = w.Run(ctx) })
	defer run.Wait()
	defer cancel()
	for i := range 100 { // far more than the queue holds: nothing blocks
		fmt.Fprintf(w, "line %d\n", i)
	}
	waitDropped := func(n uint64) {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for {
			got, err := w.Dropped(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if got == n {
				return
			}
			if got > n {
				t.Fatalf("%d lines dropped, want %d", got, n)
			}
			select {
			case <-time.After(time.Millisecond):
			case <-deadline:
				t.Fatalf("still %d lines dropped, want %d", got, n)
			}
		}
	}
	waitDropped(100)
	out.setFull(false)
	fmt.Fprintf(w, "after\n")
	fmt.Fprintf(w, "after again\n")
	waitDropped(100)
	cancel()
	run.Wait()
	got := out.buf.String()
	if strings.Count(got, "log output failed; lines dropped: dropped=100 ") != 1 || !strings.HasSuffix(got, "after\nafter again\n") {
		t.Errorf("output:\n%s\nwant one note of 100 lines dropped, then the lines after", got)
	}
}

// With JSON lines, the note is a JSON line too.
func TestTheNoteFollowsTheLinesFormat(t *testing.T) {
	out := &fullDisk{full: true}
	w := New(out, 8)
	ctx, cancel := context.WithCancel(context.Background())
	var run conc.WaitGroup
	run.Go(func() { _ = w.Run(ctx) })
	fmt.Fprintf(w, "{\"@message\":\"lost\"}\n")
	deadline := time.After(10 * time.Second)
	for n, _ := w.Dropped(ctx); n != 1; n, _ = w.Dropped(ctx) {
		select {
		case <-time.After(time.Millisecond):
		case <-deadline:
			t.Fatalf("%d lines dropped, want 1", n)
		}
	}
	out.setFull(false)
	fmt.Fprintf(w, "{\"@message\":\"kept\"}\n")
	cancel()
	run.Wait()
	lines := strings.Split(strings.TrimSuffix(out.buf.String(), "\n"), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], `{"@level":"warn","@message":"log output failed; lines dropped",`) ||
		!strings.Contains(lines[0], `"dropped":"1"`) || lines[1] != `{"@message":"kept"}` {
		t.Errorf("output:\n%s\nwant a JSON note, then the line kept", out.buf.String())
	}
}
