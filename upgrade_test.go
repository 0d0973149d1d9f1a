package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
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

	"golang.org/x/sys/unix"

	"github.com/roundhouse/roundhouse/demo"
	"github.com/roundhouse/roundhouse/upgrade"
)

// family is a balancer and every process its upgrades start. They share
// one output pipe, which the test reads to its end (when the last of them
// has exited). The test process is their child subreaper while the test
// runs (prctl PR_SET_CHILD_SUBREAPER), so that each new process, orphaned
// when its parent exits after handing over, becomes the test's child and
// the test can wait for it and see its exit status.
type family struct {
	t    *testing.T
	mu   sync.Mutex // guards out and grew; helpers lock
	out  strings.Builder
	grew chan struct{} // closed and replaced whenever out grows
	eof  chan struct{} // closed when every writer has closed the pipe

	reaped map[int]bool // owned by the test goroutine
}

// startFamily starts the first balancer with args and env added to the
// test's environment, and extra files from fd 3 on.
func startFamily(t *testing.T, env []string, extra []*os.File, args ...string) *family {
	t.Helper()
	return startFamilyArgv(t, env, extra, append([]string{binary}, args...)...)
}

// startFamilyArgv is startFamily with the whole command line, for a
// balancer started through another program that execs it.
func startFamilyArgv(t *testing.T, env []string, extra []*os.File, argv ...string) *family {
	t.Helper()
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Skipf("cannot become a child subreaper to wait for upgraded processes: %v", err)
	}
	t.Cleanup(func() { _ = unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0) })
	f := &family{t: t, grew: make(chan struct{}), eof: make(chan struct{}), reaped: map[int]bool{}}
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = pw, pw // files: no copying goroutine, so no wait for the children's copies
	// The race detector's runtime waits a second before each exit; the
	// figures are about the balancer.
	cmd.Env = append(append(os.Environ(), "GORACE=atexit_sleep_ms=0"), env...)
	cmd.ExtraFiles = extra
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	first := cmd.Process.Pid
	_ = cmd.Process.Release() // reaped by pid, like its successors
	go func() {
		defer close(f.eof)
		defer pr.Close()
		sc := bufio.NewScanner(pr)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			f.mu.Lock()
			f.out.WriteString(sc.Text() + "\n")
			close(f.grew)
			f.grew = make(chan struct{})
			f.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		// Kill whoever is left, reap them, and read the pipe to its end.
		pids := append([]int{first}, f.pids()...)
		for _, pid := range pids {
			if !f.reaped[pid] {
				_ = syscall.Kill(pid, syscall.SIGKILL)
				f.reap(pid, 10*time.Second)
			}
		}
		select {
		case <-f.eof:
		case <-time.After(10 * time.Second):
			t.Errorf("the output pipe is still open: a process of the family outlived the test")
		}
	})
	return f
}

func (f *family) output() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.out.String()
}

// waitForCount waits until the output has n matches of re and returns
// the first submatch of each.
func (f *family) waitForCount(n int, re string) []string {
	f.t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.After(30 * time.Second)
	for {
		f.mu.Lock()
		grew := f.grew
		ms := rx.FindAllStringSubmatch(f.out.String(), -1)
		f.mu.Unlock()
		if len(ms) >= n {
			var out []string
			for _, m := range ms {
				out = append(out, m[len(m)-1])
			}
			return out
		}
		select {
		case <-grew:
		case <-f.eof:
			f.t.Fatalf("every process exited before %q appeared %d times; output:\n%s", re, n, f.output())
		case <-deadline:
			f.t.Fatalf("timed out waiting for %q %d times; output:\n%s", re, n, f.output())
		}
	}
}

// pids returns the process IDs in the "listening" lines so far.
func (f *family) pids() []int {
	var out []int
	for _, m := range regexp.MustCompile(`listening: .*pid=(\d+)`).FindAllStringSubmatch(f.output(), -1) {
		pid, _ := strconv.Atoi(m[1])
		out = append(out, pid)
	}
	return out
}

// reap waits up to d for process pid, a child of the test, to exit, and
// returns its exit status (-1 if it was killed by a signal or not reaped).
func (f *family) reap(pid int, d time.Duration) int {
	f.t.Helper()
	type result struct {
		ws  unix.WaitStatus
		err error
	}
	done := make(chan result, 1)
	go func() {
		var ws unix.WaitStatus
		_, err := unix.Wait4(pid, &ws, 0, nil)
		done <- result{ws, err}
	}()
	select {
	case r := <-done:
		f.reaped[pid] = true
		if r.err != nil {
			f.t.Errorf("wait for process %d: %v", pid, r.err)
			return -1
		}
		if !r.ws.Exited() {
			return -1
		}
		return r.ws.ExitStatus()
	case <-time.After(d):
		f.t.Errorf("process %d still running after %v; killing it; output:\n%s", pid, d, f.output())
		_ = syscall.Kill(pid, syscall.SIGKILL)
		<-done
		f.reaped[pid] = true
		return -1
	}
}

