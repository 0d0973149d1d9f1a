package transport

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/roundhouse/roundhouse/actors"
	"github.com/roundhouse/roundhouse/demo"
	"github.com/roundhouse/roundhouse/internal/testenv"
)

var stressDuration = flag.Duration("stress.duration", 0,
	"how long TestStress runs (default 2s, or $ROUNDHOUSE_STRESS_DURATION)")

// flappy is a demo backend whose health and listener the chaos loop toggles.
// Stopping it closes the listener (new connections are refused) but lets
// open connections finish, like a process that stops accepting.
type flappy struct {
	name    string
	addr    string
	srv     *http.Server
	healthy atomic.Bool
	served  atomic.Int64 // requests other than health probes
	ln      net.Listener // nil while stopped; chaos goroutine only
	serving sync.WaitGroup
}

func newFlappy(t *testing.T, name string) *flappy {
	t.Helper()
	f := &flappy{name: name}
	f.healthy.Store(true)
	h := demo.Handler(name)
	f.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			if !f.healthy.Load() {
				http.Error(w, "flapping", http.StatusServiceUnavailable)
				return
			}
		} else {
			f.served.Add(1)
		}
		if rand.IntN(4) == 0 {
			// Close cleanly after this response, so the balancer must dial
			// again and meets the listener in whatever state chaos left it.
			w.Header().Set("Connection", "close")
		}
		h.ServeHTTP(w, r)
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.addr = ln.Addr().String()
	f.serve(ln)
	t.Cleanup(func() {
		f.srv.Close()
		f.serving.Wait()
	})
	return f
}

func (f *flappy) serve(ln net.Listener) {
	f.ln = ln
	f.serving.Go(func() { _ = f.srv.Serve(ln) })
}

// toggleListener stops accepting, or accepts again on the same address.
func (f *flappy) toggleListener(t *testing.T) {
	if f.ln != nil {
		f.ln.Close()
		f.ln = nil
		return
	}
	ln, err := net.Listen("tcp", f.addr)
	if err != nil {
		return // the port is briefly unavailable; try again next round
	}
	f.serve(ln)
}

// TestStress hammers the balancer from many goroutines while backends flap:
// health checks fail and recover, listeners stop and start. One backend
// stays healthy throughout, and a request may try every backend, so every
// GET must succeed. A POST must succeed too, except when its bytes reached a
// backend that then reset the connection (a closing listener resets the
// connections still in its accept queue): then it must get a 502 and never
// be replayed. Afterwards the backends must have served exactly the
// requests that succeeded, and the selector's counts must agree.
func TestStress(t *testing.T) {
	if testing.Short() {
		t.Skip("stress test skipped in -short mode")
	}
	duration := testenv.Duration(t, stressDuration, "ROUNDHOUSE_STRESS_DURATION", 2*time.Second)
	anchor := newFlappy(t, "anchor")
	flaps := []*flappy{newFlappy(t, "f1"), newFlappy(t, "f2"), newFlappy(t, "f3"), newFlappy(t, "f4")}
	all := append([]*flappy{anchor}, flaps...)
	urls := make([]string, len(all))
	for i, f := range all {
		urls[i] = "http://" + f.addr
	}
	lb := newBalancer(t, balancerOptions{
		retries: len(all) - 1,
		monitor: actors.MonitorConfig{Interval: 2 * time.Millisecond, Timeout: time.Second, Rise: 1, Fall: 1},
	}, urls...)

	ctx, cancel := context.WithTimeout(context.Background(), duration)
	defer cancel()
	chaos := startChaos(ctx, t, flaps)
	load := hammer(ctx, t, func(post bool) (string, error) {
		return stressRequest(lb.client, lb.url, "", "", post)
	})
	chaos.Wait()

	var served int64
	for _, f := range all {
		served += f.served.Load()
	}
	attempts, failures := reconcile(t, lb.settled(t), all)
	if served != load.requests.Load() {
		t.Errorf("backends served %d requests, clients completed %d", served, load.requests.Load())
	}
	if attempts-failures != uint64(load.requests.Load()) {
		t.Errorf("selector saw %d attempts with %d failures for %d requests", attempts, failures, load.requests.Load())
	}
	checkResets(t, lb.log, load.unsaved.Load())
	t.Logf("%s in %v; %d attempts failed and were retried or answered; %d health transitions; anchor served %d",
		load, duration, failures, lb.log.count("backend down")+lb.log.count("backend up"), anchor.served.Load())
}

// startChaos flaps the backends until ctx is done: every millisecond one
// of them fails or recovers its health checks, or stops or starts
// accepting. Then it leaves them all healthy and accepting, for the final
// checks. The caller owns the goroutine and waits for it.
func startChaos(ctx context.Context, t *testing.T, flaps []*flappy) *sync.WaitGroup {
	chaos := new(sync.WaitGroup)
	chaos.Go(func() {
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				for _, f := range flaps {
					f.healthy.Store(true)
					if f.ln == nil {
						f.toggleListener(t)
					}
				}
				return
			case <-tick.C:
			}
			f := flaps[rand.IntN(len(flaps))]
			if rand.IntN(2) == 0 {
				f.healthy.Store(!f.healthy.Load())
			} else {
				f.toggleListener(t)
			}
		}
	})
	return chaos
}

