// Package logbatch batches log lines on their way out, so that a busy
// balancer spends one write(2) on many access log lines instead of one on
// each, and no handler goroutine waits on another's system call, nor wakes
// the writer's goroutine for each line.
package logbatch

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// maxBatch bounds the bytes written in one call.
const maxBatch = 64 << 10

// Window is how long a line handed to WriteLine may wait before it is
// written: Run writes what has arrived once per Window while lines keep
// coming, so that a burst of lines costs it one wake-up and one write(2)
// instead of one of each per line: with the writer on another core, its
// wake-ups cost the process more than formatting the lines. In
// accesslog's BenchmarkLogPaced, on a loaded 2-core machine, a line cost
// about 3.5 µs with a window of 0.5 ms, 2.5–3 µs with 2 ms, 2–2.5 µs
// with 5 or 10 ms, 0.6–1.2 µs with no wake-up at all, and 6.5–8 µs with
// a writer woken by each line. Lines from Write (every log line but the
// access log's), batchLines lines waiting and a full queue end the wait
// at once.
const Window = 5 * time.Millisecond

// batchLines lines waiting (about 50 KiB of access log) have Run write
// them without waiting for the rest of the window: at high rates Run
// wakes once per batchLines lines, whether or not the window's timer is
// on time (the Go runtime can run a timer late, by milliseconds, when
// one processor is always busy and the timer sits on the other).
const batchLines = 256

// Line buffers: Line hands out buffers of lineSize bytes, and Run keeps
// up to freeLines of them (none larger than maxLine) for Line to reuse.
const (
	lineSize  = 256
	maxLine   = 4 << 10
	freeLines = 512
)

// Writer is an io.Writer whose lines an actor writes to out: Write hands a
// copy of each line to the Writer's goroutine (Run) over a buffered
// channel. A Writer is made by New and must be run by exactly one Run; it
// is safe for use by many goroutines.
//
// A caller that formats its own lines (the access log) can skip the copy:
// it appends a line to a buffer from Line and hands the buffer over with
// WriteLine. Lines keep the order of their Write and WriteLine calls.
//
// Run writes in batches: once a line has arrived it waits up to Window
// for more, without waking for each, and writes them all in one call (or
// one per maxBatch bytes), and goes on so once per Window while lines
// keep coming; a Window with no line puts it back to sleep until the next
// one. So a line from WriteLine reaches out about Window after it was
// handed over (plus the time out takes to write what is before it; and
// a process so busy that the Go runtime runs Run's timer late delays it
// further, by up to tens of milliseconds in a benchmark that keeps one
// processor always busy, though never past batchLines lines). A line
// from Write, batchLines lines waiting, a full queue, Dropped and the end
// of Run's context each cut the wait short: all lines handed over until
// then are written at once. At fewer lines than one per Window, Run
// wakes twice per line (the line, then the timer) instead of once.
//
// A write to out that fails (a full disk: ENOSPC) drops its lines: they
// are counted (Dropped) and never retried, so that a broken output never
// holds up the goroutines that log. The first failure of an episode is
// noted once, in a line written straight to out (which will likely fail
// too), and the episode's end, when a write works again, in a line before
// the batch that worked, saying how many lines were lost.
type Writer struct {
	out     io.Writer
	lines   chan []byte      // to Run, which owns what it receives; never closed
	free    chan []byte      // from Run: line buffers nobody uses, for Line; never closed
	now     chan struct{}    // to Run, capacity 1: write what has arrived without waiting out the window; never closed
	asks    chan chan uint64 // Dropped's questions to Run; never closed
	stopped chan struct{}    // closed by Run as it returns
	window  time.Duration    // Window; tests change it before Run

	// Owned by Run.
	dropped uint64    // lines lost to failed writes, ever
	failing time.Time // when the current episode of failed writes began; zero: none
	lost    uint64    // lines lost in the current episode
	torn    bool      // a failed write left a line cut short in out
}

