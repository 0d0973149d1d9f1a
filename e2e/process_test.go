package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The binary as running processes: proc is one process the test starts
// and waits for (most tests; startWith also runs the binary built without
// the race detector, or another program such as Toxiproxy); family is a
// balancer with every process its upgrades start (the upgrade, WebSocket
// and systemd tests). Both read the processes' stdout and stderr, together,
// into an output.

// output is what one or more processes write to one pipe, line by line,
// for the test to read and wait on.
type output struct {
	mu    sync.Mutex      // guards b, lines and grew; test helpers may lock
	b     strings.Builder // every complete line so far, each with its "\n"
	lines []outputLine    // the same lines, each with when it was read
	grew  chan struct{}   // closed and replaced whenever b grows
	eof   chan struct{}   // closed once every writer has closed the pipe and b holds all they wrote
}

// outputLine is one line of output (without its "\n") and when the test
// read it.
type outputLine struct {
	at   time.Time
	text string
}

// readOutput reads r to its end into a new output, then closes r. The
// goroutine it starts is owned by the output and ends at r's end, which
// eof announces: the caller must make sure the writers end (by killing
// the processes in a t.Cleanup) and wait for eof.
func readOutput(r io.ReadCloser) *output {
	o := &output{grew: make(chan struct{}), eof: make(chan struct{})}
	go func() {
		defer close(o.eof)
		defer r.Close()
		sc := bufio.NewScanner(r)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			o.mu.Lock()
			o.b.WriteString(sc.Text() + "\n")
			o.lines = append(o.lines, outputLine{at: time.Now(), text: sc.Text()})
			close(o.grew)
			o.grew = make(chan struct{})
			o.mu.Unlock()
		}
	}()
	return o
}

// String returns the output so far.
func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.String()
}

// linesFrom returns the lines so far from line from (counting from 0) on.
func (o *output) linesFrom(from int) []outputLine {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.lines[min(from, len(o.lines)):])
}

// errOutputEnded and errOutputTimeout say why await gave up.
var (
	errOutputEnded   = errors.New("the output ended")
	errOutputTimeout = errors.New("timed out")
)

// await waits up to d until cond holds of the output. It returns nil once
// it does, errOutputEnded if the output ends first without it holding,
// and errOutputTimeout if d passes first.
func (o *output) await(d time.Duration, cond func(out string) bool) error {
	deadline := time.After(d)
	for {
		o.mu.Lock()
		grew := o.grew
		ok := cond(o.b.String())
		o.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-grew:
		case <-o.eof:
			if cond(o.String()) { // the last lines arrived with the end
				return nil
			}
			return errOutputEnded
		case <-deadline:
			return errOutputTimeout
		}
	}
}

// proc is a running process, roundhouse unless startWith said otherwise,
// whose output the test can wait on.
type proc struct {
	name   string // names the process in failures: "process" unless startWith said otherwise
	cmd    *exec.Cmd
	out    *output
	exited chan struct{} // closed when the process has exited, all its output is read and err is set
	err    error
}

// procOptions says how startWith runs a program. The zero value runs the
// race-detecting binary as start does.
type procOptions struct {
	name   string   // names the process in failures; "": "process"
	bin    string   // the program; "": binary (see noRaceBinary for the other build)
	env    []string // added to the test's environment; nil: the test's environment as it is
	stderr *os.File // the process's stderr; nil: collected with stdout in one output
	nofile int      // RLIMIT_NOFILE, soft and hard, set by /bin/sh's ulimit -n before it execs the program; 0: inherited
}

// start runs the binary with args and collects stdout and stderr together.
// The process is killed, if still running, when the test ends.
func start(t *testing.T, args ...string) *proc {
	t.Helper()
	return startWith(t, procOptions{}, args...)
}

// startProgram is start for another program (a test backend, say).
func startProgram(t *testing.T, program string, args ...string) *proc {
	t.Helper()
	return startWith(t, procOptions{bin: program, name: program}, args...)
}

