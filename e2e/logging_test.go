package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/roundhouse/roundhouse/internal/testenv"
)

func TestTheAccessLogFollowsTheLogFormat(t *testing.T) {
	t.Cleanup(http.DefaultClient.CloseIdleConnections)
	be := start(t, "backend", "--listen", "127.0.0.1:0", "--name", "b1")
	beAddr := be.waitFor(t, listening)

	// JSON: the line hclog would write, as a JSON object.
	lb := start(t, "--listen", "127.0.0.1:0", "--backend", "http://"+beAddr, "--log-format", "json")
	addr := lb.waitFor(t, `"@message":"listening".*"addr":"(127\.0\.0\.1:\d+)"`)
	code, _ := get(t, "http://"+addr+"/a%20b") // the demo backend's 404
	line := lb.waitFor(t, `(\{"@level":"info","@message":"request".*)`)
	var m map[string]any
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		t.Fatalf("not a JSON log line: %q", line)
	}
	if m["@module"] != "roundhouse.access" || m["method"] != "GET" || m["path"] != "/a%20b" ||
		m["status"] != float64(code) || m["backend"] != "http://"+beAddr {
		t.Errorf("access log line %s", line)
	}
	lb.stop(t)
}

// TestALogLevelAboveInfoHidesTheAccessLog: the access log is written at
// info, so a log level above info turns it off, as --access-log=false
// does. Each balancer serves one request and stops; its output, complete
// once it has exited, has the request's access log line or not.
func TestALogLevelAboveInfoHidesTheAccessLog(t *testing.T) {
	t.Cleanup(http.DefaultClient.CloseIdleConnections)
	var hits atomic.Int64
	backend := namedBackend(t, "a", &hits)
	for _, tt := range []struct {
		name string
		args []string
		want bool
	}{
		{"the default level info shows it", nil, true},
		{"level debug shows it", []string{"--log-level", "debug"}, true},
		{"level warn hides it", []string{"--log-level", "warn"}, false},
		{"level error hides it", []string{"--log-level", "error"}, false},
		{"--access-log=false hides it", []string{"--access-log=false"}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// Above info the "listening" line is hidden too: the test
			// picks the address and waits until it answers.
			addr := testenv.FreeAddr(t)
			lb := start(t, append([]string{"--listen", addr, "--backend", backend.URL}, tt.args...)...)
			url := "http://" + addr + "/access-probe"
			testenv.WaitUntil(t, 20*time.Second, "the balancer answers on "+addr, func() bool {
				code, _, err := fetch(url)
				return err == nil && code == http.StatusOK
			})
			lb.stop(t)
			n := strings.Count(lb.output(), "access: request: method=GET path=/access-probe ")
			if got := n > 0; got != tt.want {
				t.Errorf("%q: %d access log lines for the request: access log %v, want %v; output:\n%s", tt.args, n, got, tt.want, lb.output())
			}
		})
	}
}
