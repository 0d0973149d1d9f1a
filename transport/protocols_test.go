package transport

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/roundhouse/roundhouse/internal/testcert"
)

// trailerBackend answers with a body and a trailer, announced in advance,
// and reports the request's own trailer on got.
func trailerBackend(t *testing.T, got chan<- string) string {
	t.Helper()
	srv := demoBackend(t, "unused")
	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			return
		}
		_, _ = io.Copy(io.Discard, r.Body)
		got <- r.Trailer.Get("X-Request-Checksum")
		w.Header().Set("Trailer", "X-Checksum")
		_, _ = io.WriteString(w, "body")
		w.Header().Set("X-Checksum", "abc123")
	})
	return srv.URL
}

func TestTrailersPassThroughBothWays(t *testing.T) {
	got := make(chan string, 4)
	backend := trailerBackend(t, got)
	plain := newBalancer(t, balancerOptions{}, backend)
	secure, _, ca := tlsBalancer(t, balancerOptions{}, backend)
	for _, tt := range []struct {
		name   string
		url    string
		client *http.Client
		proto  int
	}{
		{"over HTTP/1.1", plain.url, plain.client, 1},
		{"over HTTP/2", secure.url, clientFor(t, ca.Pool(), false, true), 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, tt.url+"/upload", io.NopCloser(strings.NewReader("data")))
			req.ContentLength = -1 // chunked, so a trailer can follow
			req.Trailer = http.Header{"X-Request-Checksum": {"req456"}}
			resp, err := tt.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.ProtoMajor != tt.proto || string(body) != "body" {
				t.Fatalf("got %q over %s", body, resp.Proto)
			}
			if v := resp.Trailer.Get("X-Checksum"); v != "abc123" {
				t.Errorf("response trailer %q, want abc123 (trailers %v)", v, resp.Trailer)
			}
			if v := <-got; v != "req456" {
				t.Errorf("the backend saw request trailer %q, want req456", v)
			}
		})
	}
}

// hintsBackend sends 103 Early Hints with a Link header, then the answer.
func hintsBackend(t *testing.T) string {
	t.Helper()
	srv := demoBackend(t, "unused")
	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			return
		}
		w.Header().Set("Link", "</style.css>; rel=preload; as=style")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Del("Link")
		_, _ = io.WriteString(w, "page")
	})
	return srv.URL
}

func TestEarlyHintsPassThrough(t *testing.T) {
	backend := hintsBackend(t)
	plain := newBalancer(t, balancerOptions{}, backend)
	secure, _, ca := tlsBalancer(t, balancerOptions{}, backend)
	for _, tt := range []struct {
		name   string
		url    string
		client *http.Client
	}{
		{"over HTTP/1.1", plain.url, plain.client},
		{"over HTTP/2", secure.url, clientFor(t, ca.Pool(), false, true)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			var hints []string
			trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
				mu.Lock()
				defer mu.Unlock()
				if code == http.StatusEarlyHints {
					hints = append(hints, h.Get("Link"))
				}
				return nil
			}}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), http.MethodGet, tt.url+"/page", nil)
			resp, err := tt.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			mu.Lock()
			defer mu.Unlock()
			if resp.StatusCode != 200 || string(body) != "page" {
				t.Errorf("final answer %d %q", resp.StatusCode, body)
			}
			if len(hints) != 1 || hints[0] != "</style.css>; rel=preload; as=style" {
				t.Errorf("early hints %q, want the backend's one Link", hints)
			}
			if resp.Header.Get("Link") != "" {
				t.Errorf("the hint's Link leaked into the final response")
			}
		})
	}
}

