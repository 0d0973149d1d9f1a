package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2/client"

	"github.com/roundhouse/roundhouse/internal/testenv"
)

// TestFailureRateEjectsACuttingBackend is the limit_data row of the fault
// matrix made exact: Toxiproxy cuts each connection to b0 a few bytes into
// its second response, so b0 fails every other request, never two in a
// row, and the streak that --eject-after counts never grows past one.
// The clients see no error (each cut GET is retried on b1 or b2), but b0
// costs every other request a retry, and with a body under way it would
// cost the client its answer. With the defaults, failure-rate ejection
// takes b0 out once it has failed half of its last 50 requests; with
// --eject-failure-rate 0, as before it existed, b0 stays in.
func TestFailureRateEjectsACuttingBackend(t *testing.T) {
	if testing.Short() {
		t.Skip("Toxiproxy test skipped in -short mode")
	}
	toxiBin := faultToxiproxy(t)
	apiAddr := testenv.FreeAddr(t)
	host, port, _ := strings.Cut(apiAddr, ":")
	tp := startWith(t, procOptions{name: "toxiproxy", bin: toxiBin}, "-host", host, "-port", port)
	tox := toxiproxy.NewClient(apiAddr)
	if !faultPoll(20*time.Second, func() bool { _, err := tox.Proxies(); return err == nil }) {
		t.Fatalf("toxiproxy's API did not answer within 20s:\n%s", tp.output())
	}

	body := strings.Repeat("x", 1000)
	var backends []string
	for range 3 {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			_, _ = io.WriteString(w, body)
		}))
		t.Cleanup(srv.Close)
		backends = append(backends, srv.Listener.Addr().String())
	}
	// Each connection to b0 carries one whole answer, then the first 8
	// bytes of the next one's status line: a response that breaks off
	// before its headers, which the transport reports as a failed
	// exchange (a cut at the very first byte, net/http would resend
	// itself on a new connection). Probes ask for the same answer
	// (--health-path /): they may share the requests' connections.
	limit := responseBytes(t, backends[0]) + 8
	px, err := tox.CreateProxy("b0", testenv.FreeAddr(t), backends[0])
	if err != nil {
		t.Fatalf("toxiproxy: creating the proxy for b0: %v", err)
	}
	if _, err := px.AddToxic("cut", "limit_data", "downstream", 1, toxiproxy.Attributes{"bytes": limit}); err != nil {
		t.Fatalf("toxiproxy: adding limit_data: %v", err)
	}
	faulty := "http://" + px.Listen

	for _, tt := range []struct {
		name  string
		args  []string
		eject bool
	}{
		{"with the defaults b0 is ejected for its failure rate", nil, true},
		{"with --eject-failure-rate 0 b0 stays in, as before", []string{"--eject-failure-rate", "0"}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
				"--backend", faulty, "--backend", "http://" + backends[1], "--backend", "http://" + backends[2],
				"--health-path", "/", "--health-interval", "1h", "--eject-time", "1m"}, tt.args...)
			rh := startWith(t, procOptions{name: "roundhouse"}, args...)
			addr := rh.waitForMatch(t, faultListening)[1]
			client := &http.Client{Timeout: 10 * time.Second}
			t.Cleanup(client.CloseIdleConnections)

			// One request at a time: b0 sees whole answers and cuts
			// strictly in turn. 100 of its requests: two windows.
			for i := range 300 {
				resp, err := client.Get("http://" + addr + "/")
				if err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
				got, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != http.StatusOK || string(got) != body {
					t.Fatalf("request %d: status %d, %d bytes, %v; want 200 and the whole body", i, resp.StatusCode, len(got), err)
				}
			}
			ejected := fmt.Sprintf(`backend ejected: backend=%s for=1m0s reason="25 gateway failures in the last 50 requests"`, faulty)
			if tt.eject {
				rh.waitFor(t, ejected)
			}
			rh.stop(t)
			out := rh.output()
			if n := strings.Count(out, "backend ejected"); tt.eject && n != 1 || !tt.eject && n != 0 {
				t.Errorf("%d ejections, want %v:\n%s", n, map[bool]int{true: 1, false: 0}[tt.eject], out)
			}
			// b0 did fail every other request it was sent: each such
			// request's access log line says it took two attempts.
			retried := strings.Count(out, "attempts=2")
			switch {
			case !tt.eject && retried < 30:
				t.Errorf("%d requests retried with b0 in all along, want b0's every other request, about 60:\n%s", retried, out)
			case tt.eject && retried > 30:
				t.Errorf("%d requests retried with b0 ejected after 50 of its own, want 25 or so:\n%s", retried, out)
			}
			t.Logf("%d of 300 requests retried", retried)
		})
	}
}

// responseBytes is how many bytes the backend at addr answers GET / with
// on a keep-alive connection, headers included, as the balancer gets it.
func responseBytes(t *testing.T, addr string) int {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: "+addr+"\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	counted := &countingReader{r: conn}
	resp, err := http.ReadResponse(bufio.NewReader(counted), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		t.Fatal(err)
	}
	return counted.n // the one answer, no more: nothing else was sent
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func TestBadFailureRateSettingsExitWithStatus2AndNameTheFlag(t *testing.T) {
	backend := "--backend=http://127.0.0.1:1"
	badFile := writeConfig(t, "ejection {\n  failure_window = 0\n}\nbackend \"http://127.0.0.1:1\" {}\n")
	expectUsageErrors(t, []usageCase{
		{"a failure rate over 100% names its flag", []string{backend, "--eject-failure-rate", "101"},
			"--eject-failure-rate: want 0 to 100, got 101"},
		{"a negative failure rate names its flag", []string{backend, "--eject-failure-rate", "-5"},
			"--eject-failure-rate: want 0 to 100, got -5"},
		{"an empty failure window names its flag", []string{backend, "--eject-failure-window", "0"},
			"--eject-failure-window: want 1 to 10000, got 0"},
		{"a failure window too long names its flag", []string{backend, "--eject-failure-window", "20000"},
			"--eject-failure-window: want 1 to 10000, got 20000"},
		{"an empty failure window in the file is named with its position", []string{"--config", badFile},
			badFile + ":2:20: ejection.failure_window: want 1 to 10000, got 0"},
	})
}
