package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
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

	"github.com/roundhouse/roundhouse/upgrade"
)

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
		backends = append(backends, demoBackend(t, name))
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
	backend := demoBackend(t, "a")
	dir := filepath.Join(t.TempDir(), "run")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	pidFile := filepath.Join(dir, "roundhouse.pid")
	f := startFamily(t, nil, nil, "--listen", "127.0.0.1:0", "--backend", backend, "--pid-file", pidFile, "--access-log=false")
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
