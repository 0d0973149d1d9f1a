package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/sourcegraph/conc"

	"github.com/roundhouse/roundhouse/actors"
	"github.com/roundhouse/roundhouse/internal/logtest"
	"github.com/roundhouse/roundhouse/transport"
)

// origin is a backend for the tests: it names itself in X-Backend and its
// /health answers 200 until the test makes it fail.
type origin struct {
	name string
	srv  *httptest.Server
	mu   sync.Mutex // guards sick; test helpers may lock
	sick bool
}

func newOrigin(t *testing.T, name string) *origin {
	t.Helper()
	o := &origin{name: name}
	o.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Backend", name)
		if r.URL.Path == "/health" {
			o.mu.Lock()
			sick := o.sick
			o.mu.Unlock()
			if sick {
				http.Error(w, "sick", http.StatusServiceUnavailable)
			}
			return
		}
		if r.URL.Path == "/teapot" {
			w.WriteHeader(http.StatusTeapot)
		}
		_, _ = io.WriteString(w, "hello from "+name)
	}))
	t.Cleanup(o.srv.Close)
	return o
}

// setSick makes the origin's health check fail (or pass again).
func (o *origin) setSick(sick bool) {
	o.mu.Lock()
	o.sick = sick
	o.mu.Unlock()
}

// fixture is a selector over real origins, the balancing proxy in front
// of it, and the admin API, each behind its own loopback listener.
type fixture struct {
	sel     *actors.Selector
	origins []*origin
	proxy   string // the proxy's base URL
	admin   string // the admin API's base URL
	client  *http.Client
	log     *logSink
}

type fixtureOptions struct {
	// monitor probes the origins; Interval 0: an hour, so only the first
	// probe runs during a test.
	monitor actors.MonitorConfig
	token   []byte
	reload  func(context.Context) error
}

func newFixture(t *testing.T, o fixtureOptions, names ...string) *fixture {
	t.Helper()
	f := &fixture{log: &logSink{}}
	log := hclog.New(&hclog.LoggerOptions{Output: f.log, Level: hclog.Info})
	tr := transport.New(transport.Options{DialTimeout: time.Second})
	t.Cleanup(tr.CloseIdleConnections)
	var backends []actors.BackendConfig
	for _, name := range names {
		org := newOrigin(t, name)
		f.origins = append(f.origins, org)
		u, err := url.Parse(org.srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		backends = append(backends, actors.BackendConfig{URL: u, Weight: 1})
	}
	if o.monitor.Interval == 0 {
		o.monitor.Interval = time.Hour
	}
	if o.monitor.Transport == nil {
		o.monitor.Transport = tr
	}
	sel, err := actors.New(actors.Config{Backends: backends, Monitor: o.monitor, Logger: log.Named("selector")})
	if err != nil {
		t.Fatal(err)
	}
	f.sel = sel
	ctx, cancel := context.WithCancel(context.Background())
	var wg conc.WaitGroup
	wg.Go(func() { _ = sel.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })

	proxy := httptest.NewServer(transport.NewProxy(transport.Config{Selector: sel, Transport: tr, Retries: 2}))
	t.Cleanup(proxy.Close)
	f.proxy = proxy.URL

	h, err := New(Config{Selector: sel, Reload: o.reload, Logger: log.Named("admin"), Token: o.token})
	if err != nil {
		t.Fatal(err)
	}
	adm := httptest.NewServer(h)
	t.Cleanup(adm.Close)
	f.admin = adm.URL

	f.client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	t.Cleanup(f.client.CloseIdleConnections)
	return f
}

// originURL returns the i'th origin's URL as the selector names it.
func (f *fixture) originURL(i int) string { return f.origins[i].srv.URL }

// answer is one HTTP answer, its body kept raw.
type answer struct {
	code   int
	header http.Header
	body   []byte
}

// json decodes the answer's body into v, failing the test if it is not JSON.
func (a answer) json(t *testing.T, v any) {
	t.Helper()
	if ct := a.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q, want application/json; body %s", ct, a.body)
	}
	if err := json.Unmarshal(a.body, v); err != nil {
		t.Fatalf("not JSON (%v): %s", err, a.body)
	}
}

// errorText decodes an error answer's {"error": ...}.
func (a answer) errorText(t *testing.T) string {
	t.Helper()
	var e errorBody
	a.json(t, &e)
	if e.Error == "" {
		t.Fatalf("no error text in %s", a.body)
	}
	return e.Error
}

// request describes one call to the admin API.
type request struct {
	method, path string
	body         string            // sent as application/json when not ""
	header       map[string]string // extra headers
	token        string            // sent as a bearer token when not ""
}

// call sends r to the admin API; it fails the test if there is no answer.
func (f *fixture) call(t *testing.T, r request) answer {
	t.Helper()
	a, err := f.tryCall(r)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// tryCall is call for goroutines other than the test's.
func (f *fixture) tryCall(r request) (answer, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var body io.Reader
	if r.body != "" {
		body = strings.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, f.admin+r.path, body)
	if err != nil {
		return answer{}, err
	}
	if r.body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if r.token != "" {
		req.Header.Set("Authorization", "Bearer "+r.token)
	}
	for k, v := range r.header {
		if k == "Host" {
			req.Host = v
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return answer{}, fmt.Errorf("%s %s: %w", r.method, r.path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return answer{}, fmt.Errorf("%s %s: reading body: %w", r.method, r.path, err)
	}
	return answer{code: resp.StatusCode, header: resp.Header, body: data}, nil
}

// serve runs one request through h in process, addressed to a loopback host.
func serve(t *testing.T, h http.Handler, method, path, body string) answer {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Host = "127.0.0.1:9090"
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return answer{code: rec.Code, header: rec.Header(), body: rec.Body.Bytes()}
}

// status returns GET /status's backends.
func (f *fixture) status(t *testing.T) []actors.BackendStatus {
	t.Helper()
	a := f.call(t, request{method: "GET", path: "/status"})
	if a.code != http.StatusOK {
		t.Fatalf("GET /status: %d %s", a.code, a.body)
	}
	var st StatusResponse
	a.json(t, &st)
	return st.Backends
}

// byURL returns the status of the backend with url.
func byURL(t *testing.T, st []actors.BackendStatus, url string) actors.BackendStatus {
	t.Helper()
	for _, b := range st {
		if b.Name == url {
			return b
		}
	}
	t.Fatalf("no backend %s in %+v", url, st)
	return actors.BackendStatus{}
}

// get sends GET path through the proxy and returns the status and the
// backend that answered.
func (f *fixture) get(t *testing.T, path string) (int, string) {
	t.Helper()
	code, name, err := f.send(http.MethodGet, path)
	if err != nil {
		t.Fatal(err)
	}
	return code, name
}

// send sends a request through the proxy; it may run on any goroutine.
func (f *fixture) send(method, path string) (int, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, f.proxy+path, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return 0, "", fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return 0, "", fmt.Errorf("%s %s: reading body: %w", method, path, err)
	}
	return resp.StatusCode, resp.Header.Get("X-Backend"), nil
}

// logSink collects log output for assertions (see internal/logtest).
type logSink struct{ logtest.Sink }

// eventually polls cond every 10 ms until it holds, or fails the test
// after 10 s saying what it waited for. Reports reach the selector after
// the client has its answer, and monitors probe on their own schedule, so
// a bounded poll is how a test waits for them.
func eventually(t *testing.T, what func() string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after 10s waiting for %s", what())
		}
		<-tick.C
	}
}
