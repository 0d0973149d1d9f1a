package transport

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestOversizedRequestHeadersGet431(t *testing.T) {
	backend, got := recordingBackend(t)
	lb := newBalancer(t, balancerOptions{}, backend.URL)

	rc := dialRaw(t, lb.url)
	rc.send("GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + strings.Repeat("a", 100<<10) + "\r\n\r\n")
	resp, body := rc.response("GET")
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("status %d (%q), want 431", resp.StatusCode, body)
	}
	if strings.Contains(body, "aaaa") {
		t.Errorf("the error echoes the header: %q", body)
	}
	if !rc.closed() {
		t.Error("the connection stayed open")
	}
	noRequest(t, got)

	// Headers just under the limit pass.
	rc = dialRaw(t, lb.url)
	rc.send("GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + strings.Repeat("a", 60<<10) + "\r\n\r\n")
	if resp, _ := rc.response("GET"); resp.StatusCode != http.StatusOK {
		t.Errorf("60 KiB of headers: status %d, want 200", resp.StatusCode)
	}
	if r := <-got; len(r.Header.Get("X-Big")) != 60<<10 {
		t.Errorf("backend got a %d-byte header", len(r.Header.Get("X-Big")))
	}
}

func TestBodiesOverTheLimitGet413(t *testing.T) {
	const limit = 1024
	backend, got := recordingBackend(t)
	lb := newBalancer(t, balancerOptions{maxBody: limit}, backend.URL)
	chunked := func(body string) string {
		return strconv.FormatInt(int64(len(body)), 16) + "\r\n" + body + "\r\n0\r\n\r\n"
	}
	tests := []struct {
		name   string
		req    string
		status int
	}{
		{"a declared length over the limit is refused at once, the body unsent",
			"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1025\r\n\r\n", 413},
		{"a chunked body over the limit is refused",
			"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(strings.Repeat("x", limit+1)), 413},
		{"many small chunks over the limit are refused",
			"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" +
				strings.Repeat("100\r\n"+strings.Repeat("y", 256)+"\r\n", 5) + "0\r\n\r\n", 413},
		{"a declared length at the limit passes",
			"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1024\r\n\r\n" + strings.Repeat("x", limit), 200},
		{"a chunked body at the limit passes",
			"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(strings.Repeat("x", limit)), 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := dialRaw(t, lb.url)
			rc.send(tt.req)
			resp, body := rc.response("POST")
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d (%q), want %d", resp.StatusCode, body, tt.status)
			}
			if tt.status == 200 {
				if r := <-got; r.ContentLength != limit && r.ContentLength != -1 {
					t.Errorf("backend got length %d", r.ContentLength)
				}
				return
			}
			if !strings.Contains(body, "larger than the limit") {
				t.Errorf("body %q does not say why", body)
			}
			if !rc.closed() {
				t.Error("the connection stayed open")
			}
			noRequest(t, got) // never a complete request
		})
	}
	lb.log.waitFor(t, 2, "status=413")
	for _, st := range lb.status(t) {
		if st.Failures != 0 {
			t.Errorf("a client's oversized body counted against the backend: %+v", st)
		}
	}
}

// A backend that answers before it has read the whole body (an echo) may
// have sent its status by the time the body passes the limit: the 200
// cannot be taken back, so the connection is cut and the client sees the
// response break off.
func TestABodyPassingTheLimitAfterTheResponseBeganCutsTheConnection(t *testing.T) {
	const limit = 64 << 10
	lb := newBalancer(t, balancerOptions{maxBody: limit}, demoBackend(t, "echo").URL)
	pr, pw := io.Pipe()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, lb.url+"/echo", pr)
	var writer sync.WaitGroup
	defer writer.Wait()
	defer pw.Close()
	writer.Go(func() {
		_, _ = pw.Write(make([]byte, 1024)) // enough for the echo to answer
	})
	resp, err := lb.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, want the echo's 200", resp.StatusCode)
	}
	writer.Wait()
	writer.Go(func() {
		_, _ = pw.Write(make([]byte, 2*limit)) // fails once the balancer gives up
	})
	n, err := io.Copy(io.Discard, resp.Body)
	if err == nil {
		t.Errorf("the response ended cleanly after %d bytes; want it cut off", n)
	}
	if n > limit {
		t.Errorf("%d bytes echoed, more than the %d-byte limit", n, limit)
	}
	_ = pr.CloseWithError(errors.New("test over"))
}

// Slowloris: many clients each trickle a header line at a time and never
// finish. Each is cut off once --read-header-timeout has passed, and the
// balancer goes on serving everybody else meanwhile.
func TestSlowlorisClientsAreCutOffWithoutAffectingOthers(t *testing.T) {
	backend := demoBackend(t, "A")
	lb := newBalancer(t, balancerOptions{frontend: FrontendOptions{ReadHeaderTimeout: 300 * time.Millisecond}}, backend.URL)
	const attackers = 20
	closed := make(chan error, attackers)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range attackers {
		c, err := net.Dial("tcp", strings.TrimPrefix(lb.url, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n")
		wg.Go(func() { // trickle a header every 50ms until cut off
			tick := time.NewTicker(50 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
					if _, err := io.WriteString(c, "X-Trickle: 1\r\n"); err != nil {
						return
					}
				}
			}
		})
		wg.Go(func() { // the server's closing ends this read
			_, err := c.Read(make([]byte, 1))
			closed <- err
		})
	}
	defer wg.Wait()
	defer close(stop)

	for i := range 10 {
		if code, _, _ := lb.get(t, "/"); code != http.StatusOK {
			t.Errorf("request %d during the attack: status %d", i, code)
		}
	}
	for range attackers {
		err := <-closed
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatal("a slowloris connection was still open after 10s")
		}
	}
}

