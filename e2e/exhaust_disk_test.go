package e2e

import (
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/roundhouse/roundhouse/internal/testenv"
)

// exFullDisk returns a file on a filesystem that is full, and a function
// that makes room on it again; nil when it cannot be freed. As root it
// mounts a 256 KiB tmpfs and fills it; otherwise it uses /dev/full, a
// kernel device on which every write fails with ENOSPC.
func exFullDisk(t *testing.T) (path string, free func()) {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=256k"); err != nil {
		t.Logf("cannot mount a tmpfs (%v): the log goes to /dev/full", err)
		return "/dev/full", nil
	}
	t.Cleanup(func() { _ = syscall.Unmount(dir, syscall.MNT_DETACH) })
	path = filepath.Join(dir, "roundhouse.log")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	filler := filepath.Join(dir, "filler")
	return path, func() {
		if err := os.Remove(filler); err != nil {
			t.Fatal(err)
		}
	}
}

// fill fills the filesystem that holds dir.
func fill(t *testing.T, dir string) {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	block := make([]byte, 4096)
	for {
		if _, err := f.Write(block); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			return
		}
	}
}

// An access log on a full filesystem never holds up requests: the lines
// are dropped and counted (roundhouse_log_lines_dropped_total), and the
// episode is noted in the log once space is back.
func TestAFullDiskUnderTheAccessLogNeverBlocksRequests(t *testing.T) {
	logPath, free := exFullDisk(t)
	logFile, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	readLog := func() string {
		if free == nil {
			return ""
		}
		data, _ := os.ReadFile(logPath)
		return string(data)
	}
	backend := demoBackend(t, "A")
	addr, adminAddr := testenv.FreeAddr(t), testenv.FreeAddr(t)
	lb := startWith(t, procOptions{bin: noRaceBinary(t), stderr: logFile}, "--listen", addr, "--admin", adminAddr, "--backend", backend)
	testenv.WaitUntil(t, 20*time.Second, "the balancer answers", func() bool {
		status, err := exGet(http.DefaultClient, "http://"+addr+"/")
		return err == nil && status == http.StatusOK
	})
	t.Cleanup(http.DefaultClient.CloseIdleConnections)
	if free != nil {
		fill(t, filepath.Dir(logPath))
		// The log file's own last page may still have room: fill it too.
		block := []byte(strings.Repeat("\n", 256))
		for _, err := logFile.Write(block); err == nil; _, err = logFile.Write(block) {
		}
		for n, err := logFile.Write(block[:1]); n > 0 && err == nil; n, err = logFile.Write(block[:1]) {
		}
	}
	before := readLog()

	requests := 2000
	if exLong() {
		requests = 50000
	}
	const workers = 16
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: workers}}
	t.Cleanup(client.CloseIdleConnections)
	start := time.Now()
	durations, failed := exHammer(client, "http://"+addr+"/", workers, func(w, n int) bool {
		return w+n*workers < requests // requests in all, shared out in turn
	})
	elapsed := time.Since(start)
	lb.alive(t)
	p99 := percentile99(durations)
	dropped := metric(t, "http://"+adminAddr+"/metrics", "roundhouse_log_lines_dropped_total")
	t.Logf("log on %s: %d requests in %v (%d failed), p99 %v; %.0f log lines dropped", logPath, requests, elapsed.Round(time.Millisecond), failed, p99, dropped)
	if failed > 0 {
		t.Errorf("%d of %d requests failed", failed, requests)
	}
	if p99 > 250*time.Millisecond {
		t.Errorf("p99 %v: requests were held up", p99)
	}
	if dropped < float64(requests) {
		t.Errorf("%v lines counted as dropped, want at least %d (one access line per request)", dropped, requests)
	}
	if free == nil {
		lb.stop(t)
		return
	}
	if grew := len(readLog()) - len(before); grew > 0 {
		t.Errorf("the log grew by %d bytes on a full filesystem", grew)
	}
	free()
	exGet(client, "http://"+addr+"/") // a line to write, and with it the note
	testenv.WaitUntil(t, 10*time.Second, "the log notes the lines dropped", func() bool {
		return strings.Contains(readLog(), "lines dropped")
	})
	lb.stop(t)
	out := readLog()
	if n := strings.Count(out, "log output failed; lines dropped"); n != 1 {
		t.Errorf("the episode was noted %d times, want once; log:\n%s", n, out)
	}
	t.Logf("the note: %s", regexp.MustCompile(`\S.*lines dropped.*`).FindString(out))
}
