package transport

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/http/httputil"
	"net/textproto"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

// The forwarder's fast path (forwarder.go) must do for a request without
// a body what httputil.ReverseProxy did. These tests send the same
// requests through the balancer and through a ReverseProxy set up as
// Roundhouse's was before it had a forwarder of its own (Rewrite: the
// backend's URL, the client's Host, X-Forwarded-*), to the same backend,
// and compare what the backend received and what the client got.

// forwarderBackend answers each path in its own way; see the cases.
func forwarderBackend(t *testing.T) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	// /echo: what the backend received, as JSON: the header (without the
	// forwarding headers, which differ on purpose), the query, the Host.
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		h := r.Header.Clone()
		for _, k := range []string{"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto"} {
			delete(h, k)
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"header": h, "query": r.URL.RawQuery, "host": r.Host, "path": r.URL.Path})
	})
	// /hop: hop-by-hop response headers, fixed and Connection-listed,
	// and end-to-end ones, several values of one among them.
	mux.HandleFunc("/hop", func(w http.ResponseWriter, _ *http.Request) {
		h := w.Header()
		h.Set("Connection", "X-Resp-Hop, keep-alive")
		h.Set("X-Resp-Hop", "1")
		h.Set("Keep-Alive", "timeout=5")
		h.Set("Proxy-Authenticate", "Basic")
		h.Set("Upgrade", "foo")
		h["X-Multi"] = []string{"a", "b"}
		h.Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "hop\n")
	})
	// /trailers: one announced trailer, one not (TrailerPrefix).
	mux.HandleFunc("/trailers", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Trailer", "X-Announced")
		_, _ = io.WriteString(w, "body\n")
		w.(http.Flusher).Flush()
		w.Header().Set("X-Announced", "yes")
		w.Header().Set(http.TrailerPrefix+"X-Late", "late")
	})
	// /early: 103 Early Hints, then the response.
	mux.HandleFunc("/early", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Del("Link")
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "after hints\n")
	})
	mux.HandleFunc("/cut", serveCutShort)
	// /switch: a 101 nobody asked for.
	mux.HandleFunc("/switch", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Connection", "Upgrade")
		w.Header().Set("Upgrade", "foo")
		w.WriteHeader(http.StatusSwitchingProtocols)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// serveCutShort answers with a Content-Length the body never reaches.
func serveCutShort(w http.ResponseWriter, _ *http.Request) {
	conn, rw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	_, _ = rw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this")
	_ = rw.Flush()
}

// referenceProxy is Roundhouse's forwarding as it was, before forwarder.go.
func referenceProxy(t *testing.T, backend string) *httptest.Server {
	t.Helper()
	u, err := url.Parse(backend)
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	rp := &httputil.ReverseProxy{
		Transport: tr,
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.Out.Host = pr.In.Host
			pr.SetXForwarded()
		},
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, _ error) { w.WriteHeader(http.StatusBadGateway) },
	}
	srv := httptest.NewServer(rp)
	t.Cleanup(srv.Close)
	return srv
}

// seen is what a client saw of one exchange, for comparison.
type seen struct {
	Status   int
	Header   http.Header
	Body     string
	BodyErr  bool
	Trailer  http.Header
	Informal []string // the 1xx responses, as "code Link"
	Err      bool     // the response never came (the connection closed)
}

func fetch(t *testing.T, client *http.Client, base, path string, header http.Header) seen {
	t.Helper()
	var s seen
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		s.Informal = append(s.Informal, fmt.Sprint(code, " ", h.Get("Link")))
		return nil
	}}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(t.Context(), trace), http.MethodGet, base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "site.example" // the client's Host reaches the backend
	for k, vv := range header {
		req.Header[k] = vv
	}
	resp, err := client.Do(req)
	if err != nil {
		s.Err = true
		return s
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	s.Status, s.Body, s.BodyErr, s.Trailer = resp.StatusCode, string(body), err != nil, resp.Trailer
	s.Header = resp.Header.Clone()
	for _, k := range []string{"Date", "Content-Length"} { // differ by design: the body can be cut short
		delete(s.Header, k)
	}
	return s
}

