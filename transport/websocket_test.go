package transport

import (
	"context"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// wsAccept is the Sec-WebSocket-Accept for key (RFC 6455 §4.2.2).
func wsAccept(key string) string {
	h := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(h[:])
}

const wsKey = "dGhlIHNhbXBsZSBub25jZQ=="

// wsRequest is a WebSocket opening handshake, followed by early bytes.
func wsRequest(early string) string {
	return "GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + wsKey + "\r\nSec-WebSocket-Version: 13\r\n\r\n" + early
}

// wsBackend is a WebSocket origin on a raw hijacked connection: after the
// handshake it echoes bytes until the client half-closes, then answers
// "bye", half-closes itself and waits for the client to close. It reports
// "half-closed" and "closed" on the returned channel. It refuses anything
// that is not an upgrade with 400.
func wsBackend(t *testing.T) (*httptest.Server, <-chan string) {
	t.Helper()
	events := make(chan string, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			return
		}
		if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			http.Error(w, "websocket only", http.StatusBadRequest)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("backend hijack: %v", err)
			return
		}
		defer conn.Close()
		_, _ = io.WriteString(conn, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
			"Sec-WebSocket-Accept: "+wsAccept(r.Header.Get("Sec-WebSocket-Key"))+"\r\n\r\n")
		_, _ = io.Copy(conn, brw.Reader) // echo until the client's end of stream
		events <- "half-closed"
		_, _ = io.WriteString(conn, "bye")
		_ = conn.(interface{ CloseWrite() error }).CloseWrite()
		_, _ = io.Copy(io.Discard, conn)
		events <- "closed"
	}))
	t.Cleanup(srv.Close)
	return srv, events
}

// openWebSocket completes the handshake through the balancer.
func openWebSocket(t *testing.T, lb *balancer, early string) *rawConn {
	t.Helper()
	rc := dialRaw(t, lb.url)
	rc.send(wsRequest(early))
	resp, _ := rc.response("GET")
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d, want 101", resp.StatusCode)
	}
	if got := resp.Header.Get("Sec-WebSocket-Accept"); got != wsAccept(wsKey) {
		t.Fatalf("Sec-WebSocket-Accept %q, want %q", got, wsAccept(wsKey))
	}
	return rc
}

// echo sends msg and reads it back.
func (rc *rawConn) echo(msg string) {
	rc.t.Helper()
	rc.send(msg)
	rc.expect(msg)
}

func (rc *rawConn) expect(msg string) {
	rc.t.Helper()
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(rc.br, buf); err != nil || string(buf) != msg {
		rc.t.Fatalf("read %q (%v), want %q", buf, err, msg)
	}
}

