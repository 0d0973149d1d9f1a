package discovery

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/miekg/dns"

	"github.com/roundhouse/roundhouse/internal/parse"
)

// dnsProvider resolves a name again and again, each time after the
// answer's TTL, bounded by Options.MinTTL and MaxTTL, and applies the
// backends the answer gives. It asks one resolver directly with
// github.com/miekg/dns, since the standard library's resolver hides the
// TTLs.
//
// dns+srv: one backend per SRV target address and port. Targets are
// resolved from the answer's additional section when the server sent
// addresses there (Consul does), otherwise with A and AAAA queries. The
// records with the lowest priority are the active backends, with the SRV
// weights as their weights (scaled down to 1..1000 when larger; 0 counts as
// 1); the records of any higher priority are standbys (weight 0), used only
// while no active backend is UP, as RFC 2782 intends.
//
// dns+a: one backend per A or AAAA address, on the URL's port, weight 1.
//
// An answer is the truth: NXDOMAIN or no records empty the set (the
// backends drain). A failure (timeout, SERVFAIL, REFUSED) changes nothing:
// the last set stays, the outage is logged once, and the name is asked
// again after a doubling wait.
type dnsProvider struct {
	spec   parse.Discovery
	opts   Options
	log    hclog.Logger
	server string        // host:port of the resolver
	ready  chan struct{} // closed by Run after the first answer

	// Owned by Run's goroutine.
	outage  outage
	applier *applier
}

func newDNS(spec parse.Discovery, opts Options, log hclog.Logger) (*dnsProvider, error) {
	server := opts.DNSServer
	if server == "" {
		cc, err := dns.ClientConfigFromFile("/etc/resolv.conf")
		if err != nil {
			return nil, fmt.Errorf("no --dns-server and no resolver: %w", err)
		}
		if len(cc.Servers) == 0 {
			return nil, errors.New("no --dns-server and no nameserver in /etc/resolv.conf")
		}
		server = net.JoinHostPort(cc.Servers[0], cc.Port)
	}
	log = log.With("dns_server", server)
	return &dnsProvider{
		spec: spec, opts: opts, log: log, server: server,
		ready: make(chan struct{}), outage: outage{log: log, what: "dns"},
	}, nil
}

func (p *dnsProvider) Source() string         { return p.spec.String() }
func (p *dnsProvider) Ready() <-chan struct{} { return p.ready }

// Run is the provider's goroutine; see Provider.
func (p *dnsProvider) Run(ctx context.Context, sink Sink) error {
	p.applier = newApplier(sink, p.log)
	wait, ready := p.opts.RetryMin, false
	for {
		want, ttl, err := p.resolve(ctx)
		if ctx.Err() != nil {
			return nil
		}
		next := wait
		if err != nil {
			p.outage.failed(err, p.applier.size())
			wait = min(2*wait, p.opts.RetryMax)
		} else {
			p.outage.succeeded()
			wait = p.opts.RetryMin
			if err := p.applier.apply(ctx, want); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("dns %s: %w", p.Source(), err)
			}
			if !ready {
				ready = true
				close(p.ready)
			}
			next = min(max(ttl, p.opts.MinTTL), p.opts.MaxTTL)
			p.log.Debug("resolved", "backends", len(want), "ttl", ttl, "next", next)
		}
		if !sleep(ctx, next) {
			return nil
		}
	}
}

// resolve asks for the provider's records and returns the backends they
// give and the smallest TTL among them.
func (p *dnsProvider) resolve(ctx context.Context) (Set, time.Duration, error) {
	if p.spec.Kind == parse.KindDNSA {
		addrs, ttl, err := p.addresses(ctx, p.spec.Name)
		if err != nil {
			return nil, 0, err
		}
		out := Set{}
		for _, a := range addrs {
			b := Backend{URL: backendURL(p.spec.Scheme, a, p.spec.Port), Weight: 1, Enabled: true}
			out[b.URL.String()] = b
		}
		return out, ttl, nil
	}
	return p.resolveSRV(ctx)
}

