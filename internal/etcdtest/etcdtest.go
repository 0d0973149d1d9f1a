// Package etcdtest runs a real etcd server for tests: Debian's etcd-server
// package's binary, one member, on two loopback ports, with its data in a
// test's temporary directory. A test can kill it and start it again on the
// same ports and data, as an outage would.
//
// Tests that use it skip, with a message saying what to install, only when
// no etcd binary exists; CI installs one (.ci/run).
package etcdtest

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/roundhouse/roundhouse/internal/testenv"
)

// Server is one etcd process. Its methods are for the test goroutine.
type Server struct {
	t      testing.TB
	bin    string
	dir    string
	Client string // the client address, 127.0.0.1:PORT
	peer   string // the peer address, 127.0.0.1:PORT
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has exited
	out    *lockedBuffer
}

// Binary returns the etcd binary's path, or "" if there is none.
func Binary() string {
	if p, err := exec.LookPath("etcd"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/bin/etcd"); err == nil {
		return "/usr/bin/etcd"
	}
	return ""
}

// Start starts etcd and waits until it answers. It skips the test if no
// etcd binary is installed; the server is killed when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := Binary()
	if bin == "" {
		t.Skip("etcd is not installed: apt-get install etcd-server (CI installs it)")
	}
	s := &Server{t: t, bin: bin, dir: filepath.Join(t.TempDir(), "etcd"), out: &lockedBuffer{}}
	s.Client, s.peer = testenv.FreeAddr(t), testenv.FreeAddr(t)
	t.Cleanup(s.Stop)
	s.start()
	return s
}

func (s *Server) start() {
	s.t.Helper()
	client, peer := "http://"+s.Client, "http://"+s.peer
	s.cmd = exec.Command(s.bin,
		"--name", "test", "--data-dir", s.dir,
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "test="+peer, "--initial-cluster-state", "new",
		"--logger", "zap", "--log-level", "warn",
	)
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("start etcd: %v", err)
	}
	exited := make(chan struct{})
	s.exited = exited
	cmd := s.cmd
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	s.waitReady()
}

// waitReady waits until etcd answers a read, for up to 20 seconds.
func (s *Server) waitReady() {
	s.t.Helper()
	cli := s.NewClient()
	defer cli.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		_, err := cli.Get(ctx, "ready-check")
		cancel()
		if err == nil {
			return
		}
		select {
		case <-s.exited:
			s.t.Fatalf("etcd exited before answering; output:\n%s", s.out)
		default:
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("etcd did not answer within 20s: %v; output:\n%s", err, s.out)
		}
		time.Sleep(50 * time.Millisecond) // pacing between attempts
	}
}

// Stop kills etcd (SIGKILL: an outage, not a shutdown) and waits for it
// to exit. Stopping a stopped server does nothing.
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.exited
	s.cmd = nil
}

// Restart starts etcd again on the same ports with the same data.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	s.start()
}

// URL is the --discover URL of prefix on this server.
func (s *Server) URL(prefix string) string { return "etcd://" + s.Client + prefix }

// NewClient returns a client of this server; the caller closes it.
func (s *Server) NewClient() *clientv3.Client {
	s.t.Helper()
	cli, err := clientv3.New(clientv3.Config{
		Endpoints: []string{s.Client}, DialTimeout: 2 * time.Second, Logger: zap.NewNop(),
	})
	if err != nil {
		s.t.Fatalf("etcd client: %v", err)
	}
	return cli
}

// Output returns what etcd has printed.
func (s *Server) Output() string { return s.out.String() }

// lockedBuffer collects the process's output, which os/exec copies from
// its own goroutine.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
