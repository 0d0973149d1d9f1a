package e2e

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// faultBackend is one of the matrix's backends, served in the test process
// on 127.0.0.1. It answers
//
//	GET /health      200
//	GET /            "Hello from NAME"
//	POST /sha256     the body's SHA-256 in hex
//	GET /stream      faultStreamChunks lines, one every 10ms, flushed
//	a WebSocket upgrade: 101, then every byte echoed
//
// with X-Backend: NAME, and records the request ID of every POST it sees,
// so that a replayed non-idempotent request shows.
type faultBackend struct {
	name string
	addr string

	mu    sync.Mutex // guards posts and conns; test helpers may lock
	posts map[string]int
	conns map[net.Conn]bool // hijacked WebSocket connections
}

// faultStreamChunks is how many lines GET /stream sends.
const faultStreamChunks = 16

// faultStreamLine is line i of NAME's stream: 64 bytes.
func faultStreamLine(name string, i int) string {
	return fmt.Sprintf("%-63s\n", fmt.Sprintf("chunk %02d of %s", i, name))
}

// faultStartBackend serves a faultBackend until the test ends.
func faultStartBackend(t *testing.T, name string) *faultBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &faultBackend{name: name, addr: ln.Addr().String(), posts: map[string]int{}, conns: map[net.Conn]bool{}}
	srv := &http.Server{Handler: b, ReadHeaderTimeout: 10 * time.Second}
	var wg sync.WaitGroup
	wg.Go(func() { _ = srv.Serve(ln) }) // ends at Close below
	t.Cleanup(func() {
		_ = srv.Close()
		b.mu.Lock()
		for c := range b.conns {
			c.Close()
		}
		b.mu.Unlock()
		wg.Wait()
	})
	return b
}

func (b *faultBackend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Backend", b.name)
	switch {
	case r.URL.Path == "/health":
	case strings.EqualFold(r.Header.Get("Upgrade"), "websocket"):
		b.webSocket(w, r)
	case r.Method == http.MethodPost && r.URL.Path == "/sha256":
		b.mu.Lock()
		b.posts[r.Header.Get("X-Request-ID")]++
		b.mu.Unlock()
		h := sha256.New()
		if _, err := io.Copy(h, r.Body); err != nil {
			return // the balancer or the fault cut the body
		}
		_, _ = io.WriteString(w, hex.EncodeToString(h.Sum(nil)))
	case r.URL.Path == "/stream":
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		rc := http.NewResponseController(w)
		for i := range faultStreamChunks {
			if _, err := io.WriteString(w, faultStreamLine(b.name, i)); err != nil {
				return
			}
			_ = rc.Flush()
			select {
			case <-tick.C:
			case <-r.Context().Done():
				return
			}
		}
	default:
		_, _ = io.WriteString(w, "Hello from "+b.name)
	}
}

// webSocket completes the handshake on the raw connection and echoes bytes
// until the peer's end of stream (or the test's end closes it).
func (b *faultBackend) webSocket(w http.ResponseWriter, r *http.Request) {
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	b.mu.Lock()
	b.conns[conn] = true
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		delete(b.conns, conn)
		b.mu.Unlock()
		conn.Close()
	}()
	sum := sha1.Sum([]byte(r.Header.Get("Sec-WebSocket-Key") + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	_, _ = io.WriteString(conn, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"X-Backend: "+b.name+"\r\nSec-WebSocket-Accept: "+base64.StdEncoding.EncodeToString(sum[:])+"\r\n\r\n")
	_, _ = io.Copy(conn, brw.Reader)
}

// addPosts adds to into how many times this backend saw each POST's ID.
func (b *faultBackend) addPosts(into map[string]int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for id, n := range b.posts {
		into[id] += n
	}
}
