package acme

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

func TestRedirectKeepsHostPathAndQueryAndNamesANonStandardPort(t *testing.T) {
	tests := []struct {
		name, tlsPort, method, target, host, want string
	}{
		{"the standard port is left out", "443", http.MethodGet, "/a/b?c=d", "example.com", "https://example.com/a/b?c=d"},
		{"the plain-HTTP port is dropped", "443", http.MethodGet, "/", "example.com:80", "https://example.com/"},
		{"another TLS port is written", "8443", http.MethodGet, "/x", "example.com:8080", "https://example.com:8443/x"},
		{"a POST is redirected with 308, keeping its method", "443", http.MethodPost, "/form", "example.com", "https://example.com/form"},
		{"an IPv6 literal keeps its brackets", "443", http.MethodGet, "/", "[::1]:80", "https://[::1]/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(tt.method, tt.target, nil)
			req.Host = tt.host
			rec := httptest.NewRecorder()
			Redirect(tt.tlsPort).ServeHTTP(rec, req)
			if rec.Code != http.StatusPermanentRedirect || rec.Header().Get("Location") != tt.want {
				t.Errorf("%d %q, want 308 %q", rec.Code, rec.Header().Get("Location"), tt.want)
			}
		})
	}
}

// lines is an io.Writer that hands each write (one log line) to a channel,
// for a test to wait on.
type lines chan string

func (l lines) Write(p []byte) (int, error) {
	select {
	case l <- string(p):
	default: // the test has seen enough
	}
	return len(p), nil
}

func TestRunRetriesAnUnreachableCAAndEndsWithItsContext(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ca := "https://" + dead.Addr().String() + "/dir"
	dead.Close() // nothing answers there
	out := make(lines, 100)
	m, err := New(Options{
		Domains: []string{"Example.TEST", "example.test"}, CA: ca, Storage: t.TempDir(),
		TLSAddr: ln.Addr(), Logger: hclog.New(&hclog.LoggerOptions{Output: out, Level: hclog.Info}),
		RetryMin: 10 * time.Millisecond, RetryMax: 20 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Domains(); len(got) != 1 || got[0] != "example.test" {
		t.Errorf("Domains() = %q, want [example.test]", got)
	}
	if !m.Manages("EXAMPLE.test") || m.Manages("other.test") {
		t.Error("Manages is wrong")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	failures := 0
	for failures < 2 { // it tries again
		select {
		case l := <-out:
			if strings.Contains(l, "certificate not obtained; TLS handshakes for this name are refused until it is") {
				failures++
			}
		case <-time.After(20 * time.Second):
			t.Fatal("no failed attempt logged")
		}
	}
	if c := m.Certificates(); len(c) != 1 || c[0].Ready {
		t.Errorf("Certificates() = %+v, want example.test not ready", c)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not end with its context")
	}
}

func TestNewRefusesNoDomainAndNoStorage(t *testing.T) {
	if _, err := New(Options{Storage: t.TempDir()}); err == nil {
		t.Error("no domain: no error")
	}
	if _, err := New(Options{Domains: []string{"example.test"}}); err == nil {
		t.Error("no storage: no error")
	}
}
