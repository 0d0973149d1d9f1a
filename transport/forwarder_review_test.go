package transport

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/roundhouse/roundhouse/internal/testcert"
	"github.com/roundhouse/roundhouse/routing"
)

// An adversarial review of the forwarder's fast path (forwarder.go): each
// test pins one behaviour a request without a body must keep now that it
// no longer goes through httputil.ReverseProxy.

// reviewBackend answers each path in its own way; see the cases.
func reviewBackend(t *testing.T) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("/health", func(http.ResponseWriter, *http.Request) {})
	mux.HandleFunc("/plain", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "plain\n")
	})
	mux.HandleFunc("/204", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.HandleFunc("/304", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Etag", `"v1"`)
		w.WriteHeader(http.StatusNotModified)
	})
	mux.HandleFunc("/trailers", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Trailer", "X-Announced")
		_, _ = io.WriteString(w, "body\n")
		w.(http.Flusher).Flush()
		w.Header().Set("X-Announced", "yes")
	})
	// /hints: three 103s, each with its own Link, then the response.
	mux.HandleFunc("/hints", func(w http.ResponseWriter, _ *http.Request) {
		for i := range 3 {
			w.Header().Set("Link", fmt.Sprintf("</%d.css>; rel=preload", i))
			w.WriteHeader(http.StatusEarlyHints)
		}
		w.Header().Del("Link")
		_, _ = io.WriteString(w, "after hints\n")
	})
	// /hint-then-reset: a 103, then the connection goes.
	mux.HandleFunc("/hint-then-reset", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Link", "</a.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			_ = conn.(*net.TCPConn).SetLinger(0)
			conn.Close()
		}
	})
	// /id: the backend's own copy of the request ID header, and a cookie.
	mux.HandleFunc("/id", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Request-Id", "backend-"+r.Header.Get("X-Request-Id"))
		w.Header().Add("Set-Cookie", "app=1; Path=/")
		_, _ = io.WriteString(w, "id\n")
	})
	// /continue: a 100 Continue nobody asked for, then the response.
	mux.HandleFunc("/continue", func(w http.ResponseWriter, _ *http.Request) {
		conn, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		_, _ = rw.WriteString("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n")
		_ = rw.Flush()
	})
	// /close: the backend asks to close its connection.
	mux.HandleFunc("/close", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Connection", "close")
		_, _ = io.WriteString(w, "closing\n")
	})
	mux.HandleFunc("/cut", serveCutShort) // a Content-Length the body never reaches
	// /echo: what arrived, exactly.
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "uri=%s path=%s query=%s ua=%q", r.RequestURI, r.URL.EscapedPath(), r.URL.RawQuery, r.Header.Get("User-Agent"))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// reviewGet sends method path with client and returns what it saw; hints
// are the 1xx responses, as "code Link".
func reviewGet(t *testing.T, client *http.Client, method, url string, header http.Header) (resp *http.Response, body string, hints []string, err error) {
	t.Helper()
	return reviewDo(t, client, method, url, header, false)
}

// reviewDo is reviewGet, with a one-byte body if withBody (ReverseProxy's path).
func reviewDo(t *testing.T, client *http.Client, method, url string, header http.Header, withBody bool) (resp *http.Response, body string, hints []string, err error) {
	t.Helper()
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		hints = append(hints, fmt.Sprint(code, " ", h.Get("Link")))
		return nil
	}}
	ctx, cancel := context.WithTimeout(httptrace.WithClientTrace(t.Context(), trace), 20*time.Second)
	defer cancel()
	var rb io.Reader
	if withBody {
		rb = strings.NewReader("x")
	}
	req, _ := http.NewRequestWithContext(ctx, method, url, rb)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err = client.Do(req)
	if err != nil {
		return nil, "", hints, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, string(b), hints, err
}

