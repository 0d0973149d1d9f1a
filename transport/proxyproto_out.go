package transport

import (
	"context"
	"net"
	"net/http"
	"net/netip"

	"github.com/pires/go-proxyproto"

	"github.com/roundhouse/roundhouse/actors"
)

// PROXY protocol out. A backend configured with proxy-protocol=v1 or v2
// (actors.BackendConfig.ProxyProtocol) expects every connection to begin
// with a PROXY header naming the client. The header belongs to the
// connection, not to a request, and that is the whole difficulty: a pooled
// keep-alive connection that carried client A's header would present every
// later request on it as A's. HAProxy's send-proxy accepts exactly that (a
// reused server connection carries its first client's address, so it
// turns reuse off for such servers unless told otherwise); Envoy keys its
// upstream pools by the downstream source address.
//
// Roundhouse's choice: for these backends keep-alive is off. Each request
// (each attempt) dials its own connection, writes the header of the
// client whose request it is, and closes it after the response, so no
// connection ever carries two clients' requests, whatever the timing. The
// cost is a TCP (and, for https://, TLS) handshake per request to those
// backends only; every other backend keeps the shared pool. A pool per
// client address (Envoy's way) would save handshakes for clients that send
// many requests, but with many clients it holds as many idle connections
// and needs an owner to bound and expire them; per-request connections are
// simple and plainly correct, and a backend that wants the client's address
// this way is usually behind an L4 hop that keeps its own connections.
// For the same reason these transports speak HTTP/1.1 only: HTTP/2 would
// multiplex many clients' requests on one connection.
//
// The header's source is the client as the balancer sees it (the peer, or
// the address an incoming PROXY header gave); its destination is the
// address the client connected to. Health probes, which have no client,
// send a LOCAL header (v2) or PROXY UNKNOWN (v1), which backends accept as
// the balancer speaking for itself.

// WithProxyProtocol returns the RoundTripper the proxy and the health
// monitors use: shared for backends without PROXY protocol, and for
// those with it, a transport per version tuned as o says, with keep-alive
// and HTTP/2 off, that writes the client's header on each new connection.
// The backend is the current attempt's (Proxy) or the probe's
// (actors.WithBackend).
func WithProxyProtocol(shared http.RoundTripper, o Options) http.RoundTripper {
	return &backendTransport{shared: shared, v1: proxyProtocolTransport(o, 1), v2: proxyProtocolTransport(o, 2)}
}

// backendTransport picks a transport per request by its backend.
type backendTransport struct {
	shared http.RoundTripper
	v1, v2 *http.Transport
}

func (t *backendTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	var b *actors.Backend
	if ex, ok := r.Context().Value(exchangeKey{}).(*exchange); ok {
		// RoundTrip runs on the caller's goroutine: for the proxy, the
		// handler goroutine, which alone writes the exchange.
		b = ex.backend
	} else {
		b = actors.BackendOf(r.Context())
	}
	switch {
	case b == nil:
	case b.ProxyProtocol == 1:
		return t.v1.RoundTrip(r)
	case b.ProxyProtocol == 2:
		return t.v2.RoundTrip(r)
	}
	return t.shared.RoundTrip(r)
}

// CloseIdleConnections closes the shared transport's idle connections (the
// others keep none).
func (t *backendTransport) CloseIdleConnections() {
	if c, ok := t.shared.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// proxyProtocolTransport is a transport for PROXY protocol backends of
// version v: one connection per request, HTTP/1.1, the header first.
func proxyProtocolTransport(o Options, v byte) *http.Transport {
	t := newHTTP(o)
	t.DisableKeepAlives = true
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	t.Protocols = &protocols
	dial := t.DialContext
	t.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		a, _ := ctx.Value(headerAddrsKey{}).(headerAddrsValue) // zero for a probe
		if _, err := proxyproto.HeaderProxyFromAddrs(v, a.src, a.dst).WriteTo(c); err != nil {
			_ = c.Close()
			// A "dial" error: nothing of the request was sent, so the
			// proxy may retry it anywhere.
			return nil, &net.OpError{Op: "dial", Net: network, Addr: c.RemoteAddr(), Err: err}
		}
		return c, nil
	}
	return t
}

// headerAddrsValue is the source and destination of the PROXY header on a
// connection dialled for one attempt; nil when unknown.
//
// The dial runs on a goroutine of http.Transport's, which may outlive the
// attempt. It gets these addresses as a value in the outbound request's
// context, made on the handler goroutine (rewrite) before the request
// reaches the transport and never changed after: the dial goroutine shares
// no memory with the exchange, which the handler goroutine goes on
// writing.
type headerAddrsValue struct{ src, dst net.Addr }

type headerAddrsKey struct{}

// withHeaderAddrs returns ctx carrying the addresses of in's client
// connection (see headerAddrsValue): the client as in.RemoteAddr has it,
// and the address it connected to.
func withHeaderAddrs(ctx context.Context, in *http.Request) context.Context {
	local, _ := in.Context().Value(http.LocalAddrContextKey).(net.Addr)
	var a headerAddrsValue
	a.src, a.dst = headerAddrs(in.RemoteAddr, local)
	return context.WithValue(ctx, headerAddrsKey{}, a)
}

// headerAddrs returns a client's connection's addresses, remote as
// http.Request.RemoteAddr has it, as *net.TCPAddr for a PROXY header; nil
// when either is unknown (the header is then LOCAL or UNKNOWN).
func headerAddrs(remote string, local net.Addr) (src, dst net.Addr) {
	ap, err := netip.ParseAddrPort(remote)
	la, ok := local.(*net.TCPAddr)
	if err != nil || !ok {
		return nil, nil
	}
	src = net.TCPAddrFromAddrPort(netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()))
	ip := la.IP
	if ip4 := ip.To4(); ip4 != nil {
		ip = ip4
	}
	return src, &net.TCPAddr{IP: ip, Port: la.Port}
}
