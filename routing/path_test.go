package routing

import (
	"errors"
	"testing"
)

func TestCleanPath(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"a clean path is kept", "/api/v1/users", "/api/v1/users"},
		{"the root is kept", "/", "/"},
		{"an empty path is the root", "", "/"},
		{"a trailing slash is kept", "/api/", "/api/"},
		{"a single dot segment goes", "/a/./b", "/a/b"},
		{"a double dot segment removes the one before", "/a/b/../c", "/a/c"},
		{"a trailing dot segment leaves a trailing slash", "/a/b/.", "/a/b/"},
		{"a trailing double dot segment leaves a trailing slash", "/a/b/..", "/a/"},
		{"climbing back to the root is fine", "/a/..", "/"},
		{"a dot at the root is the root", "/.", "/"},
		{"a traversal out of a public prefix is resolved", "/public/../admin", "/admin"},
		{"an encoded traversal is resolved", "/public/%2e%2e/admin", "/admin"},
		{"an upper-case encoded traversal is resolved", "/public/%2E%2E/admin", "/admin"},
		{"a half-encoded traversal is resolved", "/public/%2E./admin", "/admin"},
		{"the other half-encoded traversal is resolved", "/public/.%2e/admin", "/admin"},
		{"an encoded single dot is resolved", "/a/%2e/b", "/a/b"},
		{"an encoded slash is not a separator", "/public/..%2Fadmin", "/public/..%2Fadmin"},
		{"an encoded slash between dots is kept", "/a/%2e%2e%2fb", "/a/..%2Fb"},
		{"a double slash is merged", "//admin", "/admin"},
		{"runs of slashes are merged", "/a///b//", "/a/b/"},
		{"merged slashes then dot segments", "/a//../b", "/b"},
		{"unreserved escapes are decoded", "/%7Euser/%41%62c-%5F", "/~user/Abc-_"},
		{"reserved escapes are upper-cased", "/a%2fb%3a%c3%a9", "/a%2Fb%3A%C3%A9"},
		{"dots inside a segment are not dot segments", "/a..b/...", "/a..b/..."},
		{"a dot file is not a dot segment", "/.well-known/x", "/.well-known/x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := CleanPath(tt.in)
			if err != nil || got != tt.want {
				t.Errorf("CleanPath(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
			if again, err := CleanPath(got); err != nil || again != got {
				t.Errorf("CleanPath(%q) = %q, %v; a clean path must stay as it is", got, again, err)
			}
		})
	}
}

func TestCleanPathErrors(t *testing.T) {
	tests := []struct {
		name, in string
		above    bool // the error wraps ErrAboveRoot
	}{
		{"a double dot at the root climbs above it", "/..", true},
		{"a double dot at the root with more after climbs above it", "/../etc/passwd", true},
		{"more double dots than segments climb above the root", "/a/../..", true},
		{"an encoded double dot at the root climbs above it", "/%2e%2e/admin", true},
		{"a half-encoded double dot climbs above it", "/a/%2E./.%2e", true},
		{"merged slashes do not give extra segments to climb", "//a/../..", true},
		{"a relative path is an error", "a/b", false},
		{"the asterisk form is an error", "*", false},
		{"a broken escape is an error", "/a%2", false},
		{"a non-hex escape is an error", "/a%zz", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := CleanPath(tt.in)
			if err == nil {
				t.Fatalf("CleanPath(%q) = %q, want an error", tt.in, got)
			}
			if errors.Is(err, ErrAboveRoot) != tt.above {
				t.Errorf("CleanPath(%q): %v; wraps ErrAboveRoot: %v, want %v", tt.in, err, !tt.above, tt.above)
			}
		})
	}
}

func TestCleanPathOfACleanPathDoesNotAllocate(t *testing.T) {
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := CleanPath("/api/v1/users/%2F42"); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("CleanPath of a clean path: %v allocations, want 0", allocs)
	}
}

func TestStrip(t *testing.T) {
	tests := []struct {
		name, path, prefix, forwarded, removed string
	}{
		{"a segment prefix goes from a longer path", "/api/x", "/api", "/x", "/api"},
		{"a segment prefix that is the whole path leaves the root", "/api", "/api", "/", "/api"},
		{"a segment prefix keeps the trailing slash of the path", "/api/", "/api", "/", "/api"},
		{"a prefix with a trailing slash goes from a longer path", "/api/x/y", "/api/", "/x/y", "/api"},
		{"a prefix with a trailing slash that is the whole path leaves the root", "/api/", "/api/", "/", "/api"},
		{"a prefix without a trailing slash never cuts a segment", "/static/v2/a.css", "/static/v", "/static/v2/a.css", ""},
		{"a byte prefix ending in a slash", "/v1/users", "/v1/", "/users", "/v1"},
		{"a root prefix removes nothing", "/x", "/", "/x", ""},
		{"no prefix removes nothing", "/x", "", "/x", ""},
		{"a prefix the path does not match removes nothing", "/apix", "/api", "/apix", ""},
		{"an encoded slash stays in the forwarded path", "/api/a%2Fb", "/api", "/a%2Fb", "/api"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fwd, rm := Strip(tt.path, tt.prefix)
			if fwd != tt.forwarded || rm != tt.removed {
				t.Errorf("Strip(%q, %q) = %q, %q; want %q, %q", tt.path, tt.prefix, fwd, rm, tt.forwarded, tt.removed)
			}
		})
	}
}