func TestFastPathForwardsAsReverseProxyDid(t *testing.T) {
	backend := forwarderBackend(t)
	b := newBalancer(t, balancerOptions{}, backend.URL)
	ref := referenceProxy(t, backend.URL)
	cases := []struct {
		name, path string
		header     http.Header
	}{
		{"plain", "/echo?a=1&b=2", nil},
		{"no user agent", "/echo", http.Header{"User-Agent": nil}},
		{"a user agent", "/echo", http.Header{"User-Agent": {"curl/8"}}},
		{"hop-by-hop request headers", "/echo", http.Header{
			"Connection":          {"X-Req-Hop, keep-alive"},
			"X-Req-Hop":           {"dropped"},
			"Keep-Alive":          {"timeout=5"},
			"Proxy-Authorization": {"Basic eA=="},
			"Proxy-Connection":    {"keep-alive"},
			"Te":                  {"gzip"},
			"X-End-To-End":        {"kept"},
		}},
		{"te trailers kept", "/echo", http.Header{"Te": {"trailers, deflate"}}},
		{"client's forwarding headers", "/echo", http.Header{"X-Forwarded-For": {"6.6.6.6"}, "Forwarded": {"for=6.6.6.6"}}},
		{"query with a semicolon", "/echo?a=1;b=2&c=3", nil},
		{"query with a bad escape", "/echo?a=%zz&c=3", nil},
		{"escaped path", "/echo/../echo%2Fx?x", nil},
		{"hop-by-hop response headers", "/hop", nil},
		{"trailers", "/trailers", nil},
		{"early hints", "/early", nil},
		{"cut short", "/cut", nil},
		{"101 not asked for", "/switch", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			want := fetch(t, ref.Client(), ref.URL, tc.path, tc.header)
			got := fetch(t, b.client, b.url, tc.path, tc.header)
			if got.Status == http.StatusBadGateway && want.Status == http.StatusBadGateway {
				return // the balancer's own error page differs by design
			}
			if g, w := fmt.Sprintf("%+v", got), fmt.Sprintf("%+v", want); g != w {
				t.Errorf("through the balancer:\n%s\nthrough ReverseProxy:\n%s", g, w)
			}
		})
	}
}

// TestFastPathFlushesStreamsAsTheyArrive: a response of unknown length and
// an event stream of known length reach the client write by write; the
// backend writes its second part only after the client has the first.
func TestFastPathFlushesStreamsAsTheyArrive(t *testing.T) {
	got := make(chan struct{})
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/unknown-length":
		case "/sse":
			w.Header().Set("Content-Type", "Text/Event-Stream; charset=utf-8")
			w.Header().Set("Content-Length", "12")
		default: // the monitor's probe
			return
		}
		_, _ = io.WriteString(w, "first\n")
		w.(http.Flusher).Flush()
		select {
		case <-got:
		case <-r.Context().Done():
			return
		case <-time.After(10 * time.Second):
			return
		}
		_, _ = io.WriteString(w, "last.\n")
	}))
	t.Cleanup(backend.Close)
	b := newBalancer(t, balancerOptions{}, backend.URL)
	for _, path := range []string{"/unknown-length", "/sse"} {
		resp, err := b.client.Get(b.url + path)
		if err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(resp.Body)
		line, err := br.ReadString('\n')
		if err != nil || line != "first\n" {
			t.Fatalf("%s: first line %q, %v", path, line, err)
		}
		got <- struct{}{}
		rest, err := io.ReadAll(br)
		resp.Body.Close()
		if err != nil || string(rest) != "last.\n" {
			t.Fatalf("%s: rest %q, %v", path, rest, err)
		}
	}
}

// TestFastPathTakesOnlyBodylessRequestsWithoutAnUpgrade pins which
// requests take the fast path.
func TestFastPathTakesOnlyBodylessRequestsWithoutAnUpgrade(t *testing.T) {
	p := NewProxy(Config{})
	for _, tc := range []struct {
		method string
		body   io.Reader
		header http.Header
		lean   bool
	}{
		{"GET", nil, nil, true},
		{"DELETE", nil, nil, true},
		{"POST", strings.NewReader("x"), nil, false},
		{"GET", nil, http.Header{"Connection": {"Upgrade"}, "Upgrade": {"websocket"}}, false},
		{"GET", nil, http.Header{"Connection": {"keep-alive, upgrade"}, "Upgrade": {"h2c"}}, false},
		{"GET", nil, http.Header{"Upgrade": {"websocket"}}, true}, // not listed in Connection: no upgrade
	} {
		r := httptest.NewRequest(tc.method, "/", tc.body)
		for k, vv := range tc.header {
			r.Header[k] = slices.Clone(vv)
		}
		ex, _ := p.begin(httptest.NewRecorder(), r)
		if ex.lean() != tc.lean {
			t.Errorf("%s with %v, body %v: lean %v, want %v", tc.method, tc.header, tc.body != nil, ex.lean(), tc.lean)
		}
	}
}
