package e2e

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/roundhouse/roundhouse/internal/testenv"
)

// At --max-conns, idle keep-alive clients make room for a new one: the
// balancer closes one idle connection and serves the new client at once,
// never a connection with a request in flight, and counts it in
// roundhouse_idle_connections_reclaimed_total.
func TestIdleClientsMakeRoomAtTheConnectionCap(t *testing.T) {
	release, arrived := make(chan struct{}), make(chan struct{}, 1)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/hold" {
			_, _ = io.WriteString(w, "ok")
			return
		}
		arrived <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
		_, _ = io.WriteString(w, "held")
	}))
	t.Cleanup(backend.Close)
	releaseOnce := func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}
	t.Cleanup(releaseOnce) // before backend.Close

	adminAddr := testenv.FreeAddr(t)
	lb := start(t, "--listen", "127.0.0.1:0", "--admin", adminAddr, "--backend", backend.URL,
		"--max-conns", "3", "--client-idle-timeout", "1h", "--access-log=false")
	addr := lb.waitFor(t, listening)

	type raw struct {
		c  net.Conn
		br *bufio.Reader
	}
	dial := func() raw {
		t.Helper()
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		_ = c.SetDeadline(time.Now().Add(20 * time.Second))
		return raw{c, bufio.NewReader(c)}
	}
	exchange := func(r raw, path string) (*http.Response, error) {
		if _, err := io.WriteString(r.c, "GET "+path+" HTTP/1.1\r\nHost: lb\r\n\r\n"); err != nil {
			return nil, err
		}
		resp, err := http.ReadResponse(r.br, nil)
		if err != nil {
			return nil, err
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp, err
	}

	busy := dial()
	if _, err := io.WriteString(busy.c, "GET /hold HTTP/1.1\r\nHost: lb\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("the held request never reached the backend")
	}
	var idle []raw
	for range 2 {
		r := dial()
		if resp, err := exchange(r, "/"); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("idle client's request: %v %v", resp, err)
		}
		idle = append(idle, r)
	}

	// Three connections open, the cap: a new client is served at once.
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{}}
	t.Cleanup(client.CloseIdleConnections)
	started := time.Now()
	resp, err := client.Get("http://" + addr + "/")
	if err != nil {
		t.Fatalf("new client at the cap: %v", err)
	}
	resp.Body.Close()
	waited := time.Since(started)
	t.Logf("new client at --max-conns 3 (1 busy, 2 idle) served in %v", waited)
	if resp.StatusCode != http.StatusOK {
		t.Errorf("new client at the cap: status %d", resp.StatusCode)
	}

	// One idle connection was closed for it; the other still serves.
	closed := 0
	for _, r := range idle {
		if resp, err := exchange(r, "/"); err != nil {
			closed++
		} else if resp.StatusCode != http.StatusOK {
			t.Errorf("idle client, afterwards: status %d", resp.StatusCode)
		}
	}
	if closed != 1 {
		t.Errorf("%d of the 2 idle connections were closed, want 1", closed)
	}
	releaseOnce()
	if resp, err := http.ReadResponse(busy.br, nil); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("the request in flight: %v %v; want it answered 200", resp, err)
	} else {
		resp.Body.Close()
	}
	if n := metric(t, "http://"+adminAddr+"/metrics", "roundhouse_idle_connections_reclaimed_total"); n != 1 {
		t.Errorf("roundhouse_idle_connections_reclaimed_total %v, want 1", n)
	}
	lb.waitFor(t, `closed idle keep-alive connections to make room.*closed=1`)
	lb.stop(t)
}

// With --max-conns 0 (no cap) there is nothing to make room in, and no
// such metric.
func TestNoReclaimedMetricWithoutAConnectionCap(t *testing.T) {
	adminAddr := testenv.FreeAddr(t)
	lb := start(t, "--listen", "127.0.0.1:0", "--admin", adminAddr, "--backend", demoBackend(t, "A"), "--max-conns", "0")
	lb.waitFor(t, listening)
	code, body := get(t, "http://"+adminAddr+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	if strings.Contains(body, "roundhouse_idle_connections_reclaimed_total") {
		t.Error("roundhouse_idle_connections_reclaimed_total exported without a connection cap")
	}
	lb.stop(t)
}