func waitEvent(t *testing.T, events <-chan string, want string) {
	t.Helper()
	select {
	case got := <-events:
		if got != want {
			t.Fatalf("backend event %q, want %q", got, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("no backend event %q", want)
	}
}

// waitInFlight waits until the selector counts want requests in flight to
// the first backend (reports reach it asynchronously).
func waitInFlight(t *testing.T, lb *balancer, want int) {
	t.Helper()
	waitUntil(t, 10*time.Second, fmt.Sprintf("%d in flight", want), func() bool { return lb.status(t)[0].InFlight == want })
}

func TestWebSocketRelaysBothWaysAndHonoursHalfCloseInEachDirection(t *testing.T) {
	backend, events := wsBackend(t)
	lb := newBalancer(t, balancerOptions{}, backend.URL)
	rc := openWebSocket(t, lb, "")
	rc.echo("hello")
	rc.echo(strings.Repeat("x", 100<<10))
	if st := lb.status(t)[0]; st.InFlight != 1 {
		t.Errorf("an open WebSocket is not in flight: %+v", st)
	}

	// Client → backend half-close: the backend sees the end of the stream
	// and can still answer; backend → client half-close: the client sees
	// "bye" and then the end of the stream.
	if err := rc.c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, events, "half-closed")
	rest, err := io.ReadAll(rc.br)
	if err != nil || string(rest) != "bye" {
		t.Fatalf("after half-closing, read %q (%v), want \"bye\" then end of stream", rest, err)
	}
	rc.c.Close()
	waitEvent(t, events, "closed")
	waitInFlight(t, lb, 0)
	if st := lb.status(t)[0]; st.Requests != 1 || st.Failures != 0 {
		t.Errorf("after the WebSocket closed: %+v, want one request and no failure", st)
	}
	lb.log.waitFor(t, 1, "path=/chat", "status=101")
}

func TestBytesSentRightBehindTheUpgradeRequestAreRelayed(t *testing.T) {
	backend, _ := wsBackend(t)
	lb := newBalancer(t, balancerOptions{}, backend.URL)
	rc := openWebSocket(t, lb, "early")
	rc.expect("early")
}

// An upgrade the backend refuses leaves an HTTP/1.1 connection that the
// framing guard no longer checks, so it is closed after the answer.
func TestARefusedUpgradeClosesTheConnection(t *testing.T) {
	backend := demoBackend(t, "plain") // answers 404 to GET /chat, upgrade or not
	lb := newBalancer(t, balancerOptions{}, backend.URL)
	rc := dialRaw(t, lb.url)
	rc.send(wsRequest("") + "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	resp, _ := rc.response("GET")
	if resp.StatusCode != http.StatusNotFound || !resp.Close {
		t.Errorf("status %d, close %v; want the backend's 404 with Connection: close", resp.StatusCode, resp.Close)
	}
	if !rc.closed() {
		t.Error("the connection stayed open for the request behind the upgrade")
	}
}

// h2c smuggling: a backend that accepted "Upgrade: h2c" would give the
// client an HTTP/2 connection straight to it. The upgrade is dropped.
func TestAnH2CUpgradeIsNeverForwarded(t *testing.T) {
	backend, got := recordingBackend(t)
	lb := newBalancer(t, balancerOptions{}, backend.URL)
	rc := dialRaw(t, lb.url)
	rc.send("GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n")
	if resp, _ := rc.response("GET"); resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, want 200 over HTTP/1.1", resp.StatusCode)
	}
	r := <-got
	for _, h := range []string{"Upgrade", "Http2-Settings"} {
		if v := r.Header.Get(h); v != "" {
			t.Errorf("backend got %s: %q", h, v)
		}
	}
}

func TestGracefulShutdownWaitsForAnOpenWebSocket(t *testing.T) {
	backend, events := wsBackend(t)
	lb := newBalancer(t, balancerOptions{}, backend.URL)
	rc := openWebSocket(t, lb, "")
	rc.echo("before")

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- lb.front.Shutdown(ctx) }()
	waitRefused(t, lb)
	rc.echo("during shutdown")
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned (%v) with a WebSocket open", err)
	default:
	}
	_ = rc.c.(*net.TCPConn).CloseWrite()
	waitEvent(t, events, "half-closed")
	rc.c.Close()
	if err := <-done; err != nil {
		t.Errorf("Shutdown: %v, want nil once the WebSocket closed", err)
	}
}

func TestTheEndOfTheGracePeriodClosesOpenWebSockets(t *testing.T) {
	backend, events := wsBackend(t)
	lb := newBalancer(t, balancerOptions{}, backend.URL)
	rc := openWebSocket(t, lb, "")
	rc.echo("before")

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := lb.front.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown: %v, want the grace period's deadline", err)
	}
	if _, err := io.ReadAll(rc.br); err != nil && !errors.Is(err, net.ErrClosed) && !isReset(err) {
		t.Errorf("the client's read ended with %v", err)
	}
	waitEvent(t, events, "half-closed")
	waitInFlight(t, lb, 0)
}

// waitRefused waits until the balancer no longer accepts connections.
func waitRefused(t *testing.T, lb *balancer) {
	t.Helper()
	waitUntil(t, 10*time.Second, "connections are refused", func() bool {
		c, err := net.Dial("tcp", strings.TrimPrefix(lb.url, "http://"))
		if err != nil {
			return true
		}
		c.Close()
		return false
	})
}

func isReset(err error) bool { return err != nil && strings.Contains(err.Error(), "reset by peer") }
