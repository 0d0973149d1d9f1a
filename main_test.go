package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/roundhouse/roundhouse/config"
)

// binary is the roundhouse command built once for the tests that run it as
// a real process.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "roundhouse-test")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "roundhouse")
	if out, err := exec.Command("go", "build", "-race", "-o", binary, ".").CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		panic("go build: " + err.Error() + "\n" + string(out))
	}
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		os.RemoveAll(dir)
		os.Exit(code)
	}))
}

// proc is a running roundhouse process whose output the test can wait on.
type proc struct {
	cmd    *exec.Cmd
	mu     sync.Mutex // guards out; test helpers may lock
	out    strings.Builder
	grew   chan struct{} // closed and replaced whenever out grows
	exited chan struct{} // closed when the process has exited and err is set
	err    error
}

// start runs the binary with args and collects stdout and stderr together.
func start(t *testing.T, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(binary, args...), grew: make(chan struct{}), exited: make(chan struct{})}
	pr, pw := io.Pipe()
	p.cmd.Stdout, p.cmd.Stderr = pw, pw
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			p.mu.Lock()
			p.out.WriteString(sc.Text() + "\n")
			close(p.grew)
			p.grew = make(chan struct{})
			p.mu.Unlock()
		}
	}()
	go func() {
		err := p.cmd.Wait()
		pw.Close()
		<-copied
		p.err = err
		close(p.exited)
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.exited
	})
	return p
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// waitFor waits until the output matches re and returns the first submatch
// (or the whole match).
func (p *proc) waitFor(t *testing.T, re string) string {
	t.Helper()
	rx := regexp.MustCompile(re)
	var m []string
	p.waitUntil(t, fmt.Sprintf("printing %q", re), func(out string) bool {
		m = rx.FindStringSubmatch(out)
		return m != nil
	})
	return m[len(m)-1]
}

// waitForCount waits until the output contains substr at least n times.
func (p *proc) waitForCount(t *testing.T, n int, substr string) {
	t.Helper()
	p.waitUntil(t, fmt.Sprintf("printing %q %d times", substr, n), func(out string) bool {
		return strings.Count(out, substr) >= n
	})
}

// waitUntil waits until cond holds of the output; what names it in errors.
func (p *proc) waitUntil(t *testing.T, what string, cond func(out string) bool) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		p.mu.Lock()
		grew := p.grew
		ok := cond(p.out.String())
		p.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-grew:
		case <-p.exited:
			if cond(p.output()) { // the last output arrived with the exit
				return
			}
			t.Fatalf("process exited (%v) before %s; output:\n%s", p.err, what, p.output())
		case <-deadline:
			t.Fatalf("timed out waiting for %s; output:\n%s", what, p.output())
		}
	}
}

// wait waits for the process to exit and returns its exit status.
func (p *proc) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("process did not exit; output:\n%s", p.output())
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	if p.err != nil {
		t.Fatal(p.err)
	}
	return 0
}

// stop sends SIGTERM and fails the test unless the process exits 0.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	p.signal(t, syscall.SIGTERM)
	if code := p.wait(t); code != 0 {
		t.Errorf("exit status %d after SIGTERM, want 0; output:\n%s", code, p.output())
	}
}

func (p *proc) signal(t *testing.T, sig os.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
}

const listening = `listening: addr=(127\.0\.0\.1:\d+)`

// writeConfig writes src to a file in a fresh directory and returns its name.
func writeConfig(t *testing.T, src string) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "roundhouse.hcl")
	if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

