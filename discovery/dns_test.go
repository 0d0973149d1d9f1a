package discovery

import (
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/sourcegraph/conc"

	"github.com/roundhouse/roundhouse/internal/dnstest"
)

// hostPort splits an origin's URL into its address and port.
func hostPort(t *testing.T, raw string) (string, int) {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(u.Port())
	return u.Hostname(), port
}

func dnsOptions(server string) Options {
	o := testOptions()
	o.DNSServer = server
	return o
}

// TestDNSSRVFollowsTheRecords serves SRV records with TTL 1 s for three
// backends and changes them: the balancer's set follows after the TTL,
// with SRV weights as weights and a higher priority as a standby, whether
// the answer carries the targets' addresses or they must be asked for.
func TestDNSSRVFollowsTheRecords(t *testing.T) {
	for _, extra := range []bool{true, false} {
		name := "targets resolved with A queries"
		if extra {
			name = "targets' addresses in the additional section"
		}
		t.Run(name, func(t *testing.T) {
			d := dnstest.Start(t)
			origins := startOrigins(t, 3)
			// srv(i, priority, weight) is origin i's SRV record and its A record.
			srv := func(i, priority, weight int) []string {
				ip, port := hostPort(t, origins[i].url)
				target := origins[i].name + ".node.test."
				return []string{
					"_web._tcp.test. 1 IN SRV " + strconv.Itoa(priority) + " " + strconv.Itoa(weight) + " " + strconv.Itoa(port) + " " + target,
					target + " 1 IN A " + ip,
				}
			}
			// b1 and b2 active (weights 10, 20), b3 a standby (priority 20).
			d.Set(t, extra, slices.Concat(srv(0, 10, 10), srv(1, 10, 20), srv(2, 20, 5))...)
			a := startInstance(t, "a", "weighted-round-robin", nil, nil, dnsOptions(d.Addr), "dns+srv://_web._tcp.test")
			want := []string{origins[0].url + " weight=10", origins[1].url + " weight=20", origins[2].url + " weight=0"}
			slices.Sort(want)
			if got := a.backends(t); !slices.Equal(got, want) {
				t.Fatalf("backends = %v, want %v", got, want)
			}
			for range 30 {
				if _, got, _, err := a.get("/"); err != nil || got == "b3" {
					t.Fatalf("the standby b3 answered (%v) while b1 and b2 are UP", err)
				}
			}

			// b1 goes, b3 becomes active.
			d.Set(t, extra, slices.Concat(srv(1, 10, 20), srv(2, 10, 30))...)
			want = []string{origins[1].url + " weight=20", origins[2].url + " weight=30"}
			slices.Sort(want)
			took := waitUntil(t, 5*time.Second, "the set follows the records", func() bool { return slices.Equal(a.backends(t), want) })
			t.Logf("records changed → backend set changed in %v (TTL 1s)", took.Round(time.Millisecond))
			if took > 3*time.Second {
				t.Errorf("the change took %v, want about the TTL (1s)", took)
			}
			routesTo(t, a, "b3", 2*time.Second)
		})
	}
}

// TestDNSAFollowsTheRecords serves A and AAAA records: one backend per
// address on the URL's port; NXDOMAIN empties the set.
func TestDNSAFollowsTheRecords(t *testing.T) {
	d := dnstest.Start(t)
	origins := startOrigins(t, 1)
	ip, port := hostPort(t, origins[0].url)
	d.Set(t, false, "web.test. 1 IN A "+ip)
	src := "dns+a://web.test:" + strconv.Itoa(port)
	a := startInstance(t, "a", "round-robin", nil, nil, dnsOptions(d.Addr), src)
	if got, want := a.backends(t), weighted(origins[0].url); !slices.Equal(got, want) {
		t.Fatalf("backends = %v, want %v", got, want)
	}
	routesTo(t, a, "b1", 2*time.Second)

	d.Set(t, false, "web.test. 1 IN A "+ip, "web.test. 1 IN A 127.0.0.9", "web.test. 1 IN AAAA ::1")
	p := strconv.Itoa(port)
	want := weighted(origins[0].url, "http://127.0.0.9:"+p, "http://[::1]:"+p)
	waitUntil(t, 5*time.Second, "two more addresses join", func() bool { return slices.Equal(a.backends(t), want) })

	d.Set(t, false) // NXDOMAIN
	waitUntil(t, 5*time.Second, "NXDOMAIN empties the set", func() bool { return len(a.backends(t)) == 0 })
}

