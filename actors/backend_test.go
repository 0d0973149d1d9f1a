package actors

import (
	"strings"
	"testing"
)

func TestParseBackendURLAcceptsBackendsAndNamesWhatIsWrong(t *testing.T) {
	tests := []struct {
		name, in string
		want     string // the URL, or a substring of the error
		ok       bool
	}{
		{"a plain host and port is kept", "http://127.0.0.1:8081", "http://127.0.0.1:8081", true},
		{"https with a path prefix is kept", "https://api.example:8443/v1", "https://api.example:8443/v1", true},
		{"h2c, cleartext HTTP/2 by prior knowledge, is a backend scheme", "h2c://127.0.0.1:50051", "h2c://127.0.0.1:50051", true},
		{"a lone slash is dropped", "http://127.0.0.1:8081/", "http://127.0.0.1:8081", true},
		{"a missing scheme suggests one", "127.0.0.1:8081", "http://127.0.0.1:8081", false},
		{"another scheme is refused", "ftp://h:21", `scheme "ftp"`, false},
		{"a missing host is refused", "http://:80", "missing host", false},
		{"user info is refused", "http://u:p@h:80", "user info", false},
		{"a query is refused", "http://h:80/?a=1", "query", false},
		{"a fragment is refused", "http://h:80/#x", "fragment", false},
		{"port zero is refused", "http://h:0", `bad port "0"`, false},
		{"a port above 65535 is refused", "http://h:65536", `bad port "65536"`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := ParseBackendURL(tt.in)
			switch {
			case tt.ok && err != nil:
				t.Fatalf("ParseBackendURL(%q): %v", tt.in, err)
			case tt.ok && u.String() != tt.want:
				t.Errorf("ParseBackendURL(%q) = %q, want %q", tt.in, u, tt.want)
			case !tt.ok && err == nil:
				t.Fatalf("ParseBackendURL(%q) = %q, want an error mentioning %q", tt.in, u, tt.want)
			case !tt.ok && !strings.Contains(err.Error(), tt.want):
				t.Errorf("ParseBackendURL(%q): error %q does not mention %q", tt.in, err, tt.want)
			}
		})
	}
}
