package actors

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/sourcegraph/conc"
)

// These tests run in real time with as many handlers as net/http runs at
// 256 connections, so that the selector's loop takes most messages on its
// quick path and yields between bursts (Selector.Run). Run them with -race.

// loadHandlers is how many handler goroutines the load tests run.
const loadHandlers = 256

// TestSelectorUnderLoadKeepsCapsAndCounts: with a connection cap and a
// queue, no backend ever serves more than its cap, every pick is granted
// (the queue is long enough and waits long enough), and once every report
// is in, each backend's in-flight count is back to 0 and its requests add
// up, while an operator reads snapshots all along.
func TestSelectorUnderLoadKeepsCapsAndCounts(t *testing.T) {
	const (
		each   = 20
		total  = loadHandlers * each
		maxCap = 4
	)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cfg := testConfig(t, newSwitchProbe().Probe, urlA, urlB, urlC)
	cfg.Policy = &LeastConn{}
	cfg.Limits = Limits{MaxConnsPerBackend: maxCap, QueueSize: loadHandlers, QueueTimeout: time.Minute}
	s, _ := startSelector(t, cfg)

	var (
		mu   sync.Mutex
		held = map[*Backend]int{} // picks the handlers hold now
	)
	hold := func(b *Backend, d int) int {
		mu.Lock()
		defer mu.Unlock()
		held[b] += d
		return held[b]
	}
	var wg conc.WaitGroup
	for h := range loadHandlers {
		wg.Go(func() {
			for range each {
				b, err := s.Pick(ctx)
				if err != nil || b == nil {
					t.Errorf("handler %d: Pick = %v, %v", h, b, err)
					return
				}
				if n := hold(b, +1); n > maxCap {
					t.Errorf("%s serves %d requests at once, over its cap of %d", b.Name, n, maxCap)
				}
				runtime.Gosched() // let the others run, as forwarding would
				hold(b, -1)
				s.Report(Report{Backend: b, Outcome: Success, Status: 200, Final: true, Method: "GET"})
			}
		})
	}
	wg.Go(func() {
		for ctx.Err() == nil {
			st, err := s.Status(ctx)
			if err != nil {
				t.Errorf("Status: %v", err)
				return
			}
			var n uint64
			for _, b := range st {
				if b.InFlight < 0 || b.InFlight > maxCap {
					t.Errorf("status %+v: in flight outside 0..%d", b, maxCap)
				}
				n += b.Requests
			}
			if n == total {
				return
			}
		}
	})
	wg.Wait()

	st, err := s.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, b := range st {
		if b.InFlight != 0 || !b.Up {
			t.Errorf("status %+v, want up with none in flight", b)
		}
		n += b.Requests
	}
	if n != total {
		t.Errorf("%d requests counted, want %d", n, total)
	}
}

// TestSelectorStopsUnderLoad: handlers that keep picking while the
// selector stops all return, each with ErrStopped, and none waits.
func TestSelectorStopsUnderLoad(t *testing.T) {
	s, stop := startSelector(t, testConfig(t, newSwitchProbe().Probe, urlA, urlB, urlC))
	ctx := t.Context()
	picked := make(chan struct{}, loadHandlers)
	var wg conc.WaitGroup
	for h := range loadHandlers {
		wg.Go(func() {
			for i := 0; ; i++ {
				b, err := s.Pick(ctx)
				if err != nil {
					if !errors.Is(err, ErrStopped) {
						t.Errorf("handler %d: Pick = %v, want ErrStopped", h, err)
					}
					return
				}
				if i == 0 {
					picked <- struct{}{}
				}
				s.Report(Report{Backend: b})
			}
		})
	}
	for range loadHandlers {
		<-picked // every handler is under way
	}
	if err := stop(); err != nil {
		t.Errorf("Run = %v, want nil", err)
	}
	wg.Wait()
}