func (p *dnsProvider) resolveSRV(ctx context.Context) (Set, time.Duration, error) {
	r, err := p.query(ctx, p.spec.Name, dns.TypeSRV)
	if err != nil {
		return nil, 0, err
	}
	var srvs []*dns.SRV
	ttl := time.Duration(math.MaxInt64)
	for _, rr := range r.Answer {
		if srv, ok := rr.(*dns.SRV); ok && srv.Target != "." {
			srvs = append(srvs, srv)
			ttl = min(ttl, seconds(srv.Hdr.Ttl))
		}
	}
	if len(srvs) == 0 {
		return Set{}, negativeTTL(r), nil
	}
	// Addresses the server sent along, by target.
	extra := map[string][]netip.Addr{}
	for _, rr := range r.Extra {
		if a, ok := address(rr); ok {
			name := dns.CanonicalName(rr.Header().Name)
			extra[name] = append(extra[name], a)
			ttl = min(ttl, seconds(rr.Header().Ttl))
		}
	}
	active := srvs[0].Priority
	maxWeight := 0
	for _, s := range srvs {
		active = min(active, s.Priority)
	}
	for _, s := range srvs {
		if s.Priority == active {
			maxWeight = max(maxWeight, int(s.Weight))
		}
	}
	out := Set{}
	for _, s := range srvs {
		target := dns.CanonicalName(s.Target)
		addrs, ok := extra[target]
		if !ok {
			var attl time.Duration
			if addrs, attl, err = p.addresses(ctx, target); err != nil {
				return nil, 0, err
			}
			extra[target] = addrs
			ttl = min(ttl, attl)
		}
		w := 0 // a standby: a higher priority number than the active records'
		if s.Priority == active {
			w = srvWeight(int(s.Weight), maxWeight)
		}
		for _, a := range addrs {
			b := Backend{URL: backendURL(p.spec.Scheme, a, int(s.Port)), Weight: w, Enabled: true}
			if old, dup := out[b.URL.String()]; !dup || old.Weight < w {
				out[b.URL.String()] = b
			}
		}
	}
	return out, ttl, nil
}

// srvWeight maps an SRV weight (0 to 65535) to a backend weight (1 to
// 1000): unchanged when the largest active weight is at most 1000,
// scaled to 1000 otherwise. SRV weight 0 means "very rarely", not
// "standby", so it becomes 1.
func srvWeight(w, maxWeight int) int {
	if maxWeight > 1000 {
		w = int(math.Round(float64(w) * 1000 / float64(maxWeight)))
	}
	return max(w, 1)
}

// addresses resolves name's A and AAAA records. NXDOMAIN or no records
// give no address; the TTL is then the negative answers'.
func (p *dnsProvider) addresses(ctx context.Context, name string) ([]netip.Addr, time.Duration, error) {
	var out []netip.Addr
	ttl := time.Duration(math.MaxInt64)
	neg := time.Duration(math.MaxInt64)
	for _, qtype := range []uint16{dns.TypeA, dns.TypeAAAA} {
		r, err := p.query(ctx, name, qtype)
		if err != nil {
			return nil, 0, err
		}
		found := false
		for _, rr := range r.Answer {
			if a, ok := address(rr); ok {
				out = append(out, a)
				ttl = min(ttl, seconds(rr.Header().Ttl))
				found = true
			}
		}
		if !found {
			neg = min(neg, negativeTTL(r))
		}
	}
	if len(out) == 0 {
		return nil, neg, nil
	}
	return out, ttl, nil
}

// query sends one question to the resolver, over UDP and again over TCP
// if the answer was truncated. An answer (NOERROR or NXDOMAIN) is returned;
// any other rcode is an error.
func (p *dnsProvider) query(ctx context.Context, name string, qtype uint16) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.SetEdns0(4096, false)
	qctx, cancel := context.WithTimeout(ctx, p.opts.Timeout)
	defer cancel()
	c := &dns.Client{Net: "udp", Timeout: p.opts.Timeout}
	r, _, err := c.ExchangeContext(qctx, m, p.server)
	if err == nil && r.Truncated {
		c.Net = "tcp"
		r, _, err = c.ExchangeContext(qctx, m, p.server)
	}
	what := name + " " + dns.TypeToString[qtype]
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if r.Rcode != dns.RcodeSuccess && r.Rcode != dns.RcodeNameError {
		return nil, fmt.Errorf("%s: %s", what, dns.RcodeToString[r.Rcode])
	}
	return r, nil
}

// address returns the address of an A or AAAA record.
func address(rr dns.RR) (netip.Addr, bool) {
	var ip net.IP
	switch rr := rr.(type) {
	case *dns.A:
		ip = rr.A
	case *dns.AAAA:
		ip = rr.AAAA
	default:
		return netip.Addr{}, false
	}
	a, ok := netip.AddrFromSlice(ip)
	return a.Unmap(), ok
}

// negativeTTL is how long a negative answer may be cached: its SOA's
// minimum, capped by the SOA record's own TTL (RFC 2308); 0 without one.
func negativeTTL(r *dns.Msg) time.Duration {
	for _, rr := range r.Ns {
		if soa, ok := rr.(*dns.SOA); ok {
			return seconds(min(soa.Minttl, soa.Hdr.Ttl))
		}
	}
	return 0
}

func seconds(ttl uint32) time.Duration { return time.Duration(ttl) * time.Second }

// backendURL is scheme://addr:port; scheme "" is http.
func backendURL(scheme string, a netip.Addr, port int) *url.URL {
	if scheme == "" {
		scheme = "http"
	}
	return &url.URL{Scheme: scheme, Host: net.JoinHostPort(a.String(), strconv.Itoa(port))}
}
