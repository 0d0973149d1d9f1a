package transport

import (
	"context"
	"net/http"
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/roundhouse/roundhouse/internal/parse"
)

// TestNewRateLimiterTakesEveryParsedRate: every --rate-limit value
// parse.Rate accepts is a rate NewRateLimiter takes. (parse's
// FuzzParseRate checks that what Rate accepts is positive and finite.)
func TestNewRateLimiterTakesEveryParsedRate(t *testing.T) {
	for _, s := range []string{"10/s", "10", "600/m", "0.5/s", "0.5", "1/m", "0.000001/m", "99999999/s", "1000000000/s"} {
		r, err := parse.Rate(s)
		if err != nil {
			t.Errorf("parse.Rate(%q): %v", s, err)
			continue
		}
		if _, err := NewRateLimiter(RateLimitOptions{Rate: r}); err != nil {
			t.Errorf("parse.Rate(%q) = %v, which NewRateLimiter refuses: %v", s, r, err)
		}
	}
}

// startLimiter runs a limiter until the test (or bubble) ends.
func startLimiter(t *testing.T, o RateLimitOptions) *RateLimiter {
	t.Helper()
	l, err := NewRateLimiter(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = l.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return l
}

func allow(t *testing.T, l *RateLimiter, addr string) (bool, time.Duration) {
	t.Helper()
	ok, wait, err := l.Allow(t.Context(), netip.MustParseAddr(addr))
	if err != nil {
		t.Fatal(err)
	}
	return ok, wait
}

func TestTheLimiterIsATokenBucketPerClient(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := startLimiter(t, RateLimitOptions{Rate: 1, Burst: 3})
		for i := range 3 {
			if ok, _ := allow(t, l, "192.0.2.1"); !ok {
				t.Fatalf("request %d of the burst refused", i+1)
			}
		}
		if ok, wait := allow(t, l, "192.0.2.1"); ok || wait != time.Second {
			t.Errorf("beyond the burst: allowed %v, wait %v; want refused, 1s", ok, wait)
		}
		if ok, _ := allow(t, l, "192.0.2.2"); !ok {
			t.Error("another client was refused")
		}
		time.Sleep(500 * time.Millisecond)
		if ok, wait := allow(t, l, "192.0.2.1"); ok || wait != 500*time.Millisecond {
			t.Errorf("half a token later: allowed %v, wait %v; want refused, 500ms", ok, wait)
		}
		time.Sleep(500 * time.Millisecond)
		if ok, _ := allow(t, l, "192.0.2.1"); !ok {
			t.Error("a refilled token was refused")
		}
	})
}

func TestTheLimiterCountsAnIPv6Slash64AsOneClient(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := startLimiter(t, RateLimitOptions{Rate: 1, Burst: 1})
		if ok, _ := allow(t, l, "2001:db8:1:2::1"); !ok {
			t.Fatal("first request refused")
		}
		if ok, _ := allow(t, l, "2001:db8:1:2:ffff::9"); ok {
			t.Error("another address in the same /64 got a fresh bucket")
		}
		if ok, _ := allow(t, l, "2001:db8:1:3::1"); !ok {
			t.Error("another /64 was refused")
		}
		if ok, _ := allow(t, l, "::ffff:192.0.2.1"); !ok {
			t.Error("first IPv4 request refused")
		}
		if ok, _ := allow(t, l, "192.0.2.1"); ok {
			t.Error("an IPv4-mapped address and its IPv4 form got separate buckets")
		}
	})
}

func TestIdleClientsAreForgotten(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := startLimiter(t, RateLimitOptions{Rate: 1, Burst: 2, SweepEvery: time.Minute})
		allow(t, l, "192.0.2.1")
		allow(t, l, "192.0.2.2")
		if n, _ := l.Clients(t.Context()); n != 2 {
			t.Fatalf("%d clients remembered, want 2", n)
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		if n, _ := l.Clients(t.Context()); n != 0 {
			t.Errorf("%d clients remembered after they went idle, want 0", n)
		}
	})
}

func TestTheLimiterRemembersAtMostMaxClients(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := startLimiter(t, RateLimitOptions{Rate: 1, Burst: 5, MaxClients: 100})
		for i := range 1000 {
			addr := netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})
			if ok, _, err := l.Allow(t.Context(), addr); err != nil || !ok {
				t.Fatalf("client %d: %v, %v", i, ok, err)
			}
			if n, _ := l.Clients(t.Context()); n > 100 {
				t.Fatalf("%d clients remembered, cap 100", n)
			}
		}
	})
}

func TestAClientOverItsRateGets429WithRetryAfter(t *testing.T) {
	backend, got := recordingBackend(t)
	lb := newBalancer(t, balancerOptions{limit: &RateLimitOptions{Rate: 0.1, Burst: 2}}, backend.URL)
	for i := range 2 {
		if code, _, _ := lb.get(t, "/"); code != 200 {
			t.Fatalf("request %d: %d", i+1, code)
		}
		<-got
	}
	resp, body := func() (*http.Response, string) {
		rc := dialRaw(t, lb.url)
		rc.send("GET /<script> HTTP/1.1\r\nHost: a\r\n\r\n")
		return rc.response("GET")
	}()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "10" {
		t.Errorf("got %d with Retry-After %q, want 429 with 10", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if body != "429 Too Many Requests: rate limit exceeded\n" {
		t.Errorf("body %q", body)
	}
	noRequest(t, got)
	lb.log.waitFor(t, 1, "status=429")
}

// Behind a trusted proxy every request comes from the proxy's address; the
// limit applies to the clients it names.
func TestBehindATrustedProxyEachForwardedClientHasItsOwnLimit(t *testing.T) {
	backend, _ := recordingBackend(t)
	lb := newBalancer(t, balancerOptions{
		trusted: mustPrefixes(t, "127.0.0.1"), limit: &RateLimitOptions{Rate: 0.1, Burst: 1},
	}, backend.URL)
	status := func(client string) int {
		rc := dialRaw(t, lb.url)
		rc.send("GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: " + client + "\r\n\r\n")
		resp, _ := rc.response("GET")
		return resp.StatusCode
	}
	got := map[string][]int{}
	for _, c := range []string{"203.0.113.1", "203.0.113.2", "203.0.113.1", "203.0.113.2"} {
		got[c] = append(got[c], status(c))
	}
	for c, codes := range got {
		if len(codes) != 2 || codes[0] != 200 || codes[1] != 429 {
			t.Errorf("client %s got %v, want [200 429]", c, codes)
		}
	}
}
