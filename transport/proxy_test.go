package transport

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/roundhouse/roundhouse/actors"
	"github.com/roundhouse/roundhouse/demo"
)

// demoBackend starts a demo origin named name.
func demoBackend(t *testing.T, name string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(demo.Handler(name))
	t.Cleanup(srv.Close)
	return srv
}

func TestRoundRobinOrderIsExact(t *testing.T) {
	a, b, c := demoBackend(t, "A"), demoBackend(t, "B"), demoBackend(t, "C")
	lb := newBalancer(t, balancerOptions{}, a.URL, b.URL, c.URL)
	var got []string
	for range 6 {
		code, _, body := lb.get(t, "/")
		if code != http.StatusOK {
			t.Fatalf("status %d, body %q", code, body)
		}
		got = append(got, strings.TrimPrefix(strings.TrimSpace(body), "Hello from "))
	}
	if want := "A B C A B C"; strings.Join(got, " ") != want {
		t.Errorf("order = %v, want %s", got, want)
	}
}

func TestConcurrentRequestsSpreadExactly(t *testing.T) {
	a, b, c := demoBackend(t, "A"), demoBackend(t, "B"), demoBackend(t, "C")
	lb := newBalancer(t, balancerOptions{}, a.URL, b.URL, c.URL)
	const total, parallel = 300, 30
	counts := map[string]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range parallel {
		wg.Go(func() {
			for range total / parallel {
				code, who, _ := lb.get(t, "/")
				if code != http.StatusOK {
					t.Errorf("status %d", code)
				}
				mu.Lock()
				counts[who]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for _, name := range []string{"A", "B", "C"} {
		if counts[name] != total/3 {
			t.Errorf("backend %s served %d requests, want %d (all: %v)", name, counts[name], total/3, counts)
		}
	}
	for _, st := range lb.settled(t) {
		if st.InFlight != 0 || st.Requests != total/3 {
			t.Errorf("status %s: in flight %d, requests %d; want 0, %d", st.Name, st.InFlight, st.Requests, total/3)
		}
	}
}

func TestBackendKilledDuringLoopCostsNoClientError(t *testing.T) {
	a, b, c := demoBackend(t, "A"), demoBackend(t, "B"), demoBackend(t, "C")
	lb := newBalancer(t, balancerOptions{retries: 2}, a.URL, b.URL, c.URL)
	var wg sync.WaitGroup
	var served atomic.Int64
	killAt := make(chan struct{})
	for range 8 {
		wg.Go(func() {
			for i := range 100 {
				if i == 20 && served.Load() > 0 {
					select {
					case killAt <- struct{}{}:
					default:
					}
				}
				if code, _, body := lb.get(t, "/"); code != http.StatusOK {
					t.Errorf("request %d: status %d, body %q", i, code, body)
				}
				served.Add(1)
			}
		})
	}
	<-killAt
	b.CloseClientConnections()
	b.Close()
	wg.Wait()
	st := lb.status(t)
	if st[1].Up {
		t.Errorf("killed backend still UP: %+v", st[1])
	}
	if !strings.HasPrefix(st[1].Reason, "passive:") {
		t.Errorf("killed backend's reason = %q, want passive detection", st[1].Reason)
	}
	lb.log.waitFor(t, 1, "backend down", "backend="+b.URL)
}

func TestPostToDeadBackendIsServedElsewhereWithBodyIntact(t *testing.T) {
	dead := deadURL(t)
	live := demoBackend(t, "live")
	lb := newBalancer(t, balancerOptions{retries: 2, monitor: fallNever()}, dead, live.URL)

	body := make([]byte, 10<<20)
	if _, err := rand.Read(body); err != nil {
		t.Fatal(err)
	}
	code, who, got := lb.do(t, http.MethodPost, "/echo", bytes.NewReader(body))
	if code != http.StatusOK || who != "live" {
		t.Fatalf("status %d from %q, want 200 from live", code, who)
	}
	if sha256.Sum256([]byte(got)) != sha256.Sum256(body) {
		t.Errorf("echoed body differs: got %d bytes, sent %d", len(got), len(body))
	}
	st := lb.status(t)
	if st[0].Up || st[0].Failures != 1 {
		t.Errorf("dead backend: %+v, want DOWN after one connect failure", st[0])
	}
	if code, who, _ := lb.get(t, "/"); code != http.StatusOK || who != "live" {
		t.Errorf("next request: %d from %q, want the live backend straight away", code, who)
	}
}

// fallNever keeps active checks from marking anything DOWN during a test.
func fallNever() actors.MonitorConfig {
	return actors.MonitorConfig{Interval: time.Hour, Fall: 1 << 20}
}

// resetAfterReading is a backend that reads the whole request body and then
// resets the connection without answering.
func resetAfterReading(t *testing.T, arrivals *atomic.Int64) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			return
		}
		arrivals.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("hijack: %v", err)
			return
		}
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // close with RST
		}
		conn.Close()
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestBodyThatReachedABackendIsNeverReplayed(t *testing.T) {
	var resets, others atomic.Int64
	bad := resetAfterReading(t, &resets)
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/health" {
			others.Add(1)
		}
	}))
	t.Cleanup(other.Close)
	lb := newBalancer(t, balancerOptions{retries: 2, monitor: fallNever()}, bad.URL, other.URL)

	code, _, body := lb.do(t, http.MethodPost, "/orders", strings.NewReader(strings.Repeat("x", 64<<10)))
	if code != http.StatusBadGateway {
		t.Errorf("status %d (%q), want 502", code, body)
	}
	if resets.Load() != 1 || others.Load() != 0 {
		t.Errorf("the POST reached the resetting backend %d times and the other %d times; want 1 and 0",
			resets.Load(), others.Load())
	}
}