// startWith runs a program with args as o says. Its output is stdout and
// stderr together, or stdout alone when o.stderr is set. The process is
// killed, if still running, when the test ends.
func startWith(t *testing.T, o procOptions, args ...string) *proc {
	t.Helper()
	bin, name := o.bin, o.name
	if bin == "" {
		bin = binary
	}
	if name == "" {
		name = "process"
	}
	argv := append([]string{bin}, args...)
	if o.nofile > 0 {
		// ulimit -n sets both limits: the Go runtime raises a soft limit
		// to the hard one at start-up, so the hard one must be low. The
		// shell execs the program, which keeps the shell's pid.
		argv = append([]string{"/bin/sh", "-c", fmt.Sprintf(`ulimit -n %d && exec "$0" "$@"`, o.nofile)}, argv...)
	}
	p := &proc{name: name, cmd: exec.Command(argv[0], argv[1:]...), exited: make(chan struct{})}
	if o.env != nil {
		p.cmd.Env = append(os.Environ(), o.env...)
	}
	pr, pw := io.Pipe()
	p.cmd.Stdout, p.cmd.Stderr = pw, pw
	if o.stderr != nil {
		p.cmd.Stderr = o.stderr
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.out = readOutput(pr)
	go func() { // ends when the process has exited and its output is read
		err := p.cmd.Wait()
		pw.Close()
		<-p.out.eof
		p.err = err
		close(p.exited)
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.exited
	})
	return p
}

// noRaceBinary returns the roundhouse command built once, without the race
// detector, beside TestMain's race-detecting one: for tests that measure
// its memory and CPU, which the detector inflates several times over.
// $ROUNDHOUSE_EXHAUST_BINARY names a binary to use instead (an older
// build, to compare).
func noRaceBinary(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv("ROUNDHOUSE_EXHAUST_BINARY"); bin != "" {
		return bin
	}
	path, err := noRace.build("roundhouse-norace", "github.com/roundhouse/roundhouse")
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// noRace is the binary noRaceBinary builds.
var noRace built

// built is a program that build makes once, for every test that asks. The
// zero value has not been built yet.
type built struct {
	once sync.Once
	path string
	err  error
}

// build runs go build -o name pkg the first time it is called, into
// TestMain's directory (removed with the binary), and returns the
// program's path, or why it could not be built; later calls return the
// same.
func (b *built) build(name, pkg string) (string, error) {
	b.once.Do(func() {
		b.path = filepath.Join(filepath.Dir(binary), name)
		if out, err := exec.Command("go", "build", "-o", b.path, pkg).CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build %s: %w\n%s", pkg, err, out)
		}
	})
	return b.path, b.err
}

// output returns everything the process has written so far.
func (p *proc) output() string { return p.out.String() }

// lines returns the lines the process has written so far, from line from
// (counting from 0) on, each with when the test read it.
func (p *proc) lines(from int) []outputLine { return p.out.linesFrom(from) }

// pid returns the process's ID.
func (p *proc) pid() int { return p.cmd.Process.Pid }

// waitFor waits until the output matches re and returns the first submatch
// (or the whole match).
func (p *proc) waitFor(t *testing.T, re string) string {
	t.Helper()
	m := p.waitForMatch(t, re)
	return m[len(m)-1]
}

// waitForMatch waits until the output matches re and returns the match and
// its submatches.
func (p *proc) waitForMatch(t *testing.T, re string) []string {
	t.Helper()
	rx := regexp.MustCompile(re)
	var m []string
	p.waitUntil(t, "printing "+strconv.Quote(re), func(out string) bool {
		m = rx.FindStringSubmatch(out)
		return m != nil
	})
	return m
}

// waitForCount waits until the output contains substr at least n times.
func (p *proc) waitForCount(t *testing.T, n int, substr string) {
	t.Helper()
	p.waitUntil(t, "printing "+strconv.Quote(substr)+" "+strconv.Itoa(n)+" times", func(out string) bool {
		return strings.Count(out, substr) >= n
	})
}