// New returns a Writer to out that holds up to queue lines waiting to be
// written; a queue of 0 means 4096. Writers wait when it is full (and
// have Run write at once), so that lines are never dropped.
func New(out io.Writer, queue int) *Writer {
	if queue <= 0 {
		queue = 4096
	}
	return &Writer{
		out: out, lines: make(chan []byte, queue), asks: make(chan chan uint64),
		free: make(chan []byte, freeLines), now: make(chan struct{}, 1),
		stopped: make(chan struct{}), window: Window,
	}
}

// Write hands a copy of p to Run (loggers reuse their buffers) and has
// Run write it without waiting out the window: these are the log lines
// other than the access log's, few, and some of them said just before the
// process fails. Once Run has returned it writes p to out itself.
func (w *Writer) Write(p []byte) (int, error) {
	select {
	case <-w.stopped: // checked first: after Run, never into the channel
		return w.out.Write(p)
	default:
	}
	if !w.send(append(w.Line(), p...)) {
		return w.out.Write(p)
	}
	w.writeNow()
	return len(p), nil
}

// Line returns an empty buffer to append one line to and hand to
// WriteLine: a used one when Run has one spare, otherwise a new one. It
// never blocks.
func (w *Writer) Line() []byte {
	select {
	case b := <-w.free:
		return b[:0]
	default:
		return make([]byte, 0, lineSize)
	}
}

// WriteLine hands line to Run without copying it, waiting while the queue
// is full, as Write does: the caller must not touch line again (Run reuses
// it). Run writes it within about Window (see Writer). Once Run has
// returned it writes line to out itself.
func (w *Writer) WriteLine(line []byte) {
	select {
	case <-w.stopped: // checked first: after Run, never into the channel
		_, _ = w.out.Write(line)
		return
	default:
	}
	if !w.send(line) {
		_, _ = w.out.Write(line)
	}
}

// send queues line for Run, and reports whether it did: false means Run
// has returned. With batchLines lines waiting it has Run write them;
// when the queue is full it has Run write at once, and waits for room.
func (w *Writer) send(line []byte) bool {
	select {
	case w.lines <- line: // Run is asleep or waiting out a window: no wake-up
		if len(w.lines) >= batchLines {
			w.writeNow()
		}
		return true
	default:
	}
	w.writeNow()
	select {
	case w.lines <- line:
		return true
	case <-w.stopped:
		return false
	}
}

// writeNow has Run write the lines queued so far at once; it never blocks.
func (w *Writer) writeNow() {
	select {
	case w.now <- struct{}{}:
	default: // already asked
	}
}

// Run writes the lines handed to Write and WriteLine, in batches (see
// Writer), until ctx is done; then it writes the lines still waiting and
// returns nil. Stop it after the last goroutine that logs through the
// Writer has finished, or lines written in the moment Run returns may be
// lost. Run is the Writer's one owner goroutine; it ends only with ctx.
func (w *Writer) Run(ctx context.Context) error {
	defer close(w.stopped)
	batch := make([]byte, 0, maxBatch+maxLine) // a batch ends with the line that takes it past maxBatch
	window := time.NewTimer(w.window)
	window.Stop()
	for {
		// Asleep until a line comes.
		select {
		case line := <-w.lines:
			batch = w.take(batch[:0], line)
		case <-w.now: // a Write's line, if Run has not written it already
			w.flush(batch[:0])
			continue
		case reply := <-w.asks:
			w.flush(batch[:0])
			reply <- w.dropped // capacity 1
			continue
		case <-ctx.Done():
			w.flush(batch[:0])
			return nil
		}
		// Awake: one write per window while lines keep coming, so that
		// handing a line over wakes nobody.
		for {
			window.Reset(w.window)
			var reply chan uint64
			select {
			case <-window.C:
			case <-w.now:
			case reply = <-w.asks:
			case <-ctx.Done():
				w.flush(batch)
				return nil
			}
			if w.flush(batch) == 0 && reply == nil {
				break // a window without a line: back to sleep
			}
			batch = batch[:0]
			if reply != nil {
				reply <- w.dropped // capacity 1
			}
		}
	}
}

