// Package upgrade owns the balancer's listening sockets: where they come
// from (a parent handing them over, systemd's socket activation, or
// net.Listen), and how they are handed to a new copy of the process for a
// seamless binary upgrade. It also tells systemd what the process is doing
// (readiness, reloads, stopping, a new main process) and helps the old
// process drain (Drainer).
//
// # The hand-over
//
// On Upgrade the running process (the parent) starts its own executable
// again, by the path it was started with (so a binary replaced at that
// path is the one that runs) and with the same arguments. The child
// inherits, besides stdin, stdout and stderr:
//
//	fd 3     the write end of a pipe: the child writes "ready\n" on it
//	         once it serves, then closes it
//	fd 4...  the parent's listening sockets, in the order Listen made them
//
// and the environment variable ROUNDHOUSE_UPGRADE, a JSON object naming
// the parent and each socket (its name, the address it was asked for,
// whether systemd gave it). The child takes the variable only if the
// parent it names is its own parent, and removes it from its environment.
// Its Listen returns the inherited socket of the same name when asked for
// the same address (or when systemd gave it), so the socket never closes:
// connections queue in its backlog while the child starts, and whichever
// process accepts them, none is refused.
//
// The parent reads the pipe: "ready" means the child serves, and the
// parent stops accepting and drains (see Drainer). End of file means the
// child exited, or closed the pipe, before it was ready; no answer within
// ReadyTimeout means it hangs and is killed. In both cases the parent
// keeps serving and the upgrade has failed.
//
// Why not github.com/cloudflare/tableflip? It does the same with the same
// means (inherited files and a readiness pipe), but allows one upgrader
// per process, keeps its state behind mutexes and a goroutine of its own,
// and knows nothing of systemd's MAINPID or socket activation. What
// Roundhouse needs is the hundred lines here, with one owner: the serve
// loop calls Upgrade at most once at a time and decides what follows.
package upgrade

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
)

// envHandOff is the variable that carries the hand-over to the child.
const envHandOff = "ROUNDHOUSE_UPGRADE"

// handOff is envHandOff's value.
type handOff struct {
	Parent    int         `json:"parent"`    // the parent's process ID
	Ready     int         `json:"ready"`     // the readiness pipe's fd
	Listeners []passedOff `json:"listeners"` // from fd Ready+1 on, in order
}

// passedOff is one inherited socket.
type passedOff struct {
	Name      string `json:"name"`      // what Listen calls it: "listen", "admin", "http"
	Addr      string `json:"addr"`      // the address it was asked for
	Activated bool   `json:"activated"` // systemd gave it (socket activation)
	FD        int    `json:"fd"`
	// Packet marks a UDP socket (ListenPacket: HTTP/3's); false: a
	// listening TCP socket.
	Packet bool `json:"packet,omitempty"`
}

// Options configures a Process. Every zero field takes the default named
// in its comment.
type Options struct {
	// PIDFile, if not "", receives the process ID once the process is
	// ready; "" (the default): no file.
	PIDFile string
	// ReadyTimeout bounds how long a new process gets to become ready;
	// 0: one minute.
	ReadyTimeout time.Duration
	// Args is the new process's command line; nil: os.Args, the same
	// executable path and arguments.
	Args []string
	// Logger receives the hand-over's and systemd's messages; nil: none.
	Logger hclog.Logger
}

// A Process is this process's view of its sockets and of whoever
// started it. New reads the environment once; the serve loop then calls
// Listen for each socket, Ready once serving, and Upgrade (never two at
// once) and the notifications as things happen. It is not safe for
// concurrent use: the serve goroutine owns it, and lends it to one
// Upgrade at a time. The notifications (Reloading, Reloaded, Stopping)
// hold no state and may be sent from any goroutine.
type Process struct {
	opts      Options
	log       hclog.Logger
	inherited map[string]inherited // by name; Listen takes them out
	ready     *os.File             // the pipe to the parent; nil when there is none
	parent    int                  // the parent's pid when this is an upgrade's child
	listeners []passedOff          // what Listen and ListenPacket gave out, with the sockets below
	sockets   []any                // net.Listener or net.PacketConn
	notify    notifier
}

type inherited struct {
	passedOff
	ln net.Listener   // a TCP socket; nil for a UDP one
	pc net.PacketConn // a UDP socket (Packet); nil for a TCP one
}

// close closes the inherited socket.
func (in inherited) close() {
	if in.pc != nil {
		in.pc.Close()
		return
	}
	in.ln.Close()
}

// addr is the inherited socket's address.
func (in inherited) addr() net.Addr {
	if in.pc != nil {
		return in.pc.LocalAddr()
	}
	return in.ln.Addr()
}

// filer is a socket Upgrade can pass on: *net.TCPListener,
// *net.UnixListener, *net.UDPConn.
type filer interface{ File() (*os.File, error) }

