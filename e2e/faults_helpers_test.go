package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// toxiproxyServer is Toxiproxy's server, built once by faultToxiproxy
// into TestMain's directory.
var toxiproxyServer struct {
	once sync.Once
	path string
	err  error
}

// faultToxiproxy returns Toxiproxy's server, built once from the module
// cache (go.mod names it as a tool, so go mod download fetches it). The
// test is skipped, saying why, only when it cannot be built; .ci/run
// builds it first so that CI never skips.
func faultToxiproxy(t *testing.T) string {
	t.Helper()
	tx := &toxiproxyServer
	tx.once.Do(func() {
		tx.path = filepath.Join(filepath.Dir(binary), "toxiproxy-server")
		if out, err := exec.Command("go", "build", "-o", tx.path, "github.com/Shopify/toxiproxy/v2/cmd/server").CombinedOutput(); err != nil {
			tx.err = fmt.Errorf("go build toxiproxy: %w\n%s", err, out)
		}
	})
	if tx.err != nil {
		t.Skipf("skipped: Toxiproxy's server cannot be built (go mod download fetches it; .ci/run builds it): %v", tx.err)
	}
	return tx.path
}

// faultLine is one line of a process's output and when the test read it.
type faultLine struct {
	at   time.Time
	text string
}

// faultProc is a running process whose output the test can wait on.
type faultProc struct {
	name   string
	cmd    *exec.Cmd
	mu     sync.Mutex // guards lines and grew; test helpers may lock
	lines  []faultLine
	grew   chan struct{} // closed and replaced whenever lines grow
	exited chan struct{} // closed when the process has exited and err is set
	err    error
}

// faultStart runs bin with args, collecting stdout and stderr together; the
// process is killed when the test ends, if it is still running.
func faultStart(t *testing.T, name, bin string, args ...string) *faultProc {
	t.Helper()
	p := &faultProc{name: name, cmd: exec.Command(bin, args...), grew: make(chan struct{}), exited: make(chan struct{})}
	pr, pw := io.Pipe()
	p.cmd.Stdout, p.cmd.Stderr = pw, pw
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	copied := make(chan struct{})
	go func() { // ends at the pipe's end of file, when the process exits
		defer close(copied)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, faultLine{at: time.Now(), text: sc.Text()})
			close(p.grew)
			p.grew = make(chan struct{})
			p.mu.Unlock()
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	go func() { // ends when the process exits
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

// output returns the lines so far, from line from on.
func (p *faultProc) output(from int) []faultLine {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]faultLine(nil), p.lines[min(from, len(p.lines)):]...)
}

// text returns the whole output.
func (p *faultProc) text() string {
	var b strings.Builder
	for _, l := range p.output(0) {
		b.WriteString(l.text + "\n")
	}
	return b.String()
}

// waitFor waits up to 30s for a line matching re and returns the match
// and its submatches.
func (p *faultProc) waitFor(t *testing.T, re string) []string {
	t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.After(30 * time.Second)
	for seen := 0; ; {
		p.mu.Lock()
		grew, lines := p.grew, p.lines[seen:]
		seen = len(p.lines)
		p.mu.Unlock()
		for _, l := range lines {
			if m := rx.FindStringSubmatch(l.text); m != nil {
				return m
			}
		}
		select {
		case <-grew:
		case <-p.exited:
			if len(p.output(seen)) == 0 {
				t.Fatalf("%s exited (%v) before printing %q:\n%s", p.name, p.err, re, p.text())
			}
		case <-deadline:
			t.Fatalf("%s did not print %q within 30s:\n%s", p.name, re, p.text())
		}
	}
}

// faultListening matches roundhouse's listening line: its address and the
// admin API's.
const faultListening = `listening: addr=(127\.0\.0\.1:\d+) .*admin=(127\.0\.0\.1:\d+)`

// stop sends SIGTERM and waits up to 30s for the process to exit with
// status 0.
func (p *faultProc) stop(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("%s: SIGTERM: %v", p.name, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	select {
	case <-p.exited:
	case <-ctx.Done():
		t.Fatalf("%s did not exit within 30s of SIGTERM", p.name)
	}
	if p.err != nil {
		t.Errorf("%s exited with %v:\n%s", p.name, p.err, p.text())
	}
}

// faultPoll polls cond every 20ms until it holds or d passes, and reports
// whether it held.
func faultPoll(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		<-tick.C
	}
	return true
}
