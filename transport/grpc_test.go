package transport

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/roundhouse/roundhouse/actors"
	"github.com/roundhouse/roundhouse/internal/testenv"
	"github.com/sourcegraph/conc"
)

// testService is a grpc_testing.TestService on a real grpc-go server: it
// echoes, streams, fails and waits as each test asks, and says on
// cancelled when a call's context ends before the call does. A unary
// call with x-hang metadata says so on hanging and waits for its end.
type testService struct {
	grpc_testing.UnimplementedTestServiceServer
	name      string
	hanging   chan struct{} // capacity 16; a send per hanging call that arrived
	cancelled chan struct{} // capacity 16; a send per call cancelled under it
}

func (s *testService) UnaryCall(ctx context.Context, req *grpc_testing.SimpleRequest) (*grpc_testing.SimpleResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	_ = grpc.SetHeader(ctx, metadata.Pairs("backend", s.name))
	if v := md.Get("x-trailer"); len(v) > 0 {
		_ = grpc.SetTrailer(ctx, metadata.Pairs("x-trailer-echo", v[0]))
	}
	if len(md.Get("x-hang")) > 0 {
		s.hanging <- struct{}{}
		<-ctx.Done()
		s.cancelled <- struct{}{}
		return nil, ctx.Err()
	}
	if rs := req.GetResponseStatus(); rs != nil {
		return nil, status.Error(codes.Code(rs.GetCode()), rs.GetMessage())
	}
	return &grpc_testing.SimpleResponse{Payload: req.GetPayload()}, nil
}

func (s *testService) StreamingOutputCall(req *grpc_testing.StreamingOutputCallRequest, st grpc.ServerStreamingServer[grpc_testing.StreamingOutputCallResponse]) error {
	for _, p := range req.GetResponseParameters() {
		body := make([]byte, p.GetSize())
		if err := st.Send(&grpc_testing.StreamingOutputCallResponse{Payload: &grpc_testing.Payload{Body: body}}); err != nil {
			return err
		}
	}
	return nil
}

// FullDuplexCall echoes each message as it comes, so that a client that
// waits for each echo before sending the next (ping-pong) hangs unless
// every message is flushed both ways at once.
func (s *testService) FullDuplexCall(st grpc.BidiStreamingServer[grpc_testing.StreamingOutputCallRequest, grpc_testing.StreamingOutputCallResponse]) error {
	for {
		req, err := st.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			if st.Context().Err() != nil {
				s.cancelled <- struct{}{}
			}
			return err
		}
		if err := st.Send(&grpc_testing.StreamingOutputCallResponse{Payload: req.GetPayload()}); err != nil {
			return err
		}
	}
}

// startGRPC starts a grpc-go server on loopback, cleartext HTTP/2 (h2c by
// prior knowledge, as grpc-go serves on a plain listener), and returns its
// h2c:// URL.
func startGRPC(t *testing.T, name string) (string, *testService) {
	t.Helper()
	u, svc, _ := startGRPCServer(t, name)
	return u, svc
}

// startGRPCServer is startGRPC, and also returns the server.
func startGRPCServer(t *testing.T, name string) (string, *testService, *grpc.Server) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	svc := &testService{name: name, hanging: make(chan struct{}, 16), cancelled: make(chan struct{}, 16)}
	srv := grpc.NewServer()
	grpc_testing.RegisterTestServiceServer(srv, svc)
	var wg conc.WaitGroup
	wg.Go(func() { _ = srv.Serve(ln) })
	t.Cleanup(func() { srv.Stop(); wg.Wait() })
	return "h2c://" + ln.Addr().String(), svc, srv
}

