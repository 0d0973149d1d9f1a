// Package accesslog writes the balancer's access log: one line per request,
// byte for byte the line that
//
//	logger.Named("access").Info("request", "method", m, "path", p, ...)
//
// writes through an hclog logger made as main.go makes its own (a name,
// the level, text or JSON, no colour, no location), but formatted with
// strconv and append into a buffer instead: no []any, no fmt, no
// reflection, no lock, and, when the output is a logbatch.Writer, no copy
// of the line on its way to the writer's batch. The test compares the two
// for many records, so the formats cannot drift apart.
//
// Every other log line keeps going through hclog. Both reach the same
// writer, so the access log keeps its place among them: each line is
// written whole, in the order its Write (or WriteLine) call was made.
package accesslog

import (
	"encoding"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// The time layouts of hclog's text and JSON output (hclog.TimeFormat and
// hclog.TimeFormatJSON), repeated here so that this package does not
// depend on hclog; the test checks they match.
const (
	textTime = "2006-01-02T15:04:05.000Z0700"
	jsonTime = "2006-01-02T15:04:05.000000Z07:00"
)

// Options describe the hclog logger whose lines a Logger writes.
type Options struct {
	// Name is the named logger's full name, as hclog's Name() reports it
	// ("roundhouse.access"); "": no name.
	Name string
	// JSON selects hclog's JSON format (LoggerOptions.JSONFormat); false:
	// its text format.
	JSON bool
	// Output receives one Write per line. A LineWriter (a
	// *logbatch.Writer) is handed the lines instead, without a copy.
	Output io.Writer
	// Now is the clock; nil: time.Now. For tests.
	Now func() time.Time
}

// LineWriter is an output that takes ownership of the lines handed to it,
// so they need not be copied (logbatch.Writer).
type LineWriter interface {
	// Line returns an empty buffer to append one line to.
	Line() []byte
	// WriteLine hands over a line from Line: the caller must not touch
	// it again.
	WriteLine(line []byte)
}

// Logger writes access log lines. It holds no state that changes, so any
// number of goroutines may use one at once. A nil *Logger writes nothing.
type Logger struct {
	name  string
	json  bool
	out   io.Writer
	lines LineWriter // out, if it is one; nil otherwise
	now   func() time.Time
}

// New returns a Logger that writes the lines hclog would write with o.
func New(o Options) *Logger {
	l := &Logger{name: o.Name, json: o.JSON, out: o.Output, now: o.Now}
	if l.now == nil {
		l.now = time.Now
	}
	l.lines, _ = o.Output.(LineWriter)
	return l
}

// Record is one request's access log entry.
type Record struct {
	Method  string
	Path    string // as escaped on the wire
	Client  string
	Backend string // "-": none was picked
	// Pool and Route are the pool and route a request was routed by; both
	// are logged when Route is not "" (there are routes), so that a
	// configuration without routes keeps its lines as they were.
	Pool, Route string
	Status      int
	// GRPC marks a gRPC call: its GRPCStatus, the grpc-status it ended
	// with, is then logged after Status as grpc_status (other lines keep
	// their bytes).
	GRPC       bool
	GRPCStatus int
	Duration   time.Duration
	Bytes      int64
	// Proto is the request's protocol, logged when it is not "": the
	// proxy sets it for HTTP/3 only, so that the lines of HTTP/1.1 and
	// HTTP/2 requests stay as they were.
	Proto string
	// RequestID is logged when it is not "".
	RequestID string
	// Attempts is logged when it is more than 1.
	Attempts int
	// Err is logged when it is not nil.
	Err error
}

// Log writes r's line, time-stamped now.
func (l *Logger) Log(r *Record) {
	if l == nil {
		return
	}
	t := l.now()
	if l.lines != nil {
		l.lines.WriteLine(l.Append(l.lines.Line(), t, r))
		return
	}
	_, _ = l.out.Write(l.Append(make([]byte, 0, 256), t, r))
}

// Append appends r's line, newline included, time-stamped t, to buf.
func (l *Logger) Append(buf []byte, t time.Time, r *Record) []byte {
	if l.json {
		return l.appendJSON(buf, t, r)
	}
	return l.appendText(buf, t, r)
}

// appendText is hclog's logPlain (intlogger.go) for these keys and values.
func (l *Logger) appendText(buf []byte, t time.Time, r *Record) []byte {
	buf = appendTextTime(buf, t)
	buf = append(buf, " [INFO]  "...)
	if l.name != "" {
		buf = append(buf, l.name...)
		buf = append(buf, ": "...)
	}
	buf = append(buf, "request:"...)
	buf = appendTextField(buf, "method", r.Method)
	buf = appendTextField(buf, "path", r.Path)
	buf = appendTextField(buf, "client", r.Client)
	buf = appendTextField(buf, "backend", r.Backend)
	if r.Route != "" {
		buf = appendTextField(buf, "pool", r.Pool)
		buf = appendTextField(buf, "route", r.Route)
	}
	buf = appendTextInt(buf, "status", int64(r.Status))
	if r.GRPC {
		buf = appendTextInt(buf, "grpc_status", int64(r.GRPCStatus))
	}
	buf = appendTextDuration(buf, r.Duration)
	buf = appendTextInt(buf, "bytes", r.Bytes)
	if r.Proto != "" {
		buf = appendTextField(buf, "proto", r.Proto)
	}
	if r.RequestID != "" {
		buf = appendTextField(buf, "request_id", r.RequestID)
	}
	if r.Attempts > 1 {
		buf = appendTextInt(buf, "attempts", int64(r.Attempts))
	}
	if r.Err != nil {
		buf = appendTextValue(buf, "error", fmt.Sprintf("%v", r.Err), false) // as hclog: a Formatter has its say
	}
	return append(buf, '\n')
}

func appendTextInt(buf []byte, key string, v int64) []byte {
	buf = append(buf, ' ')
	buf = append(buf, key...)
	buf = append(buf, '=')
	return strconv.AppendInt(buf, v, 10)
}

// appendTextDuration writes " duration=d" as appendTextValue would write
// d.String(), without looking at the text: a duration's text is never
// empty and has only digits, '.', '-' and units, of which only "µs" (for
// 1µs ≤ |d| < 1ms) is outside '-'..'~' and has hclog quote it.
func appendTextDuration(buf []byte, d time.Duration) []byte {
	u := uint64(d)
	if d < 0 {
		u = -u
	}
	if u >= uint64(time.Microsecond) && u < uint64(time.Millisecond) {
		buf = append(buf, ` duration="`...)
		buf = append(buf, d.String()...)
		return append(buf, '"')
	}
	buf = append(buf, " duration="...)
	return append(buf, d.String()...)
}

// appendTextField writes " key=val" as hclog writes a value: "" for an
// empty string (but nothing for an empty error text); a value with a line break on lines of its own, each
// prefixed "  | "; quoted and escaped when it has a byte outside '-'..'~'.
func appendTextField(buf []byte, key, val string) []byte {
	return appendTextValue(buf, key, val, true)
}

// appendTextValue is appendTextField for a value that was a string (or
// not: an error or a duration, made a string by fmt).
func appendTextValue(buf []byte, key, val string, wasString bool) []byte {
	switch {
	case plain(val):
		buf = append(buf, ' ')
		buf = append(buf, key...)
		buf = append(buf, '=')
		return append(buf, val...)
	case val == "":
		buf = append(buf, ' ')
		buf = append(buf, key...)
		if !wasString {
			return append(buf, '=')
		}
		return append(buf, `=""`...)
	case strings.Contains(val, "\n"):
		buf = append(buf, "\n  "...)
		buf = append(buf, key...)
		buf = append(buf, "=\n"...)
		for rest := val; rest != ""; { // hclog's writeIndent
			line := rest
			if nl := strings.IndexByte(rest, '\n'); nl >= 0 {
				line, rest = rest[:nl], rest[nl+1:]
			} else {
				rest = ""
			}
			buf = append(buf, "  | "...)
			buf = appendEscaped(buf, line, false)
			buf = append(buf, '\n')
		}
		return append(buf, "  "...)
	default:
		buf = append(buf, ' ')
		buf = append(buf, key...)
		buf = append(buf, `="`...)
		buf = appendEscaped(buf, val, true)
		return append(buf, '"')
	}
}

// plain reports whether hclog writes s as it is: not empty, and every byte
// in '-'..'~' (hclog's isNormal, which is about runes, but a rune outside
// ASCII is never normal).
func plain(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < '-' || c > '~' {
			return false
		}
	}
	return s != ""
}