func TestBadCommandLinesExitWithStatus2AndNameTheProblem(t *testing.T) {
	backend := "--backend=http://127.0.0.1:1"
	badFile := writeConfig(t, "retries = -1\nhealth {\n  interval = \"soon\"\n}\nbackend \"http://127.0.0.1:1\" {}\n")
	backendFile := writeConfig(t, "backend \"http://127.0.0.1:1\" {}\n")
	dir := t.TempDir()
	shortSecret := filepath.Join(dir, "short")
	if err := os.WriteFile(shortSecret, []byte("too short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missingSecret := filepath.Join(dir, "missing")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no arguments at all print usage", nil, "usage:"},
		{"an unknown command is named", []string{"frobnicate"}, `unknown command "frobnicate"`},
		{"an unknown flag is named", []string{"serve", backend, "--bogus"}, "-bogus"},
		{"serve without a backend says so", []string{"serve"}, "no backend"},
		{"a backend without a scheme is refused", []string{"--backend", "127.0.0.1:8081"}, "http://127.0.0.1:8081"},
		{"a backend with another scheme is refused", []string{"--backend", "ftp://127.0.0.1:21"}, `scheme "ftp"`},
		{"a backend given twice is refused", []string{backend, backend}, "given twice"},
		{"a bad duration names its flag", []string{backend, "--health-interval", "soon"}, "-health-interval"},
		{"a zero duration names its flag", []string{backend, "--dial-timeout", "0s"}, "--dial-timeout"},
		{"rise below one names its flag", []string{backend, "--rise", "0"}, "--rise"},
		{"fall below one names its flag", []string{backend, "--fall", "0"}, "--fall"},
		{"negative retries name their flag", []string{backend, "--retries", "-1"}, "--retries"},
		{"an unknown policy is named", []string{backend, "--policy", "fastest"}, `"fastest"`},
		{"a negative weight is refused", []string{"--backend", "http://127.0.0.1:1,weight=-1"}, `-backend: weight "-1": want a whole number from 0 to 1000`},
		{"a weight that is not a number is refused", []string{"--backend", "http://127.0.0.1:1,weight=abc"}, `-backend: weight "abc"`},
		{"a bad PROXY protocol version names the flag", []string{"--backend", "http://127.0.0.1:1,proxy-protocol=v3"}, `-backend: proxy-protocol: "v3": want v1 or v2`},
		{"an unknown backend option is named", []string{"--backend", "http://127.0.0.1:1,colour=red"}, `-backend: unknown option "colour=red"`},
		{"header-hash without a header name asks for one", []string{backend, "--policy", "header-hash"}, "flag -policy: policy header-hash needs a header name"},
		{"a policy argument where none is allowed is refused", []string{backend, "--policy", "round-robin:3"}, `flag -policy: policy "round-robin" takes no argument`},
		{"a missing cookie secret file is named", []string{backend, "--cookie-secret-file", missingSecret}, "--cookie-secret-file: open " + missingSecret},
		{"a short cookie secret is refused", []string{backend, "--cookie-secret-file", shortSecret}, "want at least 16 bytes of secret, got 9"},
		{"a bad log level names its flag", []string{backend, "--log-level", "loud"}, "-log-level"},
		{"a bad log format names its flag", []string{backend, "--log-format", "xml"}, "-log-format"},
		{"a stray argument is named", []string{backend, "extra"}, `"extra"`},
		{"a health path without a slash is refused", []string{backend, "--health-path", "health"}, "--health-path"},
		{"a bad trusted proxy names its flag", []string{backend, "--trusted-proxy", "proxy.example"}, "-trusted-proxy"},
		{"PROXY protocol without a trusted proxy names its flag", []string{backend, "--proxy-protocol"}, "--proxy-protocol: needs --trusted-proxy"},
		{"a bad request ID header name names its flag", []string{backend, "--request-id-header", "X Request"}, "--request-id-header: want a header name"},
		{"a max body without a number names its flag", []string{backend, "--max-body", "lots"}, "-max-body"},
		{"a max body with an ambiguous unit names its flag", []string{backend, "--max-body", "10m"}, "-max-body"},
		{"negative max conns name their flag", []string{backend, "--max-conns", "-1"}, "--max-conns"},
		{"a zero header timeout names its flag", []string{backend, "--client-header-timeout", "0s"}, "-client-header-timeout"},
		{"a zero idle timeout names its flag", []string{backend, "--client-idle-timeout", "0s"}, "-client-idle-timeout"},
		{"a bad rate limit names its flag", []string{backend, "--rate-limit", "fast"}, "-rate-limit"},
		{"a rate limit per hour names its flag", []string{backend, "--rate-limit", "10/h"}, "-rate-limit"},
		{"a negative burst names its flag", []string{backend, "--rate-limit", "10/s", "--rate-burst", "-1"}, "--rate-burst"},
		{"a burst without a rate names its flag", []string{backend, "--rate-burst", "5"}, "--rate-burst"},
		{"backend without --listen says so", []string{"backend"}, "--listen"},
		{"demo refuses backends", []string{"demo", backend}, "--backend"},
		{"a bad config file's first problem is named with its position", []string{"--config", badFile},
			"roundhouse: " + badFile + ":1:11: retries: must not be negative, got -1\n"},
		{"a bad config file's every problem is named with its position", []string{"--config", badFile},
			"roundhouse: " + badFile + ":3:14: health.interval: bad duration \"soon\""},
		{"a missing config file is named", []string{"--config", "/nonexistent/roundhouse.hcl"}, "/nonexistent/roundhouse.hcl: no such file"},
		{"demo refuses backends from a config file", []string{"demo", "--config", backendFile}, backendFile + ":1:9: backend: demo starts its own backends"},
		{"validate without a file", []string{"validate"}, "usage: roundhouse validate FILE"},
		{"validate with two files", []string{"validate", badFile, badFile}, "usage: roundhouse validate FILE"},
		{"a non-loopback admin address without a token is refused", []string{backend, "--admin", "0.0.0.0:9090"}, "--admin: 0.0.0.0:9090: not a loopback address"},
		{"an admin address on every interface without a token is refused", []string{backend, "--admin", ":9090"}, "--admin: :9090: not a loopback address"},
		{"an admin address without a port is refused", []string{backend, "--admin", "127.0.0.1"}, `--admin: want host:port, such as 127.0.0.1:8080, got "127.0.0.1"`},
		{"a missing admin token file is named", []string{backend, "--admin", "127.0.0.1:0", "--admin-token-file", "/nonexistent/token"}, "--admin-token-file"},
		{"an admin token file without --admin is refused", []string{backend, "--admin-token-file", "/nonexistent/token"}, "--admin-token-file: needs --admin"},
		{"upgrade needs a PID file or a PID", []string{"upgrade"}, "give --pid-file FILE or --pid PID (one of them)"},
		{"upgrade takes only one of them", []string{"upgrade", "--pid", "1", "--pid-file", "x"}, "one of them"},
		{"a bad health status list names its flag", []string{backend, "--health-expect", "2xx"}, "-health-expect"},
		{"a Host among the probe headers is refused", []string{backend, "--health-header", "Host: x"}, "--health-host"},
		{"status refuses a stray argument", []string{"status", "extra"}, `"extra"`},
		{"status refuses an address without a port", []string{"status", "--admin", "localhost"}, "--admin localhost"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := start(t, tt.args...)
			if code := p.wait(t); code != exitUsage {
				t.Errorf("exit status %d, want 2; output:\n%s", code, p.output())
			}
			if !strings.Contains(p.output(), tt.want) {
				t.Errorf("output does not mention %q:\n%s", tt.want, p.output())
			}
		})
	}
}

