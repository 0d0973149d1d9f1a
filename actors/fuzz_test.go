package actors

import (
	"strconv"
	"testing"
)

// FuzzParseBackendURL checks that --backend parsing never panics, that
// what it accepts is a usable backend, and that accepting is stable: the
// URL it returns, written out, parses to the same URL.
func FuzzParseBackendURL(f *testing.F) {
	for _, s := range []string{
		"http://127.0.0.1:8081", "https://backend.internal/prefix", "http://[::1]:80/", "127.0.0.1:8081",
		"ftp://x", "http://user:pw@h/", "http://h/?q=1", "http://h:0", "http://h:99999", "http://:80",
		"http://h%zz/", "https://h:443/a%2Fb", "http://[fe80::1%25eth0]:8080",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParseBackendURL(s)
		if err != nil {
			return
		}
		if u.Scheme != "http" && u.Scheme != "https" {
			t.Fatalf("%q: scheme %q", s, u.Scheme)
		}
		if u.Hostname() == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
			t.Fatalf("%q: accepted %#v", s, u)
		}
		if p := u.Port(); p != "" {
			if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
				t.Fatalf("%q: port %q", s, p)
			}
		}
		again, err := ParseBackendURL(u.String())
		if err != nil {
			t.Fatalf("%q parses to %q, which does not parse: %v", s, u, err)
		}
		if again.String() != u.String() {
			t.Fatalf("%q parses to %q, which parses to %q", s, u, again)
		}
	})
}
