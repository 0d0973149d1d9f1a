package routing

import (
	"net/http"
	"net/netip"
	"path"
	"slices"
	"strings"
	"testing"
)

// The fuzz tests build routes from a few bytes, choosing among these.
var (
	fuzzHosts = []string{"example.com", "*.example.com", "a.example.com", "*.a.example.com",
		"::1", "[2001:db8::1]", "127.0.0.1", "*.com", "API.Example.ORG", "*.0.1"}
	fuzzPrefixes = []string{"", "/", "/api", "/api/", "/a", "/a%2Fb", "/~u", "/api/v1", "/a.b/", "/%C3%A9"}
	fuzzMethods  = []string{"GET", "POST", "PURGE", "HEAD"}
	fuzzHeaders  = []struct{ name, value string }{{"X-Canary", "1"}, {"x-env", "a, b"}, {"X-Tenant", ""}}
)

// fuzzRoutes turns spec into at most 8 routes, 4 bytes each: a bit set of
// fuzzHosts (with the low bits of the next byte), a prefix, a bit set of
// methods and a bit set of headers.
func fuzzRoutes(spec []byte) []Route {
	var routes []Route
	for len(spec) >= 4 && len(routes) < 8 {
		b := spec[:4]
		spec = spec[4:]
		r := Route{Name: string(rune('a' + len(routes)))}
		hostBits := int(b[0]) | int(b[1]&3)<<8
		for i, h := range fuzzHosts {
			if hostBits&(1<<i) != 0 {
				r.Hosts = append(r.Hosts, h)
			}
		}
		r.PathPrefix = fuzzPrefixes[int(b[1]>>2)%len(fuzzPrefixes)]
		for i, m := range fuzzMethods {
			if b[2]&(1<<i) != 0 {
				r.Methods = append(r.Methods, m)
			}
		}
		for i, hd := range fuzzHeaders {
			if b[3]&(1<<i) != 0 {
				if r.Headers == nil {
					r.Headers = map[string]string{}
				}
				r.Headers[hd.name] = hd.value
			}
		}
		routes = append(routes, r)
	}
	return routes
}

// FuzzMatch compares Table.Match with refMatch, a slow matcher written
// straight from the rules, on routes built from spec and a request built
// from the other arguments (each header's values separated by "|"; an
// empty string leaves the header out).
func FuzzMatch(f *testing.F) {
	f.Add([]byte{1, 0, 0, 0, 2, 4, 1, 1}, "www.example.com:80", "GET", "/api/x", "1", "a|b", "")
	f.Add([]byte{0, 1, 3, 7, 16, 0, 0, 0}, "[::1]:8080", "POST", "/a%2fb/../a%2Fb/c", "1|1", "", "t")
	f.Add([]byte{0x80, 0, 0, 0, 0, 0x1c, 0, 0}, "x.y.A.Example.com.", "PURGE", "/public/%2e%2e/api", "", "a, b", "")
	f.Add([]byte{2, 2, 8, 0, 0, 0x20, 0, 2}, "1.0.0.1", "HEAD", "//~u/./v", "", "a|b", "x")
	f.Add([]byte{0xff, 3, 15, 7}, "API.example.org:1", "GET", "/%7eu", "1", "a, b", "")
	f.Fuzz(func(t *testing.T, spec []byte, host, method, rawPath, canary, env, tenant string) {
		routes := fuzzRoutes(spec)
		tab, err := Compile(routes)
		if err != nil {
			t.Fatalf("Compile(%+v): %v", routes, err)
		}
		p, err := CleanPath(rawPath)
		if err != nil {
			return
		}
		h := http.Header{}
		if canary != "" {
			h["X-Canary"] = strings.Split(canary, "|")
		}
		if env != "" {
			h["X-Env"] = strings.Split(env, "|")
		}
		if tenant != "" {
			h["X-Tenant"] = []string{""}
		}
		gotI, gotOK := tab.Match(host, method, p, h)
		wantI, wantOK := refMatch(routes, host, method, p, h)
		if gotI != wantI || gotOK != wantOK {
			t.Fatalf("routes %+v\nrequest %q %q %q %v\nMatch = %d, %v; reference = %d, %v",
				routes, host, method, p, h, gotI, gotOK, wantI, wantOK)
		}
		for _, s := range Shadowed(routes) {
			if gotOK && gotI == s.Later {
				t.Fatalf("routes %+v\nrequest %q %q %q %v\nmatched route %d, which Shadowed says %d shadows",
					routes, host, method, p, h, s.Later, s.Earlier)
			}
		}
	})
}