func TestVersionAndHelpExitZero(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"help"}, {"serve", "-h"}, {"-h"}} {
		p := start(t, args...)
		if code := p.wait(t); code != 0 {
			t.Errorf("%v: exit status %d, want 0; output:\n%s", args, code, p.output())
		}
	}
	if p := start(t, "version"); p.wait(t) == 0 && !strings.HasPrefix(p.output(), "roundhouse ") {
		t.Errorf("version printed %q", p.output())
	}
}

func TestAnAddressInUseExitsWithStatus1(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	p := start(t, "--listen", ln.Addr().String(), "--backend", "http://127.0.0.1:1")
	if code := p.wait(t); code != exitRuntime {
		t.Errorf("exit status %d, want 1; output:\n%s", code, p.output())
	}
	if !strings.Contains(p.output(), ln.Addr().String()) {
		t.Errorf("the error does not name the address:\n%s", p.output())
	}
}

// get fetches url and returns the status and body.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	code, body, err := fetch(url)
	if err != nil {
		t.Fatal(err)
	}
	return code, body
}

func fetch(url string) (int, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

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

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestGracefulShutdownFinishesTheRequestInFlight(t *testing.T) {
	t.Cleanup(http.DefaultClient.CloseIdleConnections)
	arrived, release := make(chan struct{}), make(chan struct{})
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			return
		}
		close(arrived)
		<-release
		_, _ = io.WriteString(w, "finished")
	}))
	t.Cleanup(backend.Close)
	lb := start(t, "--listen", "127.0.0.1:0", "--backend", backend.URL, "--shutdown-grace", "20s")
	addr := lb.waitFor(t, listening)

	type result struct {
		code int
		body string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		code, body, err := fetch("http://" + addr + "/work")
		done <- result{code, body, err}
	}()
	<-arrived
	lb.signal(t, syscall.SIGINT)
	lb.waitFor(t, "shutting down")
	close(release)
	if r := <-done; r.err != nil || r.code != http.StatusOK || r.body != "finished" {
		t.Errorf("in-flight request got %d %q (%v), want 200 finished", r.code, r.body, r.err)
	}
	if code := lb.wait(t); code != 0 {
		t.Errorf("exit status %d, want 0; output:\n%s", code, lb.output())
	}
	out := lb.output()
	if i, j := strings.Index(out, "path=/work"), strings.Index(out, "stopped"); i < 0 || j < i {
		t.Errorf("stopped before the in-flight request finished:\n%s", out)
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

	b.signal(t, syscall.SIGTERM)
	b.wait(t)
	lb.waitFor(t, `"@message":"backend down".*`)
	b2 := start(t, "backend", "--listen", baddr)
	b2.waitFor(t, listening)
	lb.waitFor(t, `"@message":"backend up".*`)
	lb.signal(t, syscall.SIGTERM)
	lb.wait(t)

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
	lb.signal(t, syscall.SIGTERM)
	lb.wait(t)
}