func TestIdempotentRequestIsRetriedAfterAReset(t *testing.T) {
	var resets atomic.Int64
	bad := resetAfterReading(t, &resets)
	good := demoBackend(t, "good")
	lb := newBalancer(t, balancerOptions{retries: 1, monitor: fallNever()}, bad.URL, good.URL)
	code, who, _ := lb.get(t, "/")
	// http.Transport may itself resend once on a fresh connection when the
	// reset hit a pooled one, so the bad backend sees the GET once or twice.
	if code != http.StatusOK || who != "good" || resets.Load() < 1 {
		t.Errorf("got %d from %q after %d resets; want 200 from good after a reset", code, who, resets.Load())
	}
}

// An idempotent request whose body reached a backend that then broke is
// resent whole to another backend when the body fits in --retry-buffer (a
// PUT, or a POST with an Idempotency-Key); a larger body streams, is not
// kept, and gets 502 without a replay.
func TestAnIdempotentBodyThatReachedABrokenBackendIsResentWhole(t *testing.T) {
	const retryBuffer = 64 << 10
	for _, tt := range []struct {
		name, method, key string
		size              int
		want              int   // status
		wantElsewhere     int64 // requests the good backend gets
	}{
		{"a PUT within the retry buffer is resent whole", http.MethodPut, "", retryBuffer, http.StatusOK, 1},
		{"a POST with an Idempotency-Key is resent whole", http.MethodPost, "order-17", 32 << 10, http.StatusOK, 1},
		{"a PUT larger than the retry buffer is not resent", http.MethodPut, "", 4 * retryBuffer, http.StatusBadGateway, 0},
		{"a POST without a key is not resent", http.MethodPost, "", 1 << 10, http.StatusBadGateway, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var resets, elsewhere atomic.Int64
			bad := resetAfterReading(t, &resets)
			good := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/health" {
					return
				}
				elsewhere.Add(1)
				sum := sha256.New()
				if _, err := io.Copy(sum, r.Body); err != nil {
					t.Errorf("reading the body: %v", err)
				}
				_, _ = w.Write(sum.Sum(nil))
			}))
			t.Cleanup(good.Close)
			lb := newBalancer(t, balancerOptions{retries: 2, retryBuffer: retryBuffer, monitor: fallNever()}, bad.URL, good.URL)

			body := make([]byte, tt.size)
			if _, err := rand.Read(body); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, tt.method, lb.url+"/doc", bytes.NewReader(body))
			if tt.key != "" {
				req.Header.Set("Idempotency-Key", tt.key)
			}
			resp, err := lb.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.want || resets.Load() < 1 || elsewhere.Load() != tt.wantElsewhere {
				t.Fatalf("status %d after %d resets, the other backend asked %d times; want %d, at least one reset, %d",
					resp.StatusCode, resets.Load(), elsewhere.Load(), tt.want, tt.wantElsewhere)
			}
			if sum := sha256.Sum256(body); tt.want == http.StatusOK && !bytes.Equal(got, sum[:]) {
				t.Errorf("the other backend got a body with SHA-256 %x, want %x", got, sum)
			}
		})
	}
}

