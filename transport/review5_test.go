package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

// Review 5: a response body that breaks off counts as the backend's
// failure (responseBody.Read's bodyCut) only when the backend broke it,
// never when the balancer cut the exchange for the client's fault.

// TestABodyPassingTheLimitMidEchoIsNotTheBackendsFailure: the client's body
// passes MaxBody after an echo backend's response began; the balancer cuts
// the exchange (the client's fault, 413's), which must not count against
// the backend, or any client could eject a healthy backend by uploading
// too much to an endpoint that answers early.
func TestABodyPassingTheLimitMidEchoIsNotTheBackendsFailure(t *testing.T) {
	const limit = 64 << 10
	lb := newBalancer(t, balancerOptions{maxBody: limit, frontend: FrontendOptions{H2C: true}}, demoBackend(t, "echo").URL)
	for _, c := range []struct {
		name   string
		client *http.Client
	}{{"HTTP/1.1", lb.client}, {"HTTP/2.0", h2cClient(t)}} {
		t.Run(c.name, func(t *testing.T) { passTheLimitMidEcho(t, lb, c.client, limit) })
	}
}

func passTheLimitMidEcho(t *testing.T, lb *balancer, client *http.Client, limit int) {
	pr, pw := io.Pipe()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, lb.url+"/echo", pr)
	var writer sync.WaitGroup
	defer writer.Wait()
	defer pw.Close()
	writer.Go(func() { _, _ = pw.Write(make([]byte, 1024)) })
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	writer.Wait()
	writer.Go(func() { _, _ = pw.Write(make([]byte, 2*limit)) })
	if _, err := io.Copy(io.Discard, resp.Body); err == nil {
		t.Fatal("the response ended cleanly; want it cut off")
	}
	_ = pr.CloseWithError(errors.New("test over"))
	if st := lb.settled(t)[0]; st.Failures != 0 {
		t.Errorf("the client's oversized body counted as %d backend failure(s), want 0", st.Failures)
	}
}

// TestABodyStallingMidEchoIsNotTheBackendsFailure: likewise for a client
// whose body stalls past BodyTimeout after the response began.
func TestABodyStallingMidEchoIsNotTheBackendsFailure(t *testing.T) {
	lb := newBalancer(t, balancerOptions{bodyTimeout: 200 * time.Millisecond}, demoBackend(t, "echo").URL)
	pr, pw := io.Pipe()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, lb.url+"/echo", pr)
	var writer sync.WaitGroup
	defer writer.Wait()
	defer pw.Close()
	writer.Go(func() { _, _ = pw.Write(make([]byte, 1024)) }) // then nothing
	resp, err := lb.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err == nil {
		t.Fatal("the response ended cleanly; want it cut off")
	}
	_ = pr.CloseWithError(errors.New("test over"))
	if st := lb.settled(t)[0]; st.Failures != 0 {
		t.Errorf("the client's stalled body counted as %d backend failure(s), want 0", st.Failures)
	}
}

// TestAMalformedBodyMidEchoIsNotTheBackendsFailure: likewise for an HTTP/1
// client whose chunked body turns malformed after the response began.
func TestAMalformedBodyMidEchoIsNotTheBackendsFailure(t *testing.T) {
	lb := newBalancer(t, balancerOptions{}, demoBackend(t, "echo").URL)
	rc := dialRaw(t, lb.url)
	rc.send("POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n400\r\n" + strings.Repeat("x", 0x400) + "\r\n")
	resp, err := http.ReadResponse(rc.br, &http.Request{Method: http.MethodPost})
	if err != nil {
		t.Fatalf("reading the response: %v", err)
	}
	rc.send("zz\r\n") // not a chunk size
	if _, err := io.Copy(io.Discard, resp.Body); err == nil {
		t.Fatal("the response ended cleanly; want it cut off")
	}
	if st := lb.settled(t)[0]; st.Failures != 0 {
		t.Errorf("the client's malformed body counted as %d backend failure(s), want 0", st.Failures)
	}
}