func TestALogLevelAboveInfoHidesTheAccessLog(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want bool
	}{
		{nil, true},
		{[]string{"--log-level", "debug"}, true},
		{[]string{"--log-level", "warn"}, false},
		{[]string{"--log-level", "error"}, false},
		{[]string{"--access-log=false"}, false},
	} {
		s, err := config.Load(append([]string{"--backend", "http://127.0.0.1:1"}, tt.args...), config.Options{Name: "roundhouse serve", Output: io.Discard})
		if err != nil {
			t.Fatalf("%q: %v", tt.args, err)
		}
		if got := newAccessLog(s, newLogger(s, io.Discard), io.Discard) != nil; got != tt.want {
			t.Errorf("%q: access log %v, want %v", tt.args, got, tt.want)
		}
	}
}

func TestValidateAcceptsTheExampleWithASummary(t *testing.T) {
	p := start(t, "validate", "examples/roundhouse.hcl")
	if code := p.wait(t); code != 0 {
		t.Fatalf("exit status %d, want 0; output:\n%s", code, p.output())
	}
	want := "examples/roundhouse.hcl: ok: 3 backends (1 disabled), policy weighted-round-robin, listen 127.0.0.1:8080, admin 127.0.0.1:9090\n"
	if got := p.output(); got != want {
		t.Errorf("output %q, want %q", got, want)
	}
}

