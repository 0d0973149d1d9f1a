package transport

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/roundhouse/roundhouse/actors"
)

// Balancing policies end to end: real backends behind the real proxy.

// testSecret keys the sticky cookie in these tests.
var testSecret = []byte("transport test secret, 16+ bytes")

// mustPolicy returns the policy a --policy value names.
func mustPolicy(t *testing.T, spec string) actors.Policy {
	t.Helper()
	p, err := actors.NewPolicy(spec, testSecret, 1)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// response is what a test needs from one answer.
type response struct {
	status  int
	backend string // X-Backend
	cookies []*http.Cookie
	raw     []string // the Set-Cookie lines as sent
}

// send does req with client and reads the whole answer.
func send(t *testing.T, client *http.Client, req *http.Request) response {
	t.Helper()
	ctx, cancel := context.WithTimeout(req.Context(), 20*time.Second)
	defer cancel()
	resp, err := client.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		t.Fatalf("%s %s: reading body: %v", req.Method, req.URL, err)
	}
	return response{resp.StatusCode, resp.Header.Get("X-Backend"), resp.Cookies(), resp.Header.Values("Set-Cookie")}
}

// getWith sends GET / with the given header (name "" for none).
func (b *balancer) getWith(t *testing.T, client *http.Client, name, value string) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, b.url+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	if name != "" {
		req.Header.Set(name, value)
	}
	return send(t, client, req)
}

// slowHandler answers after delay: a backend that is slow, not broken.
func slowHandler(name string, delay time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Backend", name)
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
		_, _ = io.WriteString(w, "slow hello\n")
	})
}

