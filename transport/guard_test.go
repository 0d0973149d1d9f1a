package transport

import (
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

// TestGuardKeepsNoLargeLineBufferBetweenRequests checks that a request
// head with a long line (a big Cookie header) leaves no large buffer
// behind on the connection once the head, or a chunked body's trailer
// section, has ended: an idle keep-alive connection would hold it for as
// long as it stays open.
func TestGuardKeepsNoLargeLineBufferBetweenRequests(t *testing.T) {
	cookie := strings.Repeat("c", 3000)
	for _, tc := range []struct{ name, stream string }{
		{"after a head", "GET / HTTP/1.1\r\nHost: a\r\nCookie: " + cookie + "\r\n\r\n"},
		{"after a trailer section", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" +
			"1\r\nx\r\n0\r\nX-Trailer: " + cookie + "\r\n\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, size := range []int{1, 7, 512, len(tc.stream)} {
				g := &guard{cfg: &guardConfig{limit: 64 << 10, log: hclog.NewNullLogger()}}
				for off := 0; off < len(tc.stream); off += size {
					p := []byte(tc.stream[off:min(off+size, len(tc.stream))])
					if n, err := g.scan(p); err != nil || n != len(p) {
						t.Fatalf("reads of %d bytes: scan released %d of %d bytes, error %v", size, n, len(p), err)
					}
				}
				if g.state != inHead {
					t.Fatalf("reads of %d bytes: guard in state %d after the request, want inHead", size, g.state)
				}
				if c := cap(g.line); c > keepLine {
					t.Errorf("reads of %d bytes: the guard keeps a %d-byte line buffer between requests, want at most %d", size, c, keepLine)
				}
			}
		})
	}
}