// refMatch is Table.Match written as plainly as possible: every route in
// turn, every condition from its definition, hosts compared label by label.
func refMatch(routes []Route, host, method, p string, h http.Header) (int, bool) {
	name, v6, ok := refHost(host)
	for i, r := range routes {
		if len(r.Hosts) > 0 {
			if !ok {
				continue
			}
			found := false
			for _, pat := range r.Hosts {
				found = found || refHostMatch(pat, name, v6)
			}
			if !found {
				continue
			}
		}
		if r.PathPrefix != "" && r.PathPrefix != "/" {
			pre := r.PathPrefix
			if strings.HasSuffix(pre, "/") {
				if !strings.HasPrefix(p, pre) {
					continue
				}
			} else if p != pre && !strings.HasPrefix(p, pre+"/") {
				continue
			}
		}
		if len(r.Methods) > 0 && !slices.Contains(r.Methods, method) {
			continue
		}
		headersHold := true
		for k, v := range r.Headers {
			vals := h.Values(k)
			if len(vals) == 0 || strings.Join(vals, ", ") != v {
				headersHold = false
			}
		}
		if !headersHold {
			continue
		}
		return i, true
	}
	return 0, false
}

// refHost returns the request host's name (lower case, no port, no
// trailing dot) or canonical IPv6 address; ok is false for a bracketed
// host that is not an IPv6 address.
func refHost(host string) (name string, v6, ok bool) {
	if strings.HasPrefix(host, "[") {
		end := strings.Index(host, "]")
		if end < 0 {
			return "", false, false
		}
		if rest := host[end+1:]; rest != "" && !strings.HasPrefix(rest, ":") {
			return "", false, false
		}
		a, err := netip.ParseAddr(host[1:end])
		if err != nil || !a.Is6() {
			return "", false, false
		}
		return a.String(), true, true
	}
	name, _, _ = strings.Cut(host, ":")
	return refLower(strings.TrimSuffix(name, ".")), false, true
}

// refHostMatch matches one entry of Route.Hosts against a refHost result.
func refHostMatch(pat, name string, v6 bool) bool {
	if strings.HasPrefix(pat, "[") || strings.Contains(pat, ":") {
		a := netip.MustParseAddr(strings.Trim(pat, "[]"))
		return v6 && a.String() == name
	}
	if v6 {
		return false
	}
	pat = refLower(pat)
	if suffix, ok := strings.CutPrefix(pat, "*."); ok {
		labels, want := strings.Split(name, "."), strings.Split(suffix, ".")
		if len(labels) <= len(want) {
			return false
		}
		covered := labels[:len(labels)-len(want)]
		return slices.Equal(labels[len(labels)-len(want):], want) && strings.Join(covered, ".") != ""
	}
	return pat == name
}

// refLower lowers ASCII letters, one byte at a time.
func refLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 32
		}
	}
	return string(b)
}

