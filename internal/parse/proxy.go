package parse

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// TrustedProxy parses one --trusted-proxy value: a CIDR such as
// 10.0.0.0/8 or 2001:db8::/32, or a single address (a /32 or /128).
func TrustedProxy(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("want a CIDR such as 10.0.0.0/8: %w", err)
		}
		if p.Addr().Zone() != "" {
			return netip.Prefix{}, errors.New("a CIDR must not have a zone")
		}
		if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
			// Clients' IPv4-mapped addresses are compared as IPv4 (see
			// TrustedProxies.Contains): so is a mapped range.
			p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("want an address or a CIDR such as 10.0.0.0/8: %w", err)
	}
	a = a.WithZone("").Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}
