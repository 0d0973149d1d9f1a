package transport

import (
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
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

// TestTheGuardReadsEachStreamAsItDidBeforeIssue18 pins, for streams that
// exercise each rule the framing guard applies, what it answered before
// issue 18's rewrite of how it reads lines and heads (the figures were
// taken from the old guard): how many bytes it releases, why it stops,
// and which heads it accepts; the same whatever the reads' size. The
// limit is the head limit, 4096 if 0.
func TestTheGuardReadsEachStreamAsItDidBeforeIssue18(t *testing.T) {
	big := strings.Repeat("x", 4096)
	tests := []struct {
		stream   string
		limit    int
		h2c      bool
		released int
		reason   string // "" if it goes through
		accepted []string
	}{
		{"GET http://a/x HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 0, false, 63, "", []string{"GET http://a/x", "GET /"}},
		{"GET HTTP://A:80?q HTTP/1.1\r\nhost:\tA:80 \r\n\r\n", 0, false, 43, "", []string{"GET HTTP://A:80?q"}},
		{"GET https://a#frag HTTP/1.0\r\nHOST: a\r\n\r\n", 0, false, 40, "", []string{"GET https://a#frag"}},
		{"GET http://a HTTP/1.1\r\nHost: b\r\n\r\n", 0, false, 33, "absolute-form target names another host than the Host header", []string(nil)},
		{"GET http://a/ HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 0, false, 43, "absolute-form target names another host than the Host header", []string(nil)},
		{"GET http://a/ HTTP/1.1\r\n\r\n", 0, false, 25, "absolute-form target names another host than the Host header", []string(nil)},
		{"GET http://a/ HTTP/1.1\r\nHost: \r\n\r\n", 0, false, 33, "absolute-form target names another host than the Host header", []string(nil)},
		{"GET http:///x HTTP/1.1\r\nHost: \r\n\r\n", 0, false, 34, "", []string{"GET http:///x"}},
		{"GET ftp://a/ HTTP/1.1\r\nHost: a\r\n\r\n", 0, false, 33, "malformed request target", []string(nil)},
		{"GET http:/a HTTP/1.1\r\nHost: a\r\n\r\n", 0, false, 32, "malformed request target", []string(nil)},
		{"GET a/b HTTP/1.1\r\nHost: a\r\n\r\n", 0, false, 28, "malformed request target", []string(nil)},
		{"OPTIONS * HTTP/1.1\r\nHost: a\r\nUpgrade: x\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 0, false, 70, "", []string{"OPTIONS *", "GET /"}},
		{"GET * HTTP/1.1\r\nHost: a\r\n\r\n", 0, false, 26, "asterisk-form target outside OPTIONS", []string(nil)},
		{"CONNECT * HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\n\r\n", 0, false, 49, "", []string{"CONNECT *", "GET /"}},
		{"CONNECT a:443 HTTP/1.1\r\n\r\n", 0, false, 26, "", []string{"CONNECT a:443"}},
		{"GET /ws HTTP/1.1\r\nHost: a\r\nupgrade: websocket\r\n\r\n\x00\x01 anything \n\r", 0, false, 63, "", []string{"GET /ws"}},
		{"POST / HTTP/1.1\r\nContent-Length:  5 \t\r\n\r\nhelloGET / HTTP/1.1\r\n\r\n", 0, false, 64, "", []string{"POST /", "GET /"}},
		{"POST / HTTP/1.1\r\ncontent-LENGTH:\t05\r\n\r\nhelloGET / HTTP/1.1\r\n\r\n", 0, false, 62, "", []string{"POST /", "GET /"}},
		{"POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\nGET / HTTP/1.1\r\n\r\n", 0, false, 56, "", []string{"POST /", "GET /"}},
		{"POST / HTTP/1.1\r\nContent-Length: \r\n\r\n", 0, false, 36, "invalid Content-Length", []string(nil)},
		{"POST / HTTP/1.1\r\nContent-Length: 999999999999999999\r\n\r\nabc", 0, false, 58, "", []string{"POST /"}},
		{"POST / HTTP/1.1\r\nContent-Length: 1000000000000000000\r\n\r\nabc", 0, false, 55, "invalid Content-Length", []string(nil)},
		{"POST / HTTP/1.1\r\nContent-Length: 5,5\r\n\r\nhello", 0, false, 39, "invalid Content-Length", []string(nil)},
		{"POST / HTTP/1.1\r\nContent-Length: 3\r\ncontent-length: 4\r\n\r\nabc", 0, false, 56, "more than one Content-Length", []string(nil)},
		{"POST / HTTP/1.1\r\nTransfer-Encoding:  CHUNKED \r\n\r\n3;a=b\r\nabc\r\nA \t\r\n0123456789\r\n0\r\nT: 1\r\n\r\nGET / HTTP/1.1\r\n\r\n", 0, false, 107, "", []string{"POST /", "GET /"}},
		{"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\nGET /next HTTP/1.1\r\n\r\n", 0, false, 56, "refused after the head", []string{"POST /"}},
		{"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n0\r\n\r\nGET /next HTTP/1.1\r\n\r\n", 0, false, 44, "refused after the head", []string{"POST /"}},
		{"POST / HTTP/1.1\r\nTransfer_Encoding: chunked\r\n\r\nGET /next HTTP/1.1\r\n\r\n", 0, false, 69, "", []string{"POST /", "GET /next"}},
		{"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n00000000000000003\r\nabc\r\n0\r\n\r\n", 0, false, 65, "invalid chunk size", []string{"POST /"}},
		{"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n", 0, false, 53, "chunk data not followed by CRLF", []string{"POST /"}},
		{"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + big[:4095] + "x\r\n", 0, false, 4143, "chunk-size line too long", []string{"POST /"}},
		{"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + big[:4095] + "\r\n", 0, false, 4143, "invalid chunk size", []string{"POST /"}},
		{"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nT: " + big[:4095] + "x\r\n\r\n", 0, false, 4146, "trailer section too large", []string{"POST /"}},
		{"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nT: " + big[:4089] + "\r\n\r\n", 0, false, 4146, "", []string{"POST /"}},
		{"GET / HTTP/1.1\r\nHo st: a\r\n\r\n", 0, false, 25, "malformed header field", []string(nil)},
		{"GET / HTTP/1.1\r\n: a\r\n\r\n", 0, false, 20, "malformed header field", []string(nil)},
		{"GET / HTTP/1.1\r\nHost : a\r\n\r\n", 0, false, 25, "malformed header field", []string(nil)},
		{"GET / HTTP/1.1\r\nX-ä: 1\r\n\r\n", 0, false, 24, "malformed header field", []string(nil)},
		{"GET / HTTP/1.1\r\nNoColon\r\n\r\n", 0, false, 24, "malformed header field", []string(nil)},
		{"GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n", 0, false, 25, "obsolete line folding", []string(nil)},
		{"GET / HTTP/1.1\r\nX: a\rb\r\n\r\n", 0, false, 21, "CR not followed by LF", []string(nil)},
		{"GET / HTTP/1.1\r\nX: a\r\r\n\r\n", 0, false, 21, "CR not followed by LF", []string(nil)},
		{"GET / HTTP/1.1\r\nX: a\n\r\n", 0, false, 20, "line ends in a bare LF", []string(nil)},
		{"GET  / HTTP/1.1\r\n\r\n", 0, false, 16, "malformed request line", []string(nil)},
		{" / HTTP/1.1\r\n\r\n", 0, false, 12, "malformed request line", []string(nil)},
		{"GET /\r\n\r\n", 0, false, 6, "malformed request line", []string(nil)},
		{"GET / HTTP/1.1 x\r\n\r\n", 0, false, 17, "unsupported protocol version", []string(nil)},
		{"GET / http/1.1\r\n\r\n", 0, false, 15, "unsupported protocol version", []string(nil)},
		{"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00", 0, true, 26, "", []string(nil)},
		{"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 0, false, 15, "HTTP/2 preface where HTTP/1.x is expected", []string(nil)},
		{"GET / HTTP/1.1\r\n\r\nPRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 0, true, 33, "HTTP/2 preface where HTTP/1.x is expected", []string{"GET /"}},
		{"GET / HTTP/1.1\r\nHost: a\r\n\r\n", 29, false, 27, "", []string{"GET /"}},
		{"GET / HTTP/1.1\r\nHost: a\r\n\r\n", 28, false, 27, "", []string{"GET /"}},
		{"GET / HTTP/1.1\r\nHost: a\r\n\r\n", 27, false, 27, "", []string{"GET /"}},
		{"GET / HTTP/1.1\r\nHost: a\r\n\r\n", 26, false, 26, "request head too large", []string(nil)},
		{"GET / HTTP/1.1\r\nHost: a\r\n\r\n", 25, false, 25, "request head too large", []string(nil)},
		{"GET / HTTP/1.1\r\nHost: a\r\n\r\n", 24, false, 24, "request head too large", []string(nil)},
		{"GET / HTTP/1.1\r\nHost: a\r\n\r\n", 10, false, 10, "request head too large", []string(nil)},
		{"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 27, false, 54, "", []string{"GET /", "GET /"}},
		{"GET / HTTP/1.1\r\nCookie: " + big[:40] + "\r\n\r\n", 50, false, 50, "request head too large", []string(nil)},
		{"GET / HTTP/1.1\r\nHost: a\r\n\r\nPOST / HTTP/1.1\r\nContent-Length: 2\r\n\r\nhiGET /3 HTTP/1.1\r\n\r\n", 0, false, 86, "", []string{"GET /", "POST /", "GET /3"}},
	}
	for _, tt := range tests {
		limit := tt.limit
		if limit == 0 {
			limit = 4096
		}
		for _, size := range []int{1, 2, 3, 7, len(tt.stream)} {
			released, reason, accepted := runGuard(tt.stream, size, limit, tt.h2c)
			if released != tt.released || reason != tt.reason || !slices.Equal(accepted, tt.accepted) {
				t.Errorf("%.60q in reads of %d: released %d, reason %q, accepted %q; want %d, %q, %q",
					tt.stream, size, released, reason, accepted, tt.released, tt.reason, tt.accepted)
			}
		}
	}
}

// runGuard runs a guard over stream in reads of size bytes and returns how
// many bytes it released, why it stopped ("" if it did not), and the heads
// it accepted.
func runGuard(stream string, size, limit int, h2c bool) (released int, reason string, accepted []string) {
	g := &guard{cfg: &guardConfig{limit: limit, h2c: h2c, log: hclog.NewNullLogger(), accepted: func(method, target string) {
		accepted = append(accepted, method+" "+target)
	}}}
	for off := 0; off < len(stream); off += size {
		n, err := g.scan([]byte(stream[off:min(off+size, len(stream))]))
		released += n
		switch {
		case err != nil:
			return released, err.Error(), accepted
		case g.err != nil:
			return released, "refused after the head", accepted
		}
	}
	return released, "", accepted
}
