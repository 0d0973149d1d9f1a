package config

import (
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestDiscoverSources(t *testing.T) {
	t.Run("flags give sources in canonical form, and serve needs no --backend with one", func(t *testing.T) {
		s, err := Load([]string{"--discover", "etcd://127.0.0.1:2379/rh", "--discover", "DNS+SRV://_web._tcp.Service.Consul.",
			"--dns-server", "127.0.0.1"}, Options{})
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"etcd://127.0.0.1:2379/rh/", "dns+srv://_web._tcp.service.consul"}
		if !slices.Equal(s.Discover, want) || s.DNSServer != "127.0.0.1:53" {
			t.Errorf("Discover %q DNSServer %q, want %q and 127.0.0.1:53", s.Discover, s.DNSServer, want)
		}
		if got, want := s.Summary(), "0 backends, 2 discovery sources, policy round-robin, listen 127.0.0.1:8080"; got != want {
			t.Errorf("Summary() = %q, want %q", got, want)
		}
	})

	t.Run("the file gives a list; --discover replaces it", func(t *testing.T) {
		src := "discover = [\"dns+a://web.test:8080\", \"etcd://a:1,b:2/x\"]\ndns_server = \"[::1]:8600\"\n"
		s, err := load(t, src)
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"dns+a://web.test:8080", "etcd://a:1,b:2/x/"}; !slices.Equal(s.Discover, want) || s.DNSServer != "[::1]:8600" {
			t.Errorf("Discover %q DNSServer %q, want %q and [::1]:8600", s.Discover, s.DNSServer, want)
		}
		s, err = load(t, src, "--discover", "dns+srv://x.test", "--dns-server", "::1")
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"dns+srv://x.test"}; !slices.Equal(s.Discover, want) || s.DNSServer != "[::1]:53" {
			t.Errorf("Discover %q DNSServer %q, want %q and [::1]:53", s.Discover, s.DNSServer, want)
		}
	})

	t.Run("bad sources are reported where they are", func(t *testing.T) {
		tests := []struct{ src, want string }{
			{`discover = "etcd://h/p"`, `roundhouse.hcl:1:12: discover: want a list of URLs such as ["etcd://127.0.0.1:2379/roundhouse/backends"], got a string`},
			{`discover = ["consul://h/p"]`, `roundhouse.hcl:1:12: discover: "consul://h/p": scheme "consul": want etcd, dns+srv or dns+a`},
			{`discover = [3]`, `roundhouse.hcl:1:12: discover: element 0: want a string, got a number`},
			{`discover = ["dns+srv://a.test", "DNS+SRV://A.test"]`, `roundhouse.hcl:1:12: discover: dns+srv://a.test: given twice`},
			{"dns_server = \":\"\nbackend \"http://h:1\" {}", `roundhouse.hcl:1:14: dns_server: bad value ":": want host or host:port, such as 127.0.0.1:8600`},
		}
		for _, tt := range tests {
			_, err := load(t, tt.src)
			if got := problems(t, err); !reflect.DeepEqual(got, []string{tt.want}) {
				t.Errorf("%s:\n%s\nwant\n%s", tt.src, strings.Join(got, "\n"), tt.want)
			}
		}
		if _, err := Load([]string{"--discover", "dns+a://web.test"}, Options{}); err == nil || !strings.Contains(err.Error(), "want dns+a://NAME:PORT") {
			t.Errorf("a bad --discover: %v", err)
		}
	})
}
