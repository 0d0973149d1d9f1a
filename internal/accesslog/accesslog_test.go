package accesslog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/sourcegraph/conc"
	"go.uber.org/goleak"

	"github.com/roundhouse/roundhouse/internal/logbatch"
	"github.com/roundhouse/roundhouse/internal/procstat"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestTheTimeLayoutsAreHclogs(t *testing.T) {
	if textTime != hclog.TimeFormat || jsonTime != hclog.TimeFormatJSON {
		t.Errorf("layouts %q, %q; hclog's %q, %q", textTime, jsonTime, hclog.TimeFormat, hclog.TimeFormatJSON)
	}
}

// textError marshals itself, so hclog's JSON output does not use Error().
type textError struct{ msg string }

func (e textError) Error() string                { return e.msg }
func (e textError) MarshalText() ([]byte, error) { return []byte("marshalled " + e.msg), nil }

// formatError prints differently with %v than its Error() says.
type formatError struct{}

func (formatError) Error() string                 { return "plain" }
func (formatError) Format(f fmt.State, verb rune) { fmt.Fprintf(f, "formatted %c", verb) }

// records are the entries both formatters write in the tests below: the
// usual ones, and every kind of value hclog quotes, escapes or splits.
func records() []Record {
	base := Record{Method: "GET", Path: "/", Client: "127.0.0.1:51234", Backend: "b1", Status: 200, Duration: 1234567, Bytes: 130}
	var rs []Record
	add := func(change func(r *Record)) {
		r := base
		change(&r)
		rs = append(rs, r)
	}
	add(func(*Record) {})
	add(func(r *Record) { r.RequestID = "0f9c1b2e-6c1d-4a7e-9a3b-3d4c5e6f7a8b" })
	add(func(r *Record) { r.Attempts, r.Backend = 2, "http://127.0.0.1:8082" })
	add(func(r *Record) {
		r.Status, r.Backend, r.Err = 502, "-", &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
		r.RequestID, r.Attempts = "abc", 3
	})
	add(func(r *Record) { r.Status, r.Bytes, r.Duration = 499, 0, 0 })
	add(func(r *Record) { r.Method, r.Path = "OPTIONS", "*" })
	add(func(r *Record) { r.Method, r.Path = "M-SEARCH", "/a%20b/c%0A?x" })
	add(func(r *Record) { r.Method = "GET!" })
	add(func(r *Record) { r.Method, r.Path, r.Client, r.Backend = "", "", "", "" })
	add(func(r *Record) { r.Path = "/a b/\"quoted\"/back\\slash" })
	add(func(r *Record) { r.Path = "/\x1b[31mred\x1b[0m\t\a\b\f\r\v\x00" })
	add(func(r *Record) { r.Path = "/ünïcödé/\u2028/\U0001F600/\u00ad" })
	add(func(r *Record) { r.Path = "/bad\xffutf8\xc3" })
	add(func(r *Record) { r.Path = "/<script>&amp;" })
	add(func(r *Record) { r.Client = "[::1]:40000" })
	add(func(r *Record) { r.RequestID = "id with spaces" })
	add(func(r *Record) { r.Pool, r.Route = "api", "api-v1" })
	add(func(r *Record) { r.Proto = "HTTP/3" })
	add(func(r *Record) {
		r.Proto, r.Pool, r.Route, r.RequestID, r.Attempts = "HTTP/3", "api", "api-v1", "id", 2
	})
	add(func(r *Record) { r.Proto = "odd proto\n\"x\"" })
	add(func(r *Record) { r.Pool, r.Route, r.RequestID, r.Attempts = "web", "site \"all\"", "id", 2 })
	add(func(r *Record) { r.Err = errors.New("line one\nline two\n\nline \"four\"\x1b") })
	add(func(r *Record) { r.Err = errors.New("trailing newline\n") })
	add(func(r *Record) { r.Err = errors.New("\n") })
	add(func(r *Record) { r.Err = textError{"oops"} })
	add(func(r *Record) { r.Err = formatError{} })
	add(func(r *Record) { r.Err = errors.New("") })
	add(func(r *Record) { r.GRPC = true })
	add(func(r *Record) { r.GRPC, r.GRPCStatus, r.Err, r.Attempts = true, 14, errors.New("refused"), 2 })
	add(func(r *Record) { r.GRPC, r.GRPCStatus, r.Pool, r.Route = true, 4, "grpc", "svc" })
	for _, d := range []time.Duration{1, 999, 1000, 1500, 999999, 1e6, 1500 * time.Millisecond, 3723 * time.Second, -5 * time.Millisecond, -1500, -999, math.MinInt64, math.MaxInt64} {
		add(func(r *Record) { r.Duration = d })
	}
	add(func(r *Record) { r.Status, r.Bytes, r.Attempts = -1, 1<<62, 1<<31-1 })
	return rs
}