// grpcClient is a real grpc-go client of the balancer b, speaking h2c to it.
func grpcClient(t *testing.T, b *balancer) grpc_testing.TestServiceClient {
	t.Helper()
	cc, err := grpc.NewClient("passthrough:///"+strings.TrimPrefix(b.url, "http://"),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return grpc_testing.NewTestServiceClient(cc)
}

func h2cFrontend() FrontendOptions { return FrontendOptions{H2C: true} }

// waitFor waits, 10 seconds at most, for a signal on c.
func waitFor(t *testing.T, c <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-c:
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}

func TestGRPCThroughH2CBackends(t *testing.T) {
	u1, _ := startGRPC(t, "one")
	u2, _ := startGRPC(t, "two")
	b := newBalancer(t, balancerOptions{frontend: h2cFrontend()}, u1, u2)
	c := grpcClient(t, b)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	t.Run("unary calls are balanced per call over the shared connections", func(t *testing.T) {
		seen := map[string]int{}
		for range 10 {
			var hdr metadata.MD
			resp, err := c.UnaryCall(ctx, &grpc_testing.SimpleRequest{Payload: &grpc_testing.Payload{Body: []byte("ping")}}, grpc.Header(&hdr))
			if err != nil {
				t.Fatal(err)
			}
			if string(resp.GetPayload().GetBody()) != "ping" {
				t.Fatalf("payload %q, want ping", resp.GetPayload().GetBody())
			}
			seen[strings.Join(hdr.Get("backend"), "")]++
		}
		if seen["one"] != 5 || seen["two"] != 5 {
			t.Errorf("calls per backend %v, want 5 each (round-robin per call)", seen)
		}
	})
	t.Run("trailers pass both ways", func(t *testing.T) {
		var tr metadata.MD
		_, err := c.UnaryCall(metadata.AppendToOutgoingContext(ctx, "x-trailer", "hello"), &grpc_testing.SimpleRequest{}, grpc.Trailer(&tr))
		if err != nil {
			t.Fatal(err)
		}
		if got := tr.Get("x-trailer-echo"); len(got) != 1 || got[0] != "hello" {
			t.Errorf("trailer x-trailer-echo %q, want hello", got)
		}
	})
	t.Run("the backend's status and message reach the client", func(t *testing.T) {
		_, err := c.UnaryCall(ctx, &grpc_testing.SimpleRequest{ResponseStatus: &grpc_testing.EchoStatus{Code: int32(codes.NotFound), Message: "no such thing: ✓ 100%"}})
		if st := status.Convert(err); st.Code() != codes.NotFound || st.Message() != "no such thing: ✓ 100%" {
			t.Errorf("got %v %q, want NotFound with the backend's message", st.Code(), st.Message())
		}
	})
	t.Run("a server stream delivers every message", func(t *testing.T) {
		st, err := c.StreamingOutputCall(ctx, &grpc_testing.StreamingOutputCallRequest{ResponseParameters: []*grpc_testing.ResponseParameters{{Size: 10}, {Size: 70000}, {Size: 0}, {Size: 3}}})
		if err != nil {
			t.Fatal(err)
		}
		var sizes []int
		for {
			m, err := st.Recv()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			sizes = append(sizes, len(m.GetPayload().GetBody()))
		}
		if len(sizes) != 4 || sizes[1] != 70000 {
			t.Errorf("message sizes %v, want [10 70000 0 3]", sizes)
		}
	})
	t.Run("ping-pong: every message of a bidirectional stream is flushed at once", func(t *testing.T) {
		st, err := c.FullDuplexCall(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 5 {
			msg := strings.Repeat("x", i*1000+1)
			if err := st.Send(&grpc_testing.StreamingOutputCallRequest{Payload: &grpc_testing.Payload{Body: []byte(msg)}}); err != nil {
				t.Fatal(err)
			}
			m, err := st.Recv() // would hang if either side were buffered
			if err != nil {
				t.Fatal(err)
			}
			if string(m.GetPayload().GetBody()) != msg {
				t.Fatalf("echo %d: got %d bytes, want %d", i, len(m.GetPayload().GetBody()), len(msg))
			}
		}
		if err := st.CloseSend(); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Recv(); err != io.EOF {
			t.Errorf("end of stream: %v, want EOF", err)
		}
	})
	t.Run("the access log shows the gRPC status", func(t *testing.T) {
		b.log.waitFor(t, 1, "grpc_status=5")
		b.log.waitFor(t, 1, "grpc_status=0")
	})
}

func TestGRPCCancelledStreamIsCancelledAtTheBackend(t *testing.T) {
	u, svc := startGRPC(t, "one")
	b := newBalancer(t, balancerOptions{frontend: h2cFrontend()}, u)
	c := grpcClient(t, b)
	ctx, cancel := context.WithCancel(context.Background())
	st, err := c.FullDuplexCall(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send(&grpc_testing.StreamingOutputCallRequest{}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Recv(); err != nil {
		t.Fatal(err)
	}
	cancel()
	waitFor(t, svc.cancelled, "the backend's stream to be cancelled")
	if _, err := st.Recv(); status.Code(err) != codes.Canceled {
		t.Errorf("client: %v, want Canceled", err)
	}
}

func TestGRPCBalancerErrorsDecodeAsGRPCStatuses(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	t.Run("a backend that cannot be reached is UNAVAILABLE, not a bare 502", func(t *testing.T) {
		b := newBalancer(t, balancerOptions{frontend: h2cFrontend()}, "h2c://"+testenv.DeadAddr(t))
		_, err := grpcClient(t, b).UnaryCall(ctx, &grpc_testing.SimpleRequest{})
		st := status.Convert(err)
		if st.Code() != codes.Unavailable || strings.Contains(st.Message(), "HTTP status") {
			t.Errorf("got %v %q, want Unavailable with the balancer's message", st.Code(), st.Message())
		}
	})
	t.Run("the request timeout is DEADLINE_EXCEEDED", func(t *testing.T) {
		u, svc := startGRPC(t, "one")
		b := newBalancer(t, balancerOptions{frontend: h2cFrontend(), requestTimeout: 200 * time.Millisecond}, u)
		_, err := grpcClient(t, b).UnaryCall(metadata.AppendToOutgoingContext(ctx, "x-hang", "1"), &grpc_testing.SimpleRequest{})
		if st := status.Convert(err); st.Code() != codes.DeadlineExceeded || st.Message() != "backend did not answer in time" {
			t.Errorf("got %v %q, want DeadlineExceeded from the balancer", st.Code(), st.Message())
		}
		select {
		case <-svc.hanging: // the call reached the backend (it may not have, in time)
			waitFor(t, svc.cancelled, "the backend's call to be cancelled")
		default:
		}
	})
	t.Run("every backend busy is RESOURCE_EXHAUSTED", func(t *testing.T) {
		u, svc := startGRPC(t, "one")
		b := newBalancer(t, balancerOptions{frontend: h2cFrontend(), limits: actors.Limits{MaxConnsPerBackend: 1}}, u)
		c := grpcClient(t, b)
		hctx, hcancel := context.WithCancel(ctx)
		var wg conc.WaitGroup
		wg.Go(func() {
			_, _ = c.UnaryCall(metadata.AppendToOutgoingContext(hctx, "x-hang", "1"), &grpc_testing.SimpleRequest{})
		})
		waitFor(t, svc.hanging, "the hanging call to hold the one slot")
		_, err := c.UnaryCall(ctx, &grpc_testing.SimpleRequest{})
		if st := status.Convert(err); st.Code() != codes.ResourceExhausted {
			t.Errorf("got %v %q, want ResourceExhausted", st.Code(), st.Message())
		}
		hcancel()
		wg.Wait()
		waitFor(t, svc.cancelled, "the backend's call to be cancelled")
	})
	t.Run("the rate limit is RESOURCE_EXHAUSTED", func(t *testing.T) {
		u, _ := startGRPC(t, "one")
		b := newBalancer(t, balancerOptions{frontend: h2cFrontend(), limit: &RateLimitOptions{Rate: 0.001, Burst: 1}}, u)
		c := grpcClient(t, b)
		if _, err := c.UnaryCall(ctx, &grpc_testing.SimpleRequest{}); err != nil {
			t.Fatal(err)
		}
		_, err := c.UnaryCall(ctx, &grpc_testing.SimpleRequest{})
		if st := status.Convert(err); st.Code() != codes.ResourceExhausted || st.Message() != "rate limit exceeded" {
			t.Errorf("got %v %q, want ResourceExhausted", st.Code(), st.Message())
		}
	})
}

// TestGRPCTimeoutBoundsTheRequest sends a gRPC request with grpc-timeout
// to a backend that ignores it: the balancer ends the call itself, with a
// trailers-only DEADLINE_EXCEEDED, in about that time.
func TestGRPCTimeoutBoundsTheRequest(t *testing.T) {
	release := make(chan struct{})
	backend := startH2C(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.Header.Get("Te") != "trailers" { // not the health probe
			t.Errorf("TE %q reached the backend, want trailers", r.Header.Get("Te"))
		}
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer close(release)
	b := newBalancer(t, balancerOptions{frontend: h2cFrontend(), requestTimeout: time.Minute}, backend)
	client := h2cClient(t)
	req, err := http.NewRequest(http.MethodPost, b.url+"/grpc.testing.TestService/UnaryCall", strings.NewReader("\x00\x00\x00\x00\x00"))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/grpc+proto")
	req.Header.Set("Te", "trailers")
	req.Header.Set("Grpc-Timeout", "200m")
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("answered after %v, want about 200ms", d)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Grpc-Status") != "4" || resp.Header.Get("Content-Type") != "application/grpc" {
		t.Errorf("got %d, grpc-status %q, content-type %q; want a trailers-only 200 with grpc-status 4",
			resp.StatusCode, resp.Header.Get("Grpc-Status"), resp.Header.Get("Content-Type"))
	}
}

// startH2C serves h on loopback over cleartext HTTP/2 by prior knowledge and
// returns its h2c:// URL.
func startH2C(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	srv := &http.Server{Handler: h, Protocols: &p}
	var wg conc.WaitGroup
	wg.Go(func() { _ = srv.Serve(ln) })
	t.Cleanup(func() { _ = srv.Close(); wg.Wait() })
	return "h2c://" + ln.Addr().String()
}

func TestH2CBackendServesHTTP1AndHTTP2Clients(t *testing.T) {
	backend := startH2C(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.Proto)
	}))
	b := newBalancer(t, balancerOptions{frontend: h2cFrontend()}, backend)
	for _, c := range []struct {
		name   string
		client *http.Client
	}{{"HTTP/1.1", b.client}, {"HTTP/2", h2cClient(t)}} {
		resp, err := c.client.Get(b.url + "/")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != "HTTP/2.0" {
			t.Errorf("%s client: backend saw %q, want HTTP/2.0", c.name, body)
		}
	}
	// And the health probes speak h2c too.
	if err := actors.HTTPProbe(b.tr, actors.HTTPCheck{Path: "/"})(context.Background(), mustBackend(t, b, backend)); err != nil {
		t.Errorf("probe: %v", err)
	}
}

// refuser is a raw HTTP/2 server (a framer on a real socket) that refuses
// every stream: with RST_STREAM REFUSED_STREAM, or, goAway, with a GOAWAY
// whose last stream ID is below the stream's. streams receives the ID of
// every stream it refuses first on a connection, and late the ID of any
// stream a client opened on a connection after it had read its GOAWAY.
// Like a real server it never stops accepting or answering: those sends
// never block (the channels' first 64 IDs are enough for the tests), and a
// client may open any number of connections (net/http redials at once
// after a GOAWAY).
type refuser struct {
	goAway  bool
	streams chan uint32 // capacity 64
	late    chan uint32 // capacity 64
}

func startRefuser(t *testing.T, goAway bool) (string, *refuser) {
	t.Helper()
	addr, r := serveRefuser(t, goAway, func(c net.Conn) net.Conn { return c })
	return "h2c://" + addr, r
}

// serveRefuser starts a refuser on a loopback listener, serving each
// connection as wrap returns it, and returns its address; the test's
// cleanup stops it.
func serveRefuser(t *testing.T, goAway bool, wrap func(net.Conn) net.Conn) (string, *refuser) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &refuser{goAway: goAway, streams: make(chan uint32, 64), late: make(chan uint32, 64)}
	var wg conc.WaitGroup
	stop := make(chan struct{}) // closed at cleanup: every connection closes
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			// Each connection's closer ends when its serve does, or at
			// cleanup, which its Close then makes serve's end.
			wg.Go(func() {
				served := make(chan struct{})
				wg.Go(func() {
					defer close(served)
					r.serve(wrap(c))
				})
				select {
				case <-served:
				case <-stop:
				}
				_ = c.Close()
			})
		}
	})
	t.Cleanup(func() {
		_ = ln.Close()
		close(stop)
		wg.Wait()
	})
	return ln.Addr().String(), r
}