// TestARetrySendsTheSameHeaderAsTheFirstAttempt: the fast path prepares
// the outbound header once, in the client's own map, and every attempt
// sends it. A GET whose first backend breaks after reading it goes to the
// second with the same header: hop-by-hop headers gone, "TE: trailers"
// kept, the trusted proxy's forwarded lists appended to once (not once per
// attempt), the request ID kept.
func TestARetrySendsTheSameHeaderAsTheFirstAttempt(t *testing.T) {
	heads := make(chan http.Header, 2)
	first := make(chan struct{}, 1)
	first <- struct{}{}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			return
		}
		heads <- r.Header.Clone()
		select {
		case <-first: // the first attempt breaks before any answer
			c, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				c.Close()
			}
		default:
			_, _ = io.WriteString(w, "ok")
		}
	})
	a, b := httptest.NewServer(h), httptest.NewServer(h)
	t.Cleanup(a.Close)
	t.Cleanup(b.Close)
	lb := newBalancer(t, balancerOptions{retries: 1, trusted: TrustedProxies{netip.MustParsePrefix("127.0.0.0/8")},
		requestIDHeader: "X-Request-ID"}, a.URL, b.URL)
	req, _ := http.NewRequest(http.MethodGet, lb.url+"/x", nil)
	req.Header = http.Header{
		"Connection":        {"X-Hop"},
		"X-Hop":             {"dropped"},
		"Te":                {"trailers"},
		"X-Forwarded-For":   {"203.0.113.9"},
		"Forwarded":         {"for=203.0.113.9"},
		"X-Forwarded-Proto": {"https"},
		"X-Request-Id":      {"upstream-id"},
		"User-Agent":        {"test"},
	}
	resp, err := lb.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "ok" {
		t.Fatalf("%d %q, want the second backend's 200", resp.StatusCode, body)
	}
	if id := resp.Header.Get("X-Request-ID"); id != "upstream-id" {
		t.Errorf("the client got request ID %q, want the trusted proxy's", id)
	}
	h1, h2 := <-heads, <-heads
	for _, k := range []string{"Accept-Encoding", "Content-Length"} { // the transport's own
		delete(h1, k)
		delete(h2, k)
	}
	if fmt.Sprint(h1) != fmt.Sprint(h2) {
		t.Errorf("the attempts sent different headers:\nfirst  %v\nsecond %v", h1, h2)
	}
	want := http.Header{
		"Te":                {"trailers"},
		"X-Forwarded-For":   {"203.0.113.9, 127.0.0.1"},
		"Forwarded":         {"for=203.0.113.9, for=127.0.0.1;host=\"" + strings.TrimPrefix(lb.url, "http://") + "\";proto=http"},
		"X-Forwarded-Host":  {strings.TrimPrefix(lb.url, "http://")},
		"X-Forwarded-Proto": {"https"},
		"X-Request-Id":      {"upstream-id"},
		"User-Agent":        {"test"},
	}
	if fmt.Sprint(h2) != fmt.Sprint(want) {
		t.Errorf("the backend got\n%v\nwant\n%v", h2, want)
	}
}

// TestConnectionHeadersStillSteerTheClientConnection: the fast path drops
// the client's Connection and Keep-Alive headers from its own header map
// (prepareHeader) before net/http's server writes the response; the
// server must still keep an HTTP/1.0 keep-alive connection open and close
// an HTTP/1.1 one that asked for "close" (it reads both before the
// handler runs).
func TestConnectionHeadersStillSteerTheClientConnection(t *testing.T) {
	backend, got := recordingBackend(t)
	lb := newBalancer(t, balancerOptions{}, backend.URL)
	rc := dialRaw(t, lb.url)
	for range 2 {
		rc.send("GET /a HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n\r\n")
		resp, body := rc.response("GET")
		if resp.StatusCode != 200 || body != "ok" || !strings.EqualFold(resp.Header.Get("Connection"), "keep-alive") {
			t.Fatalf("HTTP/1.0 keep-alive: %d %q %v, want 200 ok with Connection: keep-alive", resp.StatusCode, body, resp.Header)
		}
		if r := <-got; r.Header.Get("Connection") != "" || r.Header.Get("Keep-Alive") != "" {
			t.Errorf("the backend got hop-by-hop headers %v", r.Header)
		}
	}
	rc.send("GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	if resp, _ := rc.response("GET"); !resp.Close {
		t.Error("the response to Connection: close does not close")
	}
	<-got
	if !rc.closed() {
		t.Error("the connection is still open after Connection: close")
	}
}