// stressLoad counts what the clients of a stress test got.
type stressLoad struct {
	requests, gets, posts atomic.Int64 // answered 200
	unsaved               atomic.Int64 // POSTs answered 502 (errUnsaved)
}

func (l *stressLoad) String() string {
	return fmt.Sprintf("%d requests answered 200 (%d GET, %d POST); %d POSTs reset after sending (502)",
		l.requests.Load(), l.gets.Load(), l.posts.Load(), l.unsaved.Load())
}

// hammer sends requests from 16 clients until ctx is done, alternating
// GETs and POSTs; send makes one (see stressRequest). A client stops at
// its first error other than errUnsaved, reported with t.Errorf. hammer
// returns once every client has.
func hammer(ctx context.Context, t *testing.T, send func(post bool) (backend string, err error)) *stressLoad {
	load := new(stressLoad)
	var clients sync.WaitGroup
	for c := range 16 {
		clients.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				post := (c+i)%2 == 0
				_, err := send(post)
				switch {
				case post && errors.Is(err, errUnsaved):
					load.unsaved.Add(1)
					continue
				case err != nil:
					t.Errorf("client %d request %d: %v", c, i, err)
					return
				case post:
					load.posts.Add(1)
				default:
					load.gets.Add(1)
				}
				load.requests.Add(1)
			}
		})
	}
	clients.Wait()
	return load
}

// reconcile checks one selector's settled counts against its backends
// (st[i] is backends[i]): nothing in flight, and every answered attempt
// served. It returns the selector's attempts and failures.
func reconcile(t *testing.T, st []actors.BackendStatus, backends []*flappy) (attempts, failures uint64) {
	t.Helper()
	for i, s := range st {
		attempts += s.Requests
		failures += s.Failures
		if s.InFlight != 0 {
			t.Errorf("%s: %d still in flight", s.Name, s.InFlight)
		}
		if got := int64(s.Requests - s.Failures); got != backends[i].served.Load() {
			t.Errorf("%s: selector counted %d answered attempts, backend served %d", backends[i].name, got, backends[i].served.Load())
		}
	}
	return attempts, failures
}

// checkResets checks that every 502 (unsaved of them, all POSTs) followed
// a reset: the reset reaches the balancer as a failed read or, mid-upload,
// as a failed write: EPIPE, or "use of closed network connection" when the
// transport's read loop saw the reset first and closed the connection
// under the body's copy.
func checkResets(t *testing.T, log *logSink, unsaved int64) {
	t.Helper()
	resets := log.count("status=502", "reset by peer") + log.count("status=502", "EOF") +
		log.count("status=502", "broken pipe") + log.count("status=502", "use of closed network connection")
	if n := log.count("status=502"); unsaved != int64(n) || resets != n {
		t.Errorf("%d POSTs got 502; the access log has %d, of which %d after a reset, EOF or broken pipe:\n%s",
			unsaved, n, resets, log)
	}
}

// errUnsaved is a 502 for a POST whose bytes reached a backend that failed.
var errUnsaved = errors.New("502: the request reached a backend that failed")

// stressRequest sends one GET or POST to the balancer at base, with host
// as its Host ("": base's) and prefix before its path, and checks the
// answer. It returns the backend that answered (its X-Backend).
func stressRequest(client *http.Client, base, host, prefix string, post bool) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var body []byte
	method, path := http.MethodGet, "/"
	if post {
		body = make([]byte, 1+rand.IntN(32<<10))
		for i := range body {
			body[i] = byte(rand.Uint32())
		}
		method, path = http.MethodPost, "/echo"
	}
	req, err := http.NewRequestWithContext(ctx, method, base+prefix+path, bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	if host != "" {
		req.Host = host
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	backend := resp.Header.Get("X-Backend")
	switch {
	case err != nil:
		return backend, fmt.Errorf("%s %s: reading body: %w", method, prefix+path, err)
	case post && resp.StatusCode == http.StatusBadGateway:
		return backend, errUnsaved
	case resp.StatusCode != http.StatusOK:
		return backend, fmt.Errorf("%s %s: status %d: %s", method, prefix+path, resp.StatusCode, strings.TrimSpace(string(got)))
	case post && !bytes.Equal(got, body):
		return backend, fmt.Errorf("POST /echo: got %d bytes back, sent %d, or they differ", len(got), len(body))
	case !post && string(got) != "Hello from "+backend+"\n":
		return backend, fmt.Errorf("GET /: body %q from backend %q", got, backend)
	}
	return backend, nil
}
