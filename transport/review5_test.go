package transport

import (
	"context"
	"errors"
	"io"
	"net/http"
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
