package routing

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Route is one route as the configuration states it: the conditions a
// request must meet and the pool it then goes to. It is plain data; Compile
// checks it and builds the form Match uses.
//
// A condition left at its zero value (nil or empty list, empty string, nil
// or empty map) is not stated and holds for every request, so a Route with
// only a Pool matches everything. Every stated condition must hold.
type Route struct {
	// Name names the route in messages (validate, /routes, the access log).
	// Empty is allowed here; the configuration requires a name.
	Name string

	// Hosts are the host names the route serves: an exact name
	// ("api.example.com"), an IP address ("127.0.0.1", "::1" or "[::1]"),
	// or "*." and a suffix ("*.example.com"), which covers one or more
	// labels before the suffix and never the bare suffix. Case does not
	// matter. Empty means any host.
	Hosts []string

	// PathPrefix is the start of the path, in escaped form ("/v1",
	// "/static/", "/a%2Fb"). Without a trailing "/" it matches whole
	// segments: "/api" matches "/api", "/api/" and "/api/x", never "/apix".
	// With a trailing "/" it matches by bytes. Empty (or "/") means any
	// path.
	PathPrefix string

	// Methods lists the methods the route accepts, compared exactly
	// (methods are case-sensitive: "GET", not "get"). Empty means any
	// method.
	Methods []string

	// Headers maps header names to the exact value each must have. Names
	// are case-insensitive (written in any case; Compile canonicalizes
	// them). Values are case-sensitive and compared with the header as one
	// field: a header sent on several lines counts as its values joined
	// with ", " (RFC 9110 §5.3), and an absent header never matches, not
	// even "". Empty means no header condition.
	Headers map[string]string

	// Pool names the pool that serves the requests the route matches. This
	// package does not look at it; the configuration checks it.
	Pool string

	// StripPrefix, when true, removes PathPrefix from the path before it is
	// forwarded (see Strip). False forwards the path as it is.
	StripPrefix bool
}

// FieldError is what the checkers return: one bad value of one field of a
// route, in words fit for validate to print after a file:line:col.
type FieldError struct {
	// Field is the configuration name of the field: "hosts",
	// "path_prefix", "methods" or "headers".
	Field string
	// Index is the position of the bad element in a list (Hosts,
	// Methods), or -1 when the field is not a list.
	Index int
	// Value is the bad value as written (for headers, the header name).
	Value string
	// Reason says what is wrong, lower-case, without the value.
	Reason string
}

// Error reads, for example, `hosts: "*.": a wildcard needs a suffix`.
func (e *FieldError) Error() string {
	return fmt.Sprintf("%s: %q: %s", e.Field, e.Value, e.Reason)
}

// Check checks every field of r that this package gives a meaning to
// (Hosts, PathPrefix, Methods, Headers) and returns nil, or every problem
// found joined with errors.Join; each is a *FieldError. Name and Pool are
// the configuration's business.
func Check(r Route) error {
	var errs []error
	errs = append(errs, CheckHosts(r.Hosts)...)
	if err := CheckPathPrefix(r.PathPrefix); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, CheckMethods(r.Methods)...)
	errs = append(errs, CheckHeaders(r.Headers)...)
	return errors.Join(errs...)
}

// CheckHosts returns one *FieldError for each bad entry of hosts, in order;
// none when all are good. An entry given twice (in any case) is an error.
func CheckHosts(hosts []string) []error {
	var errs []error
	seen := make(map[string]bool, len(hosts))
	for i, h := range hosts {
		p, err := parseHost(h)
		if err != "" {
			errs = append(errs, &FieldError{Field: "hosts", Index: i, Value: h, Reason: err})
			continue
		}
		if seen[p.key()] {
			errs = append(errs, &FieldError{Field: "hosts", Index: i, Value: h, Reason: "given twice"})
		}
		seen[p.key()] = true
	}
	return errs
}

// CheckPathPrefix returns a *FieldError when prefix is not a usable
// path_prefix, or nil. The empty prefix is good (no condition).
func CheckPathPrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	if reason := checkPrefix(prefix); reason != "" {
		return &FieldError{Field: "path_prefix", Index: -1, Value: prefix, Reason: reason}
	}
	return nil
}

// CheckMethods returns one *FieldError for each bad entry of methods: one
// that is not an HTTP token, a well-known method in the wrong case, or one
// given twice.
func CheckMethods(methods []string) []error {
	var errs []error
	seen := make(map[string]bool, len(methods))
	for i, m := range methods {
		var reason string
		switch {
		case m == "":
			reason = "a method cannot be empty"
		case !isToken(m):
			reason = "a method is a token: letters, digits and !#$%&'*+-.^_`|~, no spaces"
		case isWellKnownMethod(strings.ToUpper(m)) && m != strings.ToUpper(m):
			reason = fmt.Sprintf("methods are case-sensitive: write %q", strings.ToUpper(m))
		case seen[m]:
			reason = "given twice"
		}
		seen[m] = true
		if reason != "" {
			errs = append(errs, &FieldError{Field: "methods", Index: i, Value: m, Reason: reason})
		}
	}
	return errs
}

// CheckHeaders returns one *FieldError for each bad entry of headers, in
// the order of the names: a name that is not a token, "Host" (hosts says
// that), a name given twice in different cases, or a value no request can
// carry (control characters, or leading or trailing space, which servers
// strip). The errors name the header, not the value.
func CheckHeaders(headers map[string]string) []error {
	var errs []error
	seen := make(map[string]string, len(headers))
	for _, name := range sortedKeys(headers) {
		value := headers[name]
		canon := http.CanonicalHeaderKey(name)
		var reason string
		switch {
		case name == "":
			reason = "a header name cannot be empty"
		case !isToken(name):
			reason = "a header name is a token: letters, digits and !#$%&'*+-.^_`|~, no spaces"
		case canon == "Host":
			reason = "match the host with hosts, not headers"
		case seen[canon] != "":
			reason = fmt.Sprintf("given twice (also as %q)", seen[canon])
		case strings.ContainsFunc(value, isCtl):
			reason = "the value has a control character"
		case strings.TrimSpace(value) != value:
			reason = "the value starts or ends with space, which servers strip: no request can carry it"
		}
		if seen[canon] == "" {
			seen[canon] = name
		}
		if reason != "" {
			errs = append(errs, &FieldError{Field: "headers", Index: -1, Value: name, Reason: reason})
		}
	}
	return errs
}

// isCtl reports a control character other than horizontal tab, which a
// header value cannot carry.
func isCtl(r rune) bool { return (r < ' ' && r != '\t') || r == 0x7f }

// isToken reports whether s is an HTTP token (RFC 9110 §5.6.2).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// isWellKnownMethod reports the methods of RFC 9110 and PATCH.
func isWellKnownMethod(m string) bool {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace:
		return true
	}
	return false
}
