package transport

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"slices"
	"testing"

	"github.com/hashicorp/go-hclog"
)

// The fuzz tests run briefly in CI (.ci/run); locally, for longer:
//	go test -run=NONE -fuzz='^FuzzFramingGuard$' -fuzztime=5m ./transport

// smugglingSeeds are request streams from smuggling_test.go and friends.
var smugglingSeeds = []string{
	"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloGET /two HTTP/1.1\r\nHost: a\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2  \r\nde\r\n0\r\nX-T: 1\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
	"POST / HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n",
	"POST / HTTP/1.1\nHost: a\nContent-Length: 3\n\nabc",
	"GET http://evil.example/ HTTP/1.1\r\nHost: good.example\r\n\r\n",
	"GET http://a/x HTTP/1.1\r\nHost: a\r\n\r\n",
	"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nframes",
	"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n",
	"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000\r\n",
}

// FuzzFramingGuard checks the guard against net/http's own parser. The
// bytes the guard releases, fed to http.ReadRequest as the server would
// read them (each body to its end), must yield only requests whose heads
// the guard accepted, in the same order: net/http never completes a head
// the guard did not check, and the two agree on where every request ends.
// The released bytes are always a prefix of the input.
func FuzzFramingGuard(f *testing.F) {
	for _, s := range smugglingSeeds {
		f.Add([]byte(s), uint8(0))
		f.Add([]byte(s), uint8(7))
	}
	f.Fuzz(func(t *testing.T, stream []byte, chunk uint8) {
		// Feed the stream in pieces, as reads from a socket would come.
		released, accepted := guardStream(stream, int(chunk%64)+1)
		if !bytes.HasPrefix(stream, released) {
			t.Fatalf("released bytes are not a prefix of the input")
		}
		// How the reads split the stream changes nothing.
		if whole, acceptedWhole := guardStream(stream, len(stream)+1); len(whole) != len(released) || !slices.Equal(accepted, acceptedWhole) {
			t.Fatalf("in pieces the guard released %d bytes and accepted %q; whole, %d and %q",
				len(released), accepted, len(whole), acceptedWhole)
		}

		br := bufio.NewReader(bytes.NewReader(released))
		for i := 0; ; i++ {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			if i >= len(accepted) || accepted[i] != req.Method+" "+req.RequestURI {
				t.Fatalf("net/http parsed request %d, %q, which the guard did not accept (accepted %q)",
					i, req.Method+" "+req.RequestURI, accepted)
			}
			if _, err := io.Copy(io.Discard, req.Body); err != nil {
				return
			}
			if req.Method == http.MethodConnect || len(req.Header.Values("Upgrade")) > 0 {
				return // the proxy closes the connection after these
			}
		}
	})
}

// guardStream runs a guard over stream in reads of size bytes and returns
// the bytes it released and the heads it accepted.
func guardStream(stream []byte, size int) (released []byte, accepted []string) {
	g := &guard{cfg: &guardConfig{limit: 4096, log: hclog.NewNullLogger(), accepted: func(method, target string) {
		accepted = append(accepted, method+" "+target)
	}}}
	for off := 0; off < len(stream); off += size {
		p := append([]byte(nil), stream[off:min(off+size, len(stream))]...)
		n, err := g.scan(p)
		released = append(released, p[:n]...)
		if err != nil || g.err != nil || n < len(p) {
			break
		}
	}
	return released, accepted
}

// FuzzForwardedHeaders checks that whatever a client sends, the forwarded
// headers the balancer writes are well-formed header values, and that an
// untrusted client's claims never survive.
func FuzzForwardedHeaders(f *testing.F) {
	f.Add("192.0.2.1:5000", "shop.example", "1.2.3.4", "for=1.2.3.4", "evil", "https", false)
	f.Add("10.0.0.1:5000", "a:8080", "203.0.113.9, 10.0.0.9", `for="[2001:db8::1]";proto=https`, "x", "gopher", true)
	f.Add("[2001:db8::7]:1", `we"ird\host`, "", "", "", "", true)
	trusted := TrustedProxies{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8::/32")}
	f.Fuzz(func(t *testing.T, remote, host, xff, fwd, xfh, xfp string, viaTrusted bool) {
		in := &http.Request{RemoteAddr: remote, Host: host, Header: http.Header{}}
		for name, v := range map[string]string{"X-Forwarded-For": xff, "Forwarded": fwd, "X-Forwarded-Host": xfh, "X-Forwarded-Proto": xfp} {
			if v != "" && validHeaderValue(v) { // net/http refuses the rest
				in.Header.Set(name, v)
			}
		}
		if !validHeaderValue(host) {
			return
		}
		list := TrustedProxies(nil)
		if viaTrusted {
			list = trusted
		}
		pr := &httputil.ProxyRequest{In: in, Out: &http.Request{Header: http.Header{}}}
		setForwarded(pr, list)
		for name, vs := range pr.Out.Header {
			for _, v := range vs {
				if !validHeaderValue(v) {
					t.Fatalf("%s: %q is not a valid header value", name, v)
				}
			}
		}
		if p := pr.Out.Header.Get("X-Forwarded-Proto"); p != "http" && p != "https" {
			t.Fatalf("X-Forwarded-Proto %q", p)
		}
		peer, ok := peerAddr(in)
		if ok && list.Contains(peer) {
			return
		}
		want := ""
		if ok {
			want = peer.String()
		}
		if got := pr.Out.Header.Get("X-Forwarded-For"); got != want {
			t.Fatalf("an untrusted client's X-Forwarded-For is %q, want exactly the peer %q", got, want)
		}
		if got, want := pr.Out.Header.Get("Forwarded"), forwardedElement(peer, ok, host, "http"); got != want {
			t.Fatalf("an untrusted client's Forwarded is %q, want only our element %q", got, want)
		}
	})
}

// validHeaderValue is RFC 9110's field-value: no control characters but HTAB.
func validHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}