func TestRetriesAreBounded(t *testing.T) {
	dead := []string{deadURL(t), deadURL(t), deadURL(t)}
	lb := newBalancer(t, balancerOptions{retries: 1, monitor: fallNever()}, dead...)
	code, _, _ := lb.get(t, "/")
	if code != http.StatusBadGateway {
		t.Errorf("status %d, want 502", code)
	}
	var failures uint64
	for _, st := range lb.status(t) {
		failures += st.Failures
	}
	if failures != 2 {
		t.Errorf("%d attempts failed, want 2 (one try and one retry)", failures)
	}
}

func TestHungBackendGets504(t *testing.T) {
	release := make(chan struct{})
	hung := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			return
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(hung.Close)
	t.Cleanup(func() { close(release) })
	lb := newBalancer(t, balancerOptions{retries: 2, responseHeaderTimeout: 100 * time.Millisecond}, hung.URL)
	code, _, body := lb.get(t, "/")
	if code != http.StatusGatewayTimeout {
		t.Errorf("status %d (%q), want 504", code, body)
	}
	if st := lb.status(t)[0]; st.Requests != 1 {
		t.Errorf("hung backend got %d attempts, want 1 (a timeout is not retried)", st.Requests)
	}
}

// --request-timeout bounds a whole request: a backend that has not begun
// its response by then gets the client a 504 (not retried); a response
// still streaming then is cut off, and the backend's request cancelled.
func TestTheRequestTimeoutBoundsTheWholeRequest(t *testing.T) {
	cancelled := make(chan string, 2)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			return
		}
		if r.URL.Path == "/stream" {
			_, _ = io.WriteString(w, "first piece\n")
			http.NewResponseController(w).Flush()
		}
		select {
		case <-r.Context().Done():
			cancelled <- r.URL.Path
		case <-time.After(20 * time.Second):
			t.Errorf("%s outlived the request timeout", r.URL.Path)
		}
	}))
	t.Cleanup(backend.Close)
	lb := newBalancer(t, balancerOptions{retries: 2, requestTimeout: 200 * time.Millisecond, monitor: fallNever()}, backend.URL)
	wasCancelled := func(t *testing.T, path string) {
		t.Helper()
		select {
		case got := <-cancelled:
			if got != path {
				t.Errorf("cancelled %s, want %s", got, path)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("the backend's request for %s was not cancelled", path)
		}
	}

	t.Run("no response headers in time: 504", func(t *testing.T) {
		code, _, body := lb.get(t, "/hang")
		if code != http.StatusGatewayTimeout || !strings.Contains(body, "did not answer in time") {
			t.Errorf("got %d %q, want 504", code, body)
		}
		wasCancelled(t, "/hang")
		if st := lb.settled(t)[0]; st.Requests != 1 {
			t.Errorf("the backend got %d attempts, want 1 (a timeout is not retried)", st.Requests)
		}
	})
	t.Run("a response still streaming is cut off", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, lb.url+"/stream", nil)
		resp, err := lb.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		got, err := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || string(got) != "first piece\n" || err == nil {
			t.Errorf("got %d %q, error %v; want 200, the first piece, then the stream cut", resp.StatusCode, got, err)
		}
		if ctx.Err() != nil {
			t.Errorf("the stream was not cut before the client's own deadline")
		}
		wasCancelled(t, "/stream")
		// The access log says the 200 was cut short, and why.
		lb.log.waitFor(t, 1, "path=/stream", "status=200", `error="response cut short: context deadline exceeded"`)
	})
}