// TestReviewEveryProtocolGetsWhatHTTP1Gets: GET and HEAD, 204, 304,
// trailers and 103s reach an HTTP/1.1, an HTTP/2 and an HTTP/3 client alike.
func TestReviewEveryProtocolGetsWhatHTTP1Gets(t *testing.T) {
	backend := reviewBackend(t)
	lb := h3Balancer(t, balancerOptions{}, backend.URL)
	pool := lb.client.Transport.(*http.Transport).TLSClientConfig.RootCAs
	clients := map[string]*http.Client{
		"HTTP/1.1": clientFor(t, pool, true, false),
		"HTTP/2.0": clientFor(t, pool, false, true),
		"HTTP/3.0": lb.h3.client,
	}
	for _, tc := range []struct {
		method, path string
		status       int
		body         string
		trailer      string
		hints        []string
	}{
		{"GET", "/plain", 200, "plain\n", "", nil},
		{"HEAD", "/plain", 200, "", "", nil},
		{"GET", "/204", 204, "", "", nil},
		{"GET", "/304", 304, "", "", nil},
		{"GET", "/trailers", 200, "body\n", "yes", nil},
		{"GET", "/hints", 200, "after hints\n", "", []string{"103 </0.css>; rel=preload", "103 </1.css>; rel=preload", "103 </2.css>; rel=preload"}},
	} {
		for proto, c := range clients {
			base := lb.url
			if proto == "HTTP/3.0" {
				base = lb.h3.url
			}
			resp, body, hints, err := reviewGet(t, c, tc.method, base+tc.path, nil)
			if err != nil {
				t.Errorf("%s %s over %s: %v", tc.method, tc.path, proto, err)
				continue
			}
			if resp.Proto != proto {
				t.Errorf("%s %s: spoke %s, want %s", tc.method, tc.path, resp.Proto, proto)
			}
			if resp.StatusCode != tc.status || body != tc.body || resp.Trailer.Get("X-Announced") != tc.trailer ||
				fmt.Sprint(hints) != fmt.Sprint(tc.hints) {
				t.Errorf("%s %s over %s: %d %q trailer %q hints %q; want %d %q trailer %q hints %q", tc.method, tc.path, proto,
					resp.StatusCode, body, resp.Trailer.Get("X-Announced"), hints, tc.status, tc.body, tc.trailer, tc.hints)
			}
			if tc.path == "/304" && resp.Header.Get("Etag") != `"v1"` {
				t.Errorf("304 over %s lost its ETag: %v", proto, resp.Header)
			}
		}
	}
}

// leanProbe is a server whose handler runs the balancer's begin stage on
// each request and says whether it would take the fast path.
func leanProbe(t *testing.T, http2 bool) (url string, lean <-chan bool, client *http.Client) {
	t.Helper()
	p := NewProxy(Config{})
	got := make(chan bool, 1)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ex, _ := p.begin(w, r)
		got <- ex.lean()
	}))
	srv.EnableHTTP2 = http2
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.URL, got, srv.Client()
}

// TestReviewHTTP2GetsTakeTheFastPath: an HTTP/2 GET has no body, but
// net/http's HTTP/2 server gives every request a Body of its own type,
// never http.NoBody; begin then takes it for a request with a body.
func TestReviewHTTP2GetsTakeTheFastPath(t *testing.T) {
	for _, h2 := range []bool{false, true} {
		url, lean, c := leanProbe(t, h2)
		resp, _, _, err := reviewGet(t, c, "GET", url+"/", nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := <-lean; !got {
			t.Errorf("a GET over %s is not lean", resp.Proto)
		}
	}
}

// sendCut sends method m (POST, with a 1-byte body, or GET, without)
// for /cut, whose body reviewBackend cuts short, and reads what arrives.
func (b *balancer) sendCut(t *testing.T, m string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), m, b.url+"/cut", strings.NewReader(strings.Repeat("x", len(m)-3)))
	if m == "GET" {
		req.Body, req.ContentLength = nil, 0
	}
	if resp, err := b.client.Do(req); err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

