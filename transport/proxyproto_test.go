package transport

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/pires/go-proxyproto"
)

// dialFrom connects to the balancer at url from the loopback address src
// (127.0.0.2 and 127.0.0.3 are loopback on Linux too).
func dialFrom(t *testing.T, src, url string) *rawConn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	c, err := d.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return &rawConn{t: t, c: c, br: bufio.NewReader(c)}
}

// v2Header is a binary PROXY v2 header from src to dst.
func v2Header(t *testing.T, src, dst string) string {
	t.Helper()
	s, d := net.TCPAddrFromAddrPort(netip.MustParseAddrPort(src)), net.TCPAddrFromAddrPort(netip.MustParseAddrPort(dst))
	b, err := proxyproto.HeaderProxyFromAddrs(2, s, d).Format()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

const getRequest = "GET /pp HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\n\r\n"

func TestPROXYProtocolIn(t *testing.T) {
	tests := []struct {
		name    string
		from    string // the connection's source address
		header  func(t *testing.T) string
		client  string // what the backend must see in X-Forwarded-For; "": nothing must reach it
		logged  string // the access log's client, with the header's port
		refusal string // the log's reason, when refused
	}{
		{"a v1 header from a trusted peer names the client", "127.0.0.1",
			func(*testing.T) string { return "PROXY TCP4 203.0.113.7 127.0.0.1 5555 80\r\n" }, "203.0.113.7", "203.0.113.7:5555", ""},
		{"a v2 header from a trusted peer names the client", "127.0.0.1",
			func(t *testing.T) string { return v2Header(t, "[2001:db8::9]:4444", "[2001:db8::1]:80") }, "2001:db8::9", "[2001:db8::9]:4444", ""},
		{"a malformed header closes the connection", "127.0.0.1",
			func(*testing.T) string { return "PROXY TCP4 not-an-address 127.0.0.1 5555 80\r\n" }, "", "", "malformed PROXY header"},
		{"a header from an untrusted peer closes the connection", "127.0.0.2",
			func(t *testing.T) string { return v2Header(t, "203.0.113.7:5555", "127.0.0.1:80") }, "", "", "peer is not a trusted proxy"},
		{"a missing header closes the connection", "127.0.0.1",
			func(*testing.T) string { return "" }, "", "", "no PROXY header"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			backend, got := recordingBackend(t)
			b := newBalancer(t, balancerOptions{
				proxyProtocol: &ProxyProtocolOptions{Trusted: mustPrefixes(t, "127.0.0.1/32")},
				trusted:       mustPrefixes(t, "127.0.0.1/32"),
			}, backend.URL)
			rc := dialFrom(t, tt.from, b.url)
			rc.send(tt.header(t) + getRequest)
			if tt.client == "" {
				if !rc.closed() {
					t.Fatal("the connection stayed open")
				}
				b.log.waitFor(t, 1, "connection refused: PROXY protocol", "peer="+tt.from, tt.refusal)
				noRequest(t, got)
				return
			}
			resp, _ := rc.response(http.MethodGet)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d, want 200", resp.StatusCode)
			}
			r := <-got
			if xff := r.Header.Get("X-Forwarded-For"); xff != tt.client {
				t.Errorf("backend saw X-Forwarded-For %q, want %q", xff, tt.client)
			}
			b.log.waitFor(t, 1, "access", "client="+tt.logged)
		})
	}
}

func TestPROXYRefusalsAreLoggedOncePerPeer(t *testing.T) {
	backend, got := recordingBackend(t)
	b := newBalancer(t, balancerOptions{
		proxyProtocol: &ProxyProtocolOptions{Trusted: mustPrefixes(t, "127.0.0.1/32"), LogEvery: time.Hour},
	}, backend.URL)
	for range 3 {
		rc := dialFrom(t, "127.0.0.2", b.url)
		if !rc.closed() {
			t.Fatal("an untrusted peer's connection stayed open")
		}
	}
	// Refusals reach the logger in order: once 127.0.0.3's is logged, the
	// three before it have been dealt with.
	rc := dialFrom(t, "127.0.0.3", b.url)
	if !rc.closed() {
		t.Fatal("an untrusted peer's connection stayed open")
	}
	b.log.waitFor(t, 1, "connection refused", "peer=127.0.0.3")
	if n := b.log.count("connection refused", "peer=127.0.0.2"); n != 1 {
		t.Errorf("peer 127.0.0.2 logged %d times, want once:\n%s", n, b.log)
	}
	noRequest(t, got)
}

