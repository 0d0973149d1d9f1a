package e2e

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The outlier ejection and connection cap flags reach the running
// balancer's selector, and a backend's own 503s, reported by the proxy,
// count towards its ejection.
func TestResilienceFlagsTakeEffect(t *testing.T) {
	type answer struct {
		code             int
		from, retryAfter string
		body             string
	}
	get := func(url string) (answer, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return answer{}, err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		return answer{resp.StatusCode, resp.Header.Get("X-Backend"), resp.Header.Get("Retry-After"), string(body)}, err
	}
	do := func(t *testing.T, url string) answer {
		t.Helper()
		a, err := get(url)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		return a
	}

	t.Run("--eject-after and --eject-time take a backend answering 503 out for a while", func(t *testing.T) {
		sick := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/health" {
				w.Header().Set("X-Backend", "sick")
				w.WriteHeader(http.StatusServiceUnavailable)
			}
		}))
		t.Cleanup(sick.Close)
		well := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Backend", "well")
		}))
		t.Cleanup(well.Close)
		lb := start(t, "--listen", "127.0.0.1:0", "--backend", sick.URL, "--backend", well.URL,
			"--eject-after", "2", "--eject-time", "3s", "--health-interval", "1h", "--access-log=false")
		url := "http://" + lb.waitFor(t, listening) + "/"
		// Round-robin: sick, well, sick: the second 503 in a row ejects it.
		for i, want := range []int{http.StatusServiceUnavailable, http.StatusOK, http.StatusServiceUnavailable} {
			if a := do(t, url); a.code != want {
				t.Fatalf("request %d: %d from %q, want %d", i+1, a.code, a.from, want)
			}
		}
		lb.waitFor(t, `backend ejected: backend=`+sick.URL+` for=3s`)
		for i := range 4 {
			if a := do(t, url); a.code != http.StatusOK || a.from != "well" {
				t.Fatalf("request %d after the ejection: %d from %q, want 200 from well", i+1, a.code, a.from)
			}
		}
		lb.waitFor(t, `backend returned: backend=`+sick.URL)
		lb.stop(t)
		if n := strings.Count(lb.output(), "backend ejected"); n != 1 {
			t.Errorf("%d ejections logged, want 1", n)
		}
	})

	t.Run("--slow-start gives a backend that comes back a small share at first", func(t *testing.T) {
		var healthy atomic.Bool
		back := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/health" && !healthy.Load() {
				w.WriteHeader(http.StatusServiceUnavailable)
			}
			w.Header().Set("X-Backend", "back")
		}))
		t.Cleanup(back.Close)
		steady := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Backend", "steady")
		}))
		t.Cleanup(steady.Close)
		lb := start(t, "--listen", "127.0.0.1:0", "--backend", back.URL, "--backend", steady.URL,
			"--slow-start", "60s", "--health-interval", "100ms", "--rise", "1", "--fall", "1", "--access-log=false")
		url := "http://" + lb.waitFor(t, listening) + "/"
		lb.waitFor(t, `backend down: backend=`+back.URL)
		healthy.Store(true)
		lb.waitFor(t, `backend up: backend=`+back.URL)
		// Without slow start round-robin would give it 10 of these 20 at once;
		// even ten seconds into a 60s ramp (a slow machine) its share is 1 in 7.
		got := 0
		for range 20 {
			if a := do(t, url); a.from == "back" {
				got++
			}
		}
		if got > 5 {
			t.Errorf("the backend that came back got %d of 20 requests at once, want a few", got)
		}
		lb.stop(t)
	})

	t.Run("--max-conns-per-backend with --queue-size and --queue-timeout answers 503 busy", func(t *testing.T) {
		release, arrived := make(chan struct{}), make(chan struct{}, 4)
		held := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/health" {
				return
			}
			arrived <- struct{}{}
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}))
		t.Cleanup(held.Close)
		lb := start(t, "--listen", "127.0.0.1:0", "--backend", held.URL, "--health-interval", "1h",
			"--max-conns-per-backend", "1", "--queue-size", "1", "--queue-timeout", "300ms", "--access-log=false")
		url := "http://" + lb.waitFor(t, listening) + "/"
		var releaseOnce sync.Once
		releaseAll := func() { releaseOnce.Do(func() { close(release) }) }
		var wg sync.WaitGroup
		t.Cleanup(wg.Wait)
		t.Cleanup(releaseAll) // runs before wg.Wait
		first := make(chan answer, 1)
		wg.Go(func() { // ends once the backend is released, or at its request's timeout
			a, err := get(url)
			if err != nil {
				a.body = err.Error()
			}
			first <- a
		})
		select {
		case <-arrived: // the backend's one slot is taken
		case <-time.After(10 * time.Second):
			t.Fatal("the first request never reached the backend")
		}
		started := time.Now()
		a := do(t, url) // waits in the queue, then gives up
		if a.code != http.StatusServiceUnavailable || a.retryAfter == "" || !strings.Contains(a.body, "every backend is busy") {
			t.Errorf("queued request: %d, Retry-After %q, %q; want 503 saying every backend is busy, with Retry-After", a.code, a.retryAfter, a.body)
		}
		if waited := time.Since(started); waited < 300*time.Millisecond {
			t.Errorf("answered after %v, before the queue timeout", waited)
		}
		releaseAll()
		if a := <-first; a.code != http.StatusOK {
			t.Errorf("the first request: %d %q, want 200", a.code, a.body)
		}
		lb.stop(t)
	})
}
