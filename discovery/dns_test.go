package discovery

import (
	"net"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// dnsServer is an authoritative DNS server for the tests, on a random UDP
// port of 127.0.0.1. The test sets its records; names it has none for get
// NXDOMAIN with an SOA whose minimum is 1 s.
type dnsServer struct {
	addr string
	srv  *dns.Server

	mu      sync.Mutex
	records map[uint16]map[string][]dns.RR // by type, then owner name
	extra   bool                           // SRV answers carry the targets' addresses
	fail    bool                           // answer SERVFAIL
	queries int
}

func startDNS(t *testing.T) *dnsServer {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := &dnsServer{addr: pc.LocalAddr().String(), records: map[uint16]map[string][]dns.RR{}}
	started := make(chan struct{})
	d.srv = &dns.Server{PacketConn: pc, Handler: d, NotifyStartedFunc: func() { close(started) }}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = d.srv.ActivateAndServe()
	}()
	<-started
	t.Cleanup(func() {
		_ = d.srv.Shutdown()
		<-done
	})
	return d
}

// set replaces the records (in zone-file syntax, e.g. "web.test. 1 IN A
// 127.0.0.1").
func (d *dnsServer) set(t *testing.T, extra bool, lines ...string) {
	t.Helper()
	records := map[uint16]map[string][]dns.RR{}
	for _, l := range lines {
		rr, err := dns.NewRR(l)
		if err != nil {
			t.Fatalf("record %q: %v", l, err)
		}
		h := rr.Header()
		if records[h.Rrtype] == nil {
			records[h.Rrtype] = map[string][]dns.RR{}
		}
		records[h.Rrtype][h.Name] = append(records[h.Rrtype][h.Name], rr)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.records, d.extra = records, extra
}

func (d *dnsServer) setFail(fail bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.fail = fail
}

func (d *dnsServer) queryCount() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.queries
}

// ServeDNS answers from the records.
func (d *dnsServer) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.queries++
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	if d.fail {
		m.Rcode = dns.RcodeServerFailure
		_ = w.WriteMsg(m)
		return
	}
	q := req.Question[0]
	name := dns.CanonicalName(q.Name)
	m.Answer = append(m.Answer, d.records[q.Qtype][name]...)
	known := false
	for _, byName := range d.records {
		known = known || len(byName[name]) > 0
	}
	if !known {
		m.Rcode = dns.RcodeNameError
	}
	if len(m.Answer) == 0 {
		soa, _ := dns.NewRR("test. 1 IN SOA ns.test. admin.test. 1 60 60 60 1")
		m.Ns = append(m.Ns, soa)
	}
	if d.extra && q.Qtype == dns.TypeSRV {
		for _, rr := range m.Answer {
			target := dns.CanonicalName(rr.(*dns.SRV).Target)
			m.Extra = append(m.Extra, d.records[dns.TypeA][target]...)
			m.Extra = append(m.Extra, d.records[dns.TypeAAAA][target]...)
		}
	}
	_ = w.WriteMsg(m)
}

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
			d := startDNS(t)
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
			d.set(t, extra, slices.Concat(srv(0, 10, 10), srv(1, 10, 20), srv(2, 20, 5))...)
			a := startInstance(t, "a", "weighted-round-robin", nil, nil, dnsOptions(d.addr), "dns+srv://_web._tcp.test")
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
			d.set(t, extra, slices.Concat(srv(1, 10, 20), srv(2, 10, 30))...)
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
	d := startDNS(t)
	origins := startOrigins(t, 1)
	ip, port := hostPort(t, origins[0].url)
	d.set(t, false, "web.test. 1 IN A "+ip)
	src := "dns+a://web.test:" + strconv.Itoa(port)
	a := startInstance(t, "a", "round-robin", nil, nil, dnsOptions(d.addr), src)
	if got, want := a.backends(t), weighted(origins[0].url); !slices.Equal(got, want) {
		t.Fatalf("backends = %v, want %v", got, want)
	}
	routesTo(t, a, "b1", 2*time.Second)

	d.set(t, false, "web.test. 1 IN A "+ip, "web.test. 1 IN A 127.0.0.9", "web.test. 1 IN AAAA ::1")
	p := strconv.Itoa(port)
	want := weighted(origins[0].url, "http://127.0.0.9:"+p, "http://[::1]:"+p)
	waitUntil(t, 5*time.Second, "two more addresses join", func() bool { return slices.Equal(a.backends(t), want) })

	d.set(t, false) // NXDOMAIN
	waitUntil(t, 5*time.Second, "NXDOMAIN empties the set", func() bool { return len(a.backends(t)) == 0 })
}

// TestDNSFailureKeepsTheSet: while the resolver fails (SERVFAIL) the last
// set stays in service; the outage is logged once and so is the recovery.
func TestDNSFailureKeepsTheSet(t *testing.T) {
	d := startDNS(t)
	origins := startOrigins(t, 2)
	ip, port := hostPort(t, origins[0].url)
	_, port2 := hostPort(t, origins[1].url)
	d.set(t, true,
		"_web._tcp.test. 1 IN SRV 1 1 "+strconv.Itoa(port)+" b1.test.",
		"_web._tcp.test. 1 IN SRV 1 1 "+strconv.Itoa(port2)+" b2.test.",
		"b1.test. 1 IN A "+ip, "b2.test. 1 IN A "+ip)
	a := startInstance(t, "a", "round-robin", nil, nil, dnsOptions(d.addr), "dns+srv://_web._tcp.test")
	want := weighted(origins[0].url, origins[1].url)
	if got := a.backends(t); !slices.Equal(got, want) {
		t.Fatalf("backends = %v, want %v", got, want)
	}
	d.setFail(true)
	a.logs.waitFor(t, 1, "dns unreachable")
	asked := d.queryCount()
	waitUntil(t, 5*time.Second, "the name is asked again a few times", func() bool { return d.queryCount() >= asked+3 })
	if got := a.backends(t); !slices.Equal(got, want) {
		t.Errorf("during the failure: backends = %v, want the last set %v", got, want)
	}
	routesTo(t, a, "b2", 2*time.Second)
	d.setFail(false)
	a.logs.waitFor(t, 1, "dns reachable again")
	if n := a.logs.count("dns unreachable"); n != 1 {
		t.Errorf("the outage was logged %d times, want once", n)
	}
}
