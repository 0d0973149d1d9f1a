package e2e

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// fdTally counts what clients got under file descriptor exhaustion.
type fdTally struct {
	mu                             sync.Mutex // test helpers may lock
	ok, shed, otherStatus, refused int
	timeouts, otherErrors          int
	firstOther                     string
}

func (c *fdTally) add(status int, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ne net.Error
	switch {
	case err == nil && status == http.StatusOK:
		c.ok++
	case err == nil && status == http.StatusServiceUnavailable:
		c.shed++
	case err == nil:
		c.otherStatus++
		if c.firstOther == "" {
			c.firstOther = http.StatusText(status)
		}
	case errors.As(err, &ne) && ne.Timeout():
		c.timeouts++
	case strings.Contains(err.Error(), "connection reset"), strings.Contains(err.Error(), "EOF"),
		strings.Contains(err.Error(), "server closed idle connection"),
		strings.Contains(err.Error(), "connection refused"), strings.Contains(err.Error(), "broken pipe"):
		c.refused++
	default:
		c.otherErrors++
		if c.firstOther == "" {
			c.firstOther = err.Error()
		}
	}
}

// Under `ulimit -n 256`, 1,000 concurrent clients: Roundhouse serves what
// it can, sheds the rest with a 503 or a closed connection at once (no
// client waits out its timeout in the accept backlog), never exits, logs
// the condition once and not once per accept, and when the load stops it
// serves every request again.
func TestFileDescriptorExhaustionShedsLoadAndRecovers(t *testing.T) {
	const nofile, clients = 256, 1000
	load := 3 * time.Second
	if exLong() {
		load = 30 * time.Second
	}
	exRaiseNoFile(t, 4*clients)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(20 * time.Millisecond) // work that takes a while, so connections pile up
		_, _ = w.Write([]byte("ok\n"))
	}))
	t.Cleanup(backend.Close)
	lb := startWith(t, procOptions{bin: noRaceBinary(t), nofile: nofile}, "--listen", "127.0.0.1:0", "--backend", backend.URL, "--access-log=false")
	url := "http://" + lb.waitFor(t, listening) + "/"

	// Each client keeps its own connection open between requests, as
	// browsers and keep-alive clients do.
	var tally fdTally
	ctx, cancel := context.WithTimeout(context.Background(), load)
	defer cancel()
	var wg sync.WaitGroup
	var peakFDs int
	cpuBefore, start := lb.cpu(t), time.Now()
	for range clients {
		wg.Go(func() {
			tr := &http.Transport{MaxIdleConnsPerHost: 1}
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
			for ctx.Err() == nil {
				tally.add(exGet(client, url))
			}
		})
	}
	for ctx.Err() == nil {
		peakFDs = max(peakFDs, lb.openFDs(t))
		lb.alive(t)
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
	wg.Wait()
	busyCPU := lb.cpu(t) - cpuBefore
	elapsed := time.Since(start)
	lb.alive(t)
	t.Logf("%d clients for %v under ulimit -n %d: %d served, %d shed with 503, %d connections closed or reset, %d timeouts, %d other statuses, %d other errors (first: %s); peak fds %d; CPU %v over %v",
		clients, load, nofile, tally.ok, tally.shed, tally.refused, tally.timeouts, tally.otherStatus, tally.otherErrors, tally.firstOther,
		peakFDs, busyCPU.Round(time.Millisecond), elapsed.Round(time.Millisecond))
	out := lb.output()
	t.Logf("during the load the log had %d lines from net/http's accept loop, %d \"backend down\" lines",
		strings.Count(out, "Accept error"), strings.Count(out, "backend down"))
	if tally.ok == 0 {
		t.Errorf("nothing was served")
	}
	// The bound: no other error or status at all, and under 10% of the
	// requests timed out (none, on a machine to itself; a connection can
	// wait in the accept backlog while the spare descriptor is lost to a
	// race, and a starved CPU makes that wait long).
	total := tally.ok + tally.shed + tally.refused + tally.timeouts + tally.otherErrors + tally.otherStatus
	if tally.otherErrors > 0 || tally.otherStatus > 0 || tally.timeouts*10 > total {
		t.Errorf("%d of %d requests timed out, %d got other errors, %d other statuses (first: %s): want each served, or shed at once",
			tally.timeouts, total, tally.otherErrors, tally.otherStatus, tally.firstOther)
	}

	// Idle now: no spin.
	cpu0 := lb.cpu(t)
	time.Sleep(time.Second)                                    // a measurement window, not synchronisation
	if idle := lb.cpu(t) - cpu0; idle > 500*time.Millisecond { // a spin takes a whole core
		t.Errorf("used %v of CPU in 1s with no load: spinning", idle)
	}
	// Recovered: every request succeeds, one at a time and 100 at once.
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 100}}
	t.Cleanup(client.CloseIdleConnections)
	for i := range 20 {
		if status, err := exGet(client, url); status != http.StatusOK || err != nil {
			t.Fatalf("after the load, request %d: status %d, error %v", i, status, err)
		}
	}
	var after fdTally
	var burst sync.WaitGroup
	for range 100 {
		burst.Go(func() { after.add(exGet(client, url)) })
	}
	burst.Wait()
	if after.ok != 100 {
		t.Errorf("after the load, 100 concurrent requests: %d served, %d shed, %d closed, %d timeouts, %d other (%s)",
			after.ok, after.shed, after.refused, after.timeouts, after.otherErrors+after.otherStatus, after.firstOther)
	}
	out = lb.output()
	began, ended := strings.Count(out, "out of file descriptors"), strings.Count(out, "file descriptors available again")
	perAccept := strings.Count(out, "Accept error")
	t.Logf("log: %d episode lines, %d recovery lines, %d lines from net/http's accept loop", began, ended, perAccept)
	if began < 1 || began > 2 || perAccept > 0 {
		t.Errorf("the condition was logged %d times, and net/http logged %d accept errors; want once, and none", began, perAccept)
	}
	if ended != began {
		t.Errorf("%d episodes began and %d ended; output:\n%s", began, ended, out)
	}
	if strings.Contains(out, "backend down") {
		t.Errorf("the backend was marked DOWN for the balancer's own lack of descriptors")
	}
	lb.stop(t)
}