// noteStream sends id on ch unless ch is full: the refuser never waits on its test.
func noteStream(ch chan<- uint32, id uint32) {
	select {
	case ch <- id:
	default:
	}
}

func (r *refuser) serve(c net.Conn) {
	defer c.Close()
	preface := make([]byte, len(http2.ClientPreface))
	if _, err := io.ReadFull(c, preface); err != nil {
		return
	}
	fr := http2.NewFramer(c, c)
	if err := fr.WriteSettings(); err != nil {
		return
	}
	// sentGoAway: GOAWAY was sent; seenGoAway: the client has read it
	// (it acknowledged the PING sent right after, and frames are read in
	// order). Streams the client opened in between were on their way.
	sentGoAway, seenGoAway := false, false
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				_ = fr.WriteSettingsAck()
			}
		case *http2.PingFrame:
			if !f.IsAck() {
				_ = fr.WritePing(true, f.Data)
			} else if sentGoAway {
				seenGoAway = true
			}
		case *http2.HeadersFrame:
			id := f.StreamID
			switch {
			case seenGoAway:
				noteStream(r.late, id)
				_ = fr.WriteRSTStream(id, http2.ErrCodeRefusedStream)
			case sentGoAway:
				_ = fr.WriteRSTStream(id, http2.ErrCodeRefusedStream)
			case r.goAway:
				noteStream(r.streams, id)
				sentGoAway = true
				last := uint32(0) // below this stream: the one before it, if any
				if id > 2 {
					last = id - 2
				}
				_ = fr.WriteGoAway(last, http2.ErrCodeNo, nil)
				_ = fr.WritePing(false, [8]byte{'g', 'o', 'a', 'w', 'a', 'y'})
			default:
				noteStream(r.streams, id)
				_ = fr.WriteRSTStream(id, http2.ErrCodeRefusedStream)
			}
		}
	}
}

