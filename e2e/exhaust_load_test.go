package e2e

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/roundhouse/roundhouse/internal/testenv"
)

// 10,000 idle keep-alive clients, and load on top of them: Roundhouse's
// RSS, CPU and p99 stay within generous bounds (2 cores in CI).
func TestTenThousandIdleClientsAndLoadOnTop(t *testing.T) {
	// --max-conns above the idle clients, so that the load's connections
	// find free slots (TestTenThousandIdleClientsFillTheDefaultCap: none).
	exIdleClientsAndLoad(t, 20000)
}

// 10,000 idle keep-alive clients fill the default --max-conns (10,000):
// the load's clients get in by closing the ones idle the longest, with the
// same bounds, and the clients idle the least are still served.
func TestTenThousandIdleClientsFillTheDefaultCap(t *testing.T) {
	exIdleClientsAndLoad(t, 0)
}

// exIdleClientsAndLoad opens 10,000 idle keep-alive clients, then puts
// load on top; maxConns 0 leaves --max-conns at its default, 10,000.
func exIdleClientsAndLoad(t *testing.T, maxConns int) {
	idle := 10000
	load := 3 * time.Second
	if exLong() {
		load = 30 * time.Second
	}
	exRaiseNoFile(t, uint64(idle)+2000)
	backend := demoBackend(t, "A")
	adminAddr := testenv.FreeAddr(t)
	args := []string{"--listen", "127.0.0.1:0", "--admin", adminAddr, "--backend", backend, "--access-log=false"}
	if maxConns > 0 {
		args = append(args, "--max-conns", strconv.Itoa(maxConns))
	}
	lb := startWith(t, procOptions{bin: noRaceBinary(t), nofile: idle + 2000}, args...)
	addr := lb.waitFor(t, listening)
	rssBefore := lb.memory(t, "VmRSS")

	// Each idle client sends one request and keeps its connection open.
	// They connect 50 at a time.
	conns := make([]net.Conn, idle)
	t.Cleanup(func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	})
	req := []byte("GET / HTTP/1.1\r\nHost: lb\r\n\r\n")
	var dialing sync.WaitGroup
	var dialErr error
	var dialMu sync.Mutex // guards dialErr; test helpers may lock
	for g := range 50 {
		dialing.Go(func() {
			buf := make([]byte, 4096)
			for i := g; i < idle; i += 50 {
				c, err := net.Dial("tcp", addr)
				if err == nil {
					conns[i] = c
					_ = c.SetDeadline(time.Now().Add(20 * time.Second))
					_, err = c.Write(req)
				}
				var n int
				if err == nil {
					n, err = c.Read(buf)
				}
				if err == nil && !bytes.HasPrefix(buf[:n], []byte("HTTP/1.1 200")) {
					err = fmt.Errorf("answer %q", buf[:n])
				}
				if err != nil {
					dialMu.Lock()
					dialErr = fmt.Errorf("idle client %d: %w", i, err)
					dialMu.Unlock()
					return
				}
			}
		})
	}
	dialing.Wait()
	if dialErr != nil {
		t.Fatal(dialErr)
	}
	buf := make([]byte, 4096)
	rssIdle := lb.memory(t, "VmRSS")

	const workers = 32
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: workers}}
	t.Cleanup(client.CloseIdleConnections)
	cpu0, start := lb.cpu(t), time.Now()
	durations, failed := exHammer(client, "http://"+addr+"/", workers, func(int, int) bool {
		return time.Since(start) < load
	})
	cpu, elapsed := lb.cpu(t)-cpu0, time.Since(start)
	rssPeak := lb.memory(t, "VmHWM")
	p99 := percentile99(durations)
	lb.alive(t)
	t.Logf("%d idle keep-alive clients: RSS %d MiB before, %d MiB with them (%.1f KiB each); then %d requests by %d workers in %v: %.0f req/s, p99 %v, CPU %v (%.0f%% of a core), peak RSS %d MiB, %d failed",
		idle, rssBefore>>20, rssIdle>>20, float64(rssIdle-rssBefore)/1024/float64(idle), len(durations), workers, elapsed.Round(time.Millisecond),
		float64(len(durations))/elapsed.Seconds(), p99, cpu, 100*cpu.Seconds()/elapsed.Seconds(), rssPeak>>20, failed)
	// The bounds: generous, for 2 shared cores in CI.
	if failed > 0 {
		t.Errorf("%d requests failed", failed)
	}
	if perClient := (rssIdle - rssBefore) / int64(idle); perClient > 64<<10 {
		t.Errorf("%d bytes of RSS per idle client, want under 64 KiB", perClient)
	}
	if rssPeak > 1<<30 {
		t.Errorf("peak RSS %d MiB, want under 1 GiB", rssPeak>>20)
	}
	if p99 > 250*time.Millisecond {
		t.Errorf("p99 %v with the idle clients, want under 250ms", p99)
	}
	reclaimed := metric(t, "http://"+adminAddr+"/metrics", "roundhouse_idle_connections_reclaimed_total")
	t.Logf("--max-conns %d: %.0f idle connections closed to make room", max(maxConns, idle), reclaimed)
	// Every idle client is still served on its own connection; at the
	// cap, those idle the least (the ones idle the longest made room).
	check := conns[:100]
	if maxConns < 2*idle {
		if reclaimed < 1 || reclaimed > float64(idle-100) {
			t.Errorf("%v idle connections closed to make room, want at least 1 and the last 100 kept", reclaimed)
		}
		check = conns[idle-100:]
	} else if reclaimed != 0 {
		t.Errorf("%v idle connections closed below the cap, want 0", reclaimed)
	}
	for i, c := range check {
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write(req); err != nil {
			t.Fatalf("idle client %d, afterwards: %v", i, err)
		}
		if n, err := c.Read(buf); err != nil || !bytes.HasPrefix(buf[:n], []byte("HTTP/1.1 200")) {
			t.Fatalf("idle client %d, afterwards: %q, %v", i, buf[:n], err)
		}
	}
	lb.stop(t)
}

