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

// FuzzParseStatusRanges checks --health-expect: it never panics, what it
// accepts are ranges of real statuses that run forwards, and their
// String() reads back the same.
func FuzzParseStatusRanges(f *testing.F) {
	for _, s := range []string{
		"200-399", "200", "200,204,300-399", " 200 , 204 - 206 ", "", "ok", "200,", "200-", "-200", "99",
		"200-600", "399-200", "200--300", "+200", "0x1f4", "200-300-400", "1e2", "２００",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseStatusRanges(s)
		if err != nil {
			return
		}
		if len(r) == 0 {
			t.Fatalf("%q: accepted no ranges", s)
		}
		for _, x := range r {
			if x.Lo < 100 || x.Hi > 599 || x.Lo > x.Hi {
				t.Fatalf("%q: accepted the range %d-%d", s, x.Lo, x.Hi)
			}
		}
		again, err := ParseStatusRanges(r.String())
		if err != nil {
			t.Fatalf("%q reads as %q, which does not parse: %v", s, r, err)
		}
		if again.String() != r.String() || len(again) != len(r) {
			t.Fatalf("%q reads as %v, its String %q as %v", s, r, r, again)
		}
	})
}
