package transport

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/roundhouse/roundhouse/internal/testcert"
)

// An upload the client sent whole is never cut by --client-body-timeout
// because the backend was slow to take it: the deadline covers only the
// wait for the client's bytes. Over HTTP/2 the deadline is a timer that
// would fire on its own between reads unless cleared after each.
func TestABodyTimeoutNeverCutsAnUploadTheBackendIsSlowToRead(t *testing.T) {
	const timeout = 300 * time.Millisecond
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			return
		}
		select { // busy before it reads the upload
		case <-time.After(3 * timeout):
		case <-r.Context().Done():
			return
		}
		n, _ := io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, http.StatusText(http.StatusOK)+" "+time.Duration(n).String())
	}))
	t.Cleanup(slow.Close)
	lb := newBalancer(t, balancerOptions{bodyTimeout: timeout, frontend: FrontendOptions{H2C: true}}, slow.URL)
	body := bytes.Repeat([]byte("x"), 8<<20) // more than any window or buffer on the way
	for _, tt := range []struct {
		proto  string
		client *http.Client
	}{{"HTTP/1.1", lb.client}, {"HTTP/2.0", h2cClient(t)}} {
		t.Run(tt.proto, func(t *testing.T) {
			resp, err := tt.client.Post(lb.url+"/", "application/octet-stream", bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			got, _ := io.ReadAll(resp.Body)
			if resp.Proto != tt.proto || resp.StatusCode != http.StatusOK {
				t.Errorf("%s %d %q, want %s 200", resp.Proto, resp.StatusCode, got, tt.proto)
			}
		})
	}
}

// A backend that answers before it has read the body leaves the
// transport reading the client's upload after the handler returned. The
// body timeout's deadline must not be set then (the request's
// ResponseController is dead; over HTTP/2 using it crashed the process).
func TestABodyStillArrivingAfterTheHandlerReturnedIsHarmless(t *testing.T) {
	early := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		_ = rc.EnableFullDuplex()
		_, _ = io.WriteString(w, "early")
		_ = rc.Flush()
	}))
	t.Cleanup(early.Close)
	lb := newBalancer(t, balancerOptions{bodyTimeout: 2 * time.Second, frontend: FrontendOptions{H2C: true}}, early.URL)
	c := h2cClient(t)
	var writers sync.WaitGroup
	for range 20 {
		pr, pw := io.Pipe()
		writers.Go(func() { // a client trickling its body
			tick := time.NewTicker(5 * time.Millisecond) // pacing
			defer tick.Stop()
			defer pw.Close()
			for range 40 {
				if _, err := pw.Write([]byte("chunk")); err != nil {
					return
				}
				<-tick.C
			}
		})
		resp, err := c.Post(lb.url+"/", "application/octet-stream", pr)
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := io.ReadAll(resp.Body); resp.StatusCode != http.StatusOK || string(got) != "early" {
			t.Errorf("%d %q, want 200 early", resp.StatusCode, got)
		}
		resp.Body.Close()
		pr.CloseWithError(io.ErrClosedPipe)
	}
	writers.Wait()
	// Still serving: the balancer survived every late read.
	if resp, err := c.Get(lb.url + "/"); err != nil {
		t.Fatal(err)
	} else {
		resp.Body.Close()
	}
}

// A request declaring a trailer name that is not a token passes net/http's
// server but not its transport. The name is dropped (it could never be
// sent), and no backend is blamed, least of all marked DOWN as if it
// could not be reached.
func TestAnInvalidTrailerNameIsDroppedAndBlamesNoBackend(t *testing.T) {
	ca := testcert.NewAuthority(t, "backend CA")
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})
	u1, _ := tlsBackend(t, ca, ok)
	u2, _ := tlsBackend(t, ca, ok)
	lb := newBalancer(t, balancerOptions{backendCAs: ca.Pool(), retries: 2, monitor: fallNever()}, u1, u2)
	rc := dialRaw(t, lb.url)
	rc.send("POST / HTTP/1.1\r\nHost: a\r\nTrailer: a b\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
	if resp, body := rc.response("POST"); resp.StatusCode != http.StatusOK {
		t.Errorf("status %d %q, want 200", resp.StatusCode, body)
	}
	for _, st := range lb.settled(t) {
		if !st.Up || st.Failures != 0 {
			t.Errorf("%s blamed for a client's malformed request: %+v", st.Name, st)
		}
	}
}
