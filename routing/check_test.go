package routing

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckHosts(t *testing.T) {
	tests := []struct {
		name  string
		hosts []string
		want  []string // the errors' texts, in order
	}{
		{"no hosts are fine", nil, nil},
		{"exact names, wildcards and addresses are fine",
			[]string{"api.example.com", "*.api.example.com", "API.Example.ORG", "127.0.0.1", "::1", "[2001:db8::1]", "under_score.example"}, nil},
		{"a trailing dot is an error", []string{"example.com."}, []string{
			`hosts: "example.com.": leave out the trailing dot: "example.com" also matches requests for "example.com."`}},
		{"a wildcard without a suffix is an error", []string{"*."}, []string{`hosts: "*.": a wildcard needs a suffix`}},
		{"a lone star is an error", []string{"*"}, []string{`hosts: "*": "*" alone is not a pattern; leave hosts out to match every host`}},
		{"a star inside a name is an error", []string{"a.*.com", "*foo.com", "*.*.com"}, []string{
			`hosts: "a.*.com": "*" is allowed only as the whole first label, as in "*.example.com"`,
			`hosts: "*foo.com": "*" is allowed only as the whole first label, as in "*.example.com"`,
			`hosts: "*.*.com": "*" is allowed only as the whole first label, as in "*.example.com"`}},
		{"an empty host is an error", []string{""}, []string{`hosts: "": a host cannot be empty; leave hosts out to match every host`}},
		{"a port is an error", []string{"example.com:443", "[::1]:8080"}, []string{
			`hosts: "example.com:443": want a host name or an IP address, without a port: hosts match whatever the port`,
			`hosts: "[::1]:8080": an IPv6 address in brackets needs its "]"; and give no port: hosts match whatever the port`}},
		{"an IPv6 zone is an error", []string{"fe80::1%eth0"}, []string{`hosts: "fe80::1%eth0": an IPv6 zone never appears in a Host header`}},
		{"empty labels are an error", []string{"a..b", ".a", "*..a"}, []string{
			`hosts: "a..b": a host name cannot have an empty label (two dots, or a leading dot)`,
			`hosts: ".a": a host name cannot have an empty label (two dots, or a leading dot)`,
			`hosts: "*..a": a host name cannot have an empty label (two dots, or a leading dot)`}},
		{"a non-ASCII name must be written in xn-- form", []string{"bücher.example"}, []string{`hosts: "bücher.example": write an international name in its ASCII ("xn--") form`}},
		{"a name with other characters is an error", []string{"a b.com", "a/b"}, []string{
			`hosts: "a b.com": a host name has only letters, digits, '-', '_' and dots`,
			`hosts: "a/b": a host name has only letters, digits, '-', '_' and dots`}},
		{"a label longer than 63 is an error", []string{strings.Repeat("a", 64) + ".com"}, []string{
			`hosts: "` + strings.Repeat("a", 64) + `.com": a label of a host name has at most 63 characters`}},
		{"a name longer than 253 is an error", []string{strings.Repeat("a.", 127) + "com"}, []string{
			`hosts: "` + strings.Repeat("a.", 127) + `com": a host name has at most 253 characters`}},
		{"a host given twice in any case is an error", []string{"a.com", "A.com", "*.a.com", "*.A.COM", "::1", "[0::1]"}, []string{
			`hosts: "A.com": given twice`, `hosts: "*.A.COM": given twice`, `hosts: "[0::1]": given twice`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assertErrors(t, CheckHosts(tt.hosts), tt.want)
		})
	}
}

func TestCheckPathPrefix(t *testing.T) {
	tests := []struct {
		name, prefix, want string
	}{
		{"no prefix is fine", "", ""},
		{"a root prefix is fine", "/", ""},
		{"a segment prefix is fine", "/api", ""},
		{"a byte prefix is fine", "/static/", ""},
		{"escapes and sub-delims are fine", "/a%2Fb/~user/@x:y;z=1,2!$&'()*+", ""},
		{"a relative prefix is an error", "api", `path_prefix: "api": must start with "/"`},
		{"a query is an error", "/a?b", `path_prefix: "/a?b": a path prefix has no query or fragment`},
		{"a fragment is an error", "/a#b", `path_prefix: "/a#b": a path prefix has no query or fragment`},
		{"a broken escape is an error", "/a%2", `path_prefix: "/a%2": a "%" must be followed by two hex digits`},
		{"a space must be escaped", "/a b", `path_prefix: "/a b": write ' ' escaped, as requests carry it (%20)`},
		{"a double slash is an error", "/a//b", `path_prefix: "/a//b": "//" never occurs in a cleaned path: runs of "/" are merged`},
		{"a dot segment is an error", "/a/../b", `path_prefix: "/a/../b": a dot segment never occurs in a cleaned path: they are removed`},
		{"an encoded dot segment is an error", "/a/%2E%2e", `path_prefix: "/a/%2E%2e": a dot segment never occurs in a cleaned path: they are removed`},
		{"a trailing dot segment is an error", "/a/.", `path_prefix: "/a/.": a dot segment never occurs in a cleaned path: they are removed`},
		{"dots inside a segment are fine", "/a..b/.well-known", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var errs []error
			if err := CheckPathPrefix(tt.prefix); err != nil {
				errs = append(errs, err)
			}
			var want []string
			if tt.want != "" {
				want = []string{tt.want}
			}
			assertErrors(t, errs, want)
		})
	}
}

