package transport

import (
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
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
			req, err := http.NewRequest(http.MethodGet, "https://localhost:"+port+"/", nil)
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