// TestDNSFailureKeepsTheSet: while the resolver fails (SERVFAIL) the last
// set stays in service; the outage is logged once and so is the recovery.
func TestDNSFailureKeepsTheSet(t *testing.T) {
	d := dnstest.Start(t)
	origins := startOrigins(t, 2)
	ip, port := hostPort(t, origins[0].url)
	_, port2 := hostPort(t, origins[1].url)
	d.Set(t, true,
		"_web._tcp.test. 1 IN SRV 1 1 "+strconv.Itoa(port)+" b1.test.",
		"_web._tcp.test. 1 IN SRV 1 1 "+strconv.Itoa(port2)+" b2.test.",
		"b1.test. 1 IN A "+ip, "b2.test. 1 IN A "+ip)
	a := startInstance(t, "a", "round-robin", nil, nil, dnsOptions(d.Addr), "dns+srv://_web._tcp.test")
	want := weighted(origins[0].url, origins[1].url)
	if got := a.backends(t); !slices.Equal(got, want) {
		t.Fatalf("backends = %v, want %v", got, want)
	}
	d.SetFail(true)
	a.logs.waitFor(t, 1, "dns unreachable")
	asked := d.Queries()
	waitUntil(t, 5*time.Second, "the name is asked again a few times", func() bool { return d.Queries() >= asked+3 })
	if got := a.backends(t); !slices.Equal(got, want) {
		t.Errorf("during the failure: backends = %v, want the last set %v", got, want)
	}
	routesTo(t, a, "b2", 2*time.Second)
	d.SetFail(false)
	a.logs.waitFor(t, 1, "dns reachable again")
	if n := a.logs.count("dns unreachable"); n != 1 {
		t.Errorf("the outage was logged %d times, want once", n)
	}
}

// TestDNSTTLIsBounded: a name is asked again on its answer's TTL, but
// never sooner than MinTTL (Consul's default TTL is 0) nor later than
// MaxTTL (a TTL of an hour must not hide a change for an hour).
func TestDNSTTLIsBounded(t *testing.T) {
	const minTTL, maxTTL = 300 * time.Millisecond, 600 * time.Millisecond
	d := dnstest.Start(t)
	origins := startOrigins(t, 2)
	ip, port := hostPort(t, origins[0].url)
	_, port2 := hostPort(t, origins[1].url)
	srv := func(ttl, port int) []string {
		return []string{
			"_web._tcp.test. " + strconv.Itoa(ttl) + " IN SRV 1 1 " + strconv.Itoa(port) + " b.test.",
			"b.test. " + strconv.Itoa(ttl) + " IN A " + ip,
		}
	}
	opts := dnsOptions(d.Addr)
	opts.MinTTL, opts.MaxTTL = minTTL, maxTTL

	t.Run("TTL 0 is asked again after MinTTL, not at once", func(t *testing.T) {
		d.Set(t, true, srv(0, port)...)
		a := startInstance(t, "a", "round-robin", nil, nil, opts, "dns+srv://_web._tcp.test")
		asked, start := d.Queries(), time.Now()
		waitUntil(t, 5*time.Second, "the name is asked 3 more times", func() bool { return d.Queries() >= asked+3 })
		// Three more answers (one query each: the addresses come with
		// the SRV answer) take at least two whole waits of MinTTL.
		if took := time.Since(start); took < 2*minTTL {
			t.Errorf("3 more queries within %v of TTL 0, want at least %v apart", took, minTTL)
		}
		if got, want := a.backends(t), weighted(origins[0].url); !slices.Equal(got, want) {
			t.Errorf("backends = %v, want %v", got, want)
		}
	})

	t.Run("a TTL of an hour is asked again after MaxTTL", func(t *testing.T) {
		d.Set(t, true, srv(3600, port)...)
		a := startInstance(t, "a", "round-robin", nil, nil, opts, "dns+srv://_web._tcp.test")
		d.Set(t, true, srv(3600, port2)...)
		took := waitUntil(t, 5*time.Second, "the set follows the records", func() bool {
			return slices.Equal(a.backends(t), weighted(origins[1].url))
		})
		t.Logf("records changed under TTL 3600 → backend set changed in %v (MaxTTL %v)", took.Round(time.Millisecond), maxTTL)
	})
}

// TestDNSSchemeOption: ?scheme=h2c makes the addresses h2c:// backends,
// which the balancer reaches over cleartext HTTP/2.
func TestDNSSchemeOption(t *testing.T) {
	d := dnstest.Start(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	srv := &http.Server{Protocols: &p, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.Proto)
	})}
	var wg conc.WaitGroup
	wg.Go(func() { _ = srv.Serve(ln) })
	t.Cleanup(func() { _ = srv.Close(); wg.Wait() })
	ip, port := hostPort(t, "http://"+ln.Addr().String())
	d.Set(t, false, "grpc.test. 1 IN A "+ip)
	a := startInstance(t, "a", "round-robin", nil, nil, dnsOptions(d.Addr), "dns+a://grpc.test:"+strconv.Itoa(port)+"?scheme=h2c")
	if got, want := a.backends(t), weighted("h2c://"+ln.Addr().String()); !slices.Equal(got, want) {
		t.Fatalf("backends = %v, want %v", got, want)
	}
	resp, err := a.client.Get(a.url + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "HTTP/2.0" {
		t.Errorf("the backend saw %q, want HTTP/2.0", body)
	}
}