func TestRefusedStreamGoesToAnotherBackend(t *testing.T) {
	for _, goAway := range []bool{false, true} {
		name := "REFUSED_STREAM"
		if goAway {
			name = "a stream above a GOAWAY's last stream ID"
		}
		t.Run(name+" is retried on another backend, even a POST", func(t *testing.T) {
			bad, ref := startRefuser(t, goAway)
			good, _ := startGRPC(t, "good")
			b := newBalancer(t, balancerOptions{frontend: h2cFrontend(), retries: 1, retryBuffer: 64 << 10}, bad, good)
			c := grpcClient(t, b)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			for i := range 6 {
				var hdr metadata.MD
				if _, err := c.UnaryCall(ctx, &grpc_testing.SimpleRequest{Payload: &grpc_testing.Payload{Body: []byte("x")}}, grpc.Header(&hdr)); err != nil {
					t.Fatalf("call %d: %v\n%s", i, err, b.log.String())
				}
				if got := hdr.Get("backend"); len(got) != 1 || got[0] != "good" {
					t.Fatalf("call %d answered by %v", i, got)
				}
			}
			if len(ref.streams) == 0 {
				t.Error("the refusing backend saw no stream: nothing was retried")
			}
			if len(ref.late) != 0 {
				t.Errorf("%d streams were opened on a connection after its GOAWAY", len(ref.late))
			}
		})
	}
}

