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
	var chaos sync.WaitGroup
	chaos.Go(func() {
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				for _, f := range flaps { // leave everything running for the final checks
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

	var requests, gets, posts, unsaved atomic.Int64
	var clients sync.WaitGroup
	for c := range 16 {
		clients.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				post := (c+i)%2 == 0
				err := stressRequest(lb, post)
				switch {
				case post && errors.Is(err, errUnsaved):
					unsaved.Add(1)
					continue
				case err != nil:
					t.Errorf("client %d request %d: %v", c, i, err)
					return
				case post:
					posts.Add(1)
				default:
					gets.Add(1)
				}
				requests.Add(1)
			}
		})
	}
	clients.Wait()
	chaos.Wait()

	var served int64
	for _, f := range all {
		served += f.served.Load()
	}
	var attempts, failures uint64
	for i, st := range lb.settled(t) {
		attempts += st.Requests
		failures += st.Failures
		if st.InFlight != 0 {
			t.Errorf("%s: %d still in flight", st.Name, st.InFlight)
		}
		if got := int64(st.Requests - st.Failures); got != all[i].served.Load() {
			t.Errorf("%s: selector counted %d answered attempts, backend served %d", all[i].name, got, all[i].served.Load())
		}
	}
	if served != requests.Load() {
		t.Errorf("backends served %d requests, clients completed %d", served, requests.Load())
	}
	if attempts-failures != uint64(requests.Load()) {
		t.Errorf("selector saw %d attempts with %d failures for %d requests", attempts, failures, requests.Load())
	}
	// The reset reaches the balancer as a failed read or, mid-upload, as a
	// failed write (EPIPE).
	resets := lb.log.count("status=502", "reset by peer") + lb.log.count("status=502", "EOF") +
		lb.log.count("status=502", "broken pipe")
	if n := lb.log.count("status=502"); unsaved.Load() != int64(n) || resets != n {
		t.Errorf("%d POSTs got 502; the access log has %d, of which %d after a reset, EOF or broken pipe:\n%s",
			unsaved.Load(), n, resets, lb.log)
	}
	t.Logf("%d requests answered 200 (%d GET, %d POST) in %v; %d POSTs reset after sending (502); "+
		"%d attempts failed and were retried or answered; %d health transitions; anchor served %d",
		requests.Load(), gets.Load(), posts.Load(), duration, unsaved.Load(), failures,
		lb.log.count("backend down")+lb.log.count("backend up"), anchor.served.Load())
}

// errUnsaved is a 502 for a POST whose bytes reached a backend that failed.
var errUnsaved = errors.New("502: the request reached a backend that failed")

// stressRequest sends one GET or POST and checks the answer.
func stressRequest(lb *balancer, post bool) error {
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
	req, err := http.NewRequestWithContext(ctx, method, lb.url+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := lb.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	switch {
	case err != nil:
		return fmt.Errorf("%s %s: reading body: %w", method, path, err)
	case post && resp.StatusCode == http.StatusBadGateway:
		return errUnsaved
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("%s %s: status %d: %s", method, path, resp.StatusCode, strings.TrimSpace(string(got)))
	case post && !bytes.Equal(got, body):
		return fmt.Errorf("POST /echo: got %d bytes back, sent %d, or they differ", len(got), len(body))
	case !post && string(got) != "Hello from "+resp.Header.Get("X-Backend")+"\n":
		return fmt.Errorf("GET /: body %q from backend %q", got, resp.Header.Get("X-Backend"))
	}
	return nil
}
