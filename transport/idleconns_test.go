package transport

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/sourcegraph/conc"

	"github.com/roundhouse/roundhouse/internal/testcert"
)

// capped is a balancer at a connection cap with an IdleConns, and the
// connection states its server reported, in order.
type capped struct {
	*balancer
	idle    *IdleConns
	idleLog *logSink // the IdleConns' log
	states  chan connReport
}

type connReport struct {
	client string // the client's address
	state  http.ConnState
}

// newCapped starts a balancer capped at maxConns connections, with an
// IdleConns that outlives it.
func newCapped(t *testing.T, maxConns int, o balancerOptions, backends ...string) *capped {
	t.Helper()
	sink := newLogSink()
	ic := NewIdleConns(IdleConnsOptions{Logger: hclog.New(&hclog.LoggerOptions{Output: sink, Level: hclog.Debug})})
	ctx, cancel := context.WithCancel(context.Background())
	var wg conc.WaitGroup
	wg.Go(func() { _ = ic.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() }) // after the balancer's cleanup
	states := make(chan connReport, 1024)
	o.frontend.MaxConns, o.frontend.IdleConns = maxConns, ic
	o.frontend.ConnState = func(c net.Conn, s http.ConnState) {
		select { // reported after IdleConns heard of it
		case states <- connReport{c.RemoteAddr().String(), s}:
		default:
			t.Errorf("connection state %v of %v not reported: the test's buffer is full", s, c.RemoteAddr())
		}
	}
	return &capped{balancer: newBalancer(t, o, backends...), idle: ic, idleLog: sink, states: states}
}

// waitState waits until the server reports state for the client
// connection c; IdleConns has heard of it then.
func (b *capped) waitState(t *testing.T, c net.Conn, state http.ConnState) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case r := <-b.states:
			if r.client == c.LocalAddr().String() && r.state == state {
				return
			}
		case <-timeout:
			t.Fatalf("connection %v never reported %v", c.LocalAddr(), state)
		}
	}
}

