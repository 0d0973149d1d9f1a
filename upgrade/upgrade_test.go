package upgrade

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"go.uber.org/goleak"
	"golang.org/x/sys/unix"
)

var nullLog = hclog.NewNullLogger()

// TestMain doubles as the new process of the Upgrade tests: with
// UPGRADE_TEST_MODE set, the test binary plays the child (see child).
func TestMain(m *testing.M) {
	if mode := os.Getenv("UPGRADE_TEST_MODE"); mode != "" {
		os.Exit(child(mode))
	}
	goleak.VerifyTestMain(m)
}

// child is the new process: "serve" takes the socket, answers "child PID"
// and says it is ready, then serves until SIGTERM; "exit" exits 3 at once;
// "hang" never says it is ready.
func child(mode string) int {
	switch mode {
	case "exit":
		return 3
	case "hang":
		select {}
	}
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	p, err := New(Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	ln, err := p.Listen("listen", os.Getenv("UPGRADE_TEST_ADDR"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "child %d", os.Getpid())
	})}
	go func() { _ = srv.Serve(ln) }()
	if addr := os.Getenv("UPGRADE_TEST_UDP"); addr != "" {
		pc, err := p.ListenPacket("quic", addr)
		if err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			return 1
		}
		defer pc.Close()
		go echo(pc, fmt.Sprintf("child %d", os.Getpid()))
	}
	if err := p.Ready(); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	<-term
	_ = srv.Close()
	return 0
}

// echo answers every datagram on pc with answer until pc is closed.
func echo(pc net.PacketConn, answer string) {
	buf := make([]byte, 64)
	for {
		_, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		_, _ = pc.WriteTo([]byte(answer), from)
	}
}

// parent returns a Process whose Upgrade starts this test binary as a
// child in mode, and its socket.
func parent(t *testing.T, mode string, timeout time.Duration) (*Process, net.Listener) {
	t.Helper()
	t.Setenv("UPGRADE_TEST_MODE", mode)
	t.Setenv("UPGRADE_TEST_ADDR", "127.0.0.1:0")
	p, err := New(Options{Args: []string{os.Args[0], "-test.run=^$"}, ReadyTimeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	ln, err := p.Listen("listen", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return p, ln
}

func TestUpgradeHandsTheSocketOver(t *testing.T) {
	p, ln := parent(t, "serve", 30*time.Second)
	addr := ln.Addr().String()
	pid, err := p.Upgrade(t.Context())
	if err != nil {
		t.Fatalf("Upgrade: %v", err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(pid, syscall.SIGTERM)
		var ws unix.WaitStatus
		if _, err := unix.Wait4(pid, &ws, 0, nil); err != nil || ws.ExitStatus() != 0 {
			t.Errorf("child: %v, status %d", err, ws.ExitStatus())
		}
	})
	ln.Close() // the parent stops accepting; the socket stays open in the child
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	for range 5 {
		resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get("http://" + addr + "/")
		if err != nil {
			t.Fatalf("after the hand-over: %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := fmt.Sprintf("child %d", pid); string(body) != want {
			t.Errorf("answer %q, want %q", body, want)
		}
	}
}

func TestAFailedUpgradeSaysWhy(t *testing.T) {
	t.Run("a new process that exits before it is ready", func(t *testing.T) {
		p, _ := parent(t, "exit", 30*time.Second)
		_, err := p.Upgrade(t.Context())
		if err == nil || !strings.Contains(err.Error(), "it exited before it was ready: exit status 3") {
			t.Errorf("Upgrade = %v, want the exit status", err)
		}
	})
	t.Run("a new process that never gets ready is stopped", func(t *testing.T) {
		p, _ := parent(t, "hang", 300*time.Millisecond)
		_, err := p.Upgrade(t.Context())
		if err == nil || !strings.Contains(err.Error(), "not ready after 300ms; stopped it") {
			t.Errorf("Upgrade = %v, want the timeout", err)
		}
	})
	t.Run("a cancelled upgrade stops the new process", func(t *testing.T) {
		p, _ := parent(t, "hang", time.Minute)
		ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
		defer cancel()
		_, err := p.Upgrade(ctx)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Upgrade = %v, want the context's error", err)
		}
	})
}

func TestListenChoosesTheInheritedSocket(t *testing.T) {
	inherit := func(t *testing.T, addr string, activated bool) (*Process, net.Listener) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		p := &Process{log: nullLog, notify: notifier{log: nullLog}, inherited: map[string]inherited{
			"listen": {passedOff: passedOff{Name: "listen", Addr: addr, Activated: activated}, ln: ln},
		}}
		return p, ln
	}
	t.Run("the same address takes the inherited socket", func(t *testing.T) {
		p, in := inherit(t, "127.0.0.1:8080", false)
		if ln, err := p.Listen("listen", "127.0.0.1:8080"); err != nil || ln != in {
			t.Errorf("Listen = %v, %v; want the inherited socket", ln, err)
		}
	})
	t.Run("another address listens anew and closes the inherited socket", func(t *testing.T) {
		p, in := inherit(t, "127.0.0.1:8080", false)
		ln, err := p.Listen("listen", "127.0.0.1:0")
		if err != nil || ln == in {
			t.Fatalf("Listen = %v, %v; want a new socket", ln, err)
		}
		ln.Close()
		if _, err := in.Accept(); !errors.Is(err, net.ErrClosed) {
			t.Errorf("the inherited socket is still open: %v", err)
		}
	})
	t.Run("a socket from systemd replaces any address", func(t *testing.T) {
		p, in := inherit(t, "", true)
		if ln, err := p.Listen("listen", "127.0.0.1:8080"); err != nil || ln != in {
			t.Errorf("Listen = %v, %v; want the activated socket", ln, err)
		}
	})
	t.Run("another name listens anew; Ready closes what nobody took", func(t *testing.T) {
		p, in := inherit(t, "127.0.0.1:8080", false)
		ln, err := p.Listen("admin", "127.0.0.1:0")
		if err != nil || ln == in {
			t.Fatalf("Listen = %v, %v; want a new socket", ln, err)
		}
		ln.Close()
		if err := p.Ready(); err != nil {
			t.Fatal(err)
		}
		if _, err := in.Accept(); !errors.Is(err, net.ErrClosed) {
			t.Errorf("the unused inherited socket is still open: %v", err)
		}
	})
}

func TestPIDFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "roundhouse.pid")
	p := &Process{log: nullLog, notify: notifier{log: nullLog}, opts: Options{PIDFile: file}, inherited: map[string]inherited{}}
	if err := p.Ready(); err != nil {
		t.Fatal(err)
	}
	if pid, err := ReadPIDFile(file); err != nil || pid != os.Getpid() {
		t.Errorf("PID file: %d, %v; want %d", pid, err, os.Getpid())
	}
	// A new process has taken the file over: Close leaves it.
	if err := writePIDFile(file, 1); err != nil {
		t.Fatal(err)
	}
	p.Close()
	if pid, err := ReadPIDFile(file); err != nil || pid != 1 {
		t.Errorf("after Close: %d, %v; want the new process's 1 left alone", pid, err)
	}
	// Our own is removed.
	if err := writePIDFile(file, os.Getpid()); err != nil {
		t.Fatal(err)
	}
	p.Close()
	if _, err := os.Stat(file); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after Close, the PID file is still there: %v", err)
	}
	if err := os.WriteFile(file, []byte("twelve\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadPIDFile(file); err == nil || !strings.Contains(err.Error(), `want a process ID, got "twelve"`) {
		t.Errorf("ReadPIDFile of a word: %v", err)
	}
}

