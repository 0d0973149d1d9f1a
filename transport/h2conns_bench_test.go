package transport

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"testing"

	"github.com/roundhouse/roundhouse/internal/testcert"
)

// BenchmarkHTTPSRoundTrip sends GET / through the shared Transport alone
// (no proxy) to a loopback https:// backend that speaks h2, or HTTP/1.1
// only: the cost of a request's bound (sendBounded) shows in allocs/op.
//
//	go test -run=NONE -bench=HTTPSRoundTrip -benchmem -count=10 ./transport
func BenchmarkHTTPSRoundTrip(b *testing.B) {
	ca := testcert.NewAuthority(b, "bench CA")
	for _, protos := range [][]string{{"h2"}, {"http/1.1"}} {
		b.Run(protos[0], func(b *testing.B) {
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.WriteString(w, "ok")
			}))
			srv.EnableHTTP2 = protos[0] == "h2"
			srv.TLS = &tls.Config{Certificates: []tls.Certificate{ca.Issue("backend", "localhost").Cert}, NextProtos: protos}
			srv.StartTLS()
			b.Cleanup(srv.Close)
			_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
			tr := New(Options{BackendCAs: ca.Pool()})
			b.Cleanup(tr.CloseIdleConnections)
			// A context that can end, as a proxied request's or a probe's.
			ctx, cancel := context.WithCancel(context.Background())
			b.Cleanup(cancel)
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://localhost:"+port+"/", nil)
			if err != nil {
				b.Fatal(err)
			}
			want := 1
			if srv.EnableHTTP2 {
				want = 2
			}
			b.ReportAllocs()
			for b.Loop() {
				resp, err := tr.RoundTrip(req)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				if resp.ProtoMajor != want {
					b.Fatalf("spoke %s", resp.Proto)
				}
			}
		})
	}
}

// BenchmarkBound is the bound's own cost for one request, without the
// network: bound, the request's copy with its context, one ask and one
// try (a connection that is not TLS: as an h2c one, counted), the end.
//
//	go test -run=NONE -bench=Bound -benchmem -count=10 ./transport
func BenchmarkBound(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "h2c://127.0.0.1:1/", nil)
	if err != nil {
		b.Fatal(err)
	}
	c1, c2 := net.Pipe()
	defer c1.Close()
	defer c2.Close()
	b.ReportAllocs()
	for b.Loop() {
		bctx, bound := bound(req.Context(), false)
		out := req.WithContext(bctx)
		bound.trace.GetConn("127.0.0.1:1")
		bound.trace.GotConn(httptrace.GotConnInfo{Conn: c1})
		bound.end()
		if out.Context().Err() == nil {
			b.Fatal("not ended")
		}
	}
}