func TestValidateListsEveryProblemWithItsPosition(t *testing.T) {
	file := writeConfig(t, `listen = "8080"
retries = "two"
backend "ftp://127.0.0.1:21" {}
backend "http://127.0.0.1:8081" {
  weight = 1001
}
health {
  interval = "10 seconds"
}
acme {}
`)
	p := start(t, "validate", file)
	if code := p.wait(t); code != exitRuntime {
		t.Fatalf("exit status %d, want 1; output:\n%s", code, p.output())
	}
	want := []string{
		file + `:1:10: listen: want host:port, such as 127.0.0.1:8080, got "8080"`,
		file + `:2:11: retries: want a whole number, got a string`,
		file + `:3:9: backend "ftp://127.0.0.1:21": scheme "ftp": want http or https`,
		file + `:5:12: backend.weight: want a whole number from 0 to 1000, got 1001`,
		file + `:8:14: health.interval: bad duration "10 seconds": want a number and a unit, such as 500ms, 10s or 1m30s`,
		file + `:10:1: unknown block "acme" (known: backend, health, timeouts, limits, ejection, log, admin, sticky, edge, tls)`,
	}
	if got := strings.Split(strings.TrimSpace(p.output()), "\n"); !slices.Equal(got, want) {
		t.Errorf("output:\n%s\nwant:\n%s", p.output(), strings.Join(want, "\n"))
	}
}

func TestServeTakesTheConfigFileAndFlagsOverrideIt(t *testing.T) {
	t.Cleanup(http.DefaultClient.CloseIdleConnections)
	backend := func(name string) string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, name)
		}))
		t.Cleanup(srv.Close)
		return srv.URL
	}
	disabled, a, b := backend("disabled"), backend("a"), backend("b")
	// The file's listen address is taken, so the balancer can only start if
	// --listen overrides it. Policy "first" would send everything to the
	// disabled backend if it were not left out, and to a otherwise.
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	file := writeConfig(t, `
listen = "`+taken.Addr().String()+`"
policy = "first"
backend "`+disabled+`" {
  enabled = false
}
backend "`+a+`" {}
backend "`+b+`" {}
log {
  access = false
}
`)
	lb := start(t, "serve", "--config", file, "--listen", "127.0.0.1:0", "--access-log")
	addr := lb.waitFor(t, listening)
	for range 4 {
		if code, body := get(t, "http://"+addr+"/"); code != http.StatusOK || body != "a" {
			t.Fatalf("got %d %q, want 200 from backend a (the first enabled one)", code, body)
		}
	}
	lb.waitFor(t, `access: request: method=GET path=/ .*status=200`) // --access-log beat the file's false
}

// namedBackend is an origin that answers with its name; it does not count
// health probes.
func namedBackend(t *testing.T, name string, hits *atomic.Int64) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			return
		}
		hits.Add(1)
		_, _ = io.WriteString(w, name)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestWeightedRoundRobinFromTheCommandLineSplitsThreeToOne(t *testing.T) {
	t.Cleanup(http.DefaultClient.CloseIdleConnections)
	var aHits, bHits atomic.Int64
	a, b := namedBackend(t, "a", &aHits), namedBackend(t, "b", &bHits)
	lb := start(t, "--listen", "127.0.0.1:0", "--policy", "weighted-round-robin",
		"--backend", a.URL+",weight=3", "--backend", b.URL, "--access-log=false")
	addr := lb.waitFor(t, listening)
	var got strings.Builder
	for range 40 {
		code, body := get(t, "http://"+addr+"/")
		if code != http.StatusOK {
			t.Fatalf("status %d: %s", code, body)
		}
		got.WriteString(body)
	}
	if want := strings.Repeat("aaba", 10); got.String() != want {
		t.Errorf("answers %s, want %s", got.String(), want)
	}
	if aHits.Load() != 30 || bHits.Load() != 10 {
		t.Errorf("backends served %d and %d requests, want 30 and 10", aHits.Load(), bHits.Load())
	}
	lb.stop(t)
}

// stickyValue starts a balancer with args, fetches / once and returns the
// sticky cookie's value and the backend that answered.
func stickyValue(t *testing.T, args ...string) (value, backend string) {
	t.Helper()
	lb := start(t, append([]string{"--listen", "127.0.0.1:0", "--policy", "cookie", "--access-log=false"}, args...)...)
	addr := lb.waitFor(t, listening)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, %v", resp.StatusCode, err)
	}
	for _, c := range resp.Cookies() {
		if c.Name == "roundhouse_sticky" {
			value = c.Value
		}
	}
	if value == "" {
		t.Fatalf("no roundhouse_sticky cookie: %q", resp.Header.Values("Set-Cookie"))
	}
	lb.stop(t)
	return value, string(body)
}

