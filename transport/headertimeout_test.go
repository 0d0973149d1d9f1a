package transport

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// A backend that accepts a request and never answers: its handler blocks
// until the request is cancelled or the test ends. Every request it sees
// is sent on seen (method and body), never blocking.
func blackHole(t *testing.T) (url string, seen <-chan string) {
	t.Helper()
	release := make(chan struct{})
	got := make(chan string, 64)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			return
		}
		var body bytes.Buffer
		_, _ = body.ReadFrom(r.Body)
		select {
		case got <- r.Method + " " + body.String():
		default:
			t.Errorf("black hole: too many requests")
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // runs before srv.Close
	return srv.URL, got
}

// A response-header timeout is a per-try timeout: an idempotent request
// whose body can be resent goes to the next backend, as nginx's
// proxy_next_upstream timeout does; a non-idempotent one gets 504 and is
// never sent twice. Either way the timeout counts as the backend's failure.
func TestAResponseHeaderTimeoutIsRetriedElsewhereWhenIdempotent(t *testing.T) {
	hole, seen := blackHole(t)
	live := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body bytes.Buffer
		_, _ = body.ReadFrom(r.Body)
		w.Header().Set("X-Backend", "live")
		_, _ = w.Write([]byte(r.Method + " " + body.String()))
	}))
	t.Cleanup(live.Close)
	lb := newBalancer(t, balancerOptions{retries: 2, retryBuffer: 1 << 10, responseHeaderTimeout: 200 * time.Millisecond,
		monitor: fallNever()}, hole, live.URL)

	// However the policy orders them, the hole gets some of each method.
	for _, m := range []string{http.MethodGet, http.MethodPut} {
		for range 4 {
			code, from, body := lb.do(t, m, "/", strings.NewReader("payload"))
			if code != http.StatusOK || from != "live" || body != m+" payload" {
				t.Errorf("%s: got %d from %q with %q, want 200 from live with %q", m, code, from, body, m+" payload")
			}
		}
	}
	timeouts := 0
	for range 4 {
		code, from, body := lb.do(t, http.MethodPost, "/", strings.NewReader("order"))
		switch {
		case code == http.StatusGatewayTimeout:
			timeouts++
		case code != http.StatusOK || from != "live" || body != "POST order":
			t.Errorf("POST: got %d from %q with %q, want 504, or 200 from live", code, from, body)
		}
	}
	st := lb.settled(t)
	saw := map[string]int{}
	for done := false; !done; {
		select {
		case got := <-seen:
			saw[got]++
		default:
			done = true
		}
	}
	if saw["GET payload"] == 0 || saw["PUT payload"] == 0 {
		t.Errorf("the black hole saw %v; want some GETs and PUTs (the test proves nothing otherwise)", saw)
	}
	if timeouts == 0 || saw["POST order"] != timeouts {
		t.Errorf("%d POSTs got 504 and the black hole saw %d; want as many, and at least one (never replayed)",
			timeouts, saw["POST order"])
	}
	total := uint64(saw["GET payload"] + saw["PUT payload"] + saw["POST order"])
	for _, s := range st {
		want := uint64(0)
		if s.Name == hole {
			want = total // each timeout counts as the black hole's failure
		}
		if s.Failures != want {
			t.Errorf("%s: %d failures, want %d", s.Name, s.Failures, want)
		}
	}
}
