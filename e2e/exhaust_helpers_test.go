package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/roundhouse/roundhouse/demo"
)

// exLong says whether the long variants run (ROUNDHOUSE_EXHAUST_LONG=1).
var exLong = os.Getenv("ROUNDHOUSE_EXHAUST_LONG") != ""

// The binary exBinary builds, once, beside TestMain's race-detecting one.
var (
	exBuilt sync.Once
	exPath  string
	exErr   error
)

// exBinary builds the roundhouse command once, without the race detector:
// these tests measure its memory and CPU, which the detector inflates
// several times over. ROUNDHOUSE_EXHAUST_BINARY names a binary to test
// instead (an older build, to compare).
func exBinary(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv("ROUNDHOUSE_EXHAUST_BINARY"); bin != "" {
		return bin
	}
	exBuilt.Do(func() {
		exPath = filepath.Join(filepath.Dir(binary), "roundhouse-norace")
		cmd := exec.Command("go", "build", "-o", exPath, "github.com/roundhouse/roundhouse")
		if out, err := cmd.CombinedOutput(); err != nil {
			exErr = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	if exErr != nil {
		t.Fatal(exErr)
	}
	return exPath
}

// exProc is a running roundhouse process whose output (stdout and stderr
// together, or only stdout when stderr goes to a file) the test can wait on.
type exProc struct {
	cmd    *exec.Cmd
	mu     sync.Mutex // guards out; test helpers may lock
	out    strings.Builder
	grew   chan struct{} // closed and replaced whenever out grows
	exited chan struct{} // closed when the process has exited and err is set
	err    error
}

// exOptions says how to run the binary.
type exOptions struct {
	nofile int      // RLIMIT_NOFILE, soft and hard; 0: inherited
	env    []string // added to the environment
	stderr *os.File // the process's stderr; nil: collected with stdout
}

// exStart runs the binary with args.
func exStart(t *testing.T, o exOptions, args ...string) *exProc {
	t.Helper()
	bin := exBinary(t)
	name, argv := bin, args
	if o.nofile > 0 {
		// ulimit -n sets both limits: the Go runtime raises a soft limit
		// to the hard one at start-up, so the hard one must be low.
		name = "/bin/sh"
		argv = append([]string{"-c", fmt.Sprintf(`ulimit -n %d && exec "$0" "$@"`, o.nofile), bin}, args...)
	}
	p := &exProc{cmd: exec.Command(name, argv...), grew: make(chan struct{}), exited: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), o.env...)
	pr, pw := io.Pipe()
	p.cmd.Stdout, p.cmd.Stderr = pw, pw
	if o.stderr != nil {
		p.cmd.Stderr = o.stderr
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.out.WriteString(sc.Text() + "\n")
			close(p.grew)
			p.grew = make(chan struct{})
			p.mu.Unlock()
		}
		_, _ = io.Copy(io.Discard, pr)
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

func (p *exProc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// waitFor waits until the output matches re and returns the last submatch.
func (p *exProc) waitFor(t *testing.T, re string) string {
	t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.After(30 * time.Second)
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

// alive fails the test if the process has exited.
func (p *exProc) alive(t *testing.T) {
	t.Helper()
	select {
	case <-p.exited:
		t.Fatalf("roundhouse exited (%v); output:\n%s", p.err, p.output())
	default:
	}
}

// stop sends SIGTERM and fails the test unless the process exits 0.
func (p *exProc) stop(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("roundhouse did not exit after SIGTERM; output:\n%s", p.output())
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) || p.err != nil {
		t.Errorf("exit after SIGTERM: %v; output:\n%s", p.err, p.output())
	}
}

const exListening = `listening: addr=(127\.0\.0\.1:\d+)`

// exBackend starts a demo backend named name in the test process.
func exBackend(t *testing.T, name string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(demo.Handler(name))
	t.Cleanup(srv.Close)
	return srv
}

// exStatus reads /proc/PID/status fields in bytes (VmRSS, VmHWM).
func exStatus(t *testing.T, pid int, field string) int64 {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(data)) {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			var kb int64
			if _, err := fmt.Sscanf(strings.TrimSpace(v), "%d kB", &kb); err != nil {
				t.Fatalf("%s: %q: %v", field, v, err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// exCPU returns the CPU time (user and system) the process has used.
func exCPU(t *testing.T, pid int) time.Duration {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// The fields after the command name, which is in parentheses.
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
	var utime, stime int64
	fmt.Sscan(f[11], &utime)
	fmt.Sscan(f[12], &stime)
	return time.Duration(utime+stime) * time.Second / 100 // USER_HZ
}

// exOpenFDs counts the process's open file descriptors.
func exOpenFDs(t *testing.T, pid int) int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// exP99 returns the 99th percentile of ds.
func exP99(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return ds[(len(ds)*99)/100]
}

// exRaiseNoFile raises this process's soft RLIMIT_NOFILE to at least n,
// within the hard limit, and skips the test if the hard limit is lower.
func exRaiseNoFile(t *testing.T, n uint64) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Max < n {
		t.Skipf("needs %d file descriptors; the hard limit (ulimit -Hn) is %d", n, lim.Max)
	}
	if lim.Cur < n {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			t.Fatal(err)
		}
	}
}

// exGet sends GET url with client and reports the status (0: no answer)
// and the error.
func exGet(client *http.Client, url string) (int, error) {
	resp, err := client.Get(url)
	if err != nil {
		return 0, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, err
}
