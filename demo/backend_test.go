package demo

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

// testTimeout bounds every request a test makes.
const testTimeout = 20 * time.Second

// newServer starts a real HTTP server running Handler("a"), closed when the
// test ends.
func newServer(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(Handler("a"))
	t.Cleanup(srv.Close)
	return srv
}

// newWatchedServer is newServer whose returned channel is closed when the
// first request's handler returns, so tests can check the handler stopped.
func newWatchedServer(t *testing.T) (*httptest.Server, <-chan struct{}) {
	t.Helper()
	h := Handler("a")
	done := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer close(done)
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, done
}

// do sends a request to srv and returns the response, whose body is closed
// when the test ends.
func do(t *testing.T, ctx context.Context, srv *httptest.Server, method, path string, body io.Reader) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, srv.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// readAll reads the whole response body.
func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading body: %v", err)
	}
	return string(b)
}

// waitDone fails the test unless done is closed within testTimeout.
func waitDone(t *testing.T, done <-chan struct{}) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(testTimeout):
		t.Fatal("handler still running after the client went away")
	}
}

func TestSimpleEndpoints(t *testing.T) {
	srv := newServer(t)
	tests := []struct {
		name       string
		method     string
		path       string
		wantStatus int
		wantBody   string // checked only when not empty
	}{
		{"root says hello from the backend name", "GET", "/", 200, "Hello from a\n"},
		{"health says ok", "GET", "/health", 200, "ok\n"},
		{"unknown path is not found", "GET", "/nope", 404, ""},
		{"path below root is not found", "GET", "/x/y", 404, ""},
		{"wrong method is not allowed", "POST", "/health", 405, ""},
		{"get on echo is not allowed", "GET", "/echo", 405, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
			defer cancel()
			resp := do(t, ctx, srv, tt.method, tt.path, nil)
			body := readAll(t, resp)
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("status = %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			if tt.wantBody != "" && body != tt.wantBody {
				t.Errorf("body = %q, want %q", body, tt.wantBody)
			}
			if got := resp.Header.Get("X-Backend"); got != "a" {
				t.Errorf("X-Backend = %q, want %q", got, "a")
			}
		})
	}
}

func TestEcho(t *testing.T) {
	srv := newServer(t)
	tests := []struct {
		name            string
		size            int
		contentType     string
		wantContentType string
	}{
		{"echo returns an empty body unchanged", 0, "", "application/octet-stream"},
		{"echo returns a 10 MiB body unchanged", 10 << 20, "", "application/octet-stream"},
		{"echo keeps the request content type", 1000, "text/plain", "text/plain"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
			defer cancel()
			payload := make([]byte, tt.size)
			rand.Read(payload)
			req, err := http.NewRequestWithContext(ctx, "POST", srv.URL+"/echo", bytes.NewReader(payload))
			if err != nil {
				t.Fatal(err)
			}
			if tt.contentType != "" {
				req.Header.Set("Content-Type", tt.contentType)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()

			h := sha256.New()
			n, err := io.Copy(h, resp.Body)
			if err != nil {
				t.Fatalf("reading body after %d bytes: %v", n, err)
			}
			if resp.StatusCode != 200 {
				t.Errorf("status = %d, want 200", resp.StatusCode)
			}
			if n != int64(tt.size) {
				t.Errorf("got %d bytes back, want %d", n, tt.size)
			}
			if want := sha256.Sum256(payload); !bytes.Equal(h.Sum(nil), want[:]) {
				t.Error("echoed body differs from the request body")
			}
			if got := resp.Header.Get("Content-Type"); got != tt.wantContentType {
				t.Errorf("Content-Type = %q, want %q", got, tt.wantContentType)
			}
		})
	}
}

func TestBytes(t *testing.T) {
	srv := newServer(t)
	for _, n := range []int{0, 1, 27, 100000} {
		t.Run("bytes returns exactly "+strconv.Itoa(n)+" bytes", func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
			defer cancel()
			resp := do(t, ctx, srv, "GET", "/bytes?n="+strconv.Itoa(n), nil)
			body := readAll(t, resp)
			if resp.StatusCode != 200 {
				t.Fatalf("status = %d, want 200", resp.StatusCode)
			}
			if len(body) != n {
				t.Errorf("len(body) = %d, want %d", len(body), n)
			}
			if resp.ContentLength != int64(n) {
				t.Errorf("Content-Length = %d, want %d", resp.ContentLength, n)
			}
			want := strings.Repeat(bytesLine, n/len(bytesLine)+1)[:n]
			if body != want {
				t.Error("body does not follow the alphabet pattern")
			}
		})
	}
}

func TestBadParams(t *testing.T) {
	srv := newServer(t)
	tests := []struct {
		name     string
		path     string
		wantWord string // the parameter the error message must name
	}{
		{"bytes without n is rejected", "/bytes", "bad n"},
		{"bytes with a word for n is rejected", "/bytes?n=lots", "bad n"},
		{"bytes with negative n is rejected", "/bytes?n=-1", "bad n"},
		{"bytes above one GiB is rejected", "/bytes?n=1073741825", "bad n"},
		{"slow without d is rejected", "/slow", "bad d"},
		{"slow with a bare number is rejected", "/slow?d=5", "bad d"},
		{"slow with negative d is rejected", "/slow?d=-1s", "bad d"},
		{"slow above ten minutes is rejected", "/slow?d=11m", "bad d"},
		{"sse with negative n is rejected", "/sse?n=-1", "bad n"},
		{"sse with too many events is rejected", "/sse?n=100001", "bad n"},
		{"sse with a word for every is rejected", "/sse?n=1&every=often", "bad every"},
		{"sse with every above one minute is rejected", "/sse?n=1&every=2m", "bad every"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
			defer cancel()
			resp := do(t, ctx, srv, "GET", tt.path, nil)
			body := readAll(t, resp)
			if resp.StatusCode != 400 {
				t.Errorf("status = %d, want 400", resp.StatusCode)
			}
			if !strings.Contains(body, tt.wantWord) {
				t.Errorf("body = %q, want it to contain %q", body, tt.wantWord)
			}
			if got := resp.Header.Get("X-Backend"); got != "a" {
				t.Errorf("X-Backend = %q, want %q", got, "a")
			}
		})
	}
}

