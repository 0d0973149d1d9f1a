package transport

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/pires/go-proxyproto"
)

// PROXY protocol in. Behind an L4 balancer (HAProxy in TCP mode, an AWS
// NLB) every connection comes from the balancer, and the client's address
// travels in a PROXY protocol header (v1, text, or v2, binary) that the
// balancer writes before the first byte of the client's own. With
// FrontendOptions.ProxyProtocol set, the listener requires that header on
// every connection and the address it carries becomes the connection's
// remote address: http.Request.RemoteAddr, and so the forwarded headers,
// the access log, ip-hash and rate limiting all see the client, not the
// balancer. (A v2 LOCAL header, which HAProxy's own health checks send,
// leaves the peer's address in place.)
//
// The header is believed only from a peer in Trusted: anyone else could
// claim any address. So a connection is closed, before anything is read,
// when its peer is not trusted; and, when the header is missing, malformed
// or late (beyond the frontend's ReadHeaderTimeout), at its first read,
// before any request is parsed. Nothing from such a connection reaches a
// handler.
//
// The layer is the outermost of the listener stack (see NewFrontend): it
// sees the connection's first bytes, before the connection cap, TLS and
// the framing guard. The header is read on the connection's own goroutine
// (net/http's, or the TLS listener's handshake), never in Accept, so a slow
// peer holds up nobody else.
//
// Every refusal is logged, at most once per peer per LogEvery: a
// misconfigured balancer in front (PROXY protocol off on its side) would
// otherwise log a line per connection. The per-peer memory belongs to one
// goroutine, Run; connection goroutines hand it refusals on a buffered
// channel without waiting, and a refusal that finds the channel full is
// not logged (the log is bounded; the connection is closed all the same).

// ProxyProtocolOptions configures PROXY protocol on a frontend. Every zero
// field but Trusted takes the default named in its comment.
type ProxyProtocolOptions struct {
	// Trusted are the peers that may send a PROXY header: the balancers in
	// front. Connections from anyone else are closed. Empty: every
	// connection is closed.
	Trusted TrustedProxies
	// Logger receives the refusals; nil: none are logged.
	Logger hclog.Logger
	// LogEvery is the least time between two refusal lines about one peer;
	// 0: one minute.
	LogEvery time.Duration
	// MaxPeers bounds the peers remembered for LogEvery; 0: 10000. When
	// that many are remembered, those logged longer than LogEvery ago are
	// forgotten first; if none is, the newcomer is not logged.
	MaxPeers int
}

// ProxyProtocol requires and reads PROXY protocol headers on a Frontend's
// connections (see FrontendOptions.ProxyProtocol). Run must be running for
// refusals to be logged; its owner starts it and waits for it.
type ProxyProtocol struct {
	trusted  TrustedProxies
	log      hclog.Logger
	every    time.Duration
	maxPeers int
	refusals chan refusal // buffered; senders never wait
}

type refusal struct {
	peer   netip.Addr
	reason string
}

// peerLog is what Run remembers about one peer.
type peerLog struct {
	logged     time.Time // the last line about the peer
	suppressed int       // refusals since then, not logged
}

// NewProxyProtocol returns the PROXY protocol layer o describes, its
// logger not yet running.
func NewProxyProtocol(o ProxyProtocolOptions) *ProxyProtocol {
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
	if o.LogEvery <= 0 {
		o.LogEvery = time.Minute
	}
	if o.MaxPeers <= 0 {
		o.MaxPeers = 10000
	}
	return &ProxyProtocol{trusted: o.Trusted, log: o.Logger, every: o.LogEvery, maxPeers: o.MaxPeers,
		refusals: make(chan refusal, 256)}
}

// Run logs refusals, each peer at most once per LogEvery, until ctx is
// done. It owns the per-peer memory.
func (p *ProxyProtocol) Run(ctx context.Context) error {
	peers := map[netip.Addr]*peerLog{}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case r := <-p.refusals:
			p.note(peers, r, time.Now())
		}
	}
}

// note logs r unless its peer was logged less than p.every ago.
func (p *ProxyProtocol) note(peers map[netip.Addr]*peerLog, r refusal, now time.Time) {
	pl := peers[r.peer]
	if pl != nil && now.Sub(pl.logged) < p.every {
		pl.suppressed++
		return
	}
	if pl == nil {
		if len(peers) >= p.maxPeers {
			for a, old := range peers {
				if now.Sub(old.logged) >= p.every {
					delete(peers, a)
				}
			}
			if len(peers) >= p.maxPeers {
				return // too many noisy peers at once: this one goes unlogged
			}
		}
		pl = &peerLog{}
		peers[r.peer] = pl
	}
	args := []any{"peer", r.peer.String(), "reason", r.reason}
	if pl.suppressed > 0 {
		args = append(args, "since_last", pl.suppressed)
	}
	p.log.Warn("connection refused: PROXY protocol", args...)
	pl.logged, pl.suppressed = now, 0
}

// refuse hands r to Run without waiting: a full mailbox drops it.
func (p *ProxyProtocol) refuse(peer netip.Addr, reason string) {
	select {
	case p.refusals <- refusal{peer: peer, reason: reason}:
	default:
	}
}

// listener wraps ln so that it accepts only connections from trusted
// peers, each reading its PROXY header (within timeout) before anything
// else.
func (p *ProxyProtocol) listener(ln net.Listener, timeout time.Duration) net.Listener {
	return &proxyListener{Listener: ln, pp: p, timeout: timeout}
}

type proxyListener struct {
	net.Listener
	pp      *ProxyProtocol
	timeout time.Duration
}

// Accept returns the next connection from a trusted peer, closing the
// others.
func (l *proxyListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		peer, ok := tcpPeer(c.RemoteAddr())
		if !ok || !l.pp.trusted.Contains(peer) {
			l.pp.refuse(peer, "peer is not a trusted proxy")
			_ = c.Close()
			continue
		}
		pc := proxyproto.NewConn(c, proxyproto.WithPolicy(proxyproto.REQUIRE), proxyproto.SetReadHeaderTimeout(l.timeout))
		return &proxyConn{Conn: pc, peer: peer, pp: l.pp}, nil
	}
}

// proxyConn is a connection from a trusted peer. Its RemoteAddr is the
// header's source address once the header is read (the first Read, or
// RemoteAddr itself, reads it); its reads fail if the header is bad.
type proxyConn struct {
	*proxyproto.Conn
	peer netip.Addr
	pp   *ProxyProtocol
}

// Read reads the header first; a bad one is reported for the log and fails
// this and every later read, so net/http closes the connection.
func (c *proxyConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if err != nil && c.Conn.ProxyHeader() == nil {
		c.pp.refuse(c.peer, headerProblem(err))
	}
	return n, err
}

// headerProblem describes a header read's failure for the log.
func headerProblem(err error) string {
	if errors.Is(err, proxyproto.ErrNoProxyProtocol) {
		return "no PROXY header (or none in time)"
	}
	return "malformed PROXY header: " + err.Error()
}

// tcpPeer is a's IP address, unmapped.
func tcpPeer(a net.Addr) (netip.Addr, bool) {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return netip.Addr{}, false
	}
	ip, ok := netip.AddrFromSlice(ta.IP)
	return ip.Unmap(), ok
}
