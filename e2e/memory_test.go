package e2e

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/roundhouse/roundhouse/internal/procstat"
)

// rssOf returns a process's resident set size in bytes, from /proc.
func rssOf(t *testing.T, pid int) int64 {
	t.Helper()
	n, err := procstat.RSS(pid)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestSlowClientDoesNotMakeTheBalancerBuffer streams a 100 MiB response
// through the balancer (a real process) to a client that reads slowly, and
// checks that the balancer's RSS grows by less than 32 MiB: backpressure
// reaches the backend instead of piling up in the balancer.
func TestSlowClientDoesNotMakeTheBalancerBuffer(t *testing.T) {
	if testing.Short() {
		t.Skip("memory test skipped in -short mode")
	}
	t.Cleanup(http.DefaultClient.CloseIdleConnections)
	backend := start(t, "backend", "--listen", "127.0.0.1:0")
	baddr := backend.waitFor(t, listening)
	lb := start(t, "--listen", "127.0.0.1:0", "--backend", "http://"+baddr, "--access-log=false")
	addr := lb.waitFor(t, listening)
	get(t, "http://"+addr+"/") // warm up: connections, buffers, the first GC cycles
	pid := lb.cmd.Process.Pid
	before := rssOf(t, pid)

	const size = 100 << 20
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/bytes?n="+strconv.Itoa(size), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, 64<<10)
	var got, peak int64
	for i := 0; ; i++ {
		n, err := io.ReadFull(resp.Body, buf)
		got += int64(n)
		if i%16 == 0 {
			peak = max(peak, rssOf(t, pid))
			time.Sleep(5 * time.Millisecond) // a slow reader, not synchronisation
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			t.Fatalf("after %d bytes: %v", got, err)
		}
	}
	if got != size {
		t.Fatalf("got %d bytes, want %d", got, size)
	}
	growth := peak - before
	t.Logf("balancer RSS %.1f MiB before, %.1f MiB at peak: grew %.1f MiB while streaming %d MiB",
		float64(before)/(1<<20), float64(peak)/(1<<20), float64(growth)/(1<<20), size>>20)
	if growth > 32<<20 {
		t.Errorf("balancer RSS grew by %.1f MiB, want under 32 MiB", float64(growth)/(1<<20))
	}
}