func TestCheckMethods(t *testing.T) {
	tests := []struct {
		name    string
		methods []string
		want    []string
	}{
		{"standard and custom methods are fine", []string{"GET", "POST", "PURGE", "M-SEARCH"}, nil},
		{"a well-known method in lower case is an error", []string{"get", "Post"}, []string{
			`methods: "get": methods are case-sensitive: write "GET"`, `methods: "Post": methods are case-sensitive: write "POST"`}},
		{"a method with a space is an error", []string{"GET POST"}, []string{
			"methods: \"GET POST\": a method is a token: letters, digits and !#$%&'*+-.^_`|~, no spaces"}},
		{"an empty method is an error", []string{""}, []string{`methods: "": a method cannot be empty`}},
		{"a method given twice is an error", []string{"GET", "GET"}, []string{`methods: "GET": given twice`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assertErrors(t, CheckMethods(tt.methods), tt.want)
		})
	}
}

func TestCheckHeaders(t *testing.T) {
	tests := []struct {
		name    string
		headers map[string]string
		want    []string
	}{
		{"names in any case are fine", map[string]string{"x-canary": "1", "X-Tenant": "a b", "Accept": ""}, nil},
		{"an empty name is an error", map[string]string{"": "1"}, []string{`headers: "": a header name cannot be empty`}},
		{"Host is an error", map[string]string{"host": "a"}, []string{`headers: "host": match the host with hosts, not headers`}},
		{"a name with a space is an error", map[string]string{"X Canary": "1"}, []string{
			"headers: \"X Canary\": a header name is a token: letters, digits and !#$%&'*+-.^_`|~, no spaces"}},
		{"a name given twice in two cases is an error", map[string]string{"X-A": "1", "x-a": "2"}, []string{
			`headers: "x-a": given twice (also as "X-A")`}},
		{"a value with a newline is an error", map[string]string{"X-A": "1\r\nX-B: 2"}, []string{
			`headers: "X-A": the value has a control character`}},
		{"a value with outer space is an error", map[string]string{"X-A": " 1"}, []string{
			`headers: "X-A": the value starts or ends with space, which servers strip: no request can carry it`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assertErrors(t, CheckHeaders(tt.headers), tt.want)
		})
	}
}

func TestCheckJoinsEveryProblemAndCompileNamesTheRoute(t *testing.T) {
	r := Route{Name: "bad", Hosts: []string{"*."}, PathPrefix: "api", Methods: []string{"get"}, Headers: map[string]string{"Host": "x"}}
	err := Check(r)
	want := strings.Join([]string{
		`hosts: "*.": a wildcard needs a suffix`,
		`path_prefix: "api": must start with "/"`,
		`methods: "get": methods are case-sensitive: write "GET"`,
		`headers: "Host": match the host with hosts, not headers`,
	}, "\n")
	if err == nil || err.Error() != want {
		t.Fatalf("Check = %v, want\n%s", err, want)
	}
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "hosts" || fe.Index != 0 || fe.Value != "*." {
		t.Errorf("errors.As gives %+v, want the hosts error at index 0", fe)
	}

	_, err = Compile([]Route{{Pool: "a"}, r})
	if err == nil || !strings.HasPrefix(err.Error(), `route "bad": hosts: "*."`) {
		t.Errorf("Compile = %v, want it to name the route", err)
	}
	_, err = Compile([]Route{{Pool: "a"}, {PathPrefix: "x"}})
	if err == nil || !strings.HasPrefix(err.Error(), `route 2: path_prefix`) {
		t.Errorf("Compile = %v, want it to number an unnamed route", err)
	}
	if err := Check(Route{Pool: "a"}); err != nil {
		t.Errorf("Check of a route with no conditions = %v", err)
	}
}

// assertErrors compares errs with the texts want, in order; each error
// must be a *FieldError.
func assertErrors(t *testing.T, errs []error, want []string) {
	t.Helper()
	var got []string
	for _, err := range errs {
		var fe *FieldError
		if !errors.As(err, &fe) {
			t.Errorf("%v is a %T, want a *FieldError", err, err)
		}
		got = append(got, err.Error())
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got errors\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
