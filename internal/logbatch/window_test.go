package logbatch

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sourcegraph/conc"
)

// runSlow runs a Writer to out whose window never ends by itself, so
// that every line these tests see written was written for another reason.
func runSlow(t *testing.T, out *lockedBuffer, queue int) *Writer {
	t.Helper()
	w := New(out, queue)
	w.window = time.Hour
	ctx, cancel := context.WithCancel(context.Background())
	var run conc.WaitGroup
	run.Go(func() { _ = w.Run(ctx) })
	t.Cleanup(run.Wait)
	t.Cleanup(cancel)
	return w
}

// waitOutput waits until out holds want, or fails after 10 seconds.
func waitOutput(t *testing.T, out *lockedBuffer, want string) {
	t.Helper()
	waitFor(t, out, want, func(got string) bool { return got == want })
}

// waitFor waits until ok(out's contents), or fails after 10 seconds
// saying that it wanted want.
func waitFor(t *testing.T, out *lockedBuffer, want string, ok func(string) bool) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		out.mu.Lock()
		got := out.buf.String()
		out.mu.Unlock()
		if ok(got) {
			return
		}
		select {
		case <-time.After(time.Millisecond):
		case <-deadline:
			t.Fatalf("output %q, want %q", got, want)
		}
	}
}

// Access log lines wait for the window; a Write's line (any other log
// line) is written at once, with the lines before it.
func TestAWritesLineIsWrittenAtOnceWithTheLinesBeforeIt(t *testing.T) {
	out := &lockedBuffer{}
	w := runSlow(t, out, 0)
	w.WriteLine(append(w.Line(), "access 1\n"...))
	w.WriteLine(append(w.Line(), "access 2\n"...))
	fmt.Fprintf(w, "listening\n")
	waitOutput(t, out, "access 1\naccess 2\nlistening\n")
	fmt.Fprintf(w, "again\n") // Run is awake now
	waitOutput(t, out, "access 1\naccess 2\nlistening\nagain\n")
}

// batchLines lines waiting are written without waiting for the window.
// The first line may have woken Run, which then holds it while the next
// batchLines arrive, or Run may take it only with the others: either way
// the first batchLines lines are written, and the last may wait.
func TestEnoughLinesAreWrittenBeforeTheWindowEnds(t *testing.T) {
	out := &lockedBuffer{}
	w := runSlow(t, out, 0)
	var want, all strings.Builder
	for i := range batchLines + 1 {
		line := fmt.Sprintf("line %d\n", i)
		w.WriteLine(append(w.Line(), line...))
		if i < batchLines {
			want.WriteString(line)
		}
		all.WriteString(line)
	}
	waitFor(t, out, want.String(), func(got string) bool {
		return strings.HasPrefix(got, want.String()) && strings.HasPrefix(all.String(), got)
	})
}

// A full queue makes Run write at once: the writers never wait for the
// window.
func TestAFullQueueIsWrittenAtOnce(t *testing.T) {
	out := &lockedBuffer{}
	w := runSlow(t, out, 4) // far fewer than batchLines
	var want strings.Builder
	for i := range 100 {
		line := fmt.Sprintf("line %d\n", i)
		w.WriteLine(append(w.Line(), line...))
		want.WriteString(line)
	}
	// The last lines may not fill the queue: Dropped has them written.
	if _, err := w.Dropped(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitOutput(t, out, want.String())
}

// Dropped has every line handed over before it written first, so that
// its count includes them.
func TestDroppedCountsEveryLineHandedOverBeforeIt(t *testing.T) {
	out := &fullDisk{full: true}
	w := New(out, 0)
	w.window = time.Hour
	ctx, cancel := context.WithCancel(context.Background())
	var run conc.WaitGroup
	run.Go(func() { _ = w.Run(ctx) })
	defer run.Wait()
	defer cancel()
	for i := range 10 {
		w.WriteLine(fmt.Appendf(w.Line(), "line %d\n", i))
		if n, err := w.Dropped(ctx); err != nil || n != uint64(i+1) {
			t.Fatalf("after %d lines: %d dropped, %v", i+1, n, err)
		}
	}
}

// The end of Run's context writes the lines waiting for the window.
func TestTheEndWritesTheLinesWaiting(t *testing.T) {
	out := &lockedBuffer{}
	w := New(out, 0)
	w.window = time.Hour
	ctx, cancel := context.WithCancel(context.Background())
	var run conc.WaitGroup
	run.Go(func() { _ = w.Run(ctx) })
	w.WriteLine(append(w.Line(), "one\n"...))
	w.WriteLine(append(w.Line(), "two\n"...))
	cancel()
	run.Wait()
	if out.buf.String() != "one\ntwo\n" {
		t.Errorf("output %q", out.buf.String())
	}
}

// With the real window, a line handed over alone is written soon, by the
// window's timer.
func TestALoneLineIsWrittenAfterTheWindow(t *testing.T) {
	out := &lockedBuffer{}
	w := New(out, 0)
	ctx, cancel := context.WithCancel(context.Background())
	var run conc.WaitGroup
	run.Go(func() { _ = w.Run(ctx) })
	defer run.Wait()
	defer cancel()
	want := ""
	for i := range 3 { // the first wakes Run; the others may find it awake
		start := time.Now()
		line := fmt.Sprintf("line %d\n", i)
		w.WriteLine(append(w.Line(), line...))
		want += line
		waitOutput(t, out, want)
		t.Logf("line %d written after %v (window %v)", i, time.Since(start).Round(time.Microsecond), Window)
	}
}