// reclaimed is the IdleConns' count of connections closed to make room.
func (b *capped) reclaimed(t *testing.T) uint64 {
	t.Helper()
	n, err := b.idle.Reclaimed(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// idleClient opens a connection, sends one request on it and waits until
// the server reports it idle.
func (b *capped) idleClient(t *testing.T, path string) *rawConn {
	t.Helper()
	rc := dialRaw(t, b.url)
	rc.send("GET " + path + " HTTP/1.1\r\nHost: a\r\n\r\n")
	if resp, _ := rc.response("GET"); resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	b.waitState(t, rc.c, http.StateIdle)
	return rc
}

// heldBackend answers /hold/NAME once release[NAME] is closed, and every
// other path at once; arrived gets NAME when a held request arrives.
func heldBackend(t *testing.T, names ...string) (url string, release map[string]chan struct{}, arrived chan string) {
	t.Helper()
	release, arrived = map[string]chan struct{}{}, make(chan string, len(names))
	for _, n := range names {
		release[n] = make(chan struct{})
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name, held := strings.CutPrefix(r.URL.Path, "/hold/")
		if !held {
			return
		}
		arrived <- name
		select {
		case <-release[name]:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { // before srv.Close: no held request is left
		for _, ch := range release {
			select {
			case <-ch:
			default:
				close(ch)
			}
		}
	})
	return srv.URL, release, arrived
}

// At the cap, with every connection idle, a new client is served at once
// and the connection idle the longest is the one closed for it.
func TestIdleConnectionIsClosedToLetANewClientIn(t *testing.T) {
	lb := newCapped(t, 4, balancerOptions{}, demoBackend(t, "A").URL)
	var idle []*rawConn
	for range 4 {
		idle = append(idle, lb.idleClient(t, "/"))
	}
	fifth := dialRaw(t, lb.url)
	fifth.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	if resp, _ := fifth.response("GET"); resp.StatusCode != http.StatusOK {
		t.Fatalf("fifth client: status %d", resp.StatusCode)
	}
	if !idle[0].closed() {
		t.Error("the connection idle the longest is still open")
	}
	for i, rc := range idle[1:] { // still served: the cap has room for them and the fifth
		rc.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
		if resp, _ := rc.response("GET"); resp.StatusCode != http.StatusOK {
			t.Errorf("idle client %d: status %d", i+1, resp.StatusCode)
		}
	}
	if n := lb.reclaimed(t); n != 1 {
		t.Errorf("reclaimed %d connections, want 1", n)
	}
	lb.idleLog.waitFor(t, 1, "closed idle keep-alive connections to make room", "closed=1")
	if n := lb.log.count("new connections wait"); n != 0 {
		t.Errorf("logged %d times that new connections wait; none did", n)
	}
}

// A connection with a request in flight is never closed to make room: the
// idle one is, though it became idle later.
func TestInFlightRequestIsNotCutToMakeRoom(t *testing.T) {
	backend, release, arrived := heldBackend(t, "a")
	lb := newCapped(t, 2, balancerOptions{}, backend)
	busy := lb.idleClient(t, "/") // idle first, then busy: the order of idleness alone would pick it
	idle := lb.idleClient(t, "/")
	busy.send("GET /hold/a HTTP/1.1\r\nHost: a\r\n\r\n")
	<-arrived
	lb.waitState(t, busy.c, http.StateActive)

	third := dialRaw(t, lb.url)
	third.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	if resp, _ := third.response("GET"); resp.StatusCode != http.StatusOK {
		t.Fatalf("third client: status %d", resp.StatusCode)
	}
	if !idle.closed() {
		t.Error("the idle connection is still open")
	}
	close(release["a"])
	if resp, _ := busy.response("GET"); resp.StatusCode != http.StatusOK {
		t.Errorf("the request in flight: status %d", resp.StatusCode)
	}
	if n := lb.reclaimed(t); n != 1 {
		t.Errorf("reclaimed %d connections, want 1", n)
	}
}

// With every connection busy, a new client waits as before; the first
// connection to become idle is then closed for it, and the other request
// in flight finishes.
func TestNewClientWaitsWhileEveryConnectionIsBusy(t *testing.T) {
	backend, release, arrived := heldBackend(t, "a", "b")
	lb := newCapped(t, 2, balancerOptions{}, backend)
	a, b := dialRaw(t, lb.url), dialRaw(t, lb.url)
	a.send("GET /hold/a HTTP/1.1\r\nHost: a\r\n\r\n")
	b.send("GET /hold/b HTTP/1.1\r\nHost: a\r\n\r\n")
	<-arrived
	<-arrived

	third := dialRaw(t, lb.url)
	third.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	lb.log.waitFor(t, 1, "connection limit reached; new connections wait", "max_conns=2")
	_ = third.c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if _, err := third.br.Peek(1); err == nil {
		t.Fatal("the third connection was served while both were busy")
	}
	_ = third.c.SetReadDeadline(time.Now().Add(10 * time.Second))

	close(release["b"])
	if resp, _ := b.response("GET"); resp.StatusCode != http.StatusOK {
		t.Errorf("b: status %d", resp.StatusCode)
	}
	if resp, _ := third.response("GET"); resp.StatusCode != http.StatusOK {
		t.Errorf("third client: status %d once b was idle", resp.StatusCode)
	}
	if !b.closed() {
		t.Error("b, idle, is still open")
	}
	close(release["a"])
	if resp, _ := a.response("GET"); resp.StatusCode != http.StatusOK {
		t.Errorf("a, in flight all along: status %d", resp.StatusCode)
	}
	if n := lb.reclaimed(t); n != 1 {
		t.Errorf("reclaimed %d connections, want 1", n)
	}
}

// An HTTP/2 connection with no stream open is idle, and closed to make
// room; one with a stream open is not.
func TestIdleHTTP2ConnectionIsClosedToMakeRoom(t *testing.T) {
	backend, release, arrived := heldBackend(t, "a")
	lb := newCapped(t, 2, balancerOptions{frontend: FrontendOptions{H2C: true}}, backend)
	busy := h2cClient(t)
	answered := make(chan int, 1)
	var wg conc.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		resp, err := busy.Get(lb.url + "/hold/a")
		if err != nil {
			t.Errorf("the request in flight: %v", err)
			answered <- 0
			return
		}
		resp.Body.Close()
		answered <- resp.StatusCode
	})
	<-arrived
	idle := h2cClient(t)
	resp, err := idle.Get(lb.url + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ProtoMajor != 2 {
		t.Fatalf("answered over %s, want HTTP/2", resp.Proto)
	}

	third := dialRaw(t, lb.url)
	third.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	if resp, _ := third.response("GET"); resp.StatusCode != http.StatusOK {
		t.Fatalf("third client: status %d", resp.StatusCode)
	}
	close(release["a"])
	if code := <-answered; code != http.StatusOK {
		t.Errorf("the HTTP/2 request in flight: status %d", code)
	}
	if n := lb.reclaimed(t); n != 1 {
		t.Errorf("reclaimed %d connections, want 1", n)
	}
}

// Without an IdleConns (and after its Run has ended) the cap works as
// before; TestConnectionsBeyondTheCapWaitForAFreeSlot covers the former.
func TestCapWithAStoppedIdleConnsWaitsAsBefore(t *testing.T) {
	ic := NewIdleConns(IdleConnsOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	var wg conc.WaitGroup
	wg.Go(func() { _ = ic.Run(ctx) })
	cancel()
	wg.Wait()
	lb := newBalancer(t, balancerOptions{frontend: FrontendOptions{MaxConns: 1, IdleConns: ic}}, demoBackend(t, "A").URL)
	first := dialRaw(t, lb.url)
	first.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	if resp, _ := first.response("GET"); resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	second := dialRaw(t, lb.url)
	second.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	lb.log.waitFor(t, 1, "connection limit reached; new connections wait")
	first.c.Close()
	if resp, _ := second.response("GET"); resp.StatusCode != http.StatusOK {
		t.Errorf("second connection: status %d after a slot freed", resp.StatusCode)
	}
	if _, err := ic.Reclaimed(t.Context()); err == nil {
		t.Error("Reclaimed answered after Run ended")
	}
}

// Over TLS, idle HTTP/1.1 and HTTP/2 connections make room too.
func TestIdleTLSConnectionsAreClosedToMakeRoom(t *testing.T) {
	ca := testcert.NewAuthority(t, "test CA")
	store, _ := runCertStore(t, ca.Issue("lb", "127.0.0.1"))
	lb := newCapped(t, 2, balancerOptions{frontend: FrontendOptions{TLS: ServerTLSConfig(store.GetCertificate)}, clientCAs: ca.Pool()},
		demoBackend(t, "A").URL)
	client := func(h2 bool) *http.Client {
		var p http.Protocols
		p.SetHTTP1(!h2)
		p.SetHTTP2(h2)
		c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}, Protocols: &p}}
		t.Cleanup(c.CloseIdleConnections)
		return c
	}
	for i, h2 := range []bool{false, true, true} { // the third needs room
		resp, err := client(h2).Get(lb.url + "/")
		if err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body) // a body left unread closes an HTTP/1.1 connection
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || (resp.ProtoMajor == 2) != h2 {
			t.Fatalf("client %d: %d over %s", i, resp.StatusCode, resp.Proto)
		}
	}
	if n := lb.reclaimed(t); n != 1 {
		t.Errorf("reclaimed %d connections, want 1", n)
	}
}