// TestLoadAwarePoliciesAvoidASlowBackend: S answers after 50ms, A and B at
// once. Under 8 concurrent clients, round-robin sends S its third of the
// requests regardless; least-conn and p2c see requests pile up on S and
// send it markedly fewer.
func TestLoadAwarePoliciesAvoidASlowBackend(t *testing.T) {
	tests := []struct {
		policy  string
		balance bool // want S to get exactly a third (round robin), else markedly fewer
	}{
		{"round-robin", true},
		{"least-conn", false},
		{"p2c", false},
	}
	for _, tt := range tests {
		name := tt.policy + " sends the slow backend markedly fewer requests"
		if tt.balance {
			name = tt.policy + " sends the slow backend its full third"
		}
		t.Run(name, func(t *testing.T) {
			slow := httptest.NewServer(slowHandler("S", 50*time.Millisecond))
			t.Cleanup(slow.Close)
			a, b := demoBackend(t, "A"), demoBackend(t, "B")
			lb := newBalancer(t, balancerOptions{policy: mustPolicy(t, tt.policy)}, a.URL, slow.URL, b.URL)

			const total, clients = 300, 8
			var budget atomic.Int64
			budget.Store(total)
			var mu sync.Mutex
			got := map[string]int{}
			var wg sync.WaitGroup
			for range clients {
				wg.Go(func() {
					for budget.Add(-1) >= 0 {
						code, who, body := lb.get(t, "/")
						if code != http.StatusOK {
							t.Errorf("status %d: %q", code, body)
						}
						mu.Lock()
						got[who]++
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			if got["A"]+got["B"]+got["S"] != total {
				t.Fatalf("answers %v, want %d from A, B and S", got, total)
			}
			if tt.balance {
				if got["S"] != total/3 {
					t.Errorf("answers %v, want exactly %d from S", got, total/3)
				}
				return
			}
			if 2*got["S"] >= got["A"] || 2*got["S"] >= got["B"] {
				t.Errorf("answers %v, want S below half of each of A and B", got)
			}
			t.Logf("answers %v", got)
		})
	}
}

// backendSet maps demo backend names to their servers.
type backendSet map[string]*httptest.Server

// demoBackends starts demo origins with the given names and returns them
// and their URLs, in order.
func demoBackends(t *testing.T, names ...string) (backendSet, []string) {
	t.Helper()
	set := backendSet{}
	var urls []string
	for _, n := range names {
		set[n] = demoBackend(t, n)
		urls = append(urls, set[n].URL)
	}
	return set, urls
}

// backendFor returns the selector's Backend for srv.
func (b *balancer) backendFor(t *testing.T, srv *httptest.Server) *actors.Backend {
	t.Helper()
	backends, err := b.sel.Backends(t.Context())
	if err != nil {
		t.Fatalf("Backends: %v", err)
	}
	for _, be := range backends {
		if be.Name == srv.URL {
			return be
		}
	}
	t.Fatalf("no backend %s", srv.URL)
	return nil
}

// jarClient returns a client of lb that keeps cookies, as a browser would.
func jarClient(t *testing.T, lb *balancer) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Transport: lb.client.Transport, Jar: jar}
}

// stickyCookie returns the one Set-Cookie of r named name, or nil.
func stickyCookie(t *testing.T, r response, name string) *http.Cookie {
	t.Helper()
	var found *http.Cookie
	for _, c := range r.cookies {
		if c.Name == name {
			if found != nil {
				t.Errorf("two %s cookies set: %q", name, r.raw)
			}
			found = c
		}
	}
	return found
}

var tokenPattern = regexp.MustCompile(`^[0-9a-f]{32}$`)

func TestStickyCookieIsSetWithSafeAttributes(t *testing.T) {
	set, urls := demoBackends(t, "A", "B", "C")
	lb := newBalancer(t, balancerOptions{policy: mustPolicy(t, "cookie"), secret: testSecret}, urls...)
	r := lb.getWith(t, lb.client, "", "")
	if r.status != http.StatusOK {
		t.Fatalf("status %d", r.status)
	}
	c := stickyCookie(t, r, actors.DefaultCookie)
	if c == nil {
		t.Fatalf("no %s cookie in %q", actors.DefaultCookie, r.raw)
	}
	t.Run("it is HttpOnly, SameSite=Lax, for the whole site, and not Secure on plain HTTP", func(t *testing.T) {
		if !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.Secure {
			t.Errorf("cookie %q: want HttpOnly, SameSite=Lax, Path=/ and no Secure", c.Raw)
		}
		if c.MaxAge != 0 || !c.Expires.IsZero() || c.Domain != "" {
			t.Errorf("cookie %q: want a host-only session cookie", c.Raw)
		}
	})
	t.Run("its value reveals neither the backend's address nor its port", func(t *testing.T) {
		srv := set[r.backend]
		u, _ := url.Parse(srv.URL)
		if !tokenPattern.MatchString(c.Value) {
			t.Errorf("value %q: want 32 hex digits", c.Value)
		}
		for _, part := range []string{u.Host, u.Hostname(), ":" + u.Port(), srv.URL} {
			if strings.Contains(c.Value, part) {
				t.Errorf("value %q contains %q", c.Value, part)
			}
		}
	})
	t.Run("its value is the HMAC token of the backend that answered", func(t *testing.T) {
		if want := actors.StickyToken(testSecret, lb.backendFor(t, set[r.backend])); c.Value != want {
			t.Errorf("value %q, want StickyToken = %q", c.Value, want)
		}
	})
}

func TestStickyCookieIsSecureOverTLS(t *testing.T) {
	_, urls := demoBackends(t, "A", "B")
	lb, _, _ := tlsBalancer(t, balancerOptions{policy: mustPolicy(t, "cookie:SESSION"), secret: testSecret}, urls...)
	r := lb.getWith(t, lb.client, "", "")
	c := stickyCookie(t, r, "SESSION")
	if c == nil {
		t.Fatalf("no SESSION cookie in %q", r.raw)
	}
	if !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode {
		t.Errorf("cookie %q over TLS: want Secure, HttpOnly, SameSite=Lax", c.Raw)
	}
}

// TestStickyCookieSurvives100RequestsAndFailsOverCleanly: a browser-like
// client stays on one backend for 100 requests; when that backend dies,
// the next request is answered by another (the retry path) with a new
// cookie, and the client stays there.
func TestStickyCookieSurvives100RequestsAndFailsOverCleanly(t *testing.T) {
	set, urls := demoBackends(t, "A", "B", "C")
	lb := newBalancer(t, balancerOptions{policy: mustPolicy(t, "cookie"), secret: testSecret, retries: 2}, urls...)
	client := jarClient(t, lb)

	first := lb.getWith(t, client, "", "")
	if first.status != http.StatusOK || stickyCookie(t, first, actors.DefaultCookie) == nil {
		t.Fatalf("first answer: status %d, Set-Cookie %q; want 200 with the sticky cookie", first.status, first.raw)
	}
	pinned := first.backend
	for i := range 100 {
		r := lb.getWith(t, client, "", "")
		if r.status != http.StatusOK || r.backend != pinned {
			t.Fatalf("request %d: status %d from %s, want 200 from %s", i, r.status, r.backend, pinned)
		}
		if len(r.raw) != 0 {
			t.Errorf("request %d: the cookie was set again: %q", i, r.raw)
		}
	}

	set[pinned].CloseClientConnections()
	set[pinned].Close()
	moved := lb.getWith(t, client, "", "")
	if moved.status != http.StatusOK {
		t.Fatalf("after %s died: status %d, want 200", pinned, moved.status)
	}
	if moved.backend == pinned {
		t.Fatalf("after %s died: answered by %s", pinned, moved.backend)
	}
	c := stickyCookie(t, moved, actors.DefaultCookie)
	if want := actors.StickyToken(testSecret, lb.backendFor(t, set[moved.backend])); c == nil || c.Value != want {
		t.Fatalf("after %s died: Set-Cookie %q, want the token of %s", pinned, moved.raw, moved.backend)
	}
	for i := range 20 {
		r := lb.getWith(t, client, "", "")
		if r.status != http.StatusOK || r.backend != moved.backend {
			t.Fatalf("request %d after the move: status %d from %s, want 200 from %s", i, r.status, r.backend, moved.backend)
		}
	}
	for _, st := range lb.status(t) {
		if st.Name == set[pinned].URL && (st.Up || !strings.HasPrefix(st.Reason, "passive:")) {
			t.Errorf("the dead backend %s: %+v, want DOWN by passive detection", pinned, st)
		}
	}
}

func TestStickyCookieNewClientsSpreadBetweenAPinnedClientsRequests(t *testing.T) {
	_, urls := demoBackends(t, "A", "B", "C")
	lb := newBalancer(t, balancerOptions{policy: mustPolicy(t, "cookie"), secret: testSecret}, urls...)
	busy := jarClient(t, lb)
	pinned := lb.getWith(t, busy, "", "").backend
	var fresh []string
	for range 6 {
		if r := lb.getWith(t, busy, "", ""); r.backend != pinned {
			t.Fatalf("the pinned client moved from %s to %s", pinned, r.backend)
		}
		fresh = append(fresh, lb.getWith(t, lb.client, "", "").backend) // no cookie jar: a new client each time
	}
	if got := strings.Join(fresh, ""); strings.Count(got, "A") != 2 || strings.Count(got, "B") != 2 || strings.Count(got, "C") != 2 {
		t.Errorf("six new clients went to %s, want two on each backend", got)
	}
}

func TestStickyCookieWorksAcrossInstancesSharingTheSecret(t *testing.T) {
	_, urls := demoBackends(t, "A", "B", "C")
	one := newBalancer(t, balancerOptions{policy: mustPolicy(t, "cookie"), secret: testSecret}, urls...)
	// The second instance lists the backends in another order.
	two := newBalancer(t, balancerOptions{policy: mustPolicy(t, "cookie"), secret: testSecret}, urls[2], urls[0], urls[1])
	other := newBalancer(t, balancerOptions{policy: mustPolicy(t, "cookie"), secret: []byte("some other secret, 16+ bytes")}, urls...)

	byBackend := map[string]string{} // backend name → cookie value from instance one
	for range 3 {
		r := one.getWith(t, one.client, "", "")
		byBackend[r.backend] = stickyCookie(t, r, actors.DefaultCookie).Value
	}
	if len(byBackend) != 3 {
		t.Fatalf("three fresh requests reached %v, want A, B and C", byBackend)
	}
	t.Run("the other instance sends each cookie to its backend and sets none", func(t *testing.T) {
		for backend, value := range byBackend {
			for range 5 {
				r := two.getWith(t, two.client, "Cookie", actors.DefaultCookie+"="+value)
				if r.backend != backend || len(r.raw) != 0 {
					t.Errorf("cookie of %s: answered by %s, Set-Cookie %q", backend, r.backend, r.raw)
				}
			}
		}
	})
	t.Run("the other instance gives the same value for the same backend", func(t *testing.T) {
		for range 3 {
			r := two.getWith(t, two.client, "", "")
			if got := stickyCookie(t, r, actors.DefaultCookie).Value; got != byBackend[r.backend] {
				t.Errorf("cookie of %s: %q, instance one gave %q", r.backend, got, byBackend[r.backend])
			}
		}
	})
	t.Run("an instance with another secret re-pins", func(t *testing.T) {
		for backend, value := range byBackend {
			r := other.getWith(t, other.client, "Cookie", actors.DefaultCookie+"="+value)
			c := stickyCookie(t, r, actors.DefaultCookie)
			if r.status != http.StatusOK || c == nil || c.Value == value {
				t.Errorf("cookie of %s: status %d, Set-Cookie %q; want 200 and a new value", backend, r.status, r.raw)
			}
		}
	})
}

func TestHeaderHashKeepsAUserOnOneBackend(t *testing.T) {
	_, urls := demoBackends(t, "A", "B", "C")
	lb := newBalancer(t, balancerOptions{policy: mustPolicy(t, "header-hash:X-User")}, urls...)
	used := map[string]bool{}
	for u := range 30 {
		user := "user-" + string(rune('a'+u%26)) + strings.Repeat("x", u/26)
		want := ""
		for i := range 5 {
			r := lb.getWith(t, lb.client, "X-User", user)
			if r.status != http.StatusOK {
				t.Fatalf("%s: status %d", user, r.status)
			}
			if i == 0 {
				want = r.backend
			} else if r.backend != want {
				t.Errorf("%s: request %d went to %s, the first to %s", user, i, r.backend, want)
			}
		}
		used[want] = true
	}
	if len(used) != 3 {
		t.Errorf("30 users used backends %v, want all three", used)
	}
	t.Run("requests without the header go round robin", func(t *testing.T) {
		var got []string
		for range 6 {
			got = append(got, lb.getWith(t, lb.client, "", "").backend)
		}
		if got[0] == got[1] || got[1] == got[2] || got[0] == got[2] || got[0] != got[3] || got[1] != got[4] || got[2] != got[5] {
			t.Errorf("keyless answers %v, want a round-robin cycle", got)
		}
	})
}

func TestIPHashSendsOneClientToOneBackend(t *testing.T) {
	_, urls := demoBackends(t, "A", "B", "C")
	lb := newBalancer(t, balancerOptions{policy: mustPolicy(t, "ip-hash")}, urls...)
	// Fresh connections come from new ports: only the address counts.
	fresh := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	got := map[string]int{}
	for i := range 30 {
		client := lb.client
		if i%2 == 1 {
			client = fresh
		}
		r := lb.getWith(t, client, "X-Forwarded-For", "198.51.100.7")
		if r.status != http.StatusOK {
			t.Fatalf("status %d", r.status)
		}
		got[r.backend]++
	}
	if len(got) != 1 {
		t.Errorf("requests from 127.0.0.1 reached %v, want one backend", got)
	}
}

// TestHeaderHashByHost: net/http moves the Host header out of
// Request.Header into Request.Host; header-hash:Host must still find it.
func TestHeaderHashByHost(t *testing.T) {
	_, urls := demoBackends(t, "A", "B", "C")
	lb := newBalancer(t, balancerOptions{policy: mustPolicy(t, "header-hash:Host")}, urls...)
	got := map[string]int{}
	for range 6 {
		req, err := http.NewRequest(http.MethodGet, lb.url+"/", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = "shop.example"
		got[send(t, lb.client, req).backend]++
	}
	if len(got) != 1 {
		t.Errorf("one Host reached %v, want one backend", got)
	}
}
