package transport

import (
	"net/http"
	"net/http/httputil"
	"net/netip"
	"strings"
)

// Forwarded headers. The balancer tells its backends who the client is, the
// host it asked for and the scheme it used, in X-Forwarded-For,
// X-Forwarded-Host, X-Forwarded-Proto and the standard Forwarded (RFC 7239).
//
// Whatever a client sends in those headers is a claim, not a fact. A peer
// that is not a trusted proxy gets its claims dropped (ReverseProxy strips
// the four headers before Rewrite) and the balancer writes its own. A peer in
// TrustedProxies is another proxy in front of us: its X-Forwarded-For and
// Forwarded lists are kept and our hop is appended, and its
// X-Forwarded-Host and -Proto are kept (it saw the original request; we
// only saw its copy), falling back to ours when it sent none.

// TrustedProxies is a set of address ranges whose forwarded headers are
// believed. The zero value trusts nobody.
type TrustedProxies []netip.Prefix

// Contains reports whether a is in one of the ranges. IPv4-mapped IPv6
// addresses match IPv4 ranges.
func (t TrustedProxies) Contains(a netip.Addr) bool {
	a = a.WithZone("").Unmap()
	for _, p := range t {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// peerAddr is the address of the connection's other end, from
// http.Request.RemoteAddr ("ip:port"); !ok when it cannot be parsed.
func peerAddr(r *http.Request) (netip.Addr, bool) {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}, false
	}
	return ap.Addr().WithZone("").Unmap(), true
}

// setForwarded writes the forwarded headers of pr.Out; see the comment at
// the top of this file.
func setForwarded(pr *httputil.ProxyRequest, trusted TrustedProxies) {
	forwardedOf(pr.In, trusted).set(pr.Out.Header)
}

// forwarded holds what our forwarded headers say about one request: the
// values of X-Forwarded-For, Forwarded, X-Forwarded-Host and
// X-Forwarded-Proto, "" for a header not to send. forwardedOf reads them
// from the client's request and set writes them into an outbound header,
// so that the two may be one map (see prepareHeader).
type forwarded struct{ xff, fwd, host, proto string }

// forwardedOf reads the client's request in (its peer, and a trusted
// peer's own forwarded headers) for forwarded's values; it writes nothing.
func forwardedOf(in *http.Request, trusted TrustedProxies) forwarded {
	peer, ok := peerAddr(in)
	believe := ok && trusted.Contains(peer)
	prior := func(name string) string {
		if !believe || nominated(in.Header, name) {
			return ""
		}
		return strings.Join(in.Header.Values(name), ", ")
	}

	var f forwarded
	f.host, f.proto = prior("X-Forwarded-Host"), prior("X-Forwarded-Proto")
	if f.host == "" || strings.Contains(f.host, ",") {
		f.host = in.Host
	}
	if f.proto != "http" && f.proto != "https" {
		f.proto = scheme(in)
	}
	if !believe {
		// The usual case: the client's address and our Forwarded element
		// in one string, one allocation for both values.
		var buf [160]byte
		b := buf[:0]
		if ok {
			b = peer.AppendTo(b)
		}
		n := len(b)
		both := string(appendForwardedElement(b, peer, ok, in.Host, scheme(in)))
		f.xff, f.fwd = both[:n], both[n:]
		return f
	}
	f.xff = appendList(prior("X-Forwarded-For"), peer.String())
	f.fwd = appendList(prior("Forwarded"), forwardedElement(peer, ok, in.Host, scheme(in)))
	return f
}

// set writes f into h, replacing or deleting each of the four headers.
func (f forwarded) set(h http.Header) {
	// One backing array for the four value slices (names canonical): one
	// allocation where Header.Set makes one each.
	vals := make([]string, 0, 4)
	set := func(name, v string) {
		if v == "" {
			delete(h, name)
			return
		}
		vals = append(vals, v)
		h[name] = vals[len(vals)-1 : len(vals) : len(vals)]
	}
	set("X-Forwarded-For", f.xff)
	set("Forwarded", f.fwd)
	set("X-Forwarded-Host", f.host)
	set("X-Forwarded-Proto", f.proto)
}

// scheme is the scheme the client used to reach us.
func scheme(r *http.Request) string {
	if r.TLS != nil {
		return "https"
	}
	return "http"
}