// TestReviewACutBodyIsLoggedAsBefore: ReverseProxy logged a response body
// that broke off through its ErrorLog, the balancer's log at INFO:
// "httputil: ReverseProxy read error during body copy: unexpected EOF".
// A GET logs it no longer (the fast path logs at DEBUG, in other words),
// while a POST still does.
func TestReviewACutBodyIsLoggedAsBefore(t *testing.T) {
	backend := reviewBackend(t)
	lb := newBalancer(t, balancerOptions{}, backend.URL)
	for i, m := range []string{"POST", "GET"} {
		lb.sendCut(t, m)
		lb.log.waitFor(t, 1, "method="+m, "path=/cut")
		if n := lb.log.count("[INFO]", "ReverseProxy read error during body copy"); n != i+1 {
			t.Errorf("after the %s: %d INFO lines about the cut body, want 1 for each request", m, n)
		}
	}
}

// TestReviewEndRelayLeavesNoRightToWrite: once endRelay has returned, no
// 1xx may reach the client's ResponseWriter from a transport goroutine
// (ReverseProxy's roundTripDone). When the client has gone, endRelay's
// select has two ready cases, and may leave the token in ex.relay for a
// late relayInformational to take.
func TestReviewEndRelayLeavesNoRightToWrite(t *testing.T) {
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	for range 200 {
		w := &countingWriter{ResponseWriter: httptest.NewRecorder()}
		ex := &exchange{client: gone, relay: make(chan struct{}, 1)}
		ex.rec = recorder{ResponseWriter: w}
		ex.relay <- struct{}{} // as send puts it before RoundTrip
		ex.endRelay()          // RoundTrip has returned
		_ = ex.relayInformational(http.StatusEarlyHints, textproto.MIMEHeader{"Link": {"</late.css>"}})
		if w.informational != 0 {
			t.Fatal("a 1xx went to the client after endRelay returned")
		}
	}
}

type countingWriter struct {
	http.ResponseWriter
	informational int
}

func (w *countingWriter) WriteHeader(code int) {
	if code < 200 {
		w.informational++
	}
	w.ResponseWriter.WriteHeader(code)
}

// TestReviewRequestIDSurvivesEarlyHints: with request IDs on, the final
// response carries the ID even when a 103 went before it. Both paths
// clear the client's header map after relaying a 1xx (as ReverseProxy
// does), and begin put the ID there before the attempt.
func TestReviewRequestIDSurvivesEarlyHints(t *testing.T) {
	backend := reviewBackend(t)
	lb := newBalancer(t, balancerOptions{requestIDHeader: "X-Request-ID"}, backend.URL)
	for _, m := range []string{"GET", "POST"} { // the fast path, ReverseProxy
		resp, body, hints, err := reviewDo(t, lb.client, m, lb.url+"/hints", http.Header{"X-Request-Id": {"abc"}}, m == "POST")
		if err != nil || len(hints) != 3 || body != "after hints\n" {
			t.Fatalf("%s: %v %q %q", m, err, hints, body)
		}
		if got := resp.Header.Values("X-Request-Id"); len(got) != 1 {
			t.Errorf("%s: X-Request-ID %q after the 103s, want one", m, got)
		}
		// A 100 Continue goes no further than the balancer, but cleared
		// the header all the same.
		resp, body, _, err = reviewDo(t, lb.client, m, lb.url+"/continue", nil, m == "POST")
		if err != nil || body != "ok\n" {
			t.Fatalf("%s /continue: %v %q", m, err, body)
		}
		if got := resp.Header.Values("X-Request-Id"); len(got) != 1 {
			t.Errorf("%s: X-Request-ID %q after a 100 Continue, want one", m, got)
		}
	}
}

// TestReviewAltSvcSurvivesEarlyHints: likewise for the Alt-Svc header
// AdvertiseHTTP3 sets before the proxy runs.
func TestReviewAltSvcSurvivesEarlyHints(t *testing.T) {
	backend := reviewBackend(t)
	lb := h3Balancer(t, balancerOptions{}, backend.URL)
	c := clientFor(t, lb.client.Transport.(*http.Transport).TLSClientConfig.RootCAs, true, false)
	for _, m := range []string{"GET", "POST"} { // the fast path, ReverseProxy
		resp, body, hints, err := reviewDo(t, c, m, lb.url+"/hints", nil, m == "POST")
		if err != nil || len(hints) != 3 || body != "after hints\n" {
			t.Fatalf("%s: %v %q %q", m, err, hints, body)
		}
		if got := resp.Header.Values("Alt-Svc"); len(got) != 1 {
			t.Errorf("%s: Alt-Svc %q after the 103s, want ours", m, got)
		}
	}
}

