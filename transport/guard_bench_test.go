package transport

import (
	"testing"

	"github.com/hashicorp/go-hclog"
)

// Requests as clients send them on a keep-alive connection, for
// BenchmarkGuard.
const (
	// wrkRequest is what wrk sends (bench/run.sh's load).
	wrkRequest = "GET / HTTP/1.1\r\nHost: 127.0.0.1:18080\r\n\r\n"
	// browserRequest is a browser's page request: ten header fields.
	browserRequest = "GET /products/shoes?page=2&sort=price HTTP/1.1\r\n" +
		"Host: shop.example.com\r\n" +
		"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n" +
		"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n" +
		"Accept-Language: en-GB,en;q=0.5\r\n" +
		"Accept-Encoding: gzip, deflate, br, zstd\r\n" +
		"Referer: https://shop.example.com/products/shoes?page=1&sort=price\r\n" +
		"Connection: keep-alive\r\n" +
		"Cookie: session=3f9a1c0d5e7b42a8b6c1d2e3f4a5b6c7; theme=dark; consent=yes\r\n" +
		"Upgrade-Insecure-Requests: 1\r\n" +
		"Priority: u=0, i\r\n" +
		"\r\n"
	// chunkedHead and chunkedBody are a chunked POST, head and body in
	// two writes (so two reads), as a client streaming a body sends it.
	chunkedHead = "POST /api/v1/orders HTTP/1.1\r\n" +
		"Host: shop.example.com\r\n" +
		"User-Agent: Go-http-client/1.1\r\n" +
		"Content-Type: application/json\r\n" +
		"Transfer-Encoding: chunked\r\n" +
		"Accept-Encoding: gzip\r\n" +
		"\r\n"
	chunkedBody = "28\r\n{\"item\":\"shoes\",\"size\":43,\"colour\":\"red\"\r\n" +
		"a\r\n,\"qty\":1}\n\r\n" +
		"0\r\n\r\n"
	// lengthPost is a POST with a Content-Length body in one write.
	lengthPost = "POST /api/v1/orders HTTP/1.1\r\n" +
		"Host: shop.example.com\r\n" +
		"User-Agent: Go-http-client/1.1\r\n" +
		"Content-Length: 42\r\n" +
		"Content-Type: application/json\r\n" +
		"Accept-Encoding: gzip\r\n" +
		"\r\n" +
		"{\"item\":\"shoes\",\"size\":43,\"colour\":\"red\"}\n"
)

// BenchmarkGuard runs the framing guard over a keep-alive connection's
// requests, one op per request. The reads are those net/http makes: one
// per request as a client that waits for each answer sends them, each
// write of the client in its own read; "pipelined" cuts a stream of
// requests into net/http's 4 KiB reads instead.
func BenchmarkGuard(b *testing.B) {
	for _, bc := range []struct {
		name  string
		reads []string
	}{
		{"wrk", []string{wrkRequest}},
		{"browser", []string{browserRequest}},
		{"chunked", []string{chunkedHead, chunkedBody}},
		{"length", []string{lengthPost}},
	} {
		reads := make([][]byte, len(bc.reads))
		for i, r := range bc.reads {
			reads[i] = []byte(r)
		}
		b.Run(bc.name, func(b *testing.B) {
			g := &guard{cfg: &guardConfig{limit: 1 << 20, log: hclog.NewNullLogger()}}
			b.ReportAllocs()
			for b.Loop() {
				for _, p := range reads {
					if n, err := g.scan(p); err != nil || n != len(p) {
						b.Fatalf("scan released %d of %d bytes, error %v", n, len(p), err)
					}
				}
			}
		})
	}
	b.Run("pipelined", func(b *testing.B) {
		var stream []byte
		const perRound = 4 // requests per round of the four kinds
		for range 64 {
			stream = append(stream, wrkRequest+browserRequest+chunkedHead+chunkedBody+lengthPost...)
		}
		g := &guard{cfg: &guardConfig{limit: 1 << 20, log: hclog.NewNullLogger()}}
		b.ReportAllocs()
		var requests int
		for b.Loop() {
			for off := 0; off < len(stream); off += 4096 {
				p := stream[off:min(off+4096, len(stream))]
				if n, err := g.scan(p); err != nil || n != len(p) {
					b.Fatalf("scan released %d of %d bytes, error %v", n, len(p), err)
				}
			}
			requests += 64 * perRound
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(requests), "ns/request")
	})
}
