package transport

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// Request smuggling and request-target attacks, each on a raw socket so the
// bytes are exactly the attacker's. Every one must get a fixed error that
// echoes nothing from the request, the connection must be closed after it,
// and no backend may see a request.
func TestAmbiguousOrMalformedRequestsAreRefusedAndTheConnectionClosed(t *testing.T) {
	backend, got := recordingBackend(t)
	lb := newBalancer(t, balancerOptions{}, backend.URL)
	const smuggled = "GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"
	tests := []struct {
		name, req string
		status    int
	}{
		{"Content-Length with Transfer-Encoding is refused (CL.TE)",
			"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled, 400},
		{"Transfer-Encoding with Content-Length is refused (TE.CL)",
			"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n5c\r\n" + smuggled + "\r\n0\r\n\r\n", 400},
		{"a repeated identical Content-Length is refused",
			"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc", 400},
		{"differing Content-Lengths are refused",
			"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 40\r\n\r\nabc" + smuggled, 400},
		{"a Content-Length list is refused",
			"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\nabc", 400},
		{"a signed Content-Length is refused",
			"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\nabc", 400},
		{"a hexadecimal Content-Length is refused",
			"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x3\r\n\r\nabc", 400},
		{"Transfer-Encoding in an HTTP/1.0 request is refused",
			"POST / HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled, 400},
		{"Transfer-Encoding given twice is refused",
			"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
		{"Transfer-Encoding hidden by line folding is refused",
			"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n" + smuggled, 400},
		{"any folded header line is refused",
			"GET / HTTP/1.1\r\nHost: a\r\nX-Note: one\r\n\ttwo\r\n\r\n", 400},
		{"whitespace before a header's colon is refused",
			"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\nContent-Length: 0\r\n\r\n", 400},
		{"a bare LF line end is refused",
			"POST / HTTP/1.1\nHost: a\nContent-Length: 3\n\nabc", 400},
		{"a bare CR is refused",
			"GET / HTTP/1.1\r\nHost: a\rX-Evil: 1\r\n\r\n", 400},
		{"an unknown transfer coding gets 501",
			"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n" + smuggled, 501},
		{"a misspelt chunked coding gets 501",
			"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n" + smuggled, 501},
		{"a negative chunk size is refused",
			"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n" + smuggled, 400},
		{"a chunk size with a bare LF is refused",
			"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n" + smuggled, 400},
		{"chunk data longer than its size is refused",
			"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcdef\r\n0\r\n\r\n" + smuggled, 400},
		{"an oversized chunk size is refused",
			"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000\r\n", 400},
		{"an empty line before the request line is refused",
			"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"an unknown protocol version is refused",
			"GET / HTTP/1.2\r\nHost: a\r\n\r\n", 400},
		{"Host given twice is refused",
			"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
		{"an absolute-form target for another host is refused",
			"GET http://evil.example/admin HTTP/1.1\r\nHost: shop.example\r\n\r\n", 400},
		{"an absolute-form target without a Host header is refused",
			"GET http://evil.example/admin HTTP/1.0\r\n\r\n", 400},
		{"an absolute-form target with another scheme is refused",
			"GET ftp://shop.example/ HTTP/1.1\r\nHost: shop.example\r\n\r\n", 400},
		{"an authority-form target outside CONNECT is refused",
			"GET evil.example:80 HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"an asterisk-form target outside OPTIONS is refused",
			"GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"CONNECT is refused: this is not a forward proxy",
			"CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n", 405},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := dialRaw(t, lb.url)
			rc.send(tt.req)
			method, _, _ := strings.Cut(tt.req, " ")
			resp, body := rc.response(strings.TrimSpace(method))
			if resp.StatusCode != tt.status {
				t.Errorf("status %d (%q), want %d", resp.StatusCode, body, tt.status)
			}
			if echoes(body, tt.req) {
				t.Errorf("error body %q echoes the request", body)
			}
			if !rc.closed() {
				t.Error("the connection stayed open")
			}
			noRequest(t, got)
		})
	}
	if t.Failed() {
		t.Logf("balancer log:\n%s", lb.log)
	}
}

// echoes reports whether body repeats a distinctive piece of req.
func echoes(body, req string) bool {
	for _, marker := range []string{"evil", "smuggled", "chunked", "X-Evil", "shop.example"} {
		if strings.Contains(req, marker) && strings.Contains(body, marker) {
			return true
		}
	}
	return false
}

func TestTheGuardLogsWhyItRefusedARequest(t *testing.T) {
	backend, _ := recordingBackend(t)
	lb := newBalancer(t, balancerOptions{}, backend.URL)
	rc := dialRaw(t, lb.url)
	rc.send("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
	if resp, _ := rc.response("POST"); resp.StatusCode != 400 {
		t.Fatalf("status %d, want 400", resp.StatusCode)
	}
	lb.log.waitFor(t, 1, "rejected request", "both Content-Length and Transfer-Encoding", "client=127.0.0.1:")
}

// The guard must not get in the way of well-formed HTTP/1.1.
func TestWellFormedRequestsPassTheGuard(t *testing.T) {
	backend, got := recordingBackend(t)
	lb := newBalancer(t, balancerOptions{}, backend.URL)

	t.Run("pipelined requests are answered in order on one connection", func(t *testing.T) {
		rc := dialRaw(t, lb.url)
		rc.send("POST /one HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello" +
			"POST /two HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n2  \r\nde\r\n0\r\nX-Trailer: t\r\n\r\n" +
			"GET /three HTTP/1.1\r\nHost: a\r\n\r\n")
		for _, want := range []struct{ path, body string }{{"/one", "hello"}, {"/two", "abcde"}, {"/three", ""}} {
			if resp, _ := rc.response("POST"); resp.StatusCode != 200 {
				t.Fatalf("%s: status %d", want.path, resp.StatusCode)
			}
			r := <-got
			b, _ := io.ReadAll(r.Body)
			if r.URL.Path != want.path || string(b) != want.body {
				t.Errorf("backend got %s with body %q, want %s with %q", r.URL.Path, b, want.path, want.body)
			}
		}
	})
	t.Run("a request arriving a byte at a time is served", func(t *testing.T) {
		rc := dialRaw(t, lb.url)
		req := "POST /slow HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n"
		for i := range len(req) {
			rc.send(req[i : i+1])
		}
		if resp, _ := rc.response("POST"); resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		if r := <-got; r.URL.Path != "/slow" {
			t.Errorf("backend got %s", r.URL.Path)
		}
	})
	t.Run("an absolute-form target naming the Host header's host is served as origin-form", func(t *testing.T) {
		rc := dialRaw(t, lb.url)
		rc.send("GET http://shop.example/cart?x=1 HTTP/1.1\r\nHost: shop.example\r\n\r\n")
		if resp, _ := rc.response("GET"); resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		if r := <-got; r.RequestURI != "/cart?x=1" || r.Host != "shop.example" {
			t.Errorf("backend got %s for host %s, want /cart?x=1 for shop.example", r.RequestURI, r.Host)
		}
	})
	t.Run("OPTIONS * is answered and the connection kept", func(t *testing.T) {
		rc := dialRaw(t, lb.url)
		rc.send("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\nGET /after HTTP/1.1\r\nHost: a\r\n\r\n")
		if resp, _ := rc.response("OPTIONS"); resp.StatusCode != 200 {
			t.Fatalf("OPTIONS *: status %d", resp.StatusCode)
		}
		if resp, _ := rc.response("GET"); resp.StatusCode != 200 {
			t.Fatalf("GET after OPTIONS *: status %d", resp.StatusCode)
		}
		if r := <-got; r.URL.Path != "/after" {
			t.Errorf("backend got %s", r.URL.Path)
		}
	})
}

// A proxy the attacker names in the request must never be contacted.
func TestTheBalancerNeverConnectsToAHostTheClientNames(t *testing.T) {
	contacted := make(chan string, 4)
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		contacted <- r.Method + " " + r.RequestURI
	}))
	t.Cleanup(other.Close)
	otherHost := strings.TrimPrefix(other.URL, "http://")
	backend, _ := recordingBackend(t)
	lb := newBalancer(t, balancerOptions{}, backend.URL)
	for _, req := range []string{
		"GET " + other.URL + "/ HTTP/1.1\r\nHost: shop.example\r\n\r\n",
		"CONNECT " + otherHost + " HTTP/1.1\r\nHost: " + otherHost + "\r\n\r\n",
	} {
		rc := dialRaw(t, lb.url)
		rc.send(req)
		if resp, _ := rc.response("GET"); resp.StatusCode < 400 {
			t.Errorf("%q: status %d, want a refusal", req, resp.StatusCode)
		}
	}
	select {
	case r := <-contacted:
		t.Errorf("the host named by the client was contacted: %s", r)
	default:
	}
}