// TestReviewHeadersTheClientAlreadyHas: the backend's own X-Request-ID
// gives way to ours, and its Set-Cookie goes with the sticky cookie.
func TestReviewHeadersTheClientAlreadyHas(t *testing.T) {
	backend := reviewBackend(t)
	lb := newBalancer(t, balancerOptions{requestIDHeader: "X-Request-ID", policy: mustPolicy(t, "cookie"), secret: testSecret}, backend.URL)
	for range 3 {
		resp, _, _, err := reviewGet(t, lb.client, "GET", lb.url+"/id", nil)
		if err != nil {
			t.Fatal(err)
		}
		ids := resp.Header.Values("X-Request-Id")
		if len(ids) != 1 || strings.HasPrefix(ids[0], "backend-") {
			t.Errorf("X-Request-ID %q, want ours alone", ids)
		}
		cookies := resp.Header.Values("Set-Cookie")
		if len(cookies) != 2 || cookies[0] != "app=1; Path=/" || !strings.Contains(cookies[1], "HttpOnly") {
			t.Errorf("Set-Cookie %q, want the backend's, then the sticky one", cookies)
		}
	}
}

// TestReviewConnectionHeaders: the backend's Connection: close is its
// own connection's business; a client's Connection: close, or HTTP/1.0
// without keep-alive, closes the client's connection after the response.
func TestReviewConnectionHeaders(t *testing.T) {
	backend := reviewBackend(t)
	lb := newBalancer(t, balancerOptions{}, backend.URL)

	rc := dialRaw(t, lb.url)
	for range 2 { // the connection stays open
		rc.send("GET /close HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, body := rc.response("GET")
		if resp.StatusCode != 200 || body != "closing\n" || resp.Close {
			t.Fatalf("got %d %q close=%v; want 200, the body, and the connection kept", resp.StatusCode, body, resp.Close)
		}
	}

	for _, req := range []string{
		"GET /plain HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
		"GET /plain HTTP/1.0\r\nHost: x\r\n\r\n",
		"HEAD /plain HTTP/1.0\r\nHost: x\r\n\r\n",
		"GET /trailers HTTP/1.0\r\nHost: x\r\n\r\n", // a body of unknown length
	} {
		rc := dialRaw(t, lb.url)
		rc.send(req)
		method, _, _ := strings.Cut(req, " ")
		resp, body := rc.response(method)
		if resp.StatusCode != 200 || (method == "GET" && body == "") {
			t.Errorf("%q: %d %q", req, resp.StatusCode, body)
		}
		if !rc.closed() {
			t.Errorf("%q: the connection stayed open", req)
		}
	}

	// HTTP/1.0 with keep-alive keeps it, even with a body of unknown length.
	rc = dialRaw(t, lb.url)
	rc.send("GET /plain HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n")
	if resp, body := rc.response("GET"); resp.StatusCode != 200 || body != "plain\n" {
		t.Errorf("HTTP/1.0 keep-alive: %d %q", resp.StatusCode, body)
	}
	rc.send("GET /plain HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n")
	if resp, body := rc.response("GET"); resp.StatusCode != 200 || body != "plain\n" {
		t.Errorf("HTTP/1.0 keep-alive, second request: %d %q", resp.StatusCode, body)
	}
}

// TestReviewQueriesAndPathsAsReverseProxySentThem compares what the
// backend received through the balancer and through ReverseProxy.
func TestReviewQueriesAndPathsAsReverseProxySentThem(t *testing.T) {
	backend := reviewBackend(t)
	lb := newBalancer(t, balancerOptions{}, backend.URL)
	ref := referenceProxy(t, backend.URL)
	for _, target := range []string{
		"/x?a=1;b=2", "/x?a=%zz&b=%2", "/x?a=%", "/x?a=%2;", "/x?;", "/x?a=1&&b=%41%4a", "/x?%GG=1",
		"/a%2Fb", "/a%2fb/c%252F", "/a/%2e%2E/b", "/x?" + strings.Repeat("a&", 10000),
		"/x?q=" + strings.Repeat("%20", 2000), "/x#frag", "/x?a=b#c", "//double/slash",
	} {
		var got [2]string
		for i, base := range []string{lb.url, ref.URL} {
			rc := dialRaw(t, base)
			rc.send("GET " + target + " HTTP/1.1\r\nHost: x\r\n\r\n")
			resp, body := rc.response("GET")
			got[i] = fmt.Sprint(resp.StatusCode, " ", body)
		}
		if got[0] != got[1] {
			short := target
			if len(short) > 40 {
				short = short[:40] + "..."
			}
			g0, g1 := got[0], got[1]
			if len(g0) > 200 {
				g0, g1 = g0[:200], g1[:min(200, len(g1))]
			}
			t.Errorf("%s: through the balancer %q, through ReverseProxy %q", short, g0, g1)
		}
	}
}

// TestReviewRetriesOnTheFastPath: a first attempt that fails in each
// retryable way, then a backend that answers; many at once, for -race.
func TestReviewRetriesOnTheFastPath(t *testing.T) {
	live := reviewBackend(t)
	reset := resetAfterRequest(t)
	silent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			return
		}
		select { // no headers until the request is cancelled
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	}))
	t.Cleanup(silent.Close)
	for _, tc := range []struct {
		name  string
		first string
		// The header timeout applies to the live backend too: generous,
		// for 16 requests at once under -race on a busy machine.
		headerTimeout time.Duration
	}{
		{"refused", deadURL(t), 0},
		{"reset after the request was sent", reset, 0},
		{"no response headers in time", silent.URL, 2 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lb := newBalancer(t, balancerOptions{retries: 1, monitor: fallNever(), responseHeaderTimeout: tc.headerTimeout},
				tc.first, live.URL)
			var wg sync.WaitGroup
			for i := range 16 {
				wg.Go(func() {
					resp, body, _, err := reviewGet(t, lb.client, "GET", fmt.Sprintf("%s/echo?i=%d", lb.url, i), nil)
					if err != nil || resp.StatusCode != 200 || !strings.Contains(body, fmt.Sprintf("query=i=%d ", i)) {
						t.Errorf("request %d: %v %v %q", i, err, resp, body)
					}
				})
			}
			wg.Wait()
			if t.Failed() {
				t.Log(lb.log.String())
			}
		})
	}
}

