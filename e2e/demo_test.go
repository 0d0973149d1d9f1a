package e2e

import (
	"net/http"
	"strings"
	"testing"
)

func TestDemoServesRoundRobinAndStopsCleanlyOnSIGTERM(t *testing.T) {
	t.Cleanup(http.DefaultClient.CloseIdleConnections)
	p := start(t, "demo", "--listen", "127.0.0.1:0")
	addr := p.waitFor(t, `try: curl http://(127\.0\.0\.1:\d+)/`)
	var got []string
	for range 6 {
		code, body := get(t, "http://"+addr+"/")
		if code != http.StatusOK {
			t.Fatalf("status %d: %s", code, body)
		}
		got = append(got, strings.TrimSpace(body))
	}
	if got[0] == got[1] || got[1] == got[2] || got[0] == got[2] || got[0] != got[3] || got[1] != got[4] || got[2] != got[5] {
		t.Errorf("not round-robin over three backends: %q", got)
	}
	p.waitFor(t, `access: request: method=GET path=/ .*status=200`)
	p.stop(t)
	if strings.Contains(p.output(), "seq=") {
		t.Errorf("the selector's messages are traced at the default log level:\n%s", p.output())
	}
}

// The tour's first step (docs/TOUR.md section 2): with --log-level trace,
// the demo shows the selector's messages, numbered, between the requests.
func TestDemoWithTraceShowsTheSelectorsMessagesNumbered(t *testing.T) {
	t.Cleanup(http.DefaultClient.CloseIdleConnections)
	p := start(t, "demo", "--listen", "127.0.0.1:0", "--log-level", "trace")
	addr := p.waitFor(t, `try: curl http://(127\.0\.0\.1:\d+)/`)
	if code, body := get(t, "http://"+addr+"/"); code != http.StatusOK {
		t.Fatalf("status %d: %s", code, body)
	}
	offer := p.waitFor(t, `\[TRACE\] +roundhouse\.selector: sent offer: seq=(\d+) backend=http://127\.0\.0\.1:\d+ full=false`)
	report := p.waitFor(t, `\[TRACE\] +roundhouse\.selector: received report: seq=(\d+) backend=http://127\.0\.0\.1:\d+ outcome=success status=200 final=true`)
	if o, r := mustAtoi(t, offer), mustAtoi(t, report); r <= o {
		t.Errorf("the request's report has seq=%d, its offer seq=%d: want a later number", r, o)
	}
	p.stop(t)
}
