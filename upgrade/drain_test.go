package upgrade

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"
)

// drainServer serves h through a Drainer on a loopback socket until the
// test ends.
func drainServer(t *testing.T, h http.Handler) (*Drainer, net.Listener) {
	t.Helper()
	d := NewDrainer()
	ctx, cancel := context.WithCancel(context.Background())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: d.Handler(h), ConnState: d.ConnState}
	var wg sync.WaitGroup
	wg.Go(func() { d.Run(ctx) })
	wg.Go(func() { _ = srv.Serve(ln) })
	t.Cleanup(func() {
		_ = srv.Close()
		cancel()
		wg.Wait()
	})
	return d, ln
}

// conn is a raw client connection that sends one request at a time.
type conn struct {
	net.Conn
	r *bufio.Reader
}

func dial(t *testing.T, ln net.Listener) *conn {
	t.Helper()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &conn{c, bufio.NewReader(c)}
}

// get sends GET path and returns the response's Connection header and body.
func (c *conn) get(t *testing.T, path string) (connection, body string) {
	t.Helper()
	if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(c.r, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.Close { // ReadResponse takes "Connection: close" out of the header
		connection = "close"
	}
	return connection, string(b)
}

func closed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	case <-time.After(50 * time.Millisecond):
		return false
	}
}

func TestDrainerClosesEachConnectionAfterItsNextResponse(t *testing.T) {
	release := make(chan struct{})
	arrived := make(chan struct{}, 1)
	d, ln := drainServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			arrived <- struct{}{}
			<-release
		}
		_, _ = io.WriteString(w, "ok")
	}))
	idle, busy := dial(t, ln), dial(t, ln)
	if c, _ := idle.get(t, "/"); c != "" {
		t.Fatalf("before draining: Connection %q, want none", c)
	}
	type answer struct{ connection, body string }
	slow := make(chan answer, 1)
	go func() {
		c, b := busy.get(t, "/slow")
		slow <- answer{c, b}
	}()
	<-arrived

	done, err := d.Drain(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if closed(done) {
		t.Fatal("drained with two connections open")
	}
	close(release)
	if a := <-slow; a.connection != "close" || a.body != "ok" {
		t.Errorf("the request in flight got Connection %q, body %q; want close, ok", a.connection, a.body)
	}
	if closed(done) {
		t.Fatal("drained with the idle connection open")
	}
	// The idle connection's next request is served, then it closes.
	if c, b := idle.get(t, "/"); c != "close" || b != "ok" {
		t.Errorf("the idle connection's next request got Connection %q, body %q; want close, ok", c, b)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("not drained after every connection closed")
	}
	// Both connections were closed by the server.
	for _, c := range []*conn{idle, busy} {
		if _, err := c.r.ReadByte(); err != io.EOF {
			t.Errorf("connection still open: %v", err)
		}
	}
}

func TestDrainWithNothingOpenIsAtOnce(t *testing.T) {
	d, _ := drainServer(t, http.NotFoundHandler())
	done, err := d.Drain(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("not drained with no connection")
	}
}