// TestABodylessRequestLeavesABackendThatGoesAwayOnEveryConnection: net/http
// resends a request without a body at once on a fresh connection after a
// GOAWAY below its stream, and would do so for ever against a backend that
// sends one on every connection; the proxy lets it try two connections,
// then sends the request to another backend, at once.
func TestABodylessRequestLeavesABackendThatGoesAwayOnEveryConnection(t *testing.T) {
	bad, ref := startRefuser(t, true)
	good := startH2C(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "good") }))
	b := newBalancer(t, balancerOptions{retries: 1, policy: actors.First{}}, bad, good)
	for _, method := range []string{http.MethodGet, http.MethodDelete} {
		start := time.Now()
		code, _, body := b.do(t, method, "/", nil)
		if code != http.StatusOK || body != "good" {
			t.Errorf("%s: got %d %q, want 200 from the other backend", method, code, body)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("%s took %v", method, d)
		}
	}
	b.log.waitFor(t, 2, "retrying on another backend", "backend="+bad, "never processed")
	if len(ref.streams) == 0 {
		t.Error("the refusing backend saw no stream")
	}
}

// mustBackend returns the balancer's backend named u.
func mustBackend(t *testing.T, b *balancer, u string) *actors.Backend {
	t.Helper()
	got, err := b.sel.Pick(context.Background())
	if err != nil || got == nil || got.Name != u {
		t.Fatalf("pick: %v %v, want %s", got, err, u)
	}
	b.sel.Report(actors.Report{Backend: got, Final: true})
	return got
}

// startBlackHole starts an HTTP/2 backend that accepts connections and
// reads whatever comes but never writes a byte, like a process frozen by
// SIGSTOP behind a kernel that still accepts and acknowledges.
func startBlackHole(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg conc.WaitGroup
	conns := make(chan net.Conn, 64)
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns <- c
			wg.Go(func() { _, _ = io.Copy(io.Discard, c) })
		}
	})
	t.Cleanup(func() {
		_ = ln.Close()
		for done := false; !done; {
			select {
			case c := <-conns:
				_ = c.Close()
			default:
				done = true
			}
		}
		wg.Wait()
	})
	return "h2c://" + ln.Addr().String()
}

