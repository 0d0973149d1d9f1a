package routing

import (
	"errors"
	"fmt"
	"strings"
)

// ErrAboveRoot is returned (wrapped) by CleanPath for a path whose ".."
// segments climb above the root. The proxy answers such a request 400.
var ErrAboveRoot = errors.New("the path climbs above the root")

// CleanPath returns the form of an escaped request path (r.URL.EscapedPath())
// that routes are matched against and that is forwarded. It
//
//  1. decodes the percent-escapes of unreserved characters (letters, digits,
//     "-", ".", "_", "~") and writes every other escape in upper case
//     (RFC 3986 §6.2.2.1-2): "%7euser" and "~user" are one path, and
//     "%2e%2e" is "..", so an encoded dot segment is a dot segment;
//     "%2F" stays "%2F", a byte of a segment and not a separator;
//  2. merges runs of "/" into one, as nginx does by default: "//admin" is
//     "/admin", so it cannot slip past a route for "/admin";
//  3. removes dot segments (RFC 3986 §5.2.4): "/a/./b/../c" is "/a/c", and a
//     path that ends in "." or ".." ends in "/".
//
// A ".." that would climb above the root is an error wrapping ErrAboveRoot.
// An empty path is "/". A path that does not start with "/" (such as the
// "*" of "OPTIONS *"), or that has a "%" not followed by two hex digits, is
// an error too. A path already in this form is returned as it is, without
// allocating.
func CleanPath(escaped string) (string, error) {
	if escaped == "" {
		return "/", nil
	}
	if escaped[0] != '/' {
		return "", fmt.Errorf("path %q does not start with \"/\"", escaped)
	}
	clean, err := isClean(escaped)
	if err != nil {
		return "", fmt.Errorf("path %q: %w", escaped, err)
	}
	if clean {
		return escaped, nil
	}
	norm := normalizeEscapes(escaped)
	segs := strings.Split(norm[1:], "/")
	out := make([]string, 0, len(segs))
	for i, seg := range segs {
		last := i == len(segs)-1
		switch seg {
		case "":
			if !last {
				continue // a merged slash
			}
		case ".":
			if !last {
				continue
			}
			seg = ""
		case "..":
			if len(out) == 0 {
				return "", fmt.Errorf("path %q: %w", escaped, ErrAboveRoot)
			}
			out = out[:len(out)-1]
			if !last {
				continue
			}
			seg = ""
		}
		out = append(out, seg)
	}
	return "/" + strings.Join(out, "/"), nil
}

// isClean reports whether CleanPath would return p, which starts with "/",
// unchanged: no "//", no "." or ".." segment, and no escape that
// normalizeEscapes would rewrite. A malformed escape is an error.
func isClean(p string) (bool, error) {
	clean := true
	for i := 0; i < len(p); i++ {
		switch p[i] {
		case '%':
			if i+2 >= len(p) || !isHex(p[i+1]) || !isHex(p[i+2]) {
				return false, errors.New(`a "%" must be followed by two hex digits`)
			}
			if isLowerHex(p[i+1]) || isLowerHex(p[i+2]) || isUnreserved(unhex(p[i+1])<<4|unhex(p[i+2])) {
				clean = false
			}
			i += 2
		case '/':
			rest := p[i+1:]
			if strings.HasPrefix(rest, "/") || rest == "." || rest == ".." ||
				strings.HasPrefix(rest, "./") || strings.HasPrefix(rest, "../") {
				clean = false
			}
		}
	}
	return clean, nil
}

// normalizeEscapes decodes escapes of unreserved characters and upper-cases
// the others. The escapes in s are well formed (isClean said so).
func normalizeEscapes(s string) string {
	if strings.IndexByte(s, '%') < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		c := unhex(s[i+1])<<4 | unhex(s[i+2])
		if isUnreserved(c) {
			b.WriteByte(c)
		} else {
			const hex = "0123456789ABCDEF"
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		}
		i += 2
	}
	return b.String()
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func isLowerHex(c byte) bool { return 'a' <= c && c <= 'f' }

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

// isUnreserved reports the unreserved characters of RFC 3986 §2.3.
func isUnreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

// checkPrefix says what is wrong with a non-empty path_prefix, or "".
func checkPrefix(p string) string {
	if p[0] != '/' {
		return `must start with "/"`
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '?' || c == '#':
			return "a path prefix has no query or fragment"
		case c == '%':
			if i+2 >= len(p) || !isHex(p[i+1]) || !isHex(p[i+2]) {
				return `a "%" must be followed by two hex digits`
			}
		case isUnreserved(c) || strings.IndexByte("/!$&'()*+,;=:@", c) >= 0:
		default:
			return fmt.Sprintf("write %q escaped, as requests carry it (%%%02X)", c, c)
		}
	}
	norm := normalizeEscapes(p)
	if strings.Contains(norm, "//") {
		return `"//" never occurs in a cleaned path: runs of "/" are merged`
	}
	for seg := range strings.SplitSeq(norm, "/") {
		if seg == "." || seg == ".." {
			return "a dot segment never occurs in a cleaned path: they are removed"
		}
	}
	return ""
}

// hasPrefix reports whether path matches prefix, a non-empty normalized
// path_prefix: by bytes when prefix ends in "/", else by whole segments.
func hasPrefix(path, prefix string) bool {
	if !strings.HasPrefix(path, prefix) {
		return false
	}
	return len(path) == len(prefix) || prefix[len(prefix)-1] == '/' || path[len(prefix)] == '/'
}

// Strip removes prefix, a normalized path_prefix (as Table.Route gives
// it), from path, a cleaned path it matches, for a route with StripPrefix.
//
// forwarded always starts with "/": stripping "/api" or "/api/" from "/api/x"
// gives "/x", and "/api" from "/api" gives "/". removed is what
// X-Forwarded-Prefix carries: the prefix without a trailing "/" ("/api" in
// all three cases), so that removed+forwarded is the original path except
// when the whole path was removed. An empty or "/" prefix removes nothing,
// and so does a prefix path does not match: both give path and "" (set no
// X-Forwarded-Prefix then). Strip does not allocate.
func Strip(path, prefix string) (forwarded, removed string) {
	if prefix == "" || prefix == "/" || !hasPrefix(path, prefix) {
		return path, ""
	}
	if prefix[len(prefix)-1] == '/' {
		return path[len(prefix)-1:], prefix[:len(prefix)-1]
	}
	if len(path) == len(prefix) {
		return "/", prefix
	}
	return path[len(prefix):], prefix
}
