package routing

import (
	"net/netip"
	"strings"
)

// hostPattern is one entry of Route.Hosts, normalized: lower case, IPv6
// addresses in their canonical form without brackets.
type hostPattern struct {
	// name is the exact name or address, or for a wildcard the suffix
	// after "*." ("example.com" for "*.example.com").
	name string
	wild bool
}

// key is the pattern's normal written form, used to spot duplicates.
func (p hostPattern) key() string {
	if p.wild {
		return "*." + p.name
	}
	return p.name
}

// covers reports whether every host p matches is also matched by q's
// pattern e: the shadowing test for one pair of entries.
func (e hostPattern) covers(p hostPattern) bool {
	switch {
	case !e.wild:
		return !p.wild && p.name == e.name
	case p.wild: // *.a.b.c is covered by *.b.c and by *.a.b.c
		return p.name == e.name || strings.HasSuffix(p.name, "."+e.name)
	default:
		return !isIPv6(p.name) && strings.HasSuffix(p.name, "."+e.name)
	}
}

// isIPv6 reports a normalized IPv6 pattern: only those hold a colon.
func isIPv6(name string) bool { return strings.IndexByte(name, ':') >= 0 }

// parseHost checks one entry of Route.Hosts and normalizes it. It returns
// a reason, lower-case, when the entry is bad.
func parseHost(h string) (hostPattern, string) {
	if h == "" {
		return hostPattern{}, "a host cannot be empty; leave hosts out to match every host"
	}
	if h == "*" {
		return hostPattern{}, `"*" alone is not a pattern; leave hosts out to match every host`
	}
	if inner, ok := strings.CutPrefix(h, "["); ok || strings.IndexByte(h, ':') >= 0 {
		if ok {
			var closed bool
			if inner, closed = strings.CutSuffix(inner, "]"); !closed {
				return hostPattern{}, `an IPv6 address in brackets needs its "]"; and give no port: hosts match whatever the port`
			}
		}
		a, err := netip.ParseAddr(inner)
		if err != nil || !a.Is6() {
			return hostPattern{}, "want a host name or an IP address, without a port: hosts match whatever the port"
		}
		if a.Zone() != "" {
			return hostPattern{}, "an IPv6 zone never appears in a Host header"
		}
		return hostPattern{name: a.String()}, ""
	}
	if suffix, ok := strings.CutPrefix(h, "*."); ok {
		if suffix == "" {
			return hostPattern{}, "a wildcard needs a suffix"
		}
		if reason := checkName(suffix); reason != "" {
			return hostPattern{}, reason
		}
		return hostPattern{name: lowerASCII(suffix), wild: true}, ""
	}
	if reason := checkName(h); reason != "" {
		return hostPattern{}, reason
	}
	return hostPattern{name: lowerASCII(h)}, ""
}

// checkName checks a DNS name (or IPv4 address) as written in a pattern.
func checkName(n string) string {
	if strings.IndexByte(n, '*') >= 0 {
		return `"*" is allowed only as the whole first label, as in "*.example.com"`
	}
	if strings.HasSuffix(n, ".") {
		return `leave out the trailing dot: "example.com" also matches requests for "example.com."`
	}
	if len(n) > 253 {
		return "a host name has at most 253 characters"
	}
	for label := range strings.SplitSeq(n, ".") {
		if label == "" {
			return "a host name cannot have an empty label (two dots, or a leading dot)"
		}
		if len(label) > 63 {
			return "a label of a host name has at most 63 characters"
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			switch {
			case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_':
			case c >= 0x80:
				return `write an international name in its ASCII ("xn--") form`
			default:
				return "a host name has only letters, digits, '-', '_' and dots"
			}
		}
	}
	return ""
}

// lowerASCII lowers ASCII letters only. strings.ToLower would also map, for
// example, the Kelvin sign to "k", which no DNS name contains.
func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// hostKind says what a request's host turned out to be.
type hostKind uint8

const (
	hostName    hostKind = iota // a name or IPv4 address (or empty): exact and wildcard entries apply
	hostIPv6                    // an IPv6 literal, canonical: only exact entries apply
	hostInvalid                 // brackets around something that is not an IPv6 address: no entry applies
)

// requestHost appends to buf the form of a request's Host that patterns are
// compared with, and says what kind of host it is:
//
//   - "[v6]" and "[v6]:port" give the address in canonical form;
//   - otherwise the part before the first ":" (the port, if any, goes),
//     without one trailing ".", in lower case (ASCII letters only).
//
// An empty host (an HTTP/1.0 request without Host) gives an empty name,
// which only routes without hosts match.
func requestHost(buf []byte, host string) ([]byte, hostKind) {
	if inner, ok := strings.CutPrefix(host, "["); ok {
		end := strings.IndexByte(inner, ']')
		if end < 0 {
			return buf, hostInvalid
		}
		if rest := inner[end+1:]; rest != "" && rest[0] != ':' {
			return buf, hostInvalid
		}
		a, err := netip.ParseAddr(inner[:end])
		if err != nil || !a.Is6() {
			return buf, hostInvalid
		}
		return a.AppendTo(buf), hostIPv6
	}
	if i := strings.IndexByte(host, ':'); i >= 0 {
		host = host[:i]
	}
	host = strings.TrimSuffix(host, ".")
	for i := 0; i < len(host); i++ {
		c := host[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf = append(buf, c)
	}
	return buf, hostName
}
