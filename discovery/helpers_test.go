package discovery

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/sourcegraph/conc"
	"go.uber.org/goleak"

	"github.com/roundhouse/roundhouse/actors"
	"github.com/roundhouse/roundhouse/demo"
	"github.com/roundhouse/roundhouse/internal/logtest"
	"github.com/roundhouse/roundhouse/internal/testenv"
	"github.com/roundhouse/roundhouse/transport"
)

// TestMain fails the package's tests if any goroutine outlives them: every
// provider must have closed its etcd client, every server and instance
// must be stopped.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// logBuffer is the tests' log output (see internal/logtest), with this
// package's spelling.
type logBuffer struct{ logtest.Sink }

func newLogBuffer() *logBuffer { return &logBuffer{} }

// count returns how many lines contain every one of substrs.
func (l *logBuffer) count(substrs ...string) int { return l.Count(substrs...) }

// waitFor waits, up to 10 s, until n lines contain all of substrs.
func (l *logBuffer) waitFor(t *testing.T, n int, substrs ...string) {
	t.Helper()
	l.WaitFor(t, n, substrs...)
}

// waitUntil polls cond every 5 ms (pacing) until it holds, for up to
// timeout, and returns how long that took.
var waitUntil = testenv.WaitUntil

// origin is a demo backend that counts the requests it receives (health
// probes aside) and those in progress.
type origin struct {
	name     string
	url      string
	arrived  atomic.Int64
	inFlight atomic.Int64
}

// startOrigins starts n demo backends called b1, b2, ...
func startOrigins(t *testing.T, n int) []*origin {
	t.Helper()
	var out []*origin
	for i := range n {
		o := &origin{name: fmt.Sprintf("b%d", i+1)}
		h := demo.Handler(o.name)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/health" {
				o.arrived.Add(1)
				o.inFlight.Add(1)
				defer o.inFlight.Add(-1)
			}
			h.ServeHTTP(w, r)
		}))
		t.Cleanup(srv.Close)
		o.url = srv.URL
		out = append(out, o)
	}
	return out
}

// instance is one Roundhouse balancer in the test process, built as serve
// builds it: a selector with health monitors, the proxy, and discovery
// providers feeding the selector.
type instance struct {
	name   string
	sel    *actors.Selector
	url    string // the proxy's
	logs   *logBuffer
	client *http.Client
}

// testOptions are fast discovery timings for tests.
func testOptions() Options {
	return Options{CheckInterval: 200 * time.Millisecond, Timeout: 500 * time.Millisecond,
		RetryMin: 50 * time.Millisecond, RetryMax: 400 * time.Millisecond}
}

// startInstance starts a balancer with the policy, the sticky secret,
// static backends and discover sources, and waits until its providers have
// read their sources once. It is stopped when the test ends.
func startInstance(t *testing.T, name, policy string, secret []byte, static []string, opts Options, discover ...string) *instance {
	t.Helper()
	tr := transport.New(transport.Options{DialTimeout: time.Second})
	logs := newLogBuffer()
	log := hclog.New(&hclog.LoggerOptions{Name: name, Output: logs, Level: hclog.Debug})
	pol, err := actors.NewPolicy(policy, secret, 1)
	if err != nil {
		t.Fatal(err)
	}
	var backends []actors.BackendConfig
	for _, raw := range static {
		u, err := actors.ParseBackendURL(raw)
		if err != nil {
			t.Fatal(err)
		}
		backends = append(backends, actors.BackendConfig{URL: u, Weight: 1})
	}
	sel, err := actors.New(actors.Config{
		Backends: backends, Policy: pol, Logger: log.Named("selector"),
		Monitor: actors.MonitorConfig{Check: actors.HTTPCheck{Path: "/health"}, Transport: tr, Interval: 100 * time.Millisecond, Timeout: time.Second, Rise: 1, Fall: 2},
	})
	if err != nil {
		t.Fatal(err)
	}
	opts.Logger = log
	var providers []Provider
	for _, raw := range discover {
		p, err := New(raw, opts)
		if err != nil {
			t.Fatal(err)
		}
		providers = append(providers, p)
	}
	srv := httptest.NewServer(transport.NewProxy(transport.Config{
		Selector: sel, Transport: tr, Retries: 2, Logger: log.Named("proxy"),
		Key: actors.KeyOf(pol), StickySecret: secret,
	}))
	ctx, cancel := context.WithCancel(context.Background())
	var wg conc.WaitGroup
	wg.Go(func() { _ = sel.Run(ctx) })
	for _, p := range providers {
		wg.Go(func() {
			if err := p.Run(ctx, sel.Feed(p.Source())); err != nil {
				t.Errorf("%s: provider %s: %v", name, p.Source(), err)
			}
		})
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}, Timeout: 10 * time.Second}
	t.Cleanup(func() {
		srv.Close()
		cancel()
		wg.Wait()
		tr.CloseIdleConnections()
		client.CloseIdleConnections()
		if t.Failed() {
			t.Logf("%s's log:\n%s", name, logs)
		}
	})
	if late := WaitReady(t.Context(), providers, 10*time.Second); len(late) > 0 {
		t.Fatalf("%s: providers not ready: %v", name, late)
	}
	return &instance{name: name, sel: sel, url: srv.URL, logs: logs, client: client}
}

// get sends GET path with the given header lines ("Name: value") and
// returns the status, the backend that answered (X-Backend) and the
// response.
func (in *instance) get(path string, header ...string) (int, string, *http.Response, error) {
	req, err := http.NewRequest(http.MethodGet, in.url+path, nil)
	if err != nil {
		return 0, "", nil, err
	}
	for _, h := range header {
		k, v, _ := strings.Cut(h, ": ")
		req.Header.Add(k, v)
	}
	resp, err := in.client.Do(req)
	if err != nil {
		return 0, "", nil, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("X-Backend"), resp, err
}

// backends returns "URL" or "URL weight=N" for every backend the selector
// has that is not on its way out, sorted; disabled ones end in
// " disabled".
func (in *instance) backends(t *testing.T) []string {
	t.Helper()
	st, err := in.sel.Status(t.Context())
	if err != nil {
		t.Fatalf("%s: Status: %v", in.name, err)
	}
	var out []string
	for _, b := range st {
		switch {
		case b.State == "draining":
			continue
		case b.State == "disabled":
			out = append(out, fmt.Sprintf("%s weight=%d disabled", b.Name, b.Weight))
		default:
			out = append(out, fmt.Sprintf("%s weight=%d", b.Name, b.Weight))
		}
	}
	slices.Sort(out)
	return out
}

// state returns the state of the backend at url, "" when it is gone.
func (in *instance) state(t *testing.T, url string) string {
	t.Helper()
	st, err := in.sel.Status(t.Context())
	if err != nil {
		t.Fatalf("%s: Status: %v", in.name, err)
	}
	for _, b := range st {
		if b.Name == url {
			return b.State
		}
	}
	return ""
}

// weighted returns "URL weight=N" for each url with weight 1, sorted.
func weighted(urls ...string) []string {
	out := make([]string, len(urls))
	for i, u := range urls {
		out[i] = u + " weight=1"
	}
	slices.Sort(out)
	return out
}
