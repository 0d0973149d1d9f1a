package transport

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sourcegraph/conc"
)

// rawBackend is a backend on 127.0.0.1 whose every connection is served
// by a script that writes its bytes by hand: the misbehaviour net/http's
// server would never commit. Its accept loop and one goroutine per
// connection are owned by the backend's WaitGroup, which the test's
// cleanup waits for after closing the listener and ending the scripts.
//
// After its script, a connection is read until the proxy closes it (EOF)
// or the test ends; ended counts the connections the proxy closed, so that
// the test can check none of them leaked. It takes up to 1,024
// connections.
type rawBackend struct {
	url      string
	accepted chan struct{} // one value per connection accepted
	ended    chan struct{} // one value per connection the proxy closed
}

// script serves one connection: br reads it, c writes it. done closes
// when the test ends; a script that would go on for ever stops then.
type script func(c net.Conn, br *bufio.Reader, done <-chan struct{})

func newRawBackend(t *testing.T, s script) *rawBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &rawBackend{
		url:      "http://" + ln.Addr().String(),
		accepted: make(chan struct{}, 1024), ended: make(chan struct{}, 1024),
	}
	done := make(chan struct{})
	var wg conc.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return // the listener closed: the test has ended
			}
			b.accepted <- struct{}{}
			finished := make(chan struct{})
			wg.Go(func() { // ends a read or write the script is stuck in when the test ends
				select {
				case <-done:
					_ = c.SetDeadline(time.Now())
				case <-finished:
				}
			})
			wg.Go(func() {
				defer close(finished)
				defer c.Close()
				br := bufio.NewReader(c)
				s(c, br, done)
				// EOF or a reset: the proxy closed. A timeout: the test
				// ended first.
				var ne net.Error
				if _, err := io.Copy(io.Discard, br); !errors.As(err, &ne) || !ne.Timeout() {
					b.ended <- struct{}{}
				}
			})
		}
	})
	t.Cleanup(func() { close(done); ln.Close(); wg.Wait() })
	return b
}

// allClosed fails the test unless the proxy has closed every connection
// it opened to b once its idle ones are closed: none leaked.
func (b *rawBackend) allClosed(t *testing.T, lb *balancer) {
	t.Helper()
	lb.tr.CloseIdleConnections()
	n, closed := len(b.accepted), 0
	deadline := time.After(5 * time.Second)
	for closed < n {
		select {
		case <-b.ended:
			closed++
		case <-deadline:
			t.Errorf("the proxy left %d of its %d connections to the backend open", n-closed, n)
			return
		}
	}
}

// readHead reads one request head and returns its path; a health probe
// (GET /health) is answered 200 and skipped. It returns "" when the
// connection ends first.
func readHead(c net.Conn, br *bufio.Reader) string {
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return ""
		}
		_, _ = io.Copy(io.Discard, req.Body)
		if req.URL.Path != "/health" {
			return req.URL.Path
		}
		if _, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"); err != nil {
			return ""
		}
	}
}

// answer is a script that reads a request, writes raw in answer and
// closes its side of the connection: it answers nothing more.
func answer(raw string) script {
	return func(c net.Conn, br *bufio.Reader, _ <-chan struct{}) {
		if readHead(c, br) != "" {
			_, _ = io.WriteString(c, raw)
		}
		_ = c.(*net.TCPConn).CloseWrite()
	}
}

// headerFlood writes a 200's status line and then header lines for ever,
// until the proxy stops reading.
func headerFlood(c net.Conn, br *bufio.Reader, done <-chan struct{}) {
	if readHead(c, br) == "" {
		return
	}
	if _, err := io.WriteString(c, "HTTP/1.1 200 OK\r\n"); err != nil {
		return
	}
	line := []byte("X-Flood: " + strings.Repeat("f", 100) + "\r\n")
	block := []byte(strings.Repeat(string(line), 100))
	for {
		select {
		case <-done:
			return
		default:
		}
		if _, err := c.Write(block); err != nil {
			return
		}
	}
}

// endlessChunks starts a chunked 200 and sends one chunk, then nothing
// more, keeping the connection open: the body never ends.
func endlessChunks(c net.Conn, br *bufio.Reader, _ <-chan struct{}) {
	if readHead(c, br) != "" {
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nfirst\n\r\n")
	}
}

// endlessStream sends chunks for ever, as fast as the proxy takes them.
func endlessStream(c net.Conn, br *bufio.Reader, done <-chan struct{}) {
	if readHead(c, br) == "" {
		return
	}
	if _, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"); err != nil {
		return
	}
	chunk := fmt.Appendf(nil, "%x\r\n%s\r\n", 4096, strings.Repeat("s", 4096))
	for {
		select {
		case <-done:
			return
		default:
		}
		if _, err := c.Write(chunk); err != nil {
			return
		}
	}
}

