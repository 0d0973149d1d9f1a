package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	mathrand "math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// faultResult is what the client saw of one operation.
type faultResult struct {
	kind    string // GET, POST, stream or ws
	id      string // its X-Request-ID
	start   time.Time
	dur     time.Duration
	status  int    // 0: no response
	backend string // X-Backend of the answer; "" if none
	// fail is "" for a correct answer, "before" when the client got no
	// response or an error status (nothing of the backend's answer),
	// "after" when the answer broke after it began (a cut body or tunnel),
	// and "mismatch" for a complete answer with the wrong bytes.
	fail string
	err  string
}

// savable reports whether a retry on another backend could have saved a
// failed operation: it failed before any of the answer reached the client,
// and repeating it is harmless (not a POST).
func (r faultResult) savable() bool { return r.fail == "before" && r.kind != http.MethodPost }

// faultLoad is the matrix's steady mixed load on the balancer at url: six
// HTTP clients at 25 operations a second each (half GET /, three in eight
// POST /sha256 with a random body of up to 16 KiB, one in eight a stream)
// and one WebSocket client that opens a tunnel, echoes five messages and
// closes it, five times a second.
type faultLoad struct {
	url, addr string
	client    *http.Client
	phase     string

	mu      sync.Mutex // guards results; test helpers may lock
	results []faultResult
	n       int
}

// run sends the load until ctx is done; every goroutine it starts has ended
// when it returns.
func (l *faultLoad) run(ctx context.Context) {
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Go(func() {
			tick := time.NewTicker(40 * time.Millisecond)
			defer tick.Stop()
			for i := w; ; i++ {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				switch i % 8 {
				case 0, 2, 4, 6:
					l.record(l.get(ctx, "GET", "/"))
				case 1, 3, 5:
					l.record(l.post(ctx))
				default:
					l.record(l.get(ctx, "stream", "/stream"))
				}
			}
		})
	}
	wg.Go(func() {
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			l.record(l.webSocket())
		}
	})
	wg.Wait()
}

func (l *faultLoad) record(r faultResult) {
	r.dur = time.Since(r.start)
	l.mu.Lock()
	l.results = append(l.results, r)
	l.mu.Unlock()
}

// take returns the results so far and starts afresh.
func (l *faultLoad) take() []faultResult {
	l.mu.Lock()
	defer l.mu.Unlock()
	rs := l.results
	l.results = nil
	return rs
}

func (l *faultLoad) newID() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.n++
	return fmt.Sprintf("%s-%d", l.phase, l.n)
}

// do sends req (with its ID) and checks the answer with want.
func (l *faultLoad) do(kind string, req *http.Request, want func(backend string, body []byte) bool) faultResult {
	r := faultResult{kind: kind, id: l.newID(), start: time.Now()}
	req.Header.Set("X-Request-ID", r.id)
	resp, err := l.client.Do(req)
	if err != nil {
		r.fail, r.err = "before", err.Error()
		return r
	}
	defer resp.Body.Close()
	r.status, r.backend = resp.StatusCode, resp.Header.Get("X-Backend")
	body, err := io.ReadAll(resp.Body)
	switch {
	case resp.StatusCode != http.StatusOK:
		r.fail, r.err = "before", strings.TrimSpace(string(body))
	case err != nil:
		r.fail, r.err = "after", err.Error()
	case !want(r.backend, body):
		r.fail, r.err = "mismatch", fmt.Sprintf("%d bytes: %.80q", len(body), body)
	}
	return r
}

func (l *faultLoad) get(ctx context.Context, kind, path string) faultResult {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, l.url+path, nil)
	return l.do(kind, req, func(backend string, body []byte) bool {
		if kind == "GET" {
			return string(body) == "Hello from "+backend
		}
		var want strings.Builder
		for i := range faultStreamChunks {
			want.WriteString(faultStreamLine(backend, i))
		}
		return string(body) == want.String()
	})
}

func (l *faultLoad) post(ctx context.Context) faultResult {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	body := make([]byte, 1+mathrand.IntN(16<<10))
	_, _ = rand.Read(body)
	sum := sha256.Sum256(body)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, l.url+"/sha256", bytes.NewReader(body))
	return l.do(http.MethodPost, req, func(_ string, got []byte) bool {
		return string(got) == hex.EncodeToString(sum[:])
	})
}

// webSocket opens a tunnel, echoes five messages through it and closes it.
func (l *faultLoad) webSocket() faultResult {
	r := faultResult{kind: "ws", id: l.newID(), start: time.Now()}
	c, err := net.DialTimeout("tcp", l.addr, 5*time.Second)
	if err != nil {
		r.fail, r.err = "before", err.Error()
		return r
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(15 * time.Second))
	_, _ = io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-Request-ID: "+r.id+"\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		r.fail, r.err = "before", err.Error()
		return r
	}
	r.status, r.backend = resp.StatusCode, resp.Header.Get("X-Backend")
	if resp.StatusCode != http.StatusSwitchingProtocols {
		r.fail, r.err = "before", resp.Status
		return r
	}
	r.status = http.StatusOK // counted as a success below
	for i := range 5 {
		msg := fmt.Sprintf("%s message %d\n", r.id, i)
		if _, err := io.WriteString(c, msg); err != nil {
			r.fail, r.err = "after", err.Error()
			return r
		}
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(br, got); err != nil {
			r.fail, r.err = "after", err.Error()
			return r
		}
		if string(got) != msg {
			r.fail, r.err = "mismatch", fmt.Sprintf("%q", got)
			return r
		}
	}
	return r
}