func appendList(list, v string) string {
	if list == "" {
		return v
	}
	return list + ", " + v
}

// nominated reports whether the Connection header lists name, making it a
// hop-by-hop header that must not travel on.
func nominated(h http.Header, name string) bool { return hasToken(h["Connection"], name) }

// forwardedElement builds our hop of a Forwarded header (RFC 7239 §4):
// for=<client>;host=<host>;proto=<scheme>. An unknown client is "unknown";
// an IPv6 client is bracketed and quoted; host is quoted when it is not a
// token, and left out when it holds bytes a header must not carry.
func forwardedElement(client netip.Addr, known bool, host, proto string) string {
	var buf [128]byte
	return string(appendForwardedElement(buf[:0], client, known, host, proto))
}

// appendForwardedElement appends forwardedElement's element to b.
func appendForwardedElement(b []byte, client netip.Addr, known bool, host, proto string) []byte {
	b = append(b, "for="...)
	switch {
	case !known:
		b = append(b, "unknown"...)
	case client.Is6():
		b = append(client.AppendTo(append(b, `"[`...)), `]"`...)
	default:
		b = client.AppendTo(b)
	}
	if host != "" && isQuotable(host) {
		b = appendTokenOrQuoted(append(b, ";host="...), host)
	}
	return append(append(b, ";proto="...), proto...)
}

// appendTokenOrQuoted appends s as an RFC 9110 token if it is one,
// otherwise as a quoted-string.
func appendTokenOrQuoted(b []byte, s string) []byte {
	if isToken(s) {
		return append(b, s...)
	}
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			b = append(b, '\\')
		}
		b = append(b, s[i])
	}
	return append(b, '"')
}

// isToken reports whether s is a non-empty RFC 9110 token.
func isToken[T string | []byte](s T) bool {
	if len(s) == 0 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isTokenByte(s[i]) {
			return false
		}
	}
	return true
}

func isTokenByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// isQuotable reports whether every byte of s may appear in a quoted-string
// (HTAB, SP, VCHAR, obs-text): no control characters.
func isQuotable(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// clientAddr is the address a request is charged to (rate limiting): the
// peer, or, when the peer is a trusted proxy, the nearest address in
// X-Forwarded-For that is not a trusted proxy (walking right to left, as
// nginx's real_ip_recursive does). !ok when the peer address is unknown.
func clientAddr(r *http.Request, trusted TrustedProxies) (netip.Addr, bool) {
	addr, ok := peerAddr(r)
	if !ok || len(trusted) == 0 {
		return addr, ok
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0 && trusted.Contains(addr); i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break
		}
		addr = a.WithZone("").Unmap()
	}
	return addr, true
}

// setForwardedPrefix writes X-Forwarded-Prefix for a routed request: what
// a trusted proxy in front says it removed, followed by removed, what the
// route's strip_prefix removed; no header when neither removed anything.
// Like the other forwarded headers, what a peer that is not a trusted
// proxy sends is a claim and is dropped: a backend that builds its links
// from the header must not take a client's word for it. (Without routes
// the header passes as it came, as before pools.)
func setForwardedPrefix(pr *httputil.ProxyRequest, trusted TrustedProxies, removed string) {
	setPrefix(pr.Out.Header, forwardedPrefixOf(pr.In, trusted, removed))
}

// forwardedPrefixOf is X-Forwarded-Prefix's value for in (see
// setForwardedPrefix); "" for none. It writes nothing.
func forwardedPrefixOf(in *http.Request, trusted TrustedProxies, removed string) string {
	const name = "X-Forwarded-Prefix"
	prior := ""
	if peer, ok := peerAddr(in); ok && trusted.Contains(peer) && !nominated(in.Header, name) {
		prior = strings.Join(in.Header.Values(name), ", ")
	}
	if removed != "" {
		prior = strings.TrimSuffix(prior, "/") + removed
	}
	return prior
}

// setPrefix writes X-Forwarded-Prefix into h, or deletes it for "".
func setPrefix(h http.Header, prefix string) {
	if prefix == "" {
		h.Del("X-Forwarded-Prefix")
		return
	}
	h.Set("X-Forwarded-Prefix", prefix)
}
