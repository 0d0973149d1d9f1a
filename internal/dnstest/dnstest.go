// Package dnstest runs an authoritative DNS server for tests, on a random
// UDP port of 127.0.0.1, serving records the test sets and changes.
package dnstest

import (
	"net"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// Server is an authoritative DNS server for tests, on a random UDP
// port of 127.0.0.1. The test sets its records; names it has none for get
// NXDOMAIN with an SOA whose minimum is 1 s.
type Server struct {
	Addr string // host:port, UDP
	srv  *dns.Server

	mu      sync.Mutex
	records map[uint16]map[string][]dns.RR // by type, then owner name
	extra   bool                           // SRV answers carry the targets' addresses
	fail    bool                           // answer SERVFAIL
	queries int
}

// Start starts a server with no records; it stops when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := &Server{Addr: pc.LocalAddr().String(), records: map[uint16]map[string][]dns.RR{}}
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

// Set replaces the records (in zone-file syntax, e.g. "web.test. 1 IN A
// 127.0.0.1"). With extra, SRV answers carry their targets' A and AAAA
// records in the additional section, as Consul's do.
func (d *Server) Set(t testing.TB, extra bool, lines ...string) {
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

// SetFail makes the server answer SERVFAIL (true) or from its records.
func (d *Server) SetFail(fail bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.fail = fail
}

// Queries returns how many queries the server has answered.
func (d *Server) Queries() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.queries
}

// ServeDNS answers from the records.
func (d *Server) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
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
