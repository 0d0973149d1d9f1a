package e2e

import (
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/roundhouse/roundhouse/admin"
	"github.com/roundhouse/roundhouse/internal/testenv"
	"github.com/roundhouse/roundhouse/upgrade"
)

// notifySocket is a NOTIFY_SOCKET as systemd makes one: a unixgram socket
// that receives sd_notify messages, with the sender's credentials.
type notifySocket struct {
	path string
	conn *net.UnixConn
}

func newNotifySocket(t *testing.T) *notifySocket {
	t.Helper()
	dir, err := os.MkdirTemp("", "rh") // short: a socket path has at most 107 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	raw, err := conn.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	if err := raw.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PASSCRED, 1) }); err != nil || serr != nil {
		t.Fatalf("SO_PASSCRED: %v %v", err, serr)
	}
	return &notifySocket{path: path, conn: conn}
}

// next returns the next message and the process ID that sent it.
func (n *notifySocket) next(t *testing.T) (msg string, pid int) {
	t.Helper()
	buf, oob := make([]byte, 4096), make([]byte, 1024)
	if err := n.conn.SetReadDeadline(time.Now().Add(30 * time.Second)); err != nil {
		t.Fatal(err)
	}
	nb, noob, _, _, err := n.conn.ReadMsgUnix(buf, oob)
	if err != nil {
		t.Fatalf("no notification: %v", err)
	}
	scms, err := unix.ParseSocketControlMessage(oob[:noob])
	if err != nil || len(scms) == 0 {
		t.Fatalf("no credentials with the notification %q: %v", buf[:nb], err)
	}
	cred, err := unix.ParseUnixCredentials(&scms[0])
	if err != nil {
		t.Fatal(err)
	}
	return string(buf[:nb]), int(cred.Pid)
}

// expect reads the next message and checks it against the pattern and
// its sender; it returns the pattern's first submatch, if any.
func (n *notifySocket) expect(t *testing.T, pattern string, from int) string {
	t.Helper()
	msg, pid := n.next(t)
	m := regexp.MustCompile(`^` + pattern + `$`).FindStringSubmatch(msg)
	if m == nil {
		t.Fatalf("notification %q from %d, want %q", msg, pid, pattern)
	}
	if pid != from {
		t.Errorf("notification %q came from process %d, want %d", msg, pid, from)
	}
	return m[len(m)-1]
}

// The sd_notify messages Roundhouse sends.
const (
	sdReady     = `READY=1`
	sdReloading = `RELOADING=1\nMONOTONIC_USEC=\d+\n`
	sdStopping  = `STOPPING=1`
	sdMainPID   = `MAINPID=(\d+)\nREADY=1`
)