// resetAfterRequest is a backend that reads a request and resets the
// connection without answering (its health probe is answered).
func resetAfterRequest(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			return
		}
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			_ = conn.(*net.TCPConn).SetLinger(0)
			conn.Close()
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestReviewPROXYProtocolOnARetry: a GET retried after a refused
// connection reaches the next backend with its PROXY header (the second
// attempt's outbound request is a new one).
func TestReviewPROXYProtocolOnARetry(t *testing.T) {
	for _, v := range []int{1, 2} {
		t.Run(fmt.Sprint("v", v), func(t *testing.T) {
			pp, _ := proxyProtocolBackend(t)
			lb := newBalancer(t, balancerOptions{retries: 1, monitor: fallNever(), sendProxy: v}, deadURL(t), pp)
			c := clientFrom(t, "127.0.0.7")
			for i := range 4 {
				req, _ := http.NewRequestWithContext(t.Context(), "GET", lb.url+"/", nil)
				req.Header.Set("X-Test-Client", "127.0.0.7")
				resp, err := c.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || string(body) != "127.0.0.7" {
					t.Errorf("request %d: %d %q, want 200 from the PROXY backend with the client's address", i, resp.StatusCode, body)
				}
			}
		})
	}
}

// TestReviewAnHTTPSBackendThatClosesDuringTheHandshakeIsPassedOverForAGet:
// tls_test.go shows it for a POST (ReverseProxy); here for a GET, whose
// https trace from rewrite composes with the fast path's 1xx trace.
func TestReviewAnHTTPSBackendThatClosesDuringTheHandshakeIsPassedOverForAGet(t *testing.T) {
	closing := closingListener(t)
	ca := testcert.NewAuthority(t, "backend CA")
	url, _ := tlsBackend(t, ca, reviewBackend(t).Config.Handler)
	// "http://…" first would be picked first as often as not: the order
	// is the selector's; four requests try both orders.
	lb := newBalancer(t, balancerOptions{retries: 1, monitor: fallNever(), backendCAs: ca.Pool()}, "https://"+closing, url)
	for range 4 {
		resp, body, hints, err := reviewGet(t, lb.client, "GET", lb.url+"/hints", nil)
		if err != nil || resp.StatusCode != 200 || body != "after hints\n" || len(hints) != 3 {
			t.Fatalf("got %v %v %q hints %q; want 200 from the live backend with its 3 hints", err, resp, body, hints)
		}
	}
	if st := lb.status(t)[0]; st.Up || !strings.HasPrefix(st.Reason, "passive:") {
		t.Errorf("closing backend %+v, want DOWN at once like a refused connection", st)
	}
}