func TestSlow(t *testing.T) {
	srv := newServer(t)
	tests := []struct {
		name     string
		d        time.Duration
		wantBody string
	}{
		{"slow with zero delay answers", 0, "slept 0s\n"},
		{"slow answers after the delay", 20 * time.Millisecond, "slept 20ms\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
			defer cancel()
			start := time.Now()
			resp := do(t, ctx, srv, "GET", "/slow?d="+tt.d.String(), nil)
			body := readAll(t, resp)
			if elapsed := time.Since(start); elapsed < tt.d {
				t.Errorf("answered after %v, want at least %v", elapsed, tt.d)
			}
			if resp.StatusCode != 200 || body != tt.wantBody {
				t.Errorf("got %d %q, want 200 %q", resp.StatusCode, body, tt.wantBody)
			}
		})
	}
}

func TestSlowStopsWhenClientGivesUp(t *testing.T) {
	srv, done := newWatchedServer(t)
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", srv.URL+"/slow?d=10m", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := srv.Client().Do(req)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("got status %d, want the request to time out", resp.StatusCode)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error = %v, want context.DeadlineExceeded", err)
	}
	waitDone(t, done)
}

// event is one server-sent event.
type event struct{ id, data string }

// readEvent reads the next event from r. It returns io.EOF when the stream
// ends cleanly between events.
func readEvent(r *bufio.Reader) (event, error) {
	var ev event
	for lines := 0; ; lines++ {
		line, err := r.ReadString('\n')
		if err != nil {
			if err == io.EOF && (lines > 0 || line != "") {
				err = io.ErrUnexpectedEOF
			}
			return ev, err
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "":
			return ev, nil
		case strings.HasPrefix(line, "id: "):
			ev.id = strings.TrimPrefix(line, "id: ")
		case strings.HasPrefix(line, "data: "):
			ev.data = strings.TrimPrefix(line, "data: ")
		}
	}
}

func TestSSE(t *testing.T) {
	srv := newServer(t)
	tests := []struct {
		name  string
		query string
		n     int
	}{
		{"sse sends three events in order then ends", "?n=3&every=10ms", 3},
		{"sse sends events back to back when every is zero", "?n=50&every=0s", 50},
		{"sse with only n uses the default interval and sends one event", "?n=1", 1},
		{"sse with zero events sends an empty stream", "?n=0", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
			defer cancel()
			resp := do(t, ctx, srv, "GET", "/sse"+tt.query, nil)
			if resp.StatusCode != 200 {
				t.Fatalf("status = %d, want 200", resp.StatusCode)
			}
			if got := resp.Header.Get("Content-Type"); got != "text/event-stream" {
				t.Errorf("Content-Type = %q, want text/event-stream", got)
			}
			if got := resp.Header.Get("Cache-Control"); got != "no-cache" {
				t.Errorf("Cache-Control = %q, want no-cache", got)
			}

			r := bufio.NewReader(resp.Body)
			for i := 1; i <= tt.n; i++ {
				ev, err := readEvent(r)
				if err != nil {
					t.Fatalf("reading event %d: %v", i, err)
				}
				want := event{strconv.Itoa(i), "event " + strconv.Itoa(i) + " from a"}
				if ev != want {
					t.Fatalf("event %d = %+v, want %+v", i, ev, want)
				}
			}
			if ev, err := readEvent(r); err != io.EOF {
				t.Errorf("after %d events got %+v, %v; want the stream to end", tt.n, ev, err)
			}
		})
	}
}

func TestSSEFlushesEachEventAndStopsWhenClientGoesAway(t *testing.T) {
	srv, done := newWatchedServer(t)
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	defer cancel()
	// The second event is a minute away, longer than the test's timeout, so
	// the first can only arrive in time if the server flushed it.
	resp := do(t, ctx, srv, "GET", "/sse?n=2&every=1m", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("status = %d, want 200", resp.StatusCode)
	}
	ev, err := readEvent(bufio.NewReader(resp.Body))
	if err != nil {
		t.Fatalf("reading first event: %v", err)
	}
	if want := (event{"1", "event 1 from a"}); ev != want {
		t.Errorf("first event = %+v, want %+v", ev, want)
	}
	cancel()
	waitDone(t, done)
}

func TestDigestAnswersTheBodysSHA256(t *testing.T) {
	srv := newServer(t)
	for _, size := range []int{0, 1, 1 << 20} {
		t.Run(strconv.Itoa(size)+" bytes", func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
			defer cancel()
			payload := make([]byte, size)
			rand.Read(payload)
			req, err := http.NewRequestWithContext(ctx, "POST", srv.URL+"/sha256", bytes.NewReader(payload))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			got, _ := io.ReadAll(resp.Body)
			want := sha256.Sum256(payload)
			if resp.StatusCode != 200 || strings.TrimSpace(string(got)) != hex.EncodeToString(want[:]) {
				t.Errorf("got %d %q, want 200 %x", resp.StatusCode, got, want)
			}
		})
	}
}