// FuzzCleanPath checks CleanPath against its properties and against
// path.Clean: the result starts with "/", has no "//" and no dot segment,
// has no escape it would rewrite, cleans to itself, and is what path.Clean
// makes of the input with its unreserved escapes decoded (but for a
// trailing "/"); the error for climbing above the root comes exactly when
// counting segments says so. Strip's forwarded path always starts with
// "/", and removed+forwarded is the path unless the whole path went.
func FuzzCleanPath(f *testing.F) {
	for _, s := range []string{"/", "", "/a/../b", "/%2e%2e", "/a/.%2E/b", "//x//y/", "/a%2Fb/..", "/%7e%41", "/.well-known/", "/a/b/c/../../../..", "x", "/%zz"} {
		f.Add(s, "/a")
	}
	f.Fuzz(func(t *testing.T, in, prefix string) {
		got, err := CleanPath(in)
		if in == "" {
			if got != "/" || err != nil {
				t.Fatalf("CleanPath(\"\") = %q, %v", got, err)
			}
			return
		}
		decoded, ok := refDecodeUnreserved(in)
		if !strings.HasPrefix(in, "/") || !ok {
			if err == nil {
				t.Fatalf("CleanPath(%q) = %q, want an error", in, got)
			}
			return
		}
		depth, above := 0, false
		segs := strings.Split(decoded, "/")
		for _, s := range segs {
			switch s {
			case "", ".":
			case "..":
				depth--
				above = above || depth < 0
			default:
				depth++
			}
		}
		if above {
			if err == nil {
				t.Fatalf("CleanPath(%q) = %q, want an error for climbing above the root", in, got)
			}
			return
		}
		if err != nil {
			t.Fatalf("CleanPath(%q): %v", in, err)
		}
		if !strings.HasPrefix(got, "/") || strings.Contains(got, "//") {
			t.Fatalf("CleanPath(%q) = %q", in, got)
		}
		for _, s := range strings.Split(got, "/") {
			if s == "." || s == ".." {
				t.Fatalf("CleanPath(%q) = %q has a dot segment", in, got)
			}
		}
		if again, err := CleanPath(got); again != got || err != nil {
			t.Fatalf("CleanPath(%q) = %q, but CleanPath(%q) = %q, %v", in, got, got, again, err)
		}
		if want := path.Clean(decoded); strings.TrimSuffix(got, "/") != strings.TrimSuffix(want, "/") {
			t.Fatalf("CleanPath(%q) = %q; path.Clean of it decoded = %q", in, got, want)
		}
		if CheckPathPrefix(prefix) != nil {
			return
		}
		tab, err := Compile([]Route{{PathPrefix: prefix}})
		if err != nil {
			t.Fatalf("Compile with prefix %q: %v", prefix, err)
		}
		norm := tab.Route(0).PathPrefix
		fwd, removed := Strip(got, norm)
		_, matched := tab.Match("h", "GET", got, nil)
		switch {
		case !strings.HasPrefix(fwd, "/"):
			t.Fatalf("Strip(%q, %q) forwards %q", got, norm, fwd)
		case !matched && (fwd != got || removed != ""):
			t.Fatalf("Strip(%q, %q) = %q, %q for a path the prefix does not match", got, norm, fwd, removed)
		case removed+fwd != got && !(fwd == "/" && removed == got):
			t.Fatalf("Strip(%q, %q) = %q, %q", got, norm, fwd, removed)
		case strings.HasSuffix(removed, "/"):
			t.Fatalf("Strip(%q, %q) removes %q, with a trailing slash", got, norm, removed)
		}
	})
}

// refDecodeUnreserved decodes the escapes of unreserved characters in s
// and upper-cases the others;
// ok is false when s has a malformed escape.
func refDecodeUnreserved(s string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", false
		}
		var c byte
		for _, d := range s[i+1 : i+3] {
			switch {
			case '0' <= d && d <= '9':
				c = c<<4 | byte(d-'0')
			case 'a' <= d && d <= 'f':
				c = c<<4 | byte(d-'a'+10)
			case 'A' <= d && d <= 'F':
				c = c<<4 | byte(d-'A'+10)
			default:
				return "", false
			}
		}
		if strings.ContainsRune("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~", rune(c)) {
			b.WriteByte(c)
		} else {
			b.WriteString(strings.ToUpper(s[i : i+3]))
		}
		i += 2
	}
	return b.String(), true
}