// TestReviewAHintThenAReset: a 103 went to the client, then the backend
// reset: the client gets 502 after the hint, and the handler is not
// stuck (the relay's token came back).
func TestReviewAHintThenAReset(t *testing.T) {
	backend := reviewBackend(t)
	lb := newBalancer(t, balancerOptions{monitor: fallNever()}, backend.URL)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			resp, _, hints, err := reviewGet(t, lb.client, "GET", lb.url+"/hint-then-reset", nil)
			if err != nil || resp.StatusCode != http.StatusBadGateway || len(hints) != 1 {
				t.Errorf("got %v %v hints %q; want the hint, then 502", err, resp, hints)
			}
		})
	}
	wg.Wait()
}

// TestReviewClientGoneMidBody: a client that goes away after the first
// part of a long response; the handler ends (goleak in TestMain) and the
// access log has the line.
func TestReviewClientGoneMidBody(t *testing.T) {
	release := make(chan struct{})
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			return
		}
		_, _ = io.WriteString(w, "first\n")
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(backend.Close)
	t.Cleanup(func() { close(release) })
	for _, tls := range []bool{false, true} {
		var lb *balancer
		if tls {
			lb, _, _ = tlsBalancer(t, balancerOptions{}, backend.URL)
		} else {
			lb = newBalancer(t, balancerOptions{}, backend.URL)
		}
		ctx, cancel := context.WithCancel(t.Context())
		req, _ := http.NewRequestWithContext(ctx, "GET", lb.url+"/slow", nil)
		resp, err := lb.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		line, err := bufio.NewReader(resp.Body).ReadString('\n')
		if err != nil || line != "first\n" {
			t.Fatalf("%q %v", line, err)
		}
		cancel()
		resp.Body.Close()
		lb.log.waitFor(t, 1, "path=/slow")
	}
}

var _ = tls.VersionTLS12

// TestReviewAHintThenTheRequestTimeout: a 103 went to the client, then
// the backend said nothing more until the request timeout: 504 after
// the hint, over HTTP/1.1 (the fast path) and HTTP/2.
func TestReviewAHintThenTheRequestTimeout(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			return
		}
		w.Header().Set("Link", "</a.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	}))
	t.Cleanup(backend.Close)
	lb, _, ca := tlsBalancer(t, balancerOptions{requestTimeout: 300 * time.Millisecond, monitor: fallNever()}, backend.URL)
	for _, h2 := range []bool{false, true} {
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				resp, body, hints, err := reviewGet(t, clientFor(t, ca.Pool(), !h2, h2), "GET", lb.url+"/hang", nil)
				if err != nil || resp.StatusCode != http.StatusGatewayTimeout || len(hints) != 1 {
					t.Errorf("HTTP/2 %v: got %v %v %q hints %q; want the hint, then 504", h2, err, resp, body, hints)
				}
			})
		}
		wg.Wait()
	}
}