// TestSystemdNotifications runs the balancer as systemd would run a
// Type=notify service, with a NOTIFY_SOCKET the test reads: READY=1 once
// it listens, RELOADING=1 and READY=1 around a SIGHUP reload, and on an
// upgrade MAINPID=<new process> sent by the old one (the main process
// then), after which the new one reloads and stops on its own account.
func TestSystemdNotifications(t *testing.T) {
	backend := demoBackend(t, "a")
	notify := newNotifySocket(t)
	file := writeConfig(t, "backend \""+backend+"\" {}\n")
	f := startFamily(t, []string{"NOTIFY_SOCKET=" + notify.path}, nil,
		"--config", file, "--listen", "127.0.0.1:0", "--access-log=false")
	f.waitForCount(1, listening)
	first := f.pids()[0]
	notify.expect(t, sdReady, first)

	if err := syscall.Kill(first, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	notify.expect(t, sdReloading, first)
	notify.expect(t, sdReady, first)
	f.waitForCount(1, "reloaded")

	// A failed reload still ends with READY=1.
	if err := os.WriteFile(file, []byte("retries = -1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(first, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	notify.expect(t, sdReloading, first)
	notify.expect(t, sdReady, first)
	f.waitForCount(1, "reload failed")

	// An upgrade whose new process cannot start (it reads the bad file
	// too) also ends with READY=1 from the old process.
	if err := syscall.Kill(first, syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	notify.expect(t, sdReloading, first)
	notify.expect(t, sdReady, first)
	f.waitForCount(1, "upgrade failed")

	if err := os.WriteFile(file, []byte("backend \""+backend+"\" {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(first, syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	notify.expect(t, sdReloading, first)
	second, _ := strconv.Atoi(notify.expect(t, sdMainPID, first))
	f.waitForCount(2, listening)
	if got := f.pids(); len(got) != 2 || got[1] != second {
		t.Fatalf("MAINPID=%d, but the processes that listen are %v", second, got)
	}
	if code := f.reap(first, 20*time.Second); code != 0 {
		t.Errorf("the old process exited %d, want 0", code)
	}

	if err := syscall.Kill(second, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	notify.expect(t, sdReloading, second)
	notify.expect(t, sdReady, second)
	if err := syscall.Kill(second, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	notify.expect(t, sdStopping, second)
	if code := f.reap(second, 20*time.Second); code != 0 {
		t.Errorf("the new process exited %d, want 0", code)
	}
	// The old process, once it had handed over, said nothing more.
	if err := notify.conn.SetReadDeadline(time.Now()); err != nil {
		t.Fatal(err)
	}
	if n, _, _, _, err := notify.conn.ReadMsgUnix(make([]byte, 4096), make([]byte, 1024)); err == nil {
		t.Errorf("an unexpected notification of %d bytes", n)
	}
}

// listenerFile returns a new loopback listening socket as a file, and its
// address.
func listenerFile(t *testing.T) (*os.File, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f, ln.Addr().String()
}

// activate is a tiny socket activator: sh sets LISTEN_PID to its own
// process ID and execs the balancer, which keeps that ID, as systemd (or
// systemd-socket-activate) does after its fork. The test cannot set
// LISTEN_PID itself: the child's ID is not known before it starts.
const activate = `LISTEN_PID=$$ exec "$0" "$@"`

// TestSocketActivation passes the balancer two listening sockets as
// systemd does (LISTEN_FDS=2, LISTEN_FDNAMES=roundhouse:admin): they
// replace --listen and --admin, which name an address that is taken. An
// upgrade passes them on. Sockets meant for another process (LISTEN_PID
// is not the balancer's) are ignored.
func TestSocketActivation(t *testing.T) {
	t.Cleanup(http.DefaultClient.CloseIdleConnections)
	backend := demoBackend(t, "a")
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()

	t.Run("the passed sockets replace --listen and --admin and survive an upgrade", func(t *testing.T) {
		proxyFile, proxyAddr := listenerFile(t)
		adminFile, adminAddr := listenerFile(t)
		f := startFamilyArgv(t, []string{"LISTEN_FDS=2", "LISTEN_FDNAMES=roundhouse:admin"}, []*os.File{proxyFile, adminFile},
			"/bin/sh", "-c", activate, binary, "--listen", taken.Addr().String(), "--admin", taken.Addr().String(),
			"--backend", backend, "--access-log=false")
		proxyFile.Close()
		adminFile.Close()
		addrs := f.waitForCount(1, `listening: addr=(\S+) backends=1 admin=(\S+)`)
		if got := f.output(); !strings.Contains(got, "listening: addr="+proxyAddr+" backends=1 admin="+adminAddr) {
			t.Fatalf("listening on %v, want %s and %s:\n%s", addrs, proxyAddr, adminAddr, got)
		}
		if n := strings.Count(f.output(), "socket-activated"); n != 2 {
			t.Errorf("%d socket-activated lines, want 2:\n%s", n, f.output())
		}
		check := func() {
			t.Helper()
			if code, body := get(t, "http://"+proxyAddr+"/"); code != http.StatusOK || !strings.HasPrefix(body, "Hello from a") {
				t.Errorf("proxy: %d %q", code, body)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if st, err := admin.FetchStatus(ctx, nil, adminAddr, nil); err != nil || len(st.Backends) != 1 {
				t.Errorf("admin API: %+v, %v", st, err)
			}
		}
		check()
		first := f.pids()[0]
		if err := syscall.Kill(first, syscall.SIGUSR2); err != nil {
			t.Fatal(err)
		}
		f.waitForCount(2, `listening: addr=`+regexp.QuoteMeta(proxyAddr))
		// An idle keep-alive connection would keep the old process until
		// the grace period ends (see upgrade.Drainer); close ours.
		http.DefaultClient.CloseIdleConnections()
		if code := f.reap(first, 20*time.Second); code != 0 {
			t.Errorf("the old process exited %d, want 0", code)
		}
		check()
		second := f.pids()[1]
		if err := syscall.Kill(second, syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if code := f.reap(second, 20*time.Second); code != 0 {
			t.Errorf("the new process exited %d, want 0", code)
		}
	})

	t.Run("sockets for another process are ignored", func(t *testing.T) {
		stray, _ := listenerFile(t)
		f := startFamily(t, []string{"LISTEN_FDS=1", "LISTEN_PID=1"}, []*os.File{stray},
			"--listen", "127.0.0.1:0", "--backend", backend, "--access-log=false")
		addr := f.waitForCount(1, listening)[0]
		if code, _ := get(t, "http://"+addr+"/"); code != http.StatusOK {
			t.Errorf("status %d", code)
		}
		if strings.Contains(f.output(), "socket-activated") {
			t.Errorf("took a socket meant for process 1:\n%s", f.output())
		}
		pid := f.pids()[0]
		if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if code := f.reap(pid, 20*time.Second); code != 0 {
			t.Errorf("exit status %d", code)
		}
	})

	t.Run("systemd-socket-activate starts it", func(t *testing.T) {
		tool, err := exec.LookPath("systemd-socket-activate")
		if err != nil {
			t.Skip("systemd-socket-activate is not installed (Debian's systemd package has it)")
		}
		addr := testenv.FreeAddr(t)
		pidFile := filepath.Join(t.TempDir(), "roundhouse.pid")
		f := startFamilyArgv(t, nil, nil, tool, "--listen="+addr, "--fdname=roundhouse", binary,
			"--listen", taken.Addr().String(), "--backend", backend, "--access-log=false", "--pid-file", pidFile)
		f.waitForCount(1, `Listening on `+regexp.QuoteMeta(addr))
		// It starts the balancer when the first connection comes in.
		if code, body := get(t, "http://"+addr+"/"); code != http.StatusOK || !strings.HasPrefix(body, "Hello from a") {
			t.Errorf("proxy: %d %q", code, body)
		}
		f.waitForCount(1, `listening: addr=`+regexp.QuoteMeta(addr))
		pid, err := upgrade.ReadPIDFile(pidFile)
		if err != nil {
			t.Fatal(err)
		}
		if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if code := f.reap(pid, 20*time.Second); code != 0 {
			t.Errorf("exit status %d", code)
		}
	})
}

// TestExampleUnitsAreValid has systemd-analyze check the example unit
// files, with ExecStart pointing at the test's binary.
func TestExampleUnitsAreValid(t *testing.T) {
	tool, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed (Debian's systemd package has it)")
	}
	dir := t.TempDir()
	for _, name := range []string{"roundhouse.service", "roundhouse.socket"} {
		src, err := os.ReadFile(filepath.Join("..", "examples", name))
		if err != nil {
			t.Fatal(err)
		}
		unit := strings.ReplaceAll(string(src), "/usr/local/bin/roundhouse", binary)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(unit), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(tool, "verify", filepath.Join(dir, "roundhouse.service"), filepath.Join(dir, "roundhouse.socket"))
	if out, err := cmd.CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}