// A client that asks "Expect: 100-continue" sends its body only once told
// to; the balancer must let that 100 through.
func TestExpect100ContinueWaitsForTheGoAhead(t *testing.T) {
	lb := newBalancer(t, balancerOptions{}, demoBackend(t, "echo").URL)
	rc := dialRaw(t, lb.url)
	rc.send("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
	resp, err := http.ReadResponse(rc.br, nil)
	if err != nil || resp.StatusCode != http.StatusContinue {
		t.Fatalf("got %v (%v) before sending the body, want 100 Continue", resp, err)
	}
	rc.send("hello")
	if resp, body := rc.response("POST"); resp.StatusCode != 200 || body != "hello" {
		t.Errorf("got %d %q, want the echo", resp.StatusCode, body)
	}
}

// A response of unknown length is flushed piece by piece: the client reads
// each chunk before the backend writes the next.
func TestChunkedResponsesAreFlushedAsTheyArrive(t *testing.T) {
	next := make(chan struct{})
	srv := demoBackend(t, "unused")
	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			return
		}
		rc := http.NewResponseController(w)
		for i := range 3 {
			_, _ = io.WriteString(w, "piece "+string(rune('1'+i))+"\n")
			_ = rc.Flush()
			select {
			case <-next:
			case <-r.Context().Done():
				return
			}
		}
	})
	lb := newBalancer(t, balancerOptions{}, srv.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, lb.url+"/stream", nil)
	resp, err := lb.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	for i := range 3 {
		line, err := br.ReadString('\n')
		if want := "piece " + string(rune('1'+i)) + "\n"; err != nil || line != want {
			t.Fatalf("read %q (%v), want %q: not flushed?", line, err, want)
		}
		next <- struct{}{}
	}
}

// A gRPC-style bidirectional stream over HTTP/2 end to end: each message
// the client sends comes back before it sends the next, through a TLS
// balancer to an HTTP/2 backend, and the stream ends with a status trailer.
func TestBidirectionalHTTP2StreamsFlowMessageByMessage(t *testing.T) {
	ca := testcert.NewAuthority(t, "backend CA")
	backendURL, _ := tlsBackend(t, ca, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			return
		}
		w.Header().Set("Content-Type", "application/grpc")
		w.Header().Set("Trailer", "Grpc-Status")
		rc := http.NewResponseController(w)
		w.WriteHeader(http.StatusOK)
		_ = rc.Flush()
		sc := bufio.NewScanner(r.Body)
		for sc.Scan() {
			_, _ = io.WriteString(w, "echo "+sc.Text()+"\n")
			_ = rc.Flush()
		}
		w.Header().Set("Grpc-Status", "0")
	}))
	lb, _, clientCA := tlsBalancer(t, balancerOptions{backendCAs: ca.Pool()}, backendURL)

	var p http.Protocols
	p.SetHTTP2(true)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: clientCA.Pool()}, Protocols: &p}
	t.Cleanup(tr.CloseIdleConnections)
	pr, pw := io.Pipe()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, lb.url+"/chat.Echo/Stream", pr)
	req.Header.Set("Content-Type", "application/grpc")
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.ProtoMajor != 2 {
		t.Fatalf("client spoke %s", resp.Proto)
	}
	br := bufio.NewReader(resp.Body)
	for _, msg := range []string{"one", "two", "three"} {
		if _, err := io.WriteString(pw, msg+"\n"); err != nil {
			t.Fatal(err)
		}
		line, err := br.ReadString('\n')
		if err != nil || line != "echo "+msg+"\n" {
			t.Fatalf("read %q (%v), want the echo of %q before sending more", line, err, msg)
		}
	}
	pw.Close()
	if rest, err := io.ReadAll(br); err != nil || len(rest) != 0 {
		t.Errorf("after the stream: %q, %v", rest, err)
	}
	if v := resp.Trailer.Get("Grpc-Status"); v != "0" {
		t.Errorf("Grpc-Status trailer %q, want 0", v)
	}
}

func TestABackendThatRefusesAnExpectedBodyAnswersBeforeItIsSent(t *testing.T) {
	srv := demoBackend(t, "unused")
	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			return
		}
		http.Error(w, "no uploads here", http.StatusForbidden) // without reading the body
	})
	lb := newBalancer(t, balancerOptions{}, srv.URL)
	rc := dialRaw(t, lb.url)
	rc.send("PUT /file HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000\r\nExpect: 100-continue\r\n\r\n")
	if resp, _ := rc.response("PUT"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("status %d, want the backend's 403 with no body sent", resp.StatusCode)
	}
}
