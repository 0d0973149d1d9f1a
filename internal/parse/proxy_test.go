package parse

import "testing"

func TestTrustedProxy(t *testing.T) {
	tests := []struct {
		name, in, want string
		ok             bool
	}{
		{"an IPv4 CIDR is kept", "10.0.0.0/8", "10.0.0.0/8", true},
		{"a CIDR with host bits is masked", "10.1.2.3/8", "10.0.0.0/8", true},
		{"an IPv6 CIDR is kept", "2001:db8::/32", "2001:db8::/32", true},
		{"a bare IPv4 address is a /32", "192.0.2.7", "192.0.2.7/32", true},
		{"a bare IPv6 address is a /128", "2001:db8::1", "2001:db8::1/128", true},
		{"an IPv4-mapped address is IPv4", "::ffff:192.0.2.7", "192.0.2.7/32", true},
		{"an IPv4-mapped range is the IPv4 range", "::ffff:10.0.0.0/104", "10.0.0.0/8", true},
		{"an IPv4-mapped /128 is a /32", "::ffff:1.2.3.4/128", "1.2.3.4/32", true},
		{"a host name is refused", "proxy.example", "", false},
		{"a bad prefix length is refused", "10.0.0.0/33", "", false},
		{"an empty value is refused", "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := TrustedProxy(tt.in)
			if (err == nil) != tt.ok {
				t.Fatalf("TrustedProxy(%q) error %v, want ok=%v", tt.in, err, tt.ok)
			}
			if tt.ok && got.String() != tt.want {
				t.Errorf("TrustedProxy(%q) = %s, want %s", tt.in, got, tt.want)
			}
		})
	}
}

// FuzzParseTrustedProxy: TrustedProxy never panics, and what it accepts
// is a valid, masked prefix that holds its own address as
// transport.TrustedProxies.Contains matches addresses: zone dropped,
// IPv4-mapped unmapped (transport's
// TestTrustedProxiesContainEveryParsedProxy checks Contains itself).
func FuzzParseTrustedProxy(f *testing.F) {
	for _, s := range []string{"10.0.0.0/8", "10.1.2.3/8", "2001:db8::/32", "192.0.2.7", "::ffff:192.0.2.7", "fe80::1%eth0", "fe80::/10%x", "1.2.3.4/33", "::ffff:10.0.0.0/104", "::ffff:1.2.3.4/128"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := TrustedProxy(s)
		if err != nil {
			return
		}
		if !p.IsValid() || p != p.Masked() || !p.Contains(p.Addr().WithZone("").Unmap()) {
			t.Fatalf("TrustedProxy(%q) = %v", s, p)
		}
	})
}
