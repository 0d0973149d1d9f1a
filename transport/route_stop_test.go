package transport

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/sourcegraph/conc"

	"github.com/roundhouse/roundhouse/actors"
	"github.com/roundhouse/roundhouse/routing"
)

// TestARequestQueuedInAPoolThatStopsRoutesAgain follows a reload that
// removes a pool whose one backend is at its connection limit: one
// request is in flight there, another waits in the pool's queue. The
// reload routes everything to another pool and the removed pool's
// selector stops. The queued request routes again and is answered by the
// other pool; the one in flight finishes where it was.
func TestARequestQueuedInAPoolThatStopsRoutesAgain(t *testing.T) {
	s := newSite(t, map[string][]string{"a": {echoBackend(t, "a1")}}, nil)

	// Pool e: one backend that holds each request until released, one
	// request at a time, the others queued. It runs under a context of its
	// own, stopped below.
	release, holding := make(chan struct{}), make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			return
		}
		holding <- struct{}{} // capacity 1: the limit lets one request in
		select {
		case <-release:
		case <-r.Context().Done():
		}
		fmt.Fprintln(w, "e1")
	}))
	t.Cleanup(srv.Close)
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	tr := New(Options{})
	t.Cleanup(tr.CloseIdleConnections)
	sel, err := actors.New(actors.Config{
		Backends: []actors.BackendConfig{{URL: u, Weight: 1}},
		Limits:   actors.Limits{MaxConnsPerBackend: 1, QueueSize: 8, QueueTimeout: time.Minute},
		Monitor:  actors.MonitorConfig{Interval: time.Hour, Transport: tr},
	})
	if err != nil {
		t.Fatal(err)
	}
	ectx, stopE := context.WithCancel(s.ctx)
	defer stopE()
	var ewg conc.WaitGroup
	ewg.Go(func() { _ = sel.Run(ectx) })
	e := NewPool(Pool{Name: "e", Selector: sel, Transport: tr})
	setRoutes(t, s, []routing.Route{{Name: "to-e", Pool: "e"}}, s.pools["a"], e)

	client := &http.Client{Transport: &http.Transport{}, Timeout: 20 * time.Second}
	t.Cleanup(client.CloseIdleConnections)
	type answer struct {
		status int
		body   string
		err    error
	}
	var clients conc.WaitGroup
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release) // the test stopped before it did
		}
		clients.Wait()
	})
	fetch := func() <-chan answer {
		c := make(chan answer, 1)
		clients.Go(func() { // ends with the request, bounded by the client's timeout
			resp, err := client.Get(s.url + "/")
			if err != nil {
				c <- answer{err: err}
				return
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			c <- answer{resp.StatusCode, string(body), err}
		})
		return c
	}
	inFlight := fetch()
	<-holding
	queued := fetch()
	waitUntil(t, 10*time.Second, "a request queued in pool e", func() bool {
		m, err := sel.Metrics(context.Background())
		return err == nil && m.Queued == 1
	})

	setRoutes(t, s, []routing.Route{{Name: "to-a", Pool: "a"}}, s.pools["a"])
	stopE()
	ewg.Wait()
	if got := <-queued; got.err != nil || got.status != http.StatusOK || !strings.HasPrefix(got.body, "a1\n") {
		t.Errorf("the queued request: %d %q %v; want 200 from a1", got.status, got.body, got.err)
	}
	close(release)
	if got := <-inFlight; got.err != nil || got.status != http.StatusOK || got.body != "e1\n" {
		t.Errorf("the request in flight: %d %q %v; want 200 from e1", got.status, got.body, got.err)
	}
	s.log.waitFor(t, 1, "access: request:", "status=200", "pool=a", "route=to-a")
	s.log.waitFor(t, 1, "access: request:", "status=200", "pool=e", "route=to-e")
}

// setRoutes makes routes over pools s's current table.
func setRoutes(t *testing.T, s *site, routes []routing.Route, pools ...*Pool) {
	t.Helper()
	table, err := NewTable(routes, pools)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.router.Set(context.Background(), table); err != nil {
		t.Fatal(err)
	}
}