func TestHandOffMeantForAnotherProcessIsIgnored(t *testing.T) {
	t.Setenv(envHandOff, `{"parent":1,"ready":3,"listeners":[{"name":"listen","addr":"127.0.0.1:0","fd":4}]}`)
	p, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if p.Parent() != 0 || len(p.inherited) != 0 {
		t.Errorf("took a hand-over meant for the children of process 1: parent %d, %d sockets", p.Parent(), len(p.inherited))
	}
	if _, ok := os.LookupEnv(envHandOff); ok {
		t.Errorf("%s is still in the environment", envHandOff)
	}
}

func TestUpgradeHandsTheUDPSocketOver(t *testing.T) {
	p, _ := parent(t, "serve", 30*time.Second)
	pc, err := p.ListenPacket("quic", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	// The child asks for the address the parent asked for, as serve
	// does: the same string, so it takes the inherited socket.
	t.Setenv("UPGRADE_TEST_UDP", "127.0.0.1:0")
	pid, err := p.Upgrade(t.Context())
	if err != nil {
		t.Fatalf("Upgrade: %v", err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(pid, syscall.SIGTERM)
		var ws unix.WaitStatus
		if _, err := unix.Wait4(pid, &ws, 0, nil); err != nil || ws.ExitStatus() != 0 {
			t.Errorf("child: %v, status %d", err, ws.ExitStatus())
		}
	})
	pc.Close() // the parent's copy: the port stays bound in the child
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("who")); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	if want := fmt.Sprintf("child %d", pid); err != nil || string(buf[:n]) != want {
		t.Errorf("answer %q, %v; want %q from the same port", buf[:n], err, want)
	}
}

func TestListenPacketTakesOnlyAUDPSocket(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	p := &Process{log: nullLog, notify: notifier{log: nullLog}, inherited: map[string]inherited{
		"quic":   {passedOff: passedOff{Name: "quic", Addr: "127.0.0.1:443", Packet: true}, pc: pc},
		"listen": {passedOff: passedOff{Name: "listen", Addr: "127.0.0.1:443"}, ln: ln},
	}}
	got, err := p.ListenPacket("quic", "127.0.0.1:443")
	if err != nil || got != pc {
		t.Errorf("ListenPacket = %v, %v; want the inherited UDP socket", got, err)
	}
	if l, err := p.Listen("listen", "127.0.0.1:443"); err != nil || l != ln {
		t.Errorf("Listen = %v, %v; want the inherited TCP socket", l, err)
	}
	if len(p.sockets) != 2 || !p.listeners[0].Packet || p.listeners[1].Packet {
		t.Errorf("kept %+v, want the UDP socket then the TCP one, marked", p.listeners)
	}
}