func TestTheRefusalLogIsBoundedInTimeAndPeers(t *testing.T) {
	sink := newLogSink()
	p := NewProxyProtocol(ProxyProtocolOptions{
		Logger:   hclog.New(&hclog.LoggerOptions{Output: sink}),
		LogEvery: time.Minute, MaxPeers: 2,
	})
	peers := map[netip.Addr]*peerLog{}
	a, b, c := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2"), netip.MustParseAddr("192.0.2.3")
	t0 := time.Unix(1000, 0)
	p.note(peers, refusal{a, "x"}, t0)
	p.note(peers, refusal{a, "x"}, t0.Add(time.Second))
	p.note(peers, refusal{a, "x"}, t0.Add(2*time.Second))
	t.Run("a peer is logged once per window", func(t *testing.T) {
		if n := sink.count("peer=192.0.2.1"); n != 1 {
			t.Errorf("%d lines, want 1:\n%s", n, sink)
		}
	})
	t.Run("after the window the next line says how many were not logged", func(t *testing.T) {
		p.note(peers, refusal{a, "x"}, t0.Add(time.Minute))
		if n := sink.count("peer=192.0.2.1", "since_last=2"); n != 1 {
			t.Errorf("want one line with since_last=2:\n%s", sink)
		}
	})
	t.Run("beyond MaxPeers a newcomer is not logged while the others are recent", func(t *testing.T) {
		now := t0.Add(time.Minute + time.Second)
		p.note(peers, refusal{b, "x"}, now)
		p.note(peers, refusal{c, "x"}, now)
		if sink.count("peer=192.0.2.3") != 0 || len(peers) != 2 {
			t.Errorf("a third peer was remembered or logged (%d peers):\n%s", len(peers), sink)
		}
	})
	t.Run("peers logged longer ago than the window make room", func(t *testing.T) {
		p.note(peers, refusal{c, "x"}, t0.Add(3*time.Minute))
		if sink.count("peer=192.0.2.3") != 1 {
			t.Errorf("the third peer was not logged:\n%s", sink)
		}
	})
}

func TestPROXYProtocolSourceIsTheClientForRateLimiting(t *testing.T) {
	backend, _ := recordingBackend(t)
	b := newBalancer(t, balancerOptions{
		proxyProtocol: &ProxyProtocolOptions{Trusted: mustPrefixes(t, "127.0.0.1/32")},
		limit:         &RateLimitOptions{Rate: 0.001, Burst: 1},
	}, backend.URL)
	send := func(client string) int {
		rc := dialRaw(t, b.url)
		rc.send("PROXY TCP4 " + client + " 127.0.0.1 5555 80\r\n" + getRequest)
		resp, _ := rc.response(http.MethodGet)
		return resp.StatusCode
	}
	if s := send("203.0.113.1"); s != http.StatusOK {
		t.Fatalf("first client's first request: %d", s)
	}
	if s := send("203.0.113.2"); s != http.StatusOK {
		t.Errorf("a second client behind the same proxy got %d, want its own limit", s)
	}
	if s := send("203.0.113.1"); s != http.StatusTooManyRequests {
		t.Errorf("first client's second request: %d, want 429", s)
	}
}

// ip-hash keys on the address the PROXY header names, not on the proxy in
// front: sixteen clients behind one proxy spread over the backends, and
// each keeps its own.
func TestPROXYProtocolSourceIsTheClientForIPHash(t *testing.T) {
	_, urls := demoBackends(t, "A", "B", "C")
	b := newBalancer(t, balancerOptions{
		policy:        mustPolicy(t, "ip-hash"),
		proxyProtocol: &ProxyProtocolOptions{Trusted: mustPrefixes(t, "127.0.0.1/32")},
	}, urls...)
	send := func(client string) string {
		rc := dialRaw(t, b.url)
		rc.send("PROXY TCP4 " + client + " 127.0.0.1 5555 80\r\nGET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
		resp, body := rc.response(http.MethodGet)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("client %s: status %d", client, resp.StatusCode)
		}
		return body
	}
	used := map[string]int{}
	for i := range 16 {
		client := fmt.Sprintf("203.0.113.%d", i+1)
		first, again := send(client), send(client)
		if first != again {
			t.Errorf("client %s reached %q, then %q", client, first, again)
		}
		used[first]++
	}
	if len(used) < 2 {
		t.Errorf("16 clients behind one proxy all reached %v: ip-hash keyed on the proxy", used)
	}
}

// TestHAProxyInFrontSendsTheClientAddress puts Debian's HAProxy, in TCP
// mode with send-proxy-v2, in front of the balancer. HAProxy gets its
// listening socket from the test (bind fd@3), so it needs no free port and
// no wait: connections queue in the kernel until it accepts them.
func TestHAProxyInFrontSendsTheClientAddress(t *testing.T) {
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/haproxy"); serr != nil {
			t.Skip("haproxy not installed (apt-get install haproxy; .ci/run installs it)")
		}
		bin = "/usr/sbin/haproxy"
	}
	backend, got := recordingBackend(t)
	b := newBalancer(t, balancerOptions{
		proxyProtocol: &ProxyProtocolOptions{Trusted: mustPrefixes(t, "127.0.0.1/32")},
		trusted:       mustPrefixes(t, "127.0.0.1/32"),
	}, backend.URL)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	lf, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	cfg := filepath.Join(t.TempDir(), "haproxy.cfg")
	conf := fmt.Sprintf(`global
  maxconn 100
defaults
  mode tcp
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend fe
  bind fd@3
  default_backend be
backend be
  server roundhouse %s send-proxy-v2
`, strings.TrimPrefix(b.url, "http://"))
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	cmd := exec.Command(bin, "-db", "-f", cfg)
	cmd.ExtraFiles = []*os.File{lf}
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("haproxy output:\n%s", out.String())
		}
	})

	for _, client := range []string{"127.0.0.2", "127.0.0.3"} {
		t.Run("a client at "+client+" is seen by the backend", func(t *testing.T) {
			rc := dialFrom(t, client, "http://"+ln.Addr().String())
			rc.send(getRequest)
			resp, _ := rc.response(http.MethodGet)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d, want 200", resp.StatusCode)
			}
			r := <-got
			if xff := r.Header.Get("X-Forwarded-For"); xff != client {
				t.Errorf("backend saw X-Forwarded-For %q, want %q", xff, client)
			}
			b.log.waitFor(t, 1, "access", "client="+client+":")
		})
	}
}
