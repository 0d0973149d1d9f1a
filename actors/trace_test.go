package actors

import (
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/go-hclog"
)

// traceLines returns the selector's own trace lines (not its monitors'),
// without the level and the logger's name.
func traceLines(logs *logBuffer) []string {
	var out []string
	for line := range strings.Lines(logs.String()) {
		if rest, ok := strings.CutPrefix(line, "[TRACE] selector: "); ok {
			out = append(out, strings.TrimSuffix(rest, "\n"))
		}
	}
	return out
}

// traceConfig is a selector over urlA, capped at one request with room for
// one more in the queue, that logs at trace level to logs.
func traceConfig(t *testing.T, trace bool) (Config, *logBuffer) {
	cfg := limitsConfig(t, newSwitchProbe().Probe, urlA)
	cfg.Limits.QueueSize, cfg.Limits.QueueTimeout = 1, 3*time.Second
	logs := &logBuffer{}
	cfg.Logger = hclog.New(&hclog.LoggerOptions{Name: "selector", Output: logs, Level: hclog.Trace, DisableTime: true})
	cfg.TraceMessages = trace
	return cfg, logs
}

// The message trace (docs/TOUR.md section 2) numbers every message the
// selector takes and every answer it gives, the busy replies included.
func TestTheTraceNumbersEveryMessageTheSelectorTakesAndSends(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg, logs := traceConfig(t, true)
		s, stop := startSelector(t, cfg)
		a := mustPick(t, s, urlA)
		w := startPick(func() (*Backend, error) { return s.Pick(t.Context()) }) // queues
		settleQueued(t, s, 1)
		if b, err := s.PickFor(t.Context(), "k", nil); b != nil || !errors.Is(err, ErrBusy) {
			t.Fatalf("PickFor with the queue full = %v, %v; want nil, ErrBusy", b, err)
		}
		advance(3 * time.Second)
		wantRefused(t, w, ErrBusy, 3*time.Second)
		s.Report(Report{Backend: a, Outcome: ConnectFailed, Err: errRefused})
		s.Report(Report{Last: a, Status: 502, Final: true})
		synctest.Wait()
		if err := stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}

		want := []string{
			`sent offer: seq=1 backend=` + urlA + ` full=false`,
			`sent offer: seq=2 backend=- full=true`,
			`received pick request: seq=3 key="" tried=0`,
			`queued pick request: seq=4 waiting=1`,
			`received query: seq=5`,
			`sent query reply: seq=6`,
			`received pick request: seq=7 key=k tried=0`,
			`sent pick reply: seq=8 backend=- busy=true`,
			`received timer: seq=9`,
			`sent pick reply from the queue: seq=10 backend=- busy=true`,
			`received report: seq=11 backend=` + urlA + ` outcome=connect-failed status=0 final=false`,
			`sent suspect note: seq=12 backend=` + urlA,
			`received report: seq=13 backend=- outcome=success status=502 final=true last=` + urlA,
		}
		got := traceLines(logs)
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("trace:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	})
}

// A command and its reply are traced too, the reply with the command's error.
func TestTheTraceShowsACommandAndItsReply(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg, logs := traceConfig(t, true)
		s, stop := startSelector(t, cfg)
		if err := s.Drain(t.Context(), "no-such-id"); !errors.Is(err, ErrUnknownBackend) {
			t.Fatalf("Drain = %v, want ErrUnknownBackend", err)
		}
		if err := stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}
		var got []string
		for _, line := range traceLines(logs) {
			if strings.Contains(line, "command") {
				got = append(got, line)
			}
		}
		if len(got) != 2 || !strings.HasPrefix(got[0], "received command: seq=") ||
			!strings.HasPrefix(got[1], "sent command reply: seq=") || !strings.Contains(got[1], ErrUnknownBackend.Error()) {
			t.Errorf("command trace:\n%s\nwant a received command, then its reply with the error", strings.Join(got, "\n"))
		}
	})
}

// Without Config.TraceMessages a logger at trace level shows no messages.
func TestTheTraceIsOffUnlessAskedFor(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg, logs := traceConfig(t, false)
		s, _ := startSelector(t, cfg)
		s.Report(Report{Backend: mustPick(t, s, urlA), Outcome: Success, Status: 200, Final: true})
		synctest.Wait()
		if got := traceLines(logs); len(got) != 0 {
			t.Errorf("trace lines with TraceMessages off:\n%s", strings.Join(got, "\n"))
		}
	})
}
