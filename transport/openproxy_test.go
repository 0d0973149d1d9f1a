package transport

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/roundhouse/roundhouse/actors"
)

// The backend transport must never send requests through a proxy named by
// HTTP_PROXY, HTTPS_PROXY or ALL_PROXY. (Go's own environment lookup never
// proxies loopback addresses, so the end-to-end half of this test cannot
// fail on its own; the check on Transport.Proxy is what proves it.)
func TestTheTransportIgnoresProxyEnvironmentVariables(t *testing.T) {
	proxied := make(chan string, 8)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proxied <- r.Method + " " + r.RequestURI
		http.Error(w, "proxied", http.StatusTeapot)
	}))
	t.Cleanup(proxy.Close)
	for _, v := range []string{"HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"} {
		t.Setenv(v, proxy.URL)
	}
	t.Setenv("NO_PROXY", "")
	t.Setenv("no_proxy", "")

	if tr := New(Options{}); tr.Proxy != nil {
		t.Fatal("the shared transport has a Proxy function; it must be nil")
	}
	backend := demoBackend(t, "direct")
	lb := newBalancer(t, balancerOptions{}, backend.URL)
	if code, who, _ := lb.get(t, "/"); code != http.StatusOK || who != "direct" {
		t.Errorf("got %d from %q, want 200 from the backend directly", code, who)
	}
	select {
	case r := <-proxied:
		t.Errorf("the environment's proxy received %s", r)
	default:
	}
}

// A backend's redirect goes back to the client as it is; the balancer
// never follows it (which would let a backend, or whoever controls its
// Location header, make the balancer fetch arbitrary URLs).
func TestRedirectsAreNeverFollowed(t *testing.T) {
	elsewhere := make(chan string, 8)
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		elsewhere <- r.RequestURI
	}))
	t.Cleanup(target.Close)
	probed := make(chan struct{}, 8)
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			probed <- struct{}{}
		}
		http.Redirect(w, r, target.URL+"/internal-only", http.StatusFound)
	}))
	t.Cleanup(redirector.Close)
	lb := newBalancer(t, balancerOptions{monitor: actors.MonitorConfig{Interval: time.Hour, Fall: 1}}, redirector.URL)

	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	t.Cleanup(client.CloseIdleConnections)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, lb.url+"/go", nil)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != target.URL+"/internal-only" {
		t.Errorf("got %d Location %q, want the backend's 302 passed through", resp.StatusCode, resp.Header.Get("Location"))
	}
	// The health probe gets a 302 too: it passes (3xx) without being followed.
	select {
	case <-probed:
	case <-ctx.Done():
		t.Fatal("no health probe")
	}
	if st := lb.status(t)[0]; !st.Up {
		t.Errorf("backend DOWN after a redirecting probe: %+v", st)
	}
	select {
	case uri := <-elsewhere:
		t.Errorf("the redirect target was fetched: %s", uri)
	default:
	}
}