// appendEscaped is hclog's writeEscapedForOutput.
func appendEscaped(buf []byte, s string, escapeQuotes bool) []byte {
	if !needsEscaping(s) {
		return append(buf, s...)
	}
	const lowerhex = "0123456789abcdef"
	for _, r := range s {
		switch {
		case escapeQuotes && r == '"':
			buf = append(buf, `\"`...)
		case unicode.IsPrint(r):
			buf = utf8.AppendRune(buf, r)
		case r == '\a':
			buf = append(buf, `\a`...)
		case r == '\b':
			buf = append(buf, `\b`...)
		case r == '\f':
			buf = append(buf, `\f`...)
		case r == '\n':
			buf = append(buf, `\n`...)
		case r == '\r':
			buf = append(buf, `\r`...)
		case r == '\t':
			buf = append(buf, `\t`...)
		case r == '\v':
			buf = append(buf, `\v`...)
		case r < ' ':
			buf = append(buf, `\x`...)
			buf = append(buf, lowerhex[byte(r)>>4], lowerhex[byte(r)&0xF])
		default:
			if !utf8.ValidRune(r) {
				r = utf8.RuneError
			}
			if r < 0x10000 {
				buf = append(buf, `\u`...)
				for s := 12; s >= 0; s -= 4 {
					buf = append(buf, lowerhex[r>>uint(s)&0xF])
				}
			} else {
				buf = append(buf, `\U`...)
				for s := 28; s >= 0; s -= 4 {
					buf = append(buf, lowerhex[r>>uint(s)&0xF])
				}
			}
		}
	}
	return buf
}

