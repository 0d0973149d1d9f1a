package transport

import (
	"crypto/tls"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"slices"
	"testing"

	"github.com/roundhouse/roundhouse/internal/parse"
)

func mustPrefixes(t *testing.T, ss ...string) TrustedProxies {
	t.Helper()
	var out TrustedProxies
	for _, s := range ss {
		p, err := parse.TrustedProxy(s)
		if err != nil {
			t.Fatalf("parse.TrustedProxy(%q): %v", s, err)
		}
		out = append(out, p)
	}
	return out
}

// TestTrustedProxiesContainEveryParsedProxy: the range parse.TrustedProxy
// makes of a --trusted-proxy value holds the value's own address, as
// Contains matches it. (parse's FuzzParseTrustedProxy checks the same of
// every value it accepts, with Contains's zone and IPv4-mapping rules.)
func TestTrustedProxiesContainEveryParsedProxy(t *testing.T) {
	for _, s := range []string{"10.0.0.0/8", "10.1.2.3/8", "2001:db8::/32", "192.0.2.7", "2001:db8::1", "::ffff:192.0.2.7", "fe80::1%eth0", "0.0.0.0/0", "::/0"} {
		p, err := parse.TrustedProxy(s)
		if err != nil {
			t.Errorf("parse.TrustedProxy(%q): %v", s, err)
			continue
		}
		if !TrustedProxies([]netip.Prefix{p}).Contains(p.Addr()) {
			t.Errorf("parse.TrustedProxy(%q) = %v, which does not contain its own address", s, p)
		}
	}
}