// hclogLine is the line hclog writes for r as logAccess used to log it.
func hclogLine(name string, json bool, at time.Time, r *Record) string {
	var buf bytes.Buffer
	var log hclog.Logger
	if name == "" {
		log = hclog.New(&hclog.LoggerOptions{Output: &buf, JSONFormat: json, TimeFn: func() time.Time { return at }})
	} else {
		log = hclog.New(&hclog.LoggerOptions{Name: "roundhouse", Output: &buf, JSONFormat: json, TimeFn: func() time.Time { return at }}).Named(name)
	}
	args := []any{"method", r.Method, "path", r.Path, "client", r.Client, "backend", r.Backend}
	if r.Route != "" {
		args = append(args, "pool", r.Pool, "route", r.Route)
	}
	args = append(args, "status", r.Status)
	if r.GRPC {
		args = append(args, "grpc_status", r.GRPCStatus)
	}
	args = append(args, "duration", r.Duration, "bytes", r.Bytes)
	if r.Proto != "" {
		args = append(args, "proto", r.Proto)
	}
	if r.RequestID != "" {
		args = append(args, "request_id", r.RequestID)
	}
	if r.Attempts > 1 {
		args = append(args, "attempts", r.Attempts)
	}
	if r.Err != nil {
		args = append(args, "error", r.Err)
	}
	log.Info("request", args...)
	return buf.String()
}

func TestEachLineIsTheLineHclogWrites(t *testing.T) {
	times := []time.Time{
		time.Date(2026, 11, 26, 3, 4, 5, 678901234, time.UTC),
		time.Date(2026, 1, 2, 23, 59, 59, 999999999, time.FixedZone("", 5*3600+30*60)),
		time.Date(2026, 7, 1, 0, 0, 0, 0, time.FixedZone("", -7*3600)),
		time.Now(), // local
	}
	for _, format := range []string{"text", "json"} {
		for _, name := range []string{"access", ""} {
			t.Run(format+" named "+name, func(t *testing.T) {
				for i, r := range records() {
					at := times[i%len(times)]
					var buf bytes.Buffer
					full := ""
					if name != "" {
						full = "roundhouse." + name
					}
					New(Options{Name: full, JSON: format == "json", Output: &buf, Now: func() time.Time { return at }}).Log(&r)
					if want := hclogLine(name, format == "json", at, &r); buf.String() != want {
						t.Errorf("record %d %+v:\n got %q\nwant %q", i, r, buf.String(), want)
					}
				}
			})
		}
	}
}

// FuzzTheTextLineIsHclogs checks any path, method and error text: the
// seeds run with every go test; go test -fuzz explores.
func FuzzTheTextLineIsHclogs(f *testing.F) {
	for _, r := range records() {
		msg := ""
		if r.Err != nil {
			msg = r.Err.Error()
		}
		f.Add(r.Method, r.Path, msg, int64(r.Duration))
	}
	at := time.Date(2026, 11, 26, 3, 4, 5, 678901234, time.UTC)
	f.Fuzz(func(t *testing.T, method, path, msg string, d int64) {
		r := Record{Method: method, Path: path, Client: "127.0.0.1:1", Backend: "b", Status: 200, Duration: time.Duration(d), Bytes: 1, RequestID: msg}
		if msg != "" {
			r.Err = errors.New(msg)
		}
		for _, json := range []bool{false, true} {
			var buf bytes.Buffer
			New(Options{Name: "roundhouse.access", JSON: json, Output: &buf, Now: func() time.Time { return at }}).Log(&r)
			if want := hclogLine("access", json, at, &r); buf.String() != want {
				t.Errorf("json %v:\n got %q\nwant %q", json, buf.String(), want)
			}
		}
	})
}