// loadResult counts what the clients saw.
type loadResult struct {
	gets, posts, refused, failed atomic.Int64
}

// runLoad starts n clients against url until ctx ends: even ones GET /,
// odd ones POST /sha256 with a random body of up to 64 KiB and check the
// digest. POSTs carry no Idempotency-Key: a client could not retry one
// that a closing connection lost. progress gets a value (if there is
// room) after each request.
func runLoad(t *testing.T, ctx context.Context, wg *sync.WaitGroup, n int, url string, res *loadResult, progress chan<- struct{}) {
	tr := &http.Transport{MaxIdleConnsPerHost: 2 * n}
	t.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr}
	for c := range n {
		wg.Go(func() {
			for ctx.Err() == nil {
				err := loadRequest(client, url, c%2 == 1)
				switch {
				case errors.Is(err, syscall.ECONNREFUSED):
					res.refused.Add(1)
					t.Errorf("client %d: connection refused: %v", c, err)
				case err != nil:
					res.failed.Add(1)
					t.Errorf("client %d: %v", c, err)
				case c%2 == 1:
					res.posts.Add(1)
				default:
					res.gets.Add(1)
				}
				select {
				case progress <- struct{}{}:
				default:
				}
			}
		})
	}
}

// loadRequest is a plain (not idempotent) checked request: an upgrade must
// lose nothing, with no retry to save it.
func loadRequest(client *http.Client, url string, post bool) error {
	return checkedRequest(client, url, post, 64<<10, "")
}

// waitRequests waits until the clients have made n more requests.
func waitRequests(t *testing.T, res *loadResult, progress <-chan struct{}, n int64) {
	t.Helper()
	target := res.gets.Load() + res.posts.Load() + n
	deadline := time.After(30 * time.Second)
	for res.gets.Load()+res.posts.Load() < target && !t.Failed() {
		select {
		case <-progress:
		case <-deadline:
			t.Fatalf("the clients made fewer than %d requests in 30s", n)
		}
	}
}