// bodyEcho answers with the request body it read, and records on got how
// each read ended (nil: the whole body arrived).
func bodyEcho(t *testing.T, got chan<- error) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			return
		}
		body, err := io.ReadAll(r.Body)
		got <- err
		if err == nil {
			_, _ = w.Write(body)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestAStalledBodyGets408AndTheConnectionCloses(t *testing.T) {
	got := make(chan error, 1)
	lb := newBalancer(t, balancerOptions{bodyTimeout: 200 * time.Millisecond}, bodyEcho(t, got).URL)
	rc := dialRaw(t, lb.url)
	rc.send("POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc") // then nothing
	resp, body := rc.response("POST")
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("status %d (%q), want 408", resp.StatusCode, body)
	}
	if !rc.closed() {
		t.Error("the connection is still open after a 408")
	}
	if err := <-got; err == nil {
		t.Error("the backend received a whole body")
	}
}

func TestASlowBodyThatKeepsComingIsNotCut(t *testing.T) {
	const timeout = time.Second // each piece comes a quarter of it after the last
	t.Run("each piece arrives within the timeout, the whole body takes longer", func(t *testing.T) {
		got := make(chan error, 1)
		lb := newBalancer(t, balancerOptions{bodyTimeout: timeout}, bodyEcho(t, got).URL)
		rc := dialRaw(t, lb.url)
		rc.send("POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\n\r\n")
		start := time.Now()
		tick := time.NewTicker(timeout / 4) // pacing: a slow client
		defer tick.Stop()
		for _, c := range "abcdef" {
			<-tick.C
			rc.send(string(c))
		}
		resp, body := rc.response("POST")
		if resp.StatusCode != http.StatusOK || body != "abcdef" || time.Since(start) < timeout {
			t.Errorf("status %d, body %q after %v; want 200 and the whole body after more than %v",
				resp.StatusCode, body, time.Since(start), timeout)
		}
		if err := <-got; err != nil {
			t.Errorf("the backend's read: %v", err)
		}
	})
	t.Run("a backend slower than the timeout, once the body is in", func(t *testing.T) {
		slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			select {
			case <-time.After(2 * timeout):
			case <-r.Context().Done():
				return
			}
			_, _ = w.Write(body)
		}))
		t.Cleanup(slow.Close)
		lb := newBalancer(t, balancerOptions{bodyTimeout: timeout}, slow.URL)
		resp, err := lb.client.Post(lb.url+"/", "text/plain", strings.NewReader("payload"))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if body, _ := io.ReadAll(resp.Body); resp.StatusCode != http.StatusOK || string(body) != "payload" {
			t.Errorf("status %d, body %q; want 200 and the body echoed", resp.StatusCode, body)
		}
	})
}

func TestIdleConnectionsAreClosed(t *testing.T) {
	lb := newBalancer(t, balancerOptions{frontend: FrontendOptions{
		ReadHeaderTimeout: 200 * time.Millisecond, IdleTimeout: 200 * time.Millisecond,
	}}, demoBackend(t, "A").URL)

	t.Run("a connection that never sends a request is closed", func(t *testing.T) {
		rc := dialRaw(t, lb.url)
		if !rc.closed() {
			t.Error("still open")
		}
	})
	t.Run("a keep-alive connection left idle is closed", func(t *testing.T) {
		rc := dialRaw(t, lb.url)
		rc.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
		if resp, _ := rc.response("GET"); resp.StatusCode != 200 || resp.Close {
			t.Fatalf("status %d, close %v; want a kept-alive 200", resp.StatusCode, resp.Close)
		}
		if !rc.closed() {
			t.Error("still open")
		}
	})
}

// With --max-conns 2, a third connection waits until one of the first two
// closes, then is served.
func TestConnectionsBeyondTheCapWaitForAFreeSlot(t *testing.T) {
	lb := newBalancer(t, balancerOptions{frontend: FrontendOptions{MaxConns: 2}}, demoBackend(t, "A").URL)
	var open []*rawConn
	for range 2 {
		rc := dialRaw(t, lb.url)
		rc.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
		if resp, _ := rc.response("GET"); resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		open = append(open, rc)
	}
	third := dialRaw(t, lb.url) // the kernel completes the handshake; the balancer does not accept
	third.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	_ = third.c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if _, err := third.br.Peek(1); err == nil {
		t.Fatal("the third connection was served while two were open")
	}
	_ = third.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	open[0].c.Close()
	if resp, _ := third.response("GET"); resp.StatusCode != 200 {
		t.Errorf("third connection: status %d after a slot freed", resp.StatusCode)
	}
	lb.log.waitFor(t, 1, "connection limit reached", "max_conns=2")
}
