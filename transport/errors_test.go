package transport

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/roundhouse/roundhouse/actors"
)

// The balancer's own error pages are fixed text: they never repeat the
// request (no reflected markup) and never name a backend.
func TestErrorPagesNeverEchoTheRequestOrRevealABackend(t *testing.T) {
	const marker = "/%3Cscript%3Ealert(1)%3C/script%3E"
	// net/http notices a client has gone only once the request body is
	// read, so the hung backend also waits for the test to end.
	release := make(chan struct{})
	hung := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/health" {
			select {
			case <-r.Context().Done():
			case <-release:
			}
		}
	}))
	t.Cleanup(hung.Close)
	t.Cleanup(func() { close(release) })
	sick := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "sick", http.StatusInternalServerError)
	}))
	t.Cleanup(sick.Close)
	dead := deadURL(t)

	down := newBalancer(t, balancerOptions{monitor: actors.MonitorConfig{Interval: time.Hour, Fall: 1}}, sick.URL)
	down.log.waitFor(t, 1, "backend down")
	tests := []struct {
		name   string
		lb     *balancer
		req    string
		status int
	}{
		{"a backend that cannot be reached gives 502", newBalancer(t, balancerOptions{monitor: fallNever()}, dead),
			"GET " + marker + " HTTP/1.1\r\nHost: a\r\n\r\n", 502},
		{"no healthy backend gives 503", down, "GET " + marker + " HTTP/1.1\r\nHost: a\r\n\r\n", 503},
		{"a silent backend gives 504", newBalancer(t, balancerOptions{responseHeaderTimeout: 100 * time.Millisecond}, hung.URL),
			"GET " + marker + " HTTP/1.1\r\nHost: a\r\n\r\n", 504},
		{"a malformed body gives 400", newBalancer(t, balancerOptions{}, hung.URL),
			"POST " + marker + " HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz<script>\r\n", 400},
		{"CONNECT gives 405", newBalancer(t, balancerOptions{}, dead),
			"CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n", 405},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := dialRaw(t, tt.lb.url)
			rc.send(tt.req)
			resp, body := rc.response("GET")
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d (%q), want %d", resp.StatusCode, body, tt.status)
			}
			for _, leak := range []string{"script", "alert", "127.0.0.1", "dial", "x509"} {
				if strings.Contains(strings.ToLower(body), leak) {
					t.Errorf("body %q contains %q", body, leak)
				}
			}
			if ct := resp.Header.Get("Content-Type"); ct != "text/plain; charset=utf-8" || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("Content-Type %q, X-Content-Type-Options %q; want plain text, nosniff", ct, resp.Header.Get("X-Content-Type-Options"))
			}
		})
	}
}

func TestTheAccessLogRecordsThePathEscaped(t *testing.T) {
	lb := newBalancer(t, balancerOptions{}, demoBackend(t, "A").URL)
	rc := dialRaw(t, lb.url)
	rc.send("GET /a%0a2026-01-01%20[ERROR]%20forged HTTP/1.1\r\nHost: a\r\n\r\n")
	rc.response("GET")
	lb.log.waitFor(t, 1, `path="/a%0a2026-01-01%20[ERROR]%20forged"`)
	if strings.Contains(lb.log.String(), "\n2026-01-01") {
		t.Errorf("the log has a forged line:\n%s", lb.log)
	}
}