// lineSink is a LineWriter that records what it is handed.
type lineSink struct{ lines []string }

func (s *lineSink) Write(p []byte) (int, error) { panic("Write, not WriteLine") }
func (s *lineSink) Line() []byte                { return make([]byte, 0, 7) }
func (s *lineSink) WriteLine(p []byte)          { s.lines = append(s.lines, string(p)) }

func TestALineWriterIsHandedTheLine(t *testing.T) {
	sink := &lineSink{}
	at := time.Date(2026, 11, 26, 3, 4, 5, 0, time.UTC)
	r := records()[0]
	New(Options{Name: "roundhouse.access", Output: sink, Now: func() time.Time { return at }}).Log(&r)
	want := "2026-11-26T03:04:05.000Z [INFO]  roundhouse.access: request: method=GET path=/ client=127.0.0.1:51234 backend=b1 status=200 duration=1.234567ms bytes=130\n"
	if len(sink.lines) != 1 || sink.lines[0] != want {
		t.Errorf("handed %q, want [%q]", sink.lines, want)
	}
	var nilLogger *Logger
	nilLogger.Log(&r) // writes nothing, does not panic
}

func TestAppendingAPlainLineDoesNotAllocate(t *testing.T) {
	r := records()[1]
	r.Duration = 1500 // "1.5µs", quoted
	buf := make([]byte, 0, 512)
	at := time.Now()
	for _, json := range []bool{false, true} {
		l := New(Options{Name: "roundhouse.access", JSON: json})
		if n := testing.AllocsPerRun(100, func() { buf = l.Append(buf[:0], at, &r) }); n != 0 {
			t.Errorf("json %v: %v allocations per line, want 0", json, n)
		}
	}
	if strings.Count(string(buf), "\n") != 1 {
		t.Errorf("not one line: %q", buf)
	}
}

// BenchmarkLog writes access log lines as the balancer does, through a
// running logbatch.Writer (to io.Discard): with hclog, as the proxy used
// to, and with a Logger. cpu-ns/op is the process's CPU time per line,
// the writer's goroutine included.
func BenchmarkLog(b *testing.B) {
	r := records()[1]
	b.Run("hclog", func(b *testing.B) {
		out := runWriter(b)
		l := hclog.New(&hclog.LoggerOptions{Name: "roundhouse", Output: out}).Named("access")
		measure(b, func() {
			l.Info("request", "method", r.Method, "path", r.Path, "client", r.Client, "backend", r.Backend,
				"status", r.Status, "duration", r.Duration, "bytes", r.Bytes, "request_id", r.RequestID)
		})
	})
	b.Run("accesslog", func(b *testing.B) {
		l := New(Options{Name: "roundhouse.access", Output: runWriter(b)})
		measure(b, func() { l.Log(&r) })
	})
}

// runWriter runs a logbatch.Writer to io.Discard until b's cleanup.
func runWriter(b *testing.B) *logbatch.Writer {
	out := logbatch.New(io.Discard, 0)
	ctx, cancel := context.WithCancel(context.Background())
	var wg conc.WaitGroup
	wg.Go(func() { _ = out.Run(ctx) })
	b.Cleanup(func() { cancel(); wg.Wait() })
	return out
}

func measure(b *testing.B, log func()) {
	b.ReportAllocs()
	start, err := procstat.CPU()
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		log()
	}
	end, err := procstat.CPU()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(end-start)/float64(b.N), "cpu-ns/op")
}

// The balancer's log writer takes the lines without a copy.
var _ LineWriter = (*logbatch.Writer)(nil)