// flush writes batch and every line queued, in calls of up to maxBatch
// bytes, and returns how many bytes it wrote (or tried to).
func (w *Writer) flush(batch []byte) int {
	n := 0
	for {
		batch = w.gather(batch)
		if len(batch) == 0 {
			return n
		}
		w.write(batch)
		n += len(batch)
		if len(batch) < maxBatch {
			return n
		}
		batch = batch[:0]
	}
}

// Dropped returns how many lines have been lost to failed writes. It asks
// Run; it returns ctx's error if ctx ends first, and 0 once Run has
// returned.
func (w *Writer) Dropped(ctx context.Context) (uint64, error) {
	reply := make(chan uint64, 1)
	select {
	case w.asks <- reply:
		return <-reply, nil
	case <-w.stopped:
		return 0, nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// write writes batch, counting the lines of a failed write as lost and
// noting when an episode of failures begins and ends (see Writer).
func (w *Writer) write(batch []byte) {
	json := len(batch) > 0 && batch[0] == '{' // the notes follow the lines' format
	if !w.failing.IsZero() {
		var note []byte
		if w.torn {
			note = append(note, '\n') // end the line a failed write cut
		}
		note = appendNote(note, json, "warn", "log output failed; lines dropped",
			"dropped", strconv.FormatUint(w.lost, 10), "after", time.Since(w.failing).Round(time.Millisecond).String())
		if _, err := w.out.Write(note); err == nil {
			w.failing, w.lost = time.Time{}, 0
		}
	}
	n, err := w.out.Write(batch)
	if err == nil {
		return
	}
	n = min(max(n, 0), len(batch))
	if n > 0 {
		w.torn = batch[n-1] != '\n'
	}
	lost := uint64(bytes.Count(batch[n:], []byte("\n")))
	w.dropped += lost
	w.lost += lost
	if w.failing.IsZero() {
		w.failing = time.Now()
		_, _ = w.out.Write(appendNote(nil, json, "error", "log output failed; dropping lines", "error", err.Error()))
	}
}

// appendNote appends a note line about the output itself, in hclog's text
// or JSON format (without a logger name: the Writer has none), with kv as
// string pairs.
func appendNote(buf []byte, json bool, level, msg string, kv ...string) []byte {
	now := time.Now()
	if json {
		buf = fmt.Appendf(buf, `{"@level":%q,"@message":%q,"@timestamp":%q`, level, msg, now.Format(jsonTime))
		for i := 0; i+1 < len(kv); i += 2 {
			buf = fmt.Appendf(buf, `,%q:%q`, kv[i], kv[i+1])
		}
		return append(buf, "}\n"...)
	}
	buf = fmt.Appendf(buf, "%s %-7s %s:", now.Format(timeFormat), "["+strings.ToUpper(level)+"]", msg)
	for i := 0; i+1 < len(kv); i += 2 {
		v := kv[i+1]
		if strings.ContainsAny(v, " \"=") {
			v = strconv.Quote(v)
		}
		buf = fmt.Appendf(buf, " %s=%s", kv[i], v)
	}
	return append(buf, '\n')
}

// hclog's time layouts (hclog.TimeFormat and hclog.TimeFormatJSON), so that
// the notes read like the lines around them.
const (
	timeFormat = "2006-01-02T15:04:05.000Z0700"
	jsonTime   = "2006-01-02T15:04:05.000000Z07:00"
)

// gather appends the lines already waiting to batch, up to maxBatch bytes.
func (w *Writer) gather(batch []byte) []byte {
	for len(batch) < maxBatch {
		select {
		case line := <-w.lines:
			batch = w.take(batch, line)
		default:
			return batch
		}
	}
	return batch
}

// take appends line to batch and keeps line's buffer for Line, if there
// is room for it and it is not too large to keep.
func (w *Writer) take(batch, line []byte) []byte {
	batch = append(batch, line...)
	if cap(line) <= maxLine {
		select {
		case w.free <- line:
		default:
		}
	}
	return batch
}