// TestPingsFindABlackHoledBackend: a request on a connection that goes
// silent fails once a ping goes unanswered (2 × H2Ping), well before the
// response header timeout, and an idempotent one moves to another backend.
func TestPingsFindABlackHoledBackend(t *testing.T) {
	const ping = 200 * time.Millisecond
	hole := startBlackHole(t)
	good := startH2C(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "good") }))
	b := newBalancer(t, balancerOptions{h2Ping: ping, retries: 1, responseHeaderTimeout: time.Minute, policy: actors.First{}}, hole, good)
	start := time.Now()
	code, _, body := b.get(t, "/")
	if code != http.StatusOK || body != "good" {
		t.Errorf("got %d %q, want 200 from the other backend", code, body)
	}
	if d := time.Since(start); d > 10*ping+2*time.Second {
		t.Errorf("took %v: the silent connection was not found by pings (H2Ping %v)", d, ping)
	}
	b.log.waitFor(t, 1, "retrying on another backend", "backend="+hole)
}

// TestAGracefulStopUnderLoadFailsNoCall: a grpc-go backend stopped
// gracefully (GOAWAY, then its listener closes) while unary calls keep
// coming: calls it had accepted finish there, the others go to the other
// backend, and none fails.
func TestAGracefulStopUnderLoadFailsNoCall(t *testing.T) {
	u1, _, s1 := startGRPCServer(t, "one")
	u2, _ := startGRPC(t, "two")
	b := newBalancer(t, balancerOptions{frontend: h2cFrontend(), retries: 2, retryBuffer: 64 << 10}, u1, u2)
	c := grpcClient(t, b)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const workers, calls = 8, 60
	errs := make(chan error, workers*calls)
	started := make(chan struct{}, workers*calls)
	var wg conc.WaitGroup
	for range workers {
		wg.Go(func() {
			for range calls {
				started <- struct{}{}
				_, err := c.UnaryCall(ctx, &grpc_testing.SimpleRequest{Payload: &grpc_testing.Payload{Body: []byte("x")}})
				if err != nil {
					errs <- err
				}
			}
		})
	}
	for range workers * calls / 4 {
		<-started
	}
	var stop conc.WaitGroup
	stop.Go(s1.GracefulStop)
	wg.Wait()
	stop.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("call failed: %v", err)
	}
}

func TestIsGRPC(t *testing.T) {
	for ct, want := range map[string]bool{
		"application/grpc": true, "application/grpc+proto": true, "application/grpc+json": true,
		"Application/GRPC": true, "application/grpc;charset=utf-8": true,
		"application/grpc-web": false, "application/grpc-web+proto": false, "application/grpcx": false,
		"application/json": false, "": false, "application/grp": false,
	} {
		r := &http.Request{Header: http.Header{"Content-Type": {ct}}}
		if got := isGRPC(r); got != want {
			t.Errorf("isGRPC(content-type %q) = %v, want %v", ct, got, want)
		}
	}
}

func TestGRPCTimeoutHeader(t *testing.T) {
	tests := []struct {
		v    string
		want time.Duration
		ok   bool
	}{
		{"1H", time.Hour, true}, {"2M", 2 * time.Minute, true}, {"3S", 3 * time.Second, true},
		{"250m", 250 * time.Millisecond, true}, {"7u", 7 * time.Microsecond, true}, {"9n", 9, true},
		{"99999999H", 1<<63 - 1, true}, // saturates
		{"0m", 0, true},
		{"", 0, false}, {"m", 0, false}, {"10", 0, false}, {"10x", 0, false}, {"-1S", 0, false},
		{"123456789S", 0, false}, // more than 8 digits
	}
	for _, tt := range tests {
		r := &http.Request{Header: http.Header{"Grpc-Timeout": {tt.v}}}
		if got, ok := grpcTimeout(r); got != tt.want || ok != tt.ok {
			t.Errorf("grpcTimeout(%q) = %v, %v; want %v, %v", tt.v, got, ok, tt.want, tt.ok)
		}
	}
}

func TestGRPCMessageIsPercentEncoded(t *testing.T) {
	for in, want := range map[string]string{
		"no healthy backend": "no healthy backend",
		"100% ✓":             "100%25 %E2%9C%93",
		"line\nbreak":        "line%0Abreak",
	} {
		if got := grpcEncodeMessage(in); got != want {
			t.Errorf("grpcEncodeMessage(%q) = %q, want %q", in, got, want)
		}
	}
}
