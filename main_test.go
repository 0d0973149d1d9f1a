package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
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
	deadline := time.After(20 * time.Second)
	for {
		p.mu.Lock()
		grew := p.grew
		m := rx.FindStringSubmatch(p.out.String())
		p.mu.Unlock()
		if m != nil {
			return m[len(m)-1]
		}
		select {
		case <-grew:
		case <-p.exited:
			if m := rx.FindStringSubmatch(p.output()); m != nil {
				return m[len(m)-1]
			}
			t.Fatalf("process exited (%v) before printing %q; output:\n%s", p.err, re, p.output())
		case <-deadline:
			t.Fatalf("timed out waiting for %q; output:\n%s", re, p.output())
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

func (p *proc) signal(t *testing.T, sig os.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
}

const listening = `listening: addr=(127\.0\.0\.1:\d+)`

func TestBadCommandLinesExitWithStatus2AndNameTheProblem(t *testing.T) {
	backend := "--backend=http://127.0.0.1:1"
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
		{"a bad log level names its flag", []string{backend, "--log-level", "loud"}, "-log-level"},
		{"a bad log format names its flag", []string{backend, "--log-format", "xml"}, "-log-format"},
		{"a stray argument is named", []string{backend, "extra"}, `"extra"`},
		{"a health path without a slash is refused", []string{backend, "--health-path", "health"}, "--health-path"},
		{"a bad trusted proxy names its flag", []string{backend, "--trusted-proxy", "proxy.example"}, "-trusted-proxy"},
		{"a max body without a number names its flag", []string{backend, "--max-body", "lots"}, "-max-body"},
		{"a max body with an ambiguous unit names its flag", []string{backend, "--max-body", "10m"}, "-max-body"},
		{"negative max conns name their flag", []string{backend, "--max-conns", "-1"}, "--max-conns"},
		{"a zero header timeout names its flag", []string{backend, "--read-header-timeout", "0s"}, "--read-header-timeout"},
		{"a zero idle timeout names its flag", []string{backend, "--idle-timeout", "0s"}, "--idle-timeout"},
		{"a bad rate limit names its flag", []string{backend, "--rate-limit", "fast"}, "-rate-limit"},
		{"a rate limit per hour names its flag", []string{backend, "--rate-limit", "10/h"}, "-rate-limit"},
		{"a negative burst names its flag", []string{backend, "--rate-limit", "10/s", "--rate-burst", "-1"}, "--rate-burst"},
		{"a burst without a rate names its flag", []string{backend, "--rate-burst", "5"}, "--rate-burst"},
		{"backend without --listen says so", []string{"backend"}, "--listen"},
		{"demo refuses backends", []string{"demo", backend}, "--backend"},
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
	p.signal(t, syscall.SIGTERM)
	if code := p.wait(t); code != 0 {
		t.Errorf("exit status %d after SIGTERM, want 0; output:\n%s", code, p.output())
	}
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