// TestAnUnprintableUpgradeIsNotTheBackendsFailure: ReverseProxy refuses
// to send a request whose Upgrade names a protocol that is not printable
// ASCII, before any backend sees it. That is the client's doing: it gets
// 400 from admit, and no backend is charged a failure (it was 502, with a
// failure on every backend the request was retried on).
func TestAnUnprintableUpgradeIsNotTheBackendsFailure(t *testing.T) {
	backend, got := recordingBackend(t)
	other, _ := recordingBackend(t)
	lb := newBalancer(t, balancerOptions{retries: 2}, backend.URL, other.URL)
	rc := dialRaw(t, lb.url)
	rc.send("GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: web\xc5\xbfocket\r\n\r\n")
	if resp, body := rc.response("GET"); resp.StatusCode != http.StatusBadRequest || !resp.Close {
		t.Errorf("%d %q (close %v), want 400 and the connection closed", resp.StatusCode, body, resp.Close)
	}
	select {
	case r := <-got:
		t.Errorf("a backend got the request: %v", r.Header)
	default:
	}
	for i, st := range lb.settled(t) {
		if st.Failures != 0 {
			t.Errorf("backend %d: %d failure(s) for the client's unprintable Upgrade, want 0", i, st.Failures)
		}
	}
}

// TestA101ForAnotherProtocolClosesTheBackendConnection: a backend that
// switches to a protocol only Unicode folding equates with the one asked
// for ("webſocket" for "websocket") is refused (502), as ReverseProxy
// refuses it, and its connection closed: switchAsked compares as
// ReverseProxy does, in ASCII, so that modifyResponse closes the body
// rather than leave ReverseProxy to refuse it without closing it.
func TestA101ForAnotherProtocolClosesTheBackendConnection(t *testing.T) {
	closed := make(chan bool, 1)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			return
		}
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("hijack: %v", err)
			return
		}
		defer c.Close()
		_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: web\xc5\xbfocket\r\n\r\n")
		_ = brw.Flush()
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, err = brw.ReadByte()
		var ne interface{ Timeout() bool }
		closed <- !(errors.As(err, &ne) && ne.Timeout())
	}))
	t.Cleanup(backend.Close)
	lb := newBalancer(t, balancerOptions{}, backend.URL)
	rc := dialRaw(t, lb.url)
	rc.send("GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
	if resp, body := rc.response("GET"); resp.StatusCode != http.StatusBadGateway {
		t.Errorf("%d %q, want 502", resp.StatusCode, body)
	}
	if !<-closed {
		t.Error("the backend connection is still open 2s after its 101 was refused")
	}
}

