package e2e

import (
	"bufio"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// echoWebSocketBackend completes a WebSocket handshake on a raw connection
// and echoes bytes until the client's end of stream.
func echoWebSocketBackend(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("hijack: %v", err)
			return
		}
		defer conn.Close()
		sum := sha1.Sum([]byte(r.Header.Get("Sec-WebSocket-Key") + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
		_, _ = io.WriteString(conn, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
			"Sec-WebSocket-Accept: "+base64.StdEncoding.EncodeToString(sum[:])+"\r\n\r\n")
		_, _ = io.Copy(conn, brw.Reader)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// webSocket is a client end of a tunnel through the balancer.
type webSocket struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dialWebSocket(t *testing.T, addr string) *webSocket {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	_, _ = io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	ws := &webSocket{t: t, c: c, br: bufio.NewReader(c)}
	resp, err := http.ReadResponse(ws.br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %v, %v", resp, err)
	}
	return ws
}

func (ws *webSocket) echo(msg string) {
	ws.t.Helper()
	if err := ws.tryEcho(msg); err != nil {
		ws.t.Fatal(err)
	}
}

// tryEcho sends msg and reads it back.
func (ws *webSocket) tryEcho(msg string) error {
	if _, err := io.WriteString(ws.c, msg); err != nil {
		return err
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(ws.br, buf); err != nil || string(buf) != msg {
		return fmt.Errorf("echo: %q, %v", buf, err)
	}
	return nil
}

func TestSIGTERMWaitsForOpenWebSocketsToClose(t *testing.T) {
	backend := echoWebSocketBackend(t)
	lb := start(t, "--listen", "127.0.0.1:0", "--backend", backend.URL, "--shutdown-grace", "30s")
	ws := dialWebSocket(t, lb.waitFor(t, listening))
	ws.echo("before")
	lb.signal(t, syscall.SIGTERM)
	lb.waitFor(t, "shutting down")
	ws.echo("while the balancer drains")
	select {
	case <-lb.exited:
		t.Fatalf("exited with a WebSocket open:\n%s", lb.output())
	default:
	}
	ws.c.Close()
	if code := lb.wait(t); code != 0 {
		t.Errorf("exit status %d, want 0:\n%s", code, lb.output())
	}
	out := lb.output()
	if i, j := strings.Index(out, "path=/ws"), strings.Index(out, "stopped"); i < 0 || j < i {
		t.Errorf("stopped before the WebSocket closed:\n%s", out)
	}
	if strings.Contains(out, "grace period over") {
		t.Errorf("the grace period ran out:\n%s", out)
	}
}

func TestTheGracePeriodEndsOpenWebSockets(t *testing.T) {
	backend := echoWebSocketBackend(t)
	lb := start(t, "--listen", "127.0.0.1:0", "--backend", backend.URL, "--shutdown-grace", "300ms")
	ws := dialWebSocket(t, lb.waitFor(t, listening))
	ws.echo("before")
	lb.signal(t, syscall.SIGTERM)
	if _, err := io.ReadAll(ws.br); err != nil && !strings.Contains(err.Error(), "reset") {
		t.Errorf("the WebSocket ended with %v, want it closed", err)
	}
	if code := lb.wait(t); code != 0 {
		t.Errorf("exit status %d, want 0:\n%s", code, lb.output())
	}
	if !strings.Contains(lb.output(), "grace period over") {
		t.Errorf("no word of the grace period ending:\n%s", lb.output())
	}
}

// TestAnUpgradeLetsOpenWebSocketsFinish: a WebSocket open when the
// balancer hands over to a new process stays with the old one, which
// keeps relaying it after the hand-over and its drain, and exits once it
// closes, well within the grace period.
func TestAnUpgradeLetsOpenWebSocketsFinish(t *testing.T) {
	backend := echoWebSocketBackend(t)
	f := startFamily(t, nil, nil, "--listen", "127.0.0.1:0", "--backend", backend.URL, "--shutdown-grace", "30s")
	addr := f.waitForCount(1, listening)[0]
	old := f.pids()[0]
	ws := dialWebSocket(t, addr)
	ws.echo("before")
	if err := syscall.Kill(old, syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	f.waitForCount(2, listening)
	f.waitForCount(1, "drained") // every other connection of the old process has closed
	if err := ws.tryEcho("after the hand-over"); err != nil {
		t.Fatalf("the WebSocket broke at the hand-over: %v; output:\n%s", err, f.output())
	}
	if err := ws.c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if rest, err := io.ReadAll(ws.br); err != nil || len(rest) != 0 {
		t.Errorf("after half-closing, read %q (%v), want the end of the stream", rest, err)
	}
	ws.c.Close()
	if code := f.reap(old, 20*time.Second); code != 0 {
		t.Errorf("the old process exited %d, want 0", code)
	}
	// The process has exited, but its last lines may still be on their
	// way through the pipe to the test's reader.
	stopped := fmt.Sprintf("stopped: pid=%d", old)
	f.waitForCount(1, regexp.QuoteMeta(stopped))
	out := f.output()
	if i, j := strings.Index(out, "path=/ws"), strings.Index(out, stopped); i < 0 || j < i {
		t.Errorf("the old process stopped before the WebSocket closed:\n%s", out)
	}
	if strings.Contains(out, "grace period over") {
		t.Errorf("the grace period ran out:\n%s", out)
	}
	// The new process serves on the same address.
	ws2 := dialWebSocket(t, addr)
	ws2.echo("to the new process")
	ws2.c.Close()
	newPID := f.pids()[1]
	if err := syscall.Kill(newPID, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := f.reap(newPID, 20*time.Second); code != 0 {
		t.Errorf("the new process exited %d, want 0", code)
	}
}

// TestAReloadThatRemovesItsBackendLetsAnOpenWebSocketFinish: a SIGHUP
// reload that drops a backend stops new requests to it at once, but a
// WebSocket open through it keeps relaying; the backend is forgotten once
// the WebSocket closes.
func TestAReloadThatRemovesItsBackendLetsAnOpenWebSocketFinish(t *testing.T) {
	t.Cleanup(http.DefaultClient.CloseIdleConnections)
	wsBackend := echoWebSocketBackend(t)
	other := demoBackend(t, "other")
	file := writeConfig(t, configWith([]string{wsBackend.URL}, nil))
	lb := start(t, "--config", file, "--listen", "127.0.0.1:0")
	addr := lb.waitFor(t, listening)
	ws := dialWebSocket(t, addr)
	ws.echo("before the reload")

	if err := os.WriteFile(file, []byte(configWith([]string{other}, nil)), 0o644); err != nil {
		t.Fatal(err)
	}
	lb.signal(t, syscall.SIGHUP)
	lb.waitFor(t, `backend removing: backend=`+regexp.QuoteMeta(wsBackend.URL)+` in_flight=1`)
	ws.echo("after the reload")
	if code, body, err := fetch("http://" + addr + "/"); err != nil || code != http.StatusOK || !strings.Contains(body, "other") {
		t.Errorf("a new request after the reload: %d %q %v, want 200 from other", code, body, err)
	}
	if strings.Contains(lb.output(), "backend removed: backend="+wsBackend.URL) {
		t.Fatalf("the backend was forgotten with its WebSocket open:\n%s", lb.output())
	}
	ws.c.Close()
	lb.waitFor(t, `backend removed: backend=`+regexp.QuoteMeta(wsBackend.URL))
}