// closerOf finds the limit listener's connection under TLS and the
// framing guard: closing there gives the slot back.
func TestCloserOfReachesTheLimitConn(t *testing.T) {
	for _, layers := range []string{"guard", "tls", "tls+guard"} {
		t.Run(layers, func(t *testing.T) {
			server, client := net.Pipe()
			defer client.Close()
			slots := make(chan struct{}, 1)
			slots <- struct{}{}
			var c net.Conn = newLimitConn(server, slots)
			if strings.HasPrefix(layers, "tls") {
				c = tls.Server(c, &tls.Config{})
			}
			if strings.HasSuffix(layers, "guard") {
				c = newGuardConn(c, &guardConfig{log: hclog.NewNullLogger()})
			}
			if err := closerOf(c)(); err != nil {
				t.Fatal(err)
			}
			if len(slots) != 0 {
				t.Error("the slot was not given back")
			}
		})
	}
}

// An open WebSocket (a hijacked connection) is never closed to make room.
func TestOpenWebSocketIsNotClosedToMakeRoom(t *testing.T) {
	backend, _ := wsBackend(t)
	lb := newCapped(t, 2, balancerOptions{}, backend.URL)
	ws := openWebSocket(t, lb.balancer, "")
	lb.waitState(t, ws.c, http.StateHijacked)
	idle := lb.idleClient(t, "/health")

	third := dialRaw(t, lb.url)
	third.send("GET /health HTTP/1.1\r\nHost: a\r\n\r\n")
	if resp, _ := third.response("GET"); resp.StatusCode != http.StatusOK {
		t.Fatalf("third client: status %d", resp.StatusCode)
	}
	if !idle.closed() {
		t.Error("the idle connection is still open")
	}
	ws.echo("still open")
	if n := lb.reclaimed(t); n != 1 {
		t.Errorf("reclaimed %d connections, want 1", n)
	}
}