// Under GOMEMLIMIT=64MiB, 32 uploads and 32 downloads of 20 MiB at once
// all arrive whole and the process lives; the test reports its peak RSS.
func TestLargeTransfersUnderALowMemoryLimit(t *testing.T) {
	const size, each = 20 << 20, 32
	rounds := 1
	if exLong() {
		rounds = 5
	}
	backend := demoBackend(t, "A")
	lb := startWith(t, procOptions{bin: noRaceBinary(t), env: []string{"GOMEMLIMIT=64MiB"}}, "--listen", "127.0.0.1:0", "--backend", backend, "--access-log=false")
	addr := lb.waitFor(t, listening)
	client := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 2 * each}}
	t.Cleanup(client.CloseIdleConnections)
	upload := bytes.Repeat([]byte("0123456789abcdef"), size/16)
	want := fmt.Sprintf("%x", sha256.Sum256(upload))
	var mu sync.Mutex // guards errs; test helpers may lock
	var errs []string
	fail := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		errs = append(errs, fmt.Sprintf(format, args...))
	}
	start := time.Now()
	for range rounds {
		var wg sync.WaitGroup
		for range each {
			wg.Go(func() { // an upload, whose digest the backend sends back
				resp, err := client.Post("http://"+addr+"/sha256", "application/octet-stream", bytes.NewReader(upload))
				if err != nil {
					fail("upload: %v", err)
					return
				}
				defer resp.Body.Close()
				got, err := io.ReadAll(resp.Body)
				if err != nil || resp.StatusCode != http.StatusOK || !strings.Contains(string(got), want) {
					fail("upload: %d %.80q %v", resp.StatusCode, got, err)
				}
			})
			wg.Go(func() { // a download
				resp, err := client.Get(fmt.Sprintf("http://%s/bytes?n=%d", addr, size))
				if err != nil {
					fail("download: %v", err)
					return
				}
				defer resp.Body.Close()
				n, err := io.Copy(io.Discard, resp.Body)
				if err != nil || resp.StatusCode != http.StatusOK || n != size {
					fail("download: %d, %d bytes, %v", resp.StatusCode, n, err)
				}
			})
		}
		wg.Wait()
	}
	elapsed := time.Since(start)
	lb.alive(t)
	peak := lb.memory(t, "VmHWM")
	t.Logf("GOMEMLIMIT=64MiB: %d rounds of %d uploads and %d downloads of %d MiB in %v; peak RSS (VmHWM) %d MiB; %d failed",
		rounds, each, each, size>>20, elapsed.Round(time.Millisecond), peak>>20, len(errs))
	for _, e := range errs[:min(len(errs), 5)] {
		t.Error(e)
	}
	if peak > 256<<20 {
		t.Errorf("peak RSS %d MiB under GOMEMLIMIT=64MiB, want under 256 MiB", peak>>20)
	}
	lb.stop(t)
}
