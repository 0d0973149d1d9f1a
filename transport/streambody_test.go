package transport

import (
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/sourcegraph/conc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
)

// cuttableRelay is a TCP relay on loopback in front of addr, whose cut
// closes every connection through it at once (both sides, no RST_STREAM
// or GOAWAY first): what the balancer sees when a backend dies. Its
// accepting goroutine owns the connections; it closes them all and ends
// when cut closes the listener, and the copying goroutines end then.
type cuttableRelay struct {
	ln net.Listener
	wg conc.WaitGroup
}

func startCuttableRelay(t *testing.T, addr string) *cuttableRelay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &cuttableRelay{ln: ln}
	r.wg.Go(func() {
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b, err := net.Dial("tcp", addr)
			if err != nil {
				c.Close()
				continue
			}
			conns = append(conns, c, b)
			r.wg.Go(func() { _, _ = io.Copy(b, c) })
			r.wg.Go(func() { _, _ = io.Copy(c, b) })
		}
	})
	t.Cleanup(r.cut)
	return r
}

// cut closes the listener, and so every connection, and waits for the
// relay's goroutines. It may be called again.
func (r *cuttableRelay) cut() {
	r.ln.Close()
	r.wg.Wait()
}

// TestAStreamWhoseBackendDiesEndsAtOnce: a bidirectional gRPC stream whose
// client waits for the server (it sends nothing more) ends with
// UNAVAILABLE as soon as the backend's connection dies, instead of
// hanging until the client sends again or gives up: the HTTP/2
// transport's writer, blocked reading the client's body, must be let go
// (see streamBody).
func TestAStreamWhoseBackendDiesEndsAtOnce(t *testing.T) {
	u, _ := startGRPC(t, "one")
	relay := startCuttableRelay(t, strings.TrimPrefix(u, "h2c://"))
	b := newBalancer(t, balancerOptions{frontend: h2cFrontend()}, "h2c://"+relay.ln.Addr().String())
	c := grpcClient(t, b)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	st, err := c.FullDuplexCall(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send(&grpc_testing.StreamingOutputCallRequest{Payload: &grpc_testing.Payload{Body: []byte("ping")}}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Recv(); err != nil {
		t.Fatal(err)
	}
	relay.cut()
	start := time.Now()
	_, err = st.Recv()
	if status.Code(err) != codes.Unavailable || time.Since(start) > 5*time.Second {
		t.Errorf("the stream ended with %v after %v, want UNAVAILABLE at once", err, time.Since(start))
	}
}