// TestChangesBeyondABatchAreTakenAndTheOldestIdleIsClosed: connection
// changes wait in a buffer of eventBatch, which Run empties only when it
// fills or room is asked for. Three batches' worth of changes never block
// a connection for good (a full buffer wakes Run), and room asked for
// afterwards closes the connection idle the longest, as if every change
// had been taken at once.
func TestChangesBeyondABatchAreTakenAndTheOldestIdleIsClosed(t *testing.T) {
	ic := NewIdleConns(IdleConnsOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	var wg conc.WaitGroup
	wg.Go(func() { _ = ic.Run(ctx) })
	defer wg.Wait()
	defer cancel()

	// Connections as net.Pipe's, whose Close is seen by their other end.
	const conns = 4
	var near, far [conns]net.Conn
	for i := range conns {
		near[i], far[i] = net.Pipe()
		defer near[i].Close()
		defer far[i].Close()
		ic.ConnState(near[i], http.StateNew)
	}
	// Requests on each, many times over; connection 0 goes idle first.
	for range 3 * eventBatch / (2 * conns) {
		for i := range conns {
			ic.ConnState(near[i], http.StateActive)
			ic.ConnState(near[i], http.StateIdle)
		}
	}
	// Connection 0 is busy again, so 1 has been idle the longest.
	ic.ConnState(near[0], http.StateActive)

	listenerClosed := make(chan struct{})
	if !ic.reclaim(listenerClosed) {
		t.Fatal("no idle connection was closed")
	}
	read := make(chan error, 1)
	go func() {
		_, err := far[1].Read(make([]byte, 1))
		read <- err
	}()
	select {
	case err := <-read:
		if err != io.EOF {
			t.Fatalf("connection 1's other end read %v, want EOF (closed)", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("connection 1, idle the longest, was not closed")
	}
	if n, err := ic.Reclaimed(ctx); err != nil || n != 1 {
		t.Fatalf("Reclaimed = %d, %v; want 1", n, err)
	}
}

// closeRecorder is a connection that only records that it was closed.
type closeRecorder struct {
	net.Conn // nil: no other method is called
	closed   bool
}

func (c *closeRecorder) Close() error { c.closed = true; return nil }

// A change that waited for room in a full buffer happened before the
// listener asked for room: Run must take it too before it chooses. Here
// the oldest idle connection's request has begun (StateActive) while the
// buffer was full; closing it would cut that request.
func TestChangeWaitingForRoomIsTakenBeforeReclaiming(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ic := NewIdleConns(IdleConnsOptions{})
		busy := &closeRecorder{}
		ic.ConnState(busy, http.StateNew)
		ic.ConnState(busy, http.StateIdle)
		gone := &closeRecorder{} // never tracked: its changes change nothing
		for len(ic.events) < cap(ic.events) {
			ic.ConnState(gone, http.StateClosed)
		}
		// The buffer is full: the request's change waits for room.
		go ic.ConnState(busy, http.StateActive)
		synctest.Wait()
		// Run meets the listener's request before the wake-up (select
		// may take either first; take the wake-up away to make it so).
		<-ic.full

		ctx, cancel := context.WithCancel(t.Context())
		var wg conc.WaitGroup
		wg.Go(func() { _ = ic.Run(ctx) })
		defer wg.Wait()
		defer cancel()
		if ic.reclaim(make(chan struct{})) || busy.closed {
			t.Fatal("the connection whose request had begun was closed to make room")
		}
	})
}

// While the listener waits for a slot, Run closes the first connection
// to become idle; not one whose next request has begun meanwhile (its
// StateActive came right after its StateIdle, and waits in the buffer).
func TestConnectionBusyAgainIsNotClosedForAWaitingListener(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ic := NewIdleConns(IdleConnsOptions{})
		ctx, cancel := context.WithCancel(t.Context())
		var wg conc.WaitGroup
		wg.Go(func() { _ = ic.Run(ctx) })
		defer wg.Wait()
		defer cancel()

		busy := &closeRecorder{}
		ic.ConnState(busy, http.StateNew)
		if ic.reclaim(make(chan struct{})) {
			t.Fatal("a connection was closed with none idle")
		}
		synctest.Wait() // Run waits for changes, to close the first idle
		ic.ConnState(busy, http.StateIdle)
		ic.ConnState(busy, http.StateActive)
		synctest.Wait()
		if n, _ := ic.Reclaimed(ctx); n != 0 || busy.closed {
			t.Fatal("the connection whose request had begun was closed to make room")
		}
	})
}

// A listener closed while it waits for a slot (a hand-over, shutdown)
// needs no room any more: the next connection to become idle stays open
// (after a hand-over the Drainer closes it after its next request, so
// that a request sent on it just then is not lost).
func TestListenerClosedWhileWaitingStopsTheClosing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ic := NewIdleConns(IdleConnsOptions{})
		ctx, cancel := context.WithCancel(t.Context())
		var wg conc.WaitGroup
		wg.Go(func() { _ = ic.Run(ctx) })
		defer wg.Wait()
		defer cancel()

		c := &closeRecorder{}
		ic.ConnState(c, http.StateNew)
		listenerClosed := make(chan struct{})
		if ic.reclaim(listenerClosed) {
			t.Fatal("a connection was closed with none idle")
		}
		close(listenerClosed) // waitForSlot returns net.ErrClosed, no unwant
		synctest.Wait()
		ic.ConnState(c, http.StateIdle)
		synctest.Wait()
		if n, _ := ic.Reclaimed(ctx); n != 0 || c.closed {
			t.Fatal("an idle connection was closed for a listener that had closed")
		}
	})
}