func TestCookieSecretFileMakesStickyCookiesStableAcrossInstances(t *testing.T) {
	var hits atomic.Int64
	a := namedBackend(t, "a", &hits)
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte("  a secret of more than 16 bytes\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	first, _ := stickyValue(t, "--backend", a.URL, "--cookie-secret-file", secret)
	second, _ := stickyValue(t, "--backend", a.URL, "--cookie-secret-file", secret)
	if first != second {
		t.Errorf("two instances with one secret file set %q and %q, want the same value", first, second)
	}
	third, _ := stickyValue(t, "--backend", a.URL)
	fourth, _ := stickyValue(t, "--backend", a.URL)
	if third == fourth || third == first {
		t.Errorf("instances without a secret file set %q and %q (with the file: %q), want values of their own", third, fourth, first)
	}
}

// writeToken writes an admin token file and returns its path.
func writeToken(t *testing.T, token string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "admin-token")
	if err := os.WriteFile(p, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestAShortAdminTokenIsAUsageErrorNamingTheFlag(t *testing.T) {
	p := start(t, "--backend", "http://127.0.0.1:1", "--admin", "0.0.0.0:9090", "--admin-token-file", writeToken(t, "tiny-secret"))
	if code := p.wait(t); code != exitUsage {
		t.Errorf("exit status %d, want 2; output:\n%s", code, p.output())
	}
	out := p.output()
	if !strings.Contains(out, "--admin-token-file") || !strings.Contains(out, "at least 16 bytes") {
		t.Errorf("the error does not name the flag and the rule:\n%s", out)
	}
	if strings.Contains(out, "tiny-secret") {
		t.Errorf("the error repeats the token:\n%s", out)
	}
}

func TestStatusPrintsTheBackendsOfARunningBalancer(t *testing.T) {
	t.Cleanup(http.DefaultClient.CloseIdleConnections)
	var backends []string
	for range 2 {
		b := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
		t.Cleanup(b.Close)
		backends = append(backends, b.URL)
	}
	token := writeToken(t, "a-token-of-24-bytes-long")
	lb := start(t, "--listen", "127.0.0.1:0", "--backend", backends[0], "--backend", backends[1],
		"--admin", "127.0.0.1:0", "--admin-token-file", token)
	addr := lb.waitFor(t, listening)
	admin := lb.waitFor(t, `listening: .*admin=(127\.0\.0\.1:\d+)`)
	for range 4 {
		if code, body := get(t, "http://"+addr+"/"); code != http.StatusOK {
			t.Fatalf("proxy: %d %s", code, body)
		}
	}

	st := start(t, "status", "--admin", admin, "--admin-token-file", token)
	if code := st.wait(t); code != 0 {
		t.Fatalf("status exit status %d; output:\n%s", code, st.output())
	}
	lines := strings.Split(strings.TrimSpace(st.output()), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "ID") || !strings.Contains(lines[0], "STATE") {
		t.Fatalf("want a header and two rows:\n%s", st.output())
	}
	for i, b := range backends {
		if !strings.Contains(lines[i+1], b) || !strings.Contains(lines[i+1], " up ") {
			t.Errorf("row %d does not show %s up: %q", i+1, b, lines[i+1])
		}
	}

	noToken := start(t, "status", "--admin", admin)
	if code := noToken.wait(t); code != exitRuntime || !strings.Contains(noToken.output(), "401") {
		t.Errorf("status without the token: exit %d, output:\n%s\nwant 1 and the 401", code, noToken.output())
	}

	lb.stop(t)
	gone := start(t, "status", "--admin", admin, "--admin-token-file", token)
	if code := gone.wait(t); code != exitRuntime || !strings.Contains(gone.output(), "unreachable") {
		t.Errorf("status after shutdown: exit %d, output:\n%s\nwant 1 and unreachable", code, gone.output())
	}
}