func TestForwardedHeaders(t *testing.T) {
	trusted := mustPrefixes(t, "10.0.0.0/8", "2001:db8::/32")
	tests := []struct {
		name   string
		remote string
		host   string
		tls    bool
		in     http.Header // what the client sent
		want   http.Header // the four headers as the backend sees them
	}{
		{
			name: "an untrusted client's claims are replaced", remote: "192.0.2.1:5000", host: "shop.example",
			in: http.Header{"X-Forwarded-For": {"1.2.3.4"}, "Forwarded": {"for=1.2.3.4"},
				"X-Forwarded-Host": {"evil.example"}, "X-Forwarded-Proto": {"https"}},
			want: http.Header{"X-Forwarded-For": {"192.0.2.1"}, "Forwarded": {"for=192.0.2.1;host=shop.example;proto=http"},
				"X-Forwarded-Host": {"shop.example"}, "X-Forwarded-Proto": {"http"}},
		},
		{
			name: "a trusted proxy's lists are appended to", remote: "10.0.0.5:5000", host: "shop.example",
			in: http.Header{"X-Forwarded-For": {"203.0.113.9, 10.0.0.9"}, "Forwarded": {`for=203.0.113.9;proto=https`},
				"X-Forwarded-Host": {"www.shop.example"}, "X-Forwarded-Proto": {"https"}},
			want: http.Header{"X-Forwarded-For": {"203.0.113.9, 10.0.0.9, 10.0.0.5"},
				"Forwarded":        {"for=203.0.113.9;proto=https, for=10.0.0.5;host=shop.example;proto=http"},
				"X-Forwarded-Host": {"www.shop.example"}, "X-Forwarded-Proto": {"https"}},
		},
		{
			name: "a trusted proxy's repeated header lines are joined", remote: "10.0.0.5:5000", host: "a",
			in: http.Header{"X-Forwarded-For": {"203.0.113.9", "198.51.100.1"}},
			want: http.Header{"X-Forwarded-For": {"203.0.113.9, 198.51.100.1, 10.0.0.5"},
				"Forwarded": {"for=10.0.0.5;host=a;proto=http"}, "X-Forwarded-Host": {"a"}, "X-Forwarded-Proto": {"http"}},
		},
		{
			name: "a trusted proxy that sent nothing gets ours", remote: "10.0.0.5:5000", host: "a", tls: true,
			in: http.Header{},
			want: http.Header{"X-Forwarded-For": {"10.0.0.5"}, "Forwarded": {"for=10.0.0.5;host=a;proto=https"},
				"X-Forwarded-Host": {"a"}, "X-Forwarded-Proto": {"https"}},
		},
		{
			name: "a trusted proxy's bogus proto is replaced", remote: "10.0.0.5:5000", host: "a",
			in: http.Header{"X-Forwarded-Proto": {"gopher"}},
			want: http.Header{"X-Forwarded-For": {"10.0.0.5"}, "Forwarded": {"for=10.0.0.5;host=a;proto=http"},
				"X-Forwarded-Host": {"a"}, "X-Forwarded-Proto": {"http"}},
		},
		{
			name: "headers the Connection header nominates are hop-by-hop even from a trusted proxy", remote: "10.0.0.5:5000", host: "a",
			in: http.Header{"Connection": {"X-Forwarded-For"}, "X-Forwarded-For": {"203.0.113.9"}},
			want: http.Header{"X-Forwarded-For": {"10.0.0.5"}, "Forwarded": {"for=10.0.0.5;host=a;proto=http"},
				"X-Forwarded-Host": {"a"}, "X-Forwarded-Proto": {"http"}},
		},
		{
			name: "an IPv6 client is bracketed and quoted in Forwarded", remote: "[2001:db8::7]:5000", host: "a:8080",
			in: http.Header{},
			want: http.Header{"X-Forwarded-For": {"2001:db8::7"}, "Forwarded": {`for="[2001:db8::7]";host="a:8080";proto=http`},
				"X-Forwarded-Host": {"a:8080"}, "X-Forwarded-Proto": {"http"}},
		},
		{
			name: "an IPv4-mapped client is written as IPv4", remote: "[::ffff:192.0.2.1]:5000", host: "a",
			in: http.Header{},
			want: http.Header{"X-Forwarded-For": {"192.0.2.1"}, "Forwarded": {"for=192.0.2.1;host=a;proto=http"},
				"X-Forwarded-Host": {"a"}, "X-Forwarded-Proto": {"http"}},
		},
		{
			name: "an unknown client address is unknown", remote: "@", host: "a",
			in: http.Header{"X-Forwarded-For": {"1.2.3.4"}},
			want: http.Header{"Forwarded": {"for=unknown;host=a;proto=http"},
				"X-Forwarded-Host": {"a"}, "X-Forwarded-Proto": {"http"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := &http.Request{RemoteAddr: tt.remote, Host: tt.host, Header: tt.in}
			if tt.tls {
				in.TLS = &tls.ConnectionState{}
			}
			pr := &httputil.ProxyRequest{In: in, Out: &http.Request{Header: http.Header{}}}
			setForwarded(pr, trusted)
			for _, name := range []string{"X-Forwarded-For", "Forwarded", "X-Forwarded-Host", "X-Forwarded-Proto"} {
				got, want := pr.Out.Header.Values(name), tt.want.Values(name)
				if len(got) != len(want) || (len(got) > 0 && got[0] != want[0]) {
					t.Errorf("%s = %q, want %q", name, got, want)
				}
			}
		})
	}
}

func TestClientAddrSkipsTrustedHopsFromTheRight(t *testing.T) {
	trusted := mustPrefixes(t, "10.0.0.0/8")
	tests := []struct {
		name, remote, xff, want string
	}{
		{"an untrusted peer is the client whatever it claims", "192.0.2.1:1", "1.2.3.4", "192.0.2.1"},
		{"a trusted peer's last hop is the client", "10.0.0.1:1", "1.2.3.4, 203.0.113.5", "203.0.113.5"},
		{"trusted hops in the list are skipped", "10.0.0.1:1", "203.0.113.5, 10.9.9.9", "203.0.113.5"},
		{"a trusted peer without the header is the client", "10.0.0.1:1", "", "10.0.0.1"},
		{"garbage stops the walk at the last good hop", "10.0.0.1:1", "203.0.113.5, junk", "10.0.0.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &http.Request{RemoteAddr: tt.remote, Header: http.Header{}}
			if tt.xff != "" {
				r.Header.Set("X-Forwarded-For", tt.xff)
			}
			got, ok := clientAddr(r, trusted)
			if !ok || got != netip.MustParseAddr(tt.want) {
				t.Errorf("clientAddr = %v (%v), want %s", got, ok, tt.want)
			}
		})
	}
}

// The attack: a client claims to be someone else in X-Forwarded-For. It
// travels on a raw socket so that nothing but the balancer touches it.
func TestSpoofedForwardedHeadersFromAnUntrustedPeerAreDropped(t *testing.T) {
	backend, got := recordingBackend(t)
	lb := newBalancer(t, balancerOptions{trusted: mustPrefixes(t, "10.0.0.0/8")}, backend.URL)
	rc := dialRaw(t, lb.url)
	rc.send("GET /whoami HTTP/1.1\r\nHost: shop.example\r\nX-Forwarded-For: 6.6.6.6\r\n" +
		"Forwarded: for=6.6.6.6;proto=https\r\nX-Forwarded-Host: admin.example\r\nX-Forwarded-Proto: https\r\n\r\n")
	if resp, _ := rc.response("GET"); resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	r := <-got
	want := map[string]string{
		"X-Forwarded-For": "127.0.0.1", "Forwarded": "for=127.0.0.1;host=shop.example;proto=http",
		"X-Forwarded-Host": "shop.example", "X-Forwarded-Proto": "http",
	}
	for name, v := range want {
		if g := r.Header.Values(name); len(g) != 1 || g[0] != v {
			t.Errorf("backend saw %s %q, want %q", name, g, v)
		}
	}
}