// TestTheFastPathAndReverseProxySendTheSameForwardedHeaders: a GET (the
// fast path, whose forwarded values are read before the hop-by-hop
// headers go) and a POST (ReverseProxy's copy) from a trusted proxy send
// the backend the same forwarded headers, for a chain with values to
// append to, one nominated in Connection, and a Host longer than the
// fast path's stack buffer.
func TestTheFastPathAndReverseProxySendTheSameForwardedHeaders(t *testing.T) {
	seen := make(chan http.Header, 1)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			return
		}
		_, _ = io.Copy(io.Discard, r.Body)
		h := r.Header.Clone()
		h.Set("X-Seen-Host", r.Host)
		for _, k := range []string{"Content-Length", "Accept-Encoding", "Content-Type"} {
			delete(h, k)
		}
		seen <- h
	}))
	t.Cleanup(backend.Close)
	lb := newBalancer(t, balancerOptions{trusted: TrustedProxies{netip.MustParsePrefix("127.0.0.0/8")}}, backend.URL)
	for _, tc := range []struct {
		name string
		h    http.Header
		host string
	}{
		{"a chain", http.Header{"X-Forwarded-For": {"203.0.113.9", "198.51.100.1"}, "Forwarded": {`for="[2001:db8::1]"`},
			"X-Forwarded-Host": {"example.com"}, "X-Forwarded-Proto": {"https"}, "X-Forwarded-Prefix": {"/app"}}, ""},
		{"nominated", http.Header{"Connection": {"X-Forwarded-For, x-forwarded-host"}, "X-Forwarded-For": {"203.0.113.9"},
			"X-Forwarded-Host": {"example.com"}, "Forwarded": {"for=1.2.3.4"}}, ""},
		{"a long host", http.Header{"X-Forwarded-For": {"203.0.113.9"}}, strings.Repeat("h", 300) + ".example"},
		{"a host to quote", http.Header{}, "a b"},
	} {
		var got [2]http.Header
		for i, m := range []string{"GET", "POST"} {
			var body io.Reader
			if m == "POST" {
				body = strings.NewReader("x")
			}
			req, _ := http.NewRequest(m, lb.url+"/f", body)
			req.Header = tc.h.Clone()
			if tc.host != "" {
				req.Host = tc.host
			}
			resp, err := lb.client.Do(req)
			if err != nil {
				t.Fatalf("%s %s: %v", tc.name, m, err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("%s %s: status %d", tc.name, m, resp.StatusCode)
			}
			got[i] = <-seen
		}
		if fmt.Sprint(got[0]) != fmt.Sprint(got[1]) {
			t.Errorf("%s: the fast path sent\n%v\nReverseProxy sent\n%v", tc.name, got[0], got[1])
		}
	}
}

// TestTheRequestTimeoutCuttingAStreamIsNotTheBackendsFailure: the
// whole-request timeout ending a long response after its header is a
// limit of ours, not a failure of the backend's, over HTTP/1.1 and h2c,
// on the fast path and through ReverseProxy.
func TestTheRequestTimeoutCuttingAStreamIsNotTheBackendsFailure(t *testing.T) {
	stream := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			return
		}
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		for {
			if _, err := io.WriteString(w, "data: x\n\n"); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	})
	h1 := httptest.NewServer(stream)
	t.Cleanup(h1.Close)
	for _, u := range []string{h1.URL, startH2C(t, stream)} {
		lb := newBalancer(t, balancerOptions{requestTimeout: 200 * time.Millisecond}, u)
		for _, m := range []string{"GET", "POST"} {
			var body io.Reader
			if m == "POST" {
				body = strings.NewReader("x")
			}
			req, _ := http.NewRequest(m, lb.url+"/s", body)
			resp, err := lb.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.Copy(io.Discard, resp.Body); err == nil {
				t.Errorf("%s %s: the stream ended cleanly; want it cut by the timeout", u, m)
			}
			resp.Body.Close()
		}
		if st := lb.settled(t)[0]; st.Failures != 0 {
			t.Errorf("%s: the request timeout counted as %d backend failure(s), want 0", u, st.Failures)
		}
	}
}