func TestAllBackendsDownAnswers503AtOnce(t *testing.T) {
	sick := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			http.Error(w, "sick", http.StatusInternalServerError)
			return
		}
		t.Errorf("request %s reached a DOWN backend", r.URL)
	}))
	t.Cleanup(sick.Close)
	lb := newBalancer(t, balancerOptions{monitor: actors.MonitorConfig{Interval: time.Hour, Fall: 1}}, sick.URL)
	lb.log.waitFor(t, 1, "backend down", "backend="+sick.URL)

	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, lb.url+"/", nil)
	resp, err := lb.client.Do(req)
	if err != nil {
		t.Fatalf("no answer within a second: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("got %d, Retry-After %q; want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if !strings.Contains(string(body), "no healthy backend") {
		t.Errorf("body %q does not say why", body)
	}
}

// Under a connection cap, a request that finds the queue full gets 503 with
// Retry-After at once, and the page says the backends are busy, not down.
func TestAFullQueueGets503SayingEveryBackendIsBusy(t *testing.T) {
	release := make(chan struct{})
	arrived := make(chan struct{}, 2)
	held := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(held.Close)
	lb := newBalancer(t, balancerOptions{limits: actors.Limits{MaxConnsPerBackend: 1, QueueSize: 1, QueueTimeout: time.Minute}}, held.URL)

	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	t.Cleanup(func() { close(release) })
	codes := make(chan int, 2)
	get := func() {
		resp, err := lb.client.Get(lb.url + "/")
		if err != nil {
			t.Error(err)
			codes <- 0
			return
		}
		resp.Body.Close()
		codes <- resp.StatusCode
	}
	wg.Go(get)
	<-arrived // the backend's one connection is taken
	wg.Go(get)
	waitUntil(t, 5*time.Second, "the second request waits in the queue", func() bool {
		m, err := lb.sel.Metrics(t.Context())
		return err == nil && m.Queued == 1
	})

	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, lb.url+"/", nil)
	resp, err := lb.client.Do(req)
	if err != nil {
		t.Fatalf("no answer within a second: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "1" {
		t.Errorf("got %d, Retry-After %q; want 503 with Retry-After 1", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if !strings.Contains(string(body), "every backend is busy") {
		t.Errorf("body %q, want it to say every backend is busy", body)
	}
	if m, err := lb.sel.Metrics(t.Context()); err != nil || m.QueueFull != 1 {
		t.Errorf("queue-full refusals %d (%v), want 1", m.QueueFull, err)
	}
}

// A request whose every attempt failed counts, in the metrics, as a 502 of
// the backend it last went to, not as a request that reached none.
func TestA502AfterEveryRetryFailedCountsAgainstTheLastBackend(t *testing.T) {
	lb := newBalancer(t, balancerOptions{monitor: fallNever(), retries: 1}, deadURL(t), deadURL(t))
	resp, err := lb.client.Get(lb.url + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("status %d, want 502", resp.StatusCode)
	}
	var m actors.Metrics
	waitUntil(t, 5*time.Second, "the request is counted", func() bool {
		m, err = lb.sel.Metrics(t.Context())
		n := len(m.NoBackend)
		for _, b := range m.Backends {
			n += len(b.Requests)
		}
		return err == nil && n > 0
	})
	bad := actors.RequestClass{Method: "GET", Code: "5xx"}
	if len(m.NoBackend) != 0 || m.Backends[0].Requests[bad]+m.Backends[1].Requests[bad] != 1 {
		t.Errorf("requests: %v and %v, none reached %v; want one GET 5xx at a backend",
			m.Backends[0].Requests, m.Backends[1].Requests, m.NoBackend)
	}
	if m.Backends[0].Retries+m.Backends[1].Retries != 1 {
		t.Errorf("retries %d and %d, want 1 in all", m.Backends[0].Retries, m.Backends[1].Retries)
	}
}

func TestHealthTransitionsFollowRiseAndFallAndLogOnce(t *testing.T) {
	var healthy atomic.Bool
	healthy.Store(true)
	probes := make(chan bool, 1000)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ok := healthy.Load()
		select {
		case probes <- ok:
		default:
		}
		if !ok {
			http.Error(w, "sick", http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(srv.Close)
	lb := newBalancer(t, balancerOptions{monitor: actors.MonitorConfig{Interval: 5 * time.Millisecond, Rise: 2, Fall: 3}}, srv.URL)
	// waitProbes waits for n more probes that saw the given health.
	waitProbes := func(n int, want bool) {
		t.Helper()
		for n > 0 {
			select {
			case ok := <-probes:
				if ok == want {
					n--
				}
			case <-time.After(10 * time.Second):
				t.Fatal("probes stopped")
			}
		}
	}

	healthy.Store(false)
	lb.log.waitFor(t, 1, "backend down", "backend="+srv.URL)
	waitProbes(5, false) // more failures must not log again
	healthy.Store(true)
	lb.log.waitFor(t, 1, "backend up", "backend="+srv.URL)
	waitProbes(5, true)

	if n := lb.log.count("backend down"); n != 1 {
		t.Errorf("%d 'backend down' lines, want 1:\n%s", n, lb.log)
	}
	if n := lb.log.count("backend up"); n != 1 {
		t.Errorf("%d 'backend up' lines, want 1:\n%s", n, lb.log)
	}
	if lb.log.count("backend down", "3 consecutive failed probes", "status 503") != 1 {
		t.Errorf("the down line does not give the reason:\n%s", lb.log)
	}
}

func TestServerSentEventsArriveOneByOne(t *testing.T) {
	next := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		rc := http.NewResponseController(w)
		for i := range 3 {
			if _, err := io.WriteString(w, "data: "+string(rune('1'+i))+"\n\n"); err != nil {
				return
			}
			_ = rc.Flush()
			select {
			case <-next: // the client has read this event
			case <-r.Context().Done():
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	lb := newBalancer(t, balancerOptions{}, srv.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, lb.url+"/events", nil)
	resp, err := lb.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	rd := bufio.NewReader(resp.Body)
	for i := range 3 {
		line, err := rd.ReadString('\n')
		if err != nil {
			t.Fatalf("event %d: %v (not flushed through the proxy?)", i+1, err)
		}
		if want := "data: " + string(rune('1'+i)) + "\n"; line != want {
			t.Errorf("event %d = %q, want %q", i+1, line, want)
		}
		_, _ = rd.ReadString('\n') // the blank line
		next <- struct{}{}
	}
}

func TestClientThatLeavesCancelsTheBackendRequestAndLogs499(t *testing.T) {
	started, cancelled := make(chan struct{}), make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			return
		}
		close(started)
		<-r.Context().Done()
		close(cancelled)
	}))
	t.Cleanup(srv.Close)
	lb := newBalancer(t, balancerOptions{}, srv.URL)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, lb.url+"/slow", nil)
		resp, err := lb.client.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	<-started
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("client error %v, want context.Canceled", err)
	}
	select {
	case <-cancelled:
	case <-time.After(10 * time.Second):
		t.Fatal("the backend request was not cancelled")
	}
	lb.log.waitFor(t, 1, "path=/slow", "status=499")
	if st := lb.status(t)[0]; st.Up != true || st.Failures != 0 || st.InFlight != 0 {
		t.Errorf("a client leaving counted against the backend: %+v", st)
	}
}