func TestForwardedHeadersFromATrustedPeerAreAppendedTo(t *testing.T) {
	backend, got := recordingBackend(t)
	lb := newBalancer(t, balancerOptions{trusted: mustPrefixes(t, "127.0.0.1")}, backend.URL)
	rc := dialRaw(t, lb.url)
	rc.send("GET / HTTP/1.1\r\nHost: internal:8080\r\nX-Forwarded-For: 203.0.113.9\r\n" +
		"Forwarded: for=203.0.113.9;host=shop.example;proto=https\r\nX-Forwarded-Host: shop.example\r\nX-Forwarded-Proto: https\r\n\r\n")
	if resp, _ := rc.response("GET"); resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	r := <-got
	want := map[string]string{
		"X-Forwarded-For":   "203.0.113.9, 127.0.0.1",
		"Forwarded":         `for=203.0.113.9;host=shop.example;proto=https, for=127.0.0.1;host="internal:8080";proto=http`,
		"X-Forwarded-Host":  "shop.example",
		"X-Forwarded-Proto": "https",
	}
	for name, v := range want {
		if g := r.Header.Values(name); len(g) != 1 || g[0] != v {
			t.Errorf("backend saw %s %q, want %q", name, g, v)
		}
	}
}

func TestForwardedPrefixOfARoutedRequest(t *testing.T) {
	trusted := mustPrefixes(t, "10.0.0.0/8")
	tests := []struct {
		name, remote, sent, removed string
		want                        []string // X-Forwarded-Prefix as the backend sees it
	}{
		{"a route that strips says what it removed", "192.0.2.1:1", "", "/api", []string{"/api"}},
		{"an untrusted client's claim is replaced", "192.0.2.1:1", "/admin", "/api", []string{"/api"}},
		{"an untrusted client's claim is dropped when nothing was removed", "192.0.2.1:1", "/admin", "", nil},
		{"a trusted proxy's prefix is kept when nothing was removed", "10.0.0.1:1", "/app", "", []string{"/app"}},
		{"a trusted proxy's prefix comes before what the route removed", "10.0.0.1:1", "/app/", "/api", []string{"/app/api"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := &http.Request{RemoteAddr: tt.remote, Host: "a", Header: http.Header{}}
			out := &http.Request{Header: http.Header{}}
			if tt.sent != "" {
				in.Header.Set("X-Forwarded-Prefix", tt.sent)
				out.Header.Set("X-Forwarded-Prefix", tt.sent) // ReverseProxy copies it
			}
			setForwardedPrefix(&httputil.ProxyRequest{In: in, Out: out}, trusted, tt.removed)
			if got := out.Header.Values("X-Forwarded-Prefix"); !slices.Equal(got, tt.want) {
				t.Errorf("X-Forwarded-Prefix = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestTokenListsCompareAsHTTPDoes: every check of a Connection list
// (hop-by-hop names, upgrades, the forwarded headers a trusted proxy
// nominated) folds ASCII letters only and trims spaces and tabs only, as
// ReverseProxy's httpguts does, so that the checks agree with each other
// and with the header removal that follows them.
func TestTokenListsCompareAsHTTPDoes(t *testing.T) {
	for _, tt := range []struct {
		connection, name string
		want             bool
	}{
		{"keep-alive, X-Forwarded-Host", "X-Forwarded-Host", true},
		{"\tx-forwarded-host ", "X-Forwarded-Host", true},
		{"X-Forwarded-Hoſt", "X-Forwarded-Host", false}, // ſ folds to s in Unicode only
		{"\u00a0Upgrade", "upgrade", false},             // NBSP is not HTTP whitespace
		{"UPGRADE", "upgrade", true},
	} {
		h := http.Header{"Connection": {tt.connection}, "Upgrade": {"websocket"}}
		if got := nominated(h, tt.name); got != tt.want {
			t.Errorf("Connection %q: nominated(%q) = %v, want %v", tt.connection, tt.name, got, tt.want)
		}
		if tt.name == "upgrade" {
			if got := upgradeOf(h) != ""; got != tt.want {
				t.Errorf("Connection %q: upgradeOf says %v, want %v", tt.connection, got, tt.want)
			}
		}
	}
}
