package transport

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// rawConn is a client connection driven byte by byte, for requests that
// net/http's client would refuse to send.
type rawConn struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

// dialRaw connects to the balancer at url ("http://host:port").
func dialRaw(t *testing.T, url string) *rawConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", strings.TrimPrefix(url, "http://"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	// No exchange in these tests takes long; a deadline turns a hang into a failure.
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return &rawConn{t: t, c: c, br: bufio.NewReader(c)}
}

func (rc *rawConn) send(s string) {
	rc.t.Helper()
	if _, err := io.WriteString(rc.c, s); err != nil {
		rc.t.Fatalf("write: %v", err)
	}
}

// response reads one response to a request with method and returns it with
// its body read.
func (rc *rawConn) response(method string) (*http.Response, string) {
	rc.t.Helper()
	resp, err := http.ReadResponse(rc.br, &http.Request{Method: method})
	if err != nil {
		rc.t.Fatalf("reading response: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		rc.t.Fatalf("reading response body: %v", err)
	}
	return resp, string(body)
}

// recordingBackend is a backend that answers 200 "ok" and sends each
// complete request it receives (other than health probes) on the returned
// channel, its body read; a request whose body breaks off is not sent.
func recordingBackend(t *testing.T) (*httptest.Server, <-chan *http.Request) {
	t.Helper()
	got := make(chan *http.Request, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		r.Body = io.NopCloser(strings.NewReader(string(body)))
		select {
		case got <- r:
		default:
			t.Errorf("recording backend: too many requests; dropped %s %s", r.Method, r.URL)
		}
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(srv.Close)
	return srv, got
}

// closed reports whether the server has closed the connection: the next
// read ends in EOF (or a reset) rather than data or a timeout.
func (rc *rawConn) closed() bool {
	rc.t.Helper()
	_, err := rc.br.ReadByte()
	var ne net.Error
	if err == nil || (errors.As(err, &ne) && ne.Timeout()) {
		return false
	}
	return true
}

// noRequest fails the test if the backend has recorded a request.
func noRequest(t *testing.T, got <-chan *http.Request) {
	t.Helper()
	select {
	case r := <-got:
		t.Errorf("the backend received %s %s (headers %v)", r.Method, r.RequestURI, r.Header)
	default:
	}
}