// early answers as soon as it connects, before reading any request, and
// closes its side; it then reads what was sent.
func early(raw string) script {
	return func(c net.Conn, br *bufio.Reader, _ <-chan struct{}) {
		_, _ = io.WriteString(c, raw)
		_ = c.(*net.TCPConn).CloseWrite()
	}
}

// outcome is what a client got for one request.
type outcome struct {
	status int
	body   string
	err    error // reading the body; or sending, when status is 0
}

func (o outcome) String() string {
	return fmt.Sprintf("status %d, body %q, error %v", o.status, o.body, o.err)
}

// clean502 is the answer most misbehaviours should get: the balancer's
// own 502, whole.
func clean502(t *testing.T, o outcome) {
	t.Helper()
	if o.status != http.StatusBadGateway || o.err != nil || !strings.HasPrefix(o.body, "502 Bad Gateway: ") {
		t.Errorf("got %v; want the balancer's whole 502", o)
	}
}

// cutShort accepts a response cut short: the connection closed with no
// answer, or a 200 whose body ended early.
func cutShort(t *testing.T, o outcome) {
	t.Helper()
	if o.err == nil || o.status != 0 && o.status != http.StatusOK {
		t.Errorf("got %v; want the connection closed, or 200 and the body cut short", o)
	}
}