// needsEscaping is hclog's: a rune that is not printable, or a quote.
func needsEscaping(s string) bool {
	for _, r := range s {
		if !unicode.IsPrint(r) || r == '"' {
			return true
		}
	}
	return false
}

// appendJSON is hclog's logJSON for these keys and values: a map encoded
// by encoding/json, so the keys come sorted; the duration is a number of
// nanoseconds; an error is its Error() unless it marshals itself.
func (l *Logger) appendJSON(buf []byte, t time.Time, r *Record) []byte {
	buf = append(buf, `{"@level":"info","@message":"request",`...)
	if l.name != "" {
		buf = append(buf, `"@module":`...)
		buf = appendJSONString(buf, l.name)
		buf = append(buf, ',')
	}
	buf = append(buf, `"@timestamp":"`...)
	buf = appendJSONTime(buf, t)
	buf = append(buf, '"')
	if r.Attempts > 1 {
		buf = append(buf, `,"attempts":`...)
		buf = strconv.AppendInt(buf, int64(r.Attempts), 10)
	}
	buf = append(buf, `,"backend":`...)
	buf = appendJSONString(buf, r.Backend)
	buf = append(buf, `,"bytes":`...)
	buf = strconv.AppendInt(buf, r.Bytes, 10)
	buf = append(buf, `,"client":`...)
	buf = appendJSONString(buf, r.Client)
	buf = append(buf, `,"duration":`...)
	buf = strconv.AppendInt(buf, int64(r.Duration), 10)
	if r.Err != nil {
		buf = append(buf, `,"error":`...)
		buf = appendJSONError(buf, r.Err)
	}
	if r.GRPC {
		buf = append(buf, `,"grpc_status":`...)
		buf = strconv.AppendInt(buf, int64(r.GRPCStatus), 10)
	}
	buf = append(buf, `,"method":`...)
	buf = appendJSONString(buf, r.Method)
	buf = append(buf, `,"path":`...)
	buf = appendJSONString(buf, r.Path)
	if r.Route != "" {
		buf = append(buf, `,"pool":`...)
		buf = appendJSONString(buf, r.Pool)
	}
	if r.Proto != "" {
		buf = append(buf, `,"proto":`...)
		buf = appendJSONString(buf, r.Proto)
	}
	if r.RequestID != "" {
		buf = append(buf, `,"request_id":`...)
		buf = appendJSONString(buf, r.RequestID)
	}
	if r.Route != "" {
		buf = append(buf, `,"route":`...)
		buf = appendJSONString(buf, r.Route)
	}
	buf = append(buf, `,"status":`...)
	buf = strconv.AppendInt(buf, int64(r.Status), 10)
	return append(buf, "}\n"...)
}

// appendJSONString appends s as encoding/json encodes it (HTML escaping
// on, as in hclog by default): itself, quoted, when nothing in it needs
// escaping; otherwise whatever json.Marshal makes of it.
func appendJSONString(buf []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' || c > '~' || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			b, _ := json.Marshal(s) // a string always marshals
			return append(buf, b...)
		}
	}
	buf = append(buf, '"')
	buf = append(buf, s...)
	return append(buf, '"')
}

// appendJSONError appends err as hclog has encoding/json encode it.
func appendJSONError(buf []byte, err error) []byte {
	switch err.(type) {
	case json.Marshaler, encoding.TextMarshaler:
		if b, merr := json.Marshal(err); merr == nil {
			return append(buf, b...)
		}
		// hclog would write a line with "@warn" instead; the error's text
		// says more.
	}
	return appendJSONString(buf, err.Error())
}