// New reads what this process inherited: sockets from a parent that is
// upgrading, or from systemd's socket activation. It removes the
// variables it read from the environment, so that nothing started later
// takes them for its own.
func New(opts Options) (*Process, error) {
	if opts.ReadyTimeout <= 0 {
		opts.ReadyTimeout = time.Minute
	}
	if opts.Args == nil {
		opts.Args = os.Args
	}
	p := &Process{opts: opts, log: opts.Logger, inherited: map[string]inherited{}}
	if p.log == nil {
		p.log = hclog.NewNullLogger()
	}
	p.notify = notifier{log: p.log}
	if err := p.fromParent(); err != nil {
		return nil, err
	}
	if p.ready == nil {
		if err := p.fromSystemd(); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// fromParent takes the sockets of a parent that is handing over.
func (p *Process) fromParent() error {
	v, ok := os.LookupEnv(envHandOff)
	if !ok {
		return nil
	}
	_ = os.Unsetenv(envHandOff)
	var h handOff
	if err := json.Unmarshal([]byte(v), &h); err != nil {
		return fmt.Errorf("%s: %w", envHandOff, err)
	}
	if h.Parent != os.Getppid() {
		return nil // meant for another process: a child of a child, say
	}
	p.parent = h.Parent
	p.ready = os.NewFile(uintptr(h.Ready), "upgrade-ready")
	for _, l := range h.Listeners {
		in := inherited{passedOff: l}
		var err error
		if l.Packet {
			in.pc, err = filePacketConn(l.FD, l.Name)
		} else {
			in.ln, err = fileListener(l.FD, l.Name)
		}
		if err != nil {
			p.Close()
			return fmt.Errorf("inherited socket %s (fd %d): %w", l.Name, l.FD, err)
		}
		p.inherited[l.Name] = in
	}
	return nil
}

// fileListener makes a listener of an inherited descriptor; the listener
// has a descriptor of its own, closed on exec, and fd is closed.
func fileListener(fd int, name string) (net.Listener, error) {
	f := os.NewFile(uintptr(fd), name)
	if f == nil {
		return nil, errors.New("not an open file")
	}
	defer f.Close()
	return net.FileListener(f)
}

// Parent returns the process ID of the parent that handed its sockets
// over, or 0 when this process was not started by an upgrade.
func (p *Process) Parent() int { return p.parent }

// Listen returns the socket called name (the proxy's "listen", the admin
// API's "admin"): the one inherited under that name if it was asked for
// the same address or came from systemd's socket activation, which
// replaces addr; otherwise a new one listening on addr. The socket
// belongs to the caller, who closes it; Upgrade passes it on.
func (p *Process) Listen(name, addr string) (net.Listener, error) {
	if in, ok := p.inherited[name]; ok && in.ln != nil {
		delete(p.inherited, name)
		switch {
		case in.Activated:
			p.log.Info("socket-activated", "name", name, "addr", in.ln.Addr().String())
			return p.keep(in.passedOff, in.ln), nil
		case in.Addr == addr:
			p.log.Debug("inherited socket", "name", name, "addr", in.ln.Addr().String(), "from", p.parent)
			return p.keep(in.passedOff, in.ln), nil
		}
		p.log.Info("inherited socket not wanted: the address changed", "name", name, "was", in.Addr, "now", addr)
		in.close()
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return p.keep(passedOff{Name: name, Addr: addr}, ln), nil
}

func (p *Process) keep(l passedOff, ln net.Listener) net.Listener {
	p.listeners = append(p.listeners, l)
	p.sockets = append(p.sockets, ln)
	return ln
}

// Ready says the process serves: it closes the inherited sockets nobody
// asked for, writes the PID file, and tells the parent (after an
// upgrade), which then tells systemd, or else systemd (READY=1).
func (p *Process) Ready() error {
	p.closeInherited()
	if p.opts.PIDFile != "" {
		if err := writePIDFile(p.opts.PIDFile, os.Getpid()); err != nil {
			return fmt.Errorf("--pid-file: %w", err)
		}
	}
	if p.ready == nil {
		p.notify.send("READY=1")
		return nil
	}
	_, err := io.WriteString(p.ready, "ready\n")
	p.ready.Close()
	p.ready = nil
	if err != nil {
		return fmt.Errorf("telling the old process (pid %d) this one is ready: %w", p.parent, err)
	}
	return nil
}

// Reloading tells systemd a reload begins; Reloaded that it is over,
// whatever its outcome.
func (p *Process) Reloading() { p.notify.send("RELOADING=1\n" + monotonicUsec()) }

// Reloaded tells systemd the process is ready again after a reload.
func (p *Process) Reloaded() { p.notify.send("READY=1") }

// Stopping tells systemd the process is shutting down. A process that
// has handed over must not say it: it is no longer the service's main
// process.
func (p *Process) Stopping() { p.notify.send("STOPPING=1") }

// Upgrade starts a new copy of the process with this one's sockets and
// waits until it is ready, then tells systemd that it is the service's
// main process now and returns its process ID. The caller then stops
// accepting and drains. On an error the new process has been stopped (or
// never started) and this one carries on as before. ctx ending stops the
// wait, and the new process.
func (p *Process) Upgrade(ctx context.Context) (pid int, err error) {
	p.notify.send("RELOADING=1\n" + monotonicUsec())
	defer func() {
		if err != nil {
			p.notify.send("READY=1") // the reload state ends; we still serve
		}
	}()
	exe, err := executable(p.opts.Args[0])
	if err != nil {
		return 0, err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return 0, err
	}
	defer r.Close()
	files := []*os.File{w}
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	h := handOff{Parent: os.Getpid(), Ready: 3}
	for i, l := range p.listeners {
		filer, ok := p.sockets[i].(filer)
		if !ok {
			return 0, fmt.Errorf("socket %s: a %T cannot be passed on", l.Name, p.sockets[i])
		}
		f, err := filer.File()
		if err != nil {
			return 0, fmt.Errorf("socket %s: %w", l.Name, err)
		}
		files = append(files, f)
		l.FD = 3 + len(files) - 1
		h.Listeners = append(h.Listeners, l)
	}
	env, err := json.Marshal(h)
	if err != nil {
		return 0, err
	}
	cmd := &exec.Cmd{
		Path: exe, Args: p.opts.Args, ExtraFiles: files,
		Env:    append(withoutVar(os.Environ(), envHandOff), envHandOff+"="+string(env)),
		Stdout: os.Stdout, Stderr: os.Stderr,
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("starting %s: %w", exe, err)
	}
	pid = cmd.Process.Pid
	p.log.Info("new process started", "pid", pid, "path", exe)
	for _, f := range files {
		f.Close() // the child has its copies; ours would hide its exit from r
	}
	files = nil

	if err := waitReady(ctx, r, p.opts.ReadyTimeout); err != nil {
		if errors.Is(err, io.EOF) {
			// It closed the pipe: it is exiting, or means to hang on
			// without us. Give it a moment to say how it ended.
			werr := waitExit(cmd, exitWait)
			if werr == nil {
				werr = errors.New("exit status 0")
			}
			return 0, fmt.Errorf("new process %d: it exited before it was ready: %w", pid, werr)
		}
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return 0, fmt.Errorf("new process %d: %w", pid, err)
	}
	_ = cmd.Process.Release() // it outlives us; its new parent reaps it
	p.log.Info("new process ready", "pid", pid, "after", time.Since(start).Round(time.Millisecond))
	p.notify.send(fmt.Sprintf("MAINPID=%d\nREADY=1", pid))
	return pid, nil
}

// exitWait is how long a new process that closed its readiness pipe
// gets to exit on its own before it is killed.
const exitWait = 5 * time.Second

// waitExit waits for cmd's process to exit, killing it after d, and
// returns how it ended. Its goroutine ends when the process has exited.
func waitExit(cmd *exec.Cmd, d time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		_ = cmd.Process.Kill()
		return <-done
	}
}

// waitReady reads the child's word on r: nil for "ready", io.EOF if the
// pipe closed first, or the timeout's or ctx's error.
func waitReady(ctx context.Context, r *os.File, timeout time.Duration) error {
	if err := r.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { _ = r.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	buf := make([]byte, 16)
	n, err := io.ReadFull(r, buf[:len("ready\n")])
	switch {
	case err == nil && string(buf[:n]) == "ready\n":
		return nil
	case errors.Is(err, os.ErrDeadlineExceeded) && ctx.Err() != nil:
		return ctx.Err()
	case errors.Is(err, os.ErrDeadlineExceeded):
		return fmt.Errorf("not ready after %v; stopped it", timeout)
	case errors.Is(err, io.ErrUnexpectedEOF), err == nil:
		return fmt.Errorf("unexpected word %q on the readiness pipe", buf[:n])
	}
	return err // io.EOF: it closed the pipe, or exited
}

// executable resolves the command's path as the shell would, so that the
// file now at that path is the one that runs.
func executable(arg0 string) (string, error) {
	if strings.Contains(arg0, "/") {
		return filepath.Abs(arg0)
	}
	return exec.LookPath(arg0)
}

// withoutVar returns env without the variable name.
func withoutVar(env []string, name string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, name+"=") {
			out = append(out, kv)
		}
	}
	return out
}

// closeInherited closes the inherited sockets that Listen did not take.
func (p *Process) closeInherited() {
	for name, in := range p.inherited {
		p.log.Info("inherited socket not wanted", "name", name, "addr", in.addr().String())
		in.close()
		delete(p.inherited, name)
	}
}

// Close releases what the process inherited and did not use, and removes
// the PID file if it still names this process (after an upgrade it names
// the new one). It does not close the sockets Listen returned.
func (p *Process) Close() {
	p.closeInherited()
	if p.ready != nil {
		p.ready.Close()
		p.ready = nil
	}
	if f := p.opts.PIDFile; f != "" {
		if pid, err := ReadPIDFile(f); err == nil && pid == os.Getpid() {
			_ = os.Remove(f)
		}
	}
}

// writePIDFile writes pid to file, atomically: a reader sees the old
// number or the new one.
func writePIDFile(file string, pid int) error {
	tmp := fmt.Sprintf("%s.%d.tmp", file, pid)
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, file); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// ReadPIDFile returns the process ID in file.
func ReadPIDFile(file string) (int, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("%s: want a process ID, got %q", file, strings.TrimSpace(string(b)))
	}
	return pid, nil
}