// Every way of misbehaving a backend can think of gets the client a clean
// answer (mostly 502) and costs nothing else: Roundhouse does not crash or
// hang, closes every connection it opened to the backend (the package's
// TestMain checks for leaked goroutines), and a healthy backend beside the
// misbehaving one stays UP and keeps getting its share of requests.
func TestMisbehavingBackendsGetTheClientACleanAnswer(t *testing.T) {
	const tooBig = 1 << 20 // more than any response header limit
	tests := []struct {
		name           string
		script         script
		method         string
		body           string
		requestTimeout time.Duration // 0: none
		check          func(t *testing.T, o outcome)
	}{
		{name: "a status line that is not HTTP gets 502", script: answer("SSH-2.0-OpenSSH_9.6\r\n\r\n"), check: clean502},
		{name: "a status code that is not a number gets 502", script: answer("HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n"), check: clean502},
		{name: "a status line without a code gets 502", script: answer("HTTP/1.1\r\nContent-Length: 0\r\n\r\n"), check: clean502},
		{name: "a protocol that is not HTTP/x.y gets 502", script: answer("HTTP/one 200 OK\r\nContent-Length: 0\r\n\r\n"), check: clean502},
		{name: "a status code of four digits gets 502", script: answer("HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n"), check: clean502},
		{name: "a header line without a colon gets 502", script: answer("HTTP/1.1 200 OK\r\nno colon here\r\nContent-Length: 0\r\n\r\n"), check: clean502},
		{name: "one response header over the limit gets 502",
			script: answer("HTTP/1.1 200 OK\r\nX-Big: " + strings.Repeat("b", tooBig) + "\r\nContent-Length: 0\r\n\r\n"), check: clean502},
		{name: "a header flood that never ends gets 502", script: headerFlood, check: clean502},
		{name: "an invalid Content-Length gets 502", script: answer("HTTP/1.1 200 OK\r\nContent-Length: 12abc\r\n\r\nhello"), check: clean502},
		{name: "a negative Content-Length gets 502", script: answer("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nhello"), check: clean502},
		{name: "two conflicting Content-Lengths get 502",
			script: answer("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"), check: clean502},
		{
			// RFC 9112 §6.3: chunked overrides the length, which an
			// intermediary removes before forwarding; net/http does so,
			// and the client gets the message re-framed.
			name:   "Content-Length with chunked is relayed by its chunks",
			script: answer("HTTP/1.1 200 OK\r\nContent-Length: 50\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
			check: func(t *testing.T, o outcome) {
				if o.status != http.StatusOK || o.body != "hello" || o.err != nil {
					t.Errorf("got %v; want 200 %q", o, "hello")
				}
			},
		},
		{name: "an unknown transfer coding gets 502",
			script: answer("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, zstd\r\n\r\nhello"), check: clean502},
		{name: "a 101 to a request that asked for no upgrade gets 502",
			script: answer("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nraw bytes"), check: clean502},
		{name: "a 101 without Upgrade headers gets 502",
			script: answer("HTTP/1.1 101 Switching Protocols\r\n\r\nraw bytes"), check: clean502},
		{
			// The status has gone to the client before the body stalls, so
			// no 502 can follow: --request-timeout cuts the response, and
			// the client sees the body end early.
			name: "a chunked body that never ends is cut at the request timeout", script: endlessChunks,
			requestTimeout: 300 * time.Millisecond,
			check: func(t *testing.T, o outcome) {
				if o.status != http.StatusOK || o.body != "first\n" || o.err == nil {
					t.Errorf("got %v; want 200, the first chunk, then the body cut short", o)
				}
			},
		},
		{
			name: "an endless stream is relayed, not buffered, until the request timeout", script: endlessStream,
			requestTimeout: 300 * time.Millisecond,
			check: func(t *testing.T, o outcome) {
				if o.status != http.StatusOK || o.err == nil || len(o.body) < 4096 {
					t.Errorf("got status %d, %d bytes, error %v; want 200, a stream, then the body cut short", o.status, len(o.body), o.err)
				}
			},
		},
		{
			name: "a chunked body that breaks off mid-chunk is cut short", script: answer("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n100\r\nonly this"),
			check: cutShort,
		},
		{
			// The response is whole by its own framing; the bytes after
			// it are the backend's mistake and never reach anyone.
			name:   "a body longer than its Content-Length is relayed to its length",
			script: answer("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello, and then some"),
			check: func(t *testing.T, o outcome) {
				if o.status != http.StatusOK || o.body != "hello" || o.err != nil {
					t.Errorf("got %v; want 200 %q", o, "hello")
				}
			},
		},
		{
			// net/http's server has not sent the status yet (it is
			// buffered with the first bytes of the body) when the copy
			// fails and ReverseProxy aborts: the client's connection
			// closes with no answer at all, or with a cut body.
			name:   "a body shorter than its Content-Length is cut short",
			script: answer("HTTP/1.1 200 OK\r\nContent-Length: 50\r\nConnection: close\r\n\r\nhello"),
			check:  cutShort,
		},
		{
			// An answer before the request is read is legal HTTP (an early
			// 503, say): whatever the backend said is relayed whole.
			name:   "an answer before the request was read is relayed",
			script: early("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbusy"),
			check: func(t *testing.T, o outcome) {
				if o.err != nil || !(o.status == 503 && o.body == "busy" || o.status == 502) {
					t.Errorf("got %v; want the backend's 503 or a clean 502", o)
				}
			},
		},
		{
			name:   "an answer before a large upload was read is relayed",
			script: early("HTTP/1.1 413 Content Too Large\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbig!"),
			method: http.MethodPost, body: strings.Repeat("u", 4<<20),
			// A client still sending when the answer comes may see its
			// write reset instead (net/http's server closes a connection
			// whose unread body passes 256 KiB); the access log then shows
			// what it was sent.
			check: func(t *testing.T, o outcome) {
				if o.status == 0 && o.err != nil && strings.Contains(o.err.Error(), "write") {
					return
				}
				if o.err != nil || !(o.status == 413 && o.body == "big!" || o.status == 502) {
					t.Errorf("got %v; want the backend's 413 or a clean 502", o)
				}
			},
		},
		{
			name:   "an answer and a close before the request was read is relayed or 502",
			script: early("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nearly"),
			check: func(t *testing.T, o outcome) {
				if o.err != nil || !(o.status == 200 && o.body == "early" || o.status == 502) {
					t.Errorf("got %v; want the backend's 200 or a clean 502", o)
				}
			},
		},
	}
	healthy := demoBackend(t, "H")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bad := newRawBackend(t, tt.script)
			lb := newBalancer(t, balancerOptions{monitor: fallNever(), requestTimeout: tt.requestTimeout}, bad.url, healthy.URL)
			method := tt.method
			if method == "" {
				method = http.MethodGet
			}
			// Round robin, no retries: the misbehaving backend takes the
			// first and third requests, the healthy one the others.
			for i := range 4 {
				o := sendOnce(t, lb, method, tt.body)
				if i%2 == 0 {
					tt.check(t, o)
					continue
				}
				want := "Hello from H\n"
				if method == http.MethodPost {
					want = tt.body // the demo backend's /echo
				}
				if o.status != http.StatusOK || o.body != want || o.err != nil {
					t.Errorf("request %d, to the healthy backend: %v", i, o)
				}
			}
			st := lb.settled(t)
			if !st[1].Up || st[1].State != "up" || st[1].Failures != 0 {
				t.Errorf("the healthy backend is %s (up %v, %d failures), want up", st[1].State, st[1].Up, st[1].Failures)
			}
			if !st[0].Up {
				t.Errorf("the misbehaving backend was marked DOWN (%s): a garbled answer is no failure to connect", st[0].Reason)
			}
			bad.allClosed(t, lb)
		})
	}
}

// sendOnce makes one request through lb, on a connection of its own (a
// client retries a request on a reused connection that closes, which would
// hide what happened), and reads the whole answer: GET /, or POST /echo.
func sendOnce(t *testing.T, lb *balancer, method, body string) outcome {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	path := "/"
	if method == http.MethodPost {
		path = "/echo"
	}
	req, err := http.NewRequestWithContext(ctx, method, lb.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		return outcome{err: err}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatalf("%s: no answer after 20s", method)
	}
	return outcome{status: resp.StatusCode, body: string(data), err: err}
}