// TestAClientLeavingMidStreamIsNotTheBackendsFailure: a client that goes
// away in the middle of a long response (HTTP/1.1 and HTTP/2, GET and
// POST) cuts the backend's response body; that is not the backend's
// failure.
func TestAClientLeavingMidStreamIsNotTheBackendsFailure(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			return
		}
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, "first\n")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	t.Cleanup(backend.Close)
	lb := newBalancer(t, balancerOptions{frontend: FrontendOptions{H2C: true}}, backend.URL)
	for _, c := range []*http.Client{lb.client, h2cClient(t)} {
		for _, m := range []string{"GET", "POST"} {
			var body io.Reader
			if m == "POST" {
				body = strings.NewReader("x")
			}
			ctx, cancel := context.WithCancel(t.Context())
			req, _ := http.NewRequestWithContext(ctx, m, lb.url+"/s", body)
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadFull(resp.Body, make([]byte, 6)); err != nil {
				t.Fatal(err)
			}
			cancel()
			resp.Body.Close()
		}
	}
	if st := lb.settled(t)[0]; st.Failures != 0 {
		t.Errorf("clients leaving counted as %d backend failure(s), want 0", st.Failures)
	}
}

// TestABackendDyingMidUploadIsItsFailure: an HTTP/2 client still sending
// its body when the backend's connection dies mid-response. streamBody
// then closes the client's body to stop the transport's writer, whose
// read fails: that failure follows the backend's and must not excuse it
// (clientBodyFailed), so the cut counts against the backend.
func TestABackendDyingMidUploadIsItsFailure(t *testing.T) {
	backend := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			return
		}
		_ = http.NewResponseController(w).EnableFullDuplex()
		_, _ = io.ReadFull(r.Body, make([]byte, 3))
		_, _ = io.WriteString(w, "first\n")
		w.(http.Flusher).Flush()
		time.Sleep(50 * time.Millisecond)
		if r.ProtoMajor == 2 {
			panic(http.ErrAbortHandler) // the stream reset
		}
		if c, _, err := http.NewResponseController(w).Hijack(); err == nil {
			c.Close()
		}
	})
	h1 := httptest.NewServer(backend)
	t.Cleanup(h1.Close)
	for _, u := range []string{h1.URL, startH2C(t, backend)} {
		t.Run(u[:4], func(t *testing.T) { dieMidUpload(t, u) })
	}
}

func dieMidUpload(t *testing.T, backend string) {
	lb := newBalancer(t, balancerOptions{frontend: FrontendOptions{H2C: true}}, backend)
	const n = 5
	for range n {
		pr, pw := io.Pipe()
		req, _ := http.NewRequestWithContext(t.Context(), "POST", lb.url+"/up", pr)
		var writer sync.WaitGroup
		writer.Go(func() { _, _ = pw.Write([]byte("abc")) }) // then the body stays open
		resp, err := h2cClient(t).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, resp.Body); err == nil {
			t.Error("the response ended cleanly; want it cut")
		}
		resp.Body.Close()
		_ = pw.Close()
		writer.Wait()
	}
	if st := lb.settled(t)[0]; st.Failures != n {
		t.Errorf("%d backend failure(s) for %d responses its death cut, want %d", st.Failures, n, n)
	}
}

// TestTheRequestIDSurvivesAConnectionHeaderNamingIt: the balancer's
// request ID goes to the backend even when the client's Connection header
// names the ID's header (which makes the client's own copy hop-by-hop),
// on the fast path and through ReverseProxy.
func TestTheRequestIDSurvivesAConnectionHeaderNamingIt(t *testing.T) {
	backend, got := recordingBackend(t)
	lb := newBalancer(t, balancerOptions{requestIDHeader: "X-Request-ID"}, backend.URL)
	for _, m := range []string{"GET", "POST"} {
		var body io.Reader
		if m == "POST" {
			body = strings.NewReader("x")
		}
		req, _ := http.NewRequest(m, lb.url+"/id", body)
		req.Header.Set("Connection", "X-Request-ID")
		req.Header.Set("X-Request-ID", "forged")
		resp, err := lb.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		id := resp.Header.Get("X-Request-ID")
		if r := <-got; id == "" || id == "forged" || r.Header.Get("X-Request-ID") != id {
			t.Errorf("%s: the client got ID %q, the backend %q; want the same new one", m, id, r.Header.Get("X-Request-ID"))
		}
	}
}
