package e2e

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/roundhouse/roundhouse/admin"
)

// probedOrigin is a backend whose /health answers health (status and body)
// to probes that carry Host health.example and X-Probe-Token s3cret, and
// 401 to any other; every other path answers name.
func probedOrigin(name string, code int, body string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/health" {
			_, _ = io.WriteString(w, name)
			return
		}
		if r.Host != "health.example" || r.Header.Get("X-Probe-Token") != "s3cret" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.WriteHeader(code)
		_, _ = io.WriteString(w, body)
	})
}

// TestHealthExpectationsFromTheCommandLine runs the balancer with every
// health check flag in front of backends that each break one expectation,
// and an https backend verified with --backend-ca. Each sick backend goes
// DOWN with its own reason, in the log and in /status.
func TestHealthExpectationsFromTheCommandLine(t *testing.T) {
	t.Cleanup(http.DefaultClient.CloseIdleConnections)
	origin := func(name string, code int, body string) string {
		srv := httptest.NewServer(probedOrigin(name, code, body))
		t.Cleanup(srv.Close)
		return srv.URL
	}
	good := origin("good", 200, "ok")
	degraded := origin("degraded", 200, "degraded")
	moved := origin("moved", 302, "ok")
	tlsSrv := httptest.NewUnstartedServer(probedOrigin("secure", 200, "ok"))
	tlsSrv.Config.ErrorLog = log.New(io.Discard, "", 0) // the handshakes refused without the CA
	tlsSrv.StartTLS()
	t.Cleanup(tlsSrv.Close)
	ca := filepath.Join(t.TempDir(), "backend-ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tlsSrv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	check := []string{"--listen", "127.0.0.1:0", "--health-interval", "50ms", "--rise", "1", "--fall", "1",
		"--health-expect", "200,204", "--health-body", "^ok$", "--health-host", "health.example",
		"--health-header", "X-Probe-Token: s3cret", "--access-log=false",
		"--backend", good, "--backend", degraded, "--backend", moved, "--backend", tlsSrv.URL}

	lb := start(t, append(check, "--backend-ca", ca, "--admin", "127.0.0.1:0", "--log-level", "trace")...)
	addr := lb.waitFor(t, listening)
	adminAddr := lb.waitFor(t, `listening: .*admin=(127\.0\.0\.1:\d+)`)
	// The https backend's probe passes with the CA (trace shows each probe).
	lb.waitFor(t, `probe: backend=`+regexp.QuoteMeta(tlsSrv.URL)+` error=<nil>`)
	reasons := map[string]string{
		degraded: "health probe: GET /health: body does not match ^ok$",
		moved:    "health probe: GET /health: status 302, want 200,204",
	}
	for u, reason := range reasons {
		line := lb.waitFor(t, `backend down: backend=`+regexp.QuoteMeta(u)+` .*`)
		if !strings.Contains(line, reason) {
			t.Errorf("down line %q, want the reason %q", line, reason)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := admin.FetchStatus(ctx, nil, adminAddr, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range st.Backends {
		reason, sick := reasons[b.Name]
		switch {
		case sick && (b.State != "down" || !strings.Contains(b.LastProbeError, reason)):
			t.Errorf("/status of %s: state %s, last_probe_error %q; want down and %q", b.Name, b.State, b.LastProbeError, reason)
		case !sick && b.State != "up":
			t.Errorf("/status of %s: state %s (%s, last probe error %q), want up", b.Name, b.State, b.Reason, b.LastProbeError)
		}
	}
	// Only the healthy ones get traffic, the https one included.
	seen := map[string]int{}
	for range 6 {
		code, body := get(t, "http://"+addr+"/")
		if code != http.StatusOK {
			t.Fatalf("status %d: %s", code, body)
		}
		seen[body]++
	}
	if seen["good"] != 3 || seen["secure"] != 3 {
		t.Errorf("answers %v, want 3 from good and 3 from secure; output:\n%s", seen, lb.output())
	}
	lb.stop(t)

	// Without the CA the https backend cannot be verified.
	untrusting := start(t, check...)
	untrusting.waitFor(t, listening)
	line := untrusting.waitFor(t, `backend down: backend=`+regexp.QuoteMeta(tlsSrv.URL)+` .*`)
	if !strings.Contains(line, "certificate signed by unknown authority") {
		t.Errorf("down line %q, want the certificate error", line)
	}
}

// TestHealthPortProbesAnotherPort: the backend's traffic port answers 503
// on /health, its health port 200; with --health-port the backend is UP
// and gets the traffic.
func TestHealthPortProbesAnotherPort(t *testing.T) {
	t.Cleanup(http.DefaultClient.CloseIdleConnections)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	healthSrv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = healthSrv.Serve(ln)
	}()
	t.Cleanup(func() {
		healthSrv.Close()
		<-served
	})
	traffic := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "traffic")
	}))
	t.Cleanup(traffic.Close)
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	lb := start(t, "--listen", "127.0.0.1:0", "--backend", traffic.URL, "--health-port", port,
		"--health-interval", "20ms", "--fall", "1", "--access-log=false", "--log-level", "trace")
	addr := lb.waitFor(t, listening)
	// Three probes in, the backend is still UP.
	lb.waitForCount(t, 3, "probe: backend="+traffic.URL)
	if code, body := get(t, "http://"+addr+"/"); code != http.StatusOK || body != "traffic" {
		t.Errorf("got %d %q, want 200 traffic", code, body)
	}
	if strings.Contains(lb.output(), "backend down") {
		t.Errorf("the backend went down:\n%s", lb.output())
	}
}

func TestHealthTransitionsAreLoggedOnceWithTheBackend(t *testing.T) {
	t.Cleanup(http.DefaultClient.CloseIdleConnections)
	a := start(t, "backend", "--listen", "127.0.0.1:0")
	aaddr := a.waitFor(t, listening)
	b := start(t, "backend", "--listen", "127.0.0.1:0")
	baddr := b.waitFor(t, listening)
	lb := start(t, "--listen", "127.0.0.1:0", "--backend", "http://"+aaddr, "--backend", "http://"+baddr,
		"--health-interval", "20ms", "--rise", "2", "--fall", "2", "--log-format", "json")
	lb.waitFor(t, `"@message":"listening"`)

	b.stop(t)
	lb.waitFor(t, `"@message":"backend down".*`)
	b2 := start(t, "backend", "--listen", baddr)
	b2.waitFor(t, listening)
	lb.waitFor(t, `"@message":"backend up".*`)
	lb.stop(t)

	var downs, ups int
	for line := range strings.SplitSeq(strings.TrimSpace(lb.output()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("not a JSON log line: %q", line)
		}
		switch m["@message"] {
		case "backend down":
			downs++
			if m["backend"] != "http://"+baddr || m["reason"] == "" {
				t.Errorf("down line lacks the backend or reason: %s", line)
			}
		case "backend up":
			ups++
		}
	}
	if downs != 1 || ups != 1 {
		t.Errorf("%d down and %d up lines, want one each:\n%s", downs, ups, lb.output())
	}
}
