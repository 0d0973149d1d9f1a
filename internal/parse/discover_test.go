package parse

import (
	"slices"
	"strings"
	"testing"
)

func TestDiscoverURL(t *testing.T) {
	good := []struct {
		name, raw string
		want      Discovery
		canonical string
	}{
		{"etcd with one endpoint and a prefix gets the prefix's slashes", "etcd://127.0.0.1:2379/roundhouse/backends",
			Discovery{Kind: KindEtcd, Endpoints: []string{"127.0.0.1:2379"}, Prefix: "/roundhouse/backends/"}, "etcd://127.0.0.1:2379/roundhouse/backends/"},
		{"etcd with several endpoints, a default port and IPv6", "ETCD://a.example:1,B.example,[::1]:3/p/",
			Discovery{Kind: KindEtcd, Endpoints: []string{"a.example:1", "b.example:2379", "[::1]:3"}, Prefix: "/p/"}, "etcd://a.example:1,b.example:2379,[::1]:3/p/"},
		{"dns+srv with a service name", "dns+srv://_http._tcp.Web.Service.Consul.",
			Discovery{Kind: KindDNSSRV, Name: "_http._tcp.web.service.consul"}, "dns+srv://_http._tcp.web.service.consul"},
		{"dns+a with a port", "dns+a://web.default.svc.cluster.local:8080/",
			Discovery{Kind: KindDNSA, Name: "web.default.svc.cluster.local", Port: 8080, Scheme: "http"}, "dns+a://web.default.svc.cluster.local:8080"},
		{"dns+srv finding h2c backends", "dns+srv://_grpc._tcp.api.test?scheme=h2c",
			Discovery{Kind: KindDNSSRV, Name: "_grpc._tcp.api.test", Scheme: "h2c"}, "dns+srv://_grpc._tcp.api.test?scheme=h2c"},
		{"dns+a finding https backends", "dns+a://api.test:443/?scheme=HTTPS",
			Discovery{Kind: KindDNSA, Name: "api.test", Port: 443, Scheme: "https"}, "dns+a://api.test:443?scheme=https"},
		{"dns+a saying http", "dns+a://api.test:80?scheme=http",
			Discovery{Kind: KindDNSA, Name: "api.test", Port: 80, Scheme: "http"}, "dns+a://api.test:80"},
	}
	for _, tc := range good {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DiscoverURL(tc.raw)
			if err != nil {
				t.Fatalf("DiscoverURL(%q): %v", tc.raw, err)
			}
			if got.Kind != tc.want.Kind || !slices.Equal(got.Endpoints, tc.want.Endpoints) || got.Prefix != tc.want.Prefix ||
				got.Name != tc.want.Name || got.Port != tc.want.Port || (tc.want.Scheme != "" && got.Scheme != tc.want.Scheme) {
				t.Errorf("DiscoverURL(%q) = %+v, want %+v", tc.raw, got, tc.want)
			}
			if s := got.String(); s != tc.canonical {
				t.Errorf("String() = %q, want %q", s, tc.canonical)
			}
		})
	}
	bad := []struct{ raw, want string }{
		{"127.0.0.1:2379/x", "want a URL such as"},
		{"consul://x/y", `scheme "consul"`},
		{"etcd://127.0.0.1:2379", "missing key prefix"},
		{"etcd://127.0.0.1:2379/", "missing key prefix"},
		{"etcd:///prefix", "missing endpoint"},
		{"etcd://h:99999/p", `bad port "99999"`},
		{"etcd://h:0/p", `bad port "0"`},
		{"etcd://h,/p", "missing name"},
		{"etcd://h/a//b", "empty path segment"},
		{"etcd://user@h/p", "user info"},
		{"etcd://h/p?x=1", "query"},
		{"dns+srv://_web._tcp.x:53", "takes no port"},
		{"dns+srv://x/y", "takes no path"},
		{"dns+srv://", "missing name"},
		{"dns+srv://a..b", "empty or over-long label"},
		{"dns+srv://we b", "not allowed"},
		{"dns+a://web.test", "want dns+a://NAME:PORT"},
		{"dns+a://web.test:http", `bad port "http"`},
		{"dns+a://web.test:08080", `bad port "08080"`},
		{"dns+a://" + strings.Repeat("a", 64) + ":80", "over-long label"},
		{"dns+srv://x?scheme=ftp", `scheme="ftp": want http, https or h2c`},
		{"dns+srv://x?port=1", "the only option is scheme"},
		{"dns+srv://x?scheme=h2c&scheme=http", "the only option is scheme"},
		{"dns+a://x:1?scheme=h2c#f", "fragment"},
		{"etcd://h/p?scheme=h2c", "query"},
	}
	for _, tc := range bad {
		t.Run("refuses "+tc.raw, func(t *testing.T) {
			_, err := DiscoverURL(tc.raw)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("DiscoverURL(%q) = %v, want an error containing %q", tc.raw, err, tc.want)
			}
		})
	}
}

// FuzzDiscoverURL: DiscoverURL never panics, and what it accepts, written
// back with String, parses to the same thing.
func FuzzDiscoverURL(f *testing.F) {
	for _, s := range []string{
		"etcd://127.0.0.1:2379/roundhouse/backends", "etcd://a,b:1,[::1]/p/", "dns+srv://_web._tcp.example.com",
		"dns+a://web.example:8080", "dns+a://[::1]:80", "etcd://h/p?x", "dns+srv://a..b", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		spec, err := DiscoverURL(raw)
		if err != nil {
			return
		}
		again, err := DiscoverURL(spec.String())
		if err != nil {
			t.Fatalf("DiscoverURL(%q) accepted, but its String %q is refused: %v", raw, spec.String(), err)
		}
		if again.String() != spec.String() {
			t.Fatalf("round trip of %q: %q then %q", raw, spec.String(), again.String())
		}
	})
}