// TestReviewNoHintsToHTTP10Clients: RFC 9110 §15.2, a server must not
// send a 1xx to an HTTP/1.0 client, which takes the first status line for
// the response. net/http's server writes whatever 1xx a handler asks for,
// so the balancer must not relay one to such a client.
func TestReviewNoHintsToHTTP10Clients(t *testing.T) {
	backend := reviewBackend(t)
	lb := newBalancer(t, balancerOptions{}, backend.URL)
	for _, m := range []string{"GET", "POST"} { // the fast path, ReverseProxy
		rc := dialRaw(t, lb.url)
		if m == "GET" {
			rc.send("GET /hints HTTP/1.0\r\nHost: x\r\n\r\n")
		} else {
			rc.send("POST /hints HTTP/1.0\r\nHost: x\r\nContent-Length: 1\r\n\r\nx")
		}
		if resp, body := rc.response(m); resp.StatusCode != 200 || body != "after hints\n" {
			t.Errorf("%s over HTTP/1.0: %d %q, want 200 and the body", m, resp.StatusCode, body)
		}
	}
}

// TestReviewStrippedRoutesAndOddQueries: a route with strip_prefix on the
// fast path keeps an escaped slash, and the query is cleaned as
// ReverseProxy cleaned it (a parameter with a semicolon or a bad escape
// dropped, the rest re-encoded).
func TestReviewStrippedRoutesAndOddQueries(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s\n%s\n%s\n", r.URL.EscapedPath(), r.URL.RawQuery, r.Header.Get("X-Forwarded-Prefix"))
	}))
	t.Cleanup(srv.Close)
	s := newSite(t, map[string][]string{"a": {srv.URL}}, []routing.Route{
		{Name: "stripped", PathPrefix: "/api", StripPrefix: true, Pool: "a"},
		{Name: "as-is", Pool: "a"},
	})
	for _, tt := range []struct{ target, path, query, prefix string }{
		{"/api/a%2Fb?x=1", "/a%2Fb", "x=1", "/api"},
		{"/api/a%2fb/c", "/a%2Fb/c", "", "/api"}, // the router normalises escapes
		{"/api/x?a=1;b=2&c=3", "/x", "c=3", "/api"},
		{"/api/x?a=%zz&b=%41", "/x", "b=A", "/api"},
		{"/api?q=1", "/", "q=1", "/api"},
		{"/other%2Fx?q=a+b", "/other%2Fx", "q=a+b", ""},
	} {
		status, lines := s.send(t, "GET", "x", tt.target, nil)
		if status != 200 || len(lines) != 3 || lines[0] != tt.path || lines[1] != tt.query || lines[2] != tt.prefix {
			t.Errorf("%s: %d %q, want path %q, query %q, X-Forwarded-Prefix %q", tt.target, status, lines, tt.path, tt.query, tt.prefix)
		}
	}
}

// TestReviewTokensAreMatchedInASCII: "TE: trailers" is kept for the
// backend when the client's TE lists the token trailers. ReverseProxy
// compares tokens in ASCII (httpguts); strings.EqualFold also folds
// U+017F (ſ) to s, so a client's "TE: trailerſ" reaches the backend as
// "TE: trailers" on the fast path.
func TestReviewTokensAreMatchedInASCII(t *testing.T) {
	backend := forwarderBackend(t)
	b := newBalancer(t, balancerOptions{}, backend.URL)
	ref := referenceProxy(t, backend.URL)
	h := http.Header{"Te": {"trailer\u017f"}}
	want := fetch(t, ref.Client(), ref.URL, "/echo", h)
	got := fetch(t, b.client, b.url, "/echo", h)
	if got.Body != want.Body {
		t.Errorf("through the balancer the backend saw\n%s\nthrough ReverseProxy\n%s", got.Body, want.Body)
	}
}

// TestReviewClientGoneBeforeTheResponse: a client that goes away while
// the backend thinks is logged 499, the backend's request is cancelled,
// and no goroutine stays behind (goleak in TestMain).
func TestReviewClientGoneBeforeTheResponse(t *testing.T) {
	testClientGone(t, 0, 3)
}