// TestUpgradeUnderLoadLosesNothing runs the balancer as a process while 8
// clients send GETs and POSTs (bodies checked by SHA-256), and upgrades it
// three times in a row: twice by SIGUSR2 and once with "roundhouse
// upgrade --pid-file". No client may see an error or a refused
// connection; each old process must drain and exit 0; the PID file must
// name the newest process.
func TestUpgradeUnderLoadLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("upgrade test skipped in -short mode")
	}
	var backends []string
	for _, name := range []string{"a", "b"} {
		srv := httptest.NewServer(demo.Handler(name))
		t.Cleanup(srv.Close)
		backends = append(backends, srv.URL)
	}
	pidFile := filepath.Join(t.TempDir(), "roundhouse.pid")
	f := startFamily(t, nil, nil, "--listen", "127.0.0.1:0", "--backend", backends[0], "--backend", backends[1],
		"--admin", "127.0.0.1:0", "--pid-file", pidFile, "--shutdown-grace", "10s", "--access-log=false")
	addr := f.waitForCount(1, listening)[0]
	url := "http://" + addr
	current := f.pids()[0]
	if pid, err := upgrade.ReadPIDFile(pidFile); err != nil || pid != current {
		t.Fatalf("PID file: %d, %v; want %d", pid, err, current)
	}

	ctx, cancel := context.WithCancel(context.Background())
	var res loadResult
	var clients sync.WaitGroup
	progress := make(chan struct{}, 1)
	runLoad(t, ctx, &clients, 8, url, &res, progress)
	stopLoad := sync.OnceFunc(func() {
		cancel()
		clients.Wait()
	})
	t.Cleanup(stopLoad)

	const upgrades = 3
	var readyAfter, exitedAfter []time.Duration
	for i := 1; i <= upgrades && !t.Failed(); i++ {
		waitRequests(t, &res, progress, 300)
		old := current
		began := time.Now()
		if i == 2 {
			cmd := start(t, "upgrade", "--pid-file", pidFile)
			if code := cmd.wait(t); code != 0 {
				t.Fatalf("roundhouse upgrade: exit status %d; output:\n%s", code, cmd.output())
			}
			if !strings.Contains(cmd.output(), fmt.Sprintf("process %d handed over to process ", old)) {
				t.Errorf("roundhouse upgrade printed %q", cmd.output())
			}
		} else if err := syscall.Kill(old, syscall.SIGUSR2); err != nil {
			t.Fatal(err)
		}
		ready := f.waitForCount(i, `new process ready: pid=(\d+)`)
		current, _ = strconv.Atoi(ready[i-1])
		readyAfter = append(readyAfter, time.Since(began))
		if code := f.reap(old, 20*time.Second); code != 0 {
			t.Errorf("upgrade %d: the old process %d exited with status %d, want 0", i, old, code)
		}
		exitedAfter = append(exitedAfter, time.Since(began))
		f.waitForCount(1, fmt.Sprintf(`stopped: pid=%d\n`, old)) // the pipe may lag behind the exit
		if pid, err := upgrade.ReadPIDFile(pidFile); err != nil || pid != current {
			t.Errorf("upgrade %d: PID file names %d (%v), want the new process %d", i, pid, err, current)
		}
	}
	waitRequests(t, &res, progress, 300)
	stopLoad()
	if err := syscall.Kill(current, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := f.reap(current, 20*time.Second); code != 0 {
		t.Errorf("the last process exited with status %d, want 0", code)
	}
	if _, err := os.Stat(pidFile); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the PID file is still there after the last process stopped: %v", err)
	}

	f.waitForCount(1, fmt.Sprintf(`stopped: pid=%d\n`, current))
	out := f.output()
	drains := regexp.MustCompile(`new process ready: pid=\d+ after=(\S+)`).FindAllStringSubmatch(out, -1)
	var childReady []string
	for _, m := range drains {
		childReady = append(childReady, m[1])
	}
	t.Logf("%d requests (%d GET, %d POST), %d upgrades, %d client errors, %d refused connections",
		res.gets.Load()+res.posts.Load(), res.gets.Load(), res.posts.Load(), len(readyAfter), res.failed.Load(), res.refused.Load())
	t.Logf("new process ready (as the old one measured it): %s; signal to ready: %v; signal to old process exited: %v",
		strings.Join(childReady, ", "), readyAfter, exitedAfter)
	for _, m := range regexp.MustCompile(`(?m)^(\S+) .*(handed over|drained|stopped: pid).*$`).FindAllString(out, -1) {
		t.Log(m)
	}
	if n := strings.Count(out, "drained"); n != upgrades {
		t.Errorf("%d old processes drained their connections, want %d (the rest ran out of grace)", n, upgrades)
	}
	if res.failed.Load()+res.refused.Load() > 0 || len(readyAfter) != upgrades || slices.Contains(exitedAfter, 0) {
		t.Logf("output:\n%s", out)
	}
}

// TestAFailedUpgradeLeavesTheOldProcessServing: a new process that cannot
// start (its --pid-file directory is gone, so it cannot become ready)
// leaves the old one serving.
func TestAFailedUpgradeLeavesTheOldProcessServing(t *testing.T) {
	t.Cleanup(http.DefaultClient.CloseIdleConnections)
	backend := httptest.NewServer(demo.Handler("a"))
	t.Cleanup(backend.Close)
	dir := filepath.Join(t.TempDir(), "run")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	pidFile := filepath.Join(dir, "roundhouse.pid")
	f := startFamily(t, nil, nil, "--listen", "127.0.0.1:0", "--backend", backend.URL, "--pid-file", pidFile, "--access-log=false")
	addr := f.waitForCount(1, listening)[0]
	old := f.pids()[0]
	// The PID file's directory goes: the new process cannot write it.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(old, syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	failed := f.waitForCount(1, `upgrade failed; this process keeps serving: error="new process (\d+): it exited before it was ready: exit status 1"`)
	if code, body := get(t, "http://"+addr+"/"); code != http.StatusOK || !strings.HasPrefix(body, "Hello from a") {
		t.Errorf("after the failed upgrade: %d %q, want 200 from the old process", code, body)
	}
	pid, _ := strconv.Atoi(failed[0])
	f.reaped[pid] = true // the old process waited for the new one
	if !strings.Contains(f.output(), "--pid-file: open "+pidFile) {
		t.Errorf("the new process did not say why it failed:\n%s", f.output())
	}
	if err := syscall.Kill(old, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := f.reap(old, 20*time.Second); code != 0 {
		t.Errorf("the old process exited with status %d, want 0", code)
	}
}