// waitUntil waits up to 20 s until cond holds of the output; what names
// it in errors.
func (p *proc) waitUntil(t *testing.T, what string, cond func(out string) bool) {
	t.Helper()
	switch err := p.out.await(20*time.Second, cond); {
	case errors.Is(err, errOutputEnded):
		<-p.exited
		t.Fatalf("%s exited (%v) before %s; output:\n%s", p.name, p.err, what, p.output())
	case err != nil:
		t.Fatalf("timed out waiting for %s; output:\n%s", what, p.output())
	}
}

// alive fails the test if the process has exited.
func (p *proc) alive(t *testing.T) {
	t.Helper()
	select {
	case <-p.exited:
		t.Fatalf("%s exited (%v); output:\n%s", p.name, p.err, p.output())
	default:
	}
}

// wait waits for the process to exit and returns its exit status.
func (p *proc) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not exit; output:\n%s", p.name, p.output())
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

// signal sends sig to the process.
func (p *proc) signal(t *testing.T, sig os.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
}

// family is a balancer and every process its upgrades start. They share
// one output pipe, which the test reads to its end (when the last of them
// has exited). The test process is their child subreaper while the test
// runs (prctl PR_SET_CHILD_SUBREAPER), so that each new process, orphaned
// when its parent exits after handing over, becomes the test's child and
// the test can wait for it and see its exit status.
type family struct {
	t      *testing.T
	out    *output
	reaped map[int]bool // owned by the test goroutine
}

// startFamily starts the first balancer with args and env added to the
// test's environment, and extra files from fd 3 on.
func startFamily(t *testing.T, env []string, extra []*os.File, args ...string) *family {
	t.Helper()
	return startFamilyArgv(t, env, extra, append([]string{binary}, args...)...)
}

// startFamilyArgv is startFamily with the whole command line, for a
// balancer started through another program that execs it. Every process
// of the family left when the test ends is killed and reaped then.
func startFamilyArgv(t *testing.T, env []string, extra []*os.File, argv ...string) *family {
	t.Helper()
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Skipf("cannot become a child subreaper to wait for upgraded processes: %v", err)
	}
	t.Cleanup(func() { _ = unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0) })
	f := &family{t: t, reaped: map[int]bool{}}
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
		pr.Close()
		pw.Close()
		t.Fatal(err)
	}
	pw.Close()
	first := cmd.Process.Pid
	_ = cmd.Process.Release() // reaped by pid, like its successors
	f.out = readOutput(pr)
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
		case <-f.out.eof:
		case <-time.After(10 * time.Second):
			t.Errorf("the output pipe is still open: a process of the family outlived the test")
		}
	})
	return f
}

// output returns everything the family has written so far.
func (f *family) output() string { return f.out.String() }

// waitForCount waits up to 30 s until the output has n matches of re and
// returns the first submatch (or the whole match) of each.
func (f *family) waitForCount(n int, re string) []string {
	f.t.Helper()
	rx := regexp.MustCompile(re)
	var ms [][]string
	switch err := f.out.await(30*time.Second, func(out string) bool {
		ms = rx.FindAllStringSubmatch(out, -1)
		return len(ms) >= n
	}); {
	case errors.Is(err, errOutputEnded):
		f.t.Fatalf("every process exited before %q appeared %d times; output:\n%s", re, n, f.output())
	case err != nil:
		f.t.Fatalf("timed out waiting for %q %d times; output:\n%s", re, n, f.output())
	}
	var out []string
	for _, m := range ms {
		out = append(out, m[len(m)-1])
	}
	return out
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
// A process still running after d is killed.
func (f *family) reap(pid int, d time.Duration) int {
	f.t.Helper()
	type result struct {
		ws  unix.WaitStatus
		err error
	}
	done := make(chan result, 1)
	go func() { // ends when pid has exited (it is killed below if need be)
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