// TestReviewClientGoneAfterAHint: likewise after one 103, or five sent
// at once (the transport's reader relays the buffered ones after
// RoundTrip returned). endRelay may return on the client's context while
// the token is in ex.relay or in the middle of a relay: a 1xx is then
// written while, or after, the handler ends and net/http flushes and
// recycles the connection's buffer (the race detector catches it about
// one run in five of the single-103 case; after the handler, response's
// WriteHeader can also dereference the released bufio.Writer and panic
// on the transport's goroutine, which would end the process).
func TestReviewClientGoneAfterAHint(t *testing.T) {
	t.Run("one", func(t *testing.T) { testClientGone(t, 1, 20) })
	t.Run("five at once", func(t *testing.T) { testClientGone(t, 5, 20) })
}

// testClientGone sends n requests whose backend sends hints 103s (in one
// write) and then waits; the client goes away on the first hint, or, with
// none, once the backend has the request.
func testClientGone(t *testing.T, hints, n int) {
	arrived, cancelled := make(chan struct{}, 1), make(chan struct{}, 1)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			return
		}
		if hints > 0 {
			conn, rw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				t.Error(err)
				return
			}
			defer conn.Close()
			_, _ = rw.WriteString(strings.Repeat("HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n", hints))
			_ = rw.Flush()
			arrived <- struct{}{}
			_, _ = io.Copy(io.Discard, conn) // until the balancer closes it
			cancelled <- struct{}{}
			return
		}
		arrived <- struct{}{}
		select {
		case <-r.Context().Done():
			cancelled <- struct{}{}
		case <-time.After(10 * time.Second):
		}
	}))
	t.Cleanup(backend.Close)
	lb := newBalancer(t, balancerOptions{monitor: fallNever()}, backend.URL)
	for i := range n {
		ctx, cancel := context.WithCancel(t.Context())
		trace := &httptrace.ClientTrace{Got1xxResponse: func(int, textproto.MIMEHeader) error { cancel(); return nil }}
		req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), "GET", lb.url+"/think", nil)
		var wg sync.WaitGroup
		wg.Go(func() {
			if resp, err := lb.client.Do(req); err == nil {
				resp.Body.Close()
				t.Error("the request was answered")
			}
		})
		<-arrived
		if hints == 0 {
			cancel()
		}
		wg.Wait()
		cancel()
		select {
		case <-cancelled:
		case <-time.After(10 * time.Second):
			t.Fatal("the backend's request was not cancelled")
		}
		lb.log.waitFor(t, i+1, "path=/think", "status=499")
	}
}

// TestReviewHintsFromTwoAttempts: the first backend sends a 103 and
// resets, the second sends its own 103s and answers; many at once over
// HTTP/1.1 and HTTP/2, for -race: the client gets every hint and the
// second backend's response.
func TestReviewHintsFromTwoAttempts(t *testing.T) {
	first := reviewBackend(t)
	second := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			return
		}
		w.Header().Set("Link", "</b.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Del("Link")
		_, _ = io.WriteString(w, "second\n")
	}))
	t.Cleanup(second.Close)
	lb, _, ca := tlsBalancer(t, balancerOptions{retries: 1, monitor: fallNever(), requestIDHeader: "X-Request-ID"}, first.URL, second.URL)
	for _, h2 := range []bool{false, true} {
		c := clientFor(t, ca.Pool(), !h2, h2)
		var wg sync.WaitGroup
		for range 16 {
			wg.Go(func() {
				resp, body, hints, err := reviewGet(t, c, "GET", lb.url+"/hint-then-reset", nil)
				if err != nil || resp.StatusCode != 200 || body != "second\n" {
					t.Errorf("HTTP/2 %v: %v %v %q", h2, err, resp, body)
					return
				}
				// One hint from the second backend, and one from the first
				// if it was tried first.
				if n := len(hints); n < 1 || n > 2 || hints[n-1] != "103 </b.css>; rel=preload" {
					t.Errorf("HTTP/2 %v: hints %q", h2, hints)
				}
			})
		}
		wg.Wait()
	}
}
