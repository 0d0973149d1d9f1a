package transport

import (
	"context"
	"net/http"
	"net/http/httptest"
	"regexp"
	"testing"
	"time"
)

// idBackend answers with its own X-Request-ID, which the client must never
// see, and sends the ID it received on the returned channel.
func idBackend(t *testing.T) (*httptest.Server, <-chan string) {
	t.Helper()
	got := make(chan string, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			return
		}
		if n := len(r.Header.Values("X-Request-Id")); n > 1 {
			t.Errorf("backend got %d X-Request-ID headers, want at most 1", n)
		}
		select {
		case got <- r.Header.Get("X-Request-ID"):
		default:
			t.Errorf("id backend: too many requests")
		}
		w.Header().Set("X-Request-ID", "from-the-backend")
	}))
	t.Cleanup(srv.Close)
	return srv, got
}

var generatedID = regexp.MustCompile(`^[0-9a-f]{32}$`)

func TestRequestIDs(t *testing.T) {
	tests := []struct {
		name    string
		trusted TrustedProxies
		sent    string // the client's X-Request-ID; "": none
		kept    bool   // the backend must see sent
	}{
		{"a request without an ID gets a new one", nil, "", false},
		{"an ID from a trusted peer is kept", mustPrefixes(t, "127.0.0.1/32"), "trace-abc-123", true},
		{"an ID from an untrusted peer is replaced", mustPrefixes(t, "10.0.0.0/8"), "spoofed-id", false},
		{"an implausible ID from a trusted peer is replaced", mustPrefixes(t, "127.0.0.1/32"), "has space", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			backend, got := idBackend(t)
			b := newBalancer(t, balancerOptions{trusted: tt.trusted, requestIDHeader: "X-Request-ID"}, backend.URL)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.url+"/x", nil)
			if err != nil {
				t.Fatal(err)
			}
			if tt.sent != "" {
				req.Header.Set("X-Request-ID", tt.sent)
			}
			resp, err := b.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			seen := <-got
			switch {
			case tt.kept && seen != tt.sent:
				t.Errorf("backend saw ID %q, want the client's %q", seen, tt.sent)
			case !tt.kept && !generatedID.MatchString(seen):
				t.Errorf("backend saw ID %q, want a new 32-hex-digit one", seen)
			}
			if ids := resp.Header.Values("X-Request-ID"); len(ids) != 1 || ids[0] != seen {
				t.Errorf("response X-Request-ID %q, want exactly the backend's %q", ids, seen)
			}
			b.log.waitFor(t, 1, "access", "request_id="+seen)
		})
	}
}

func TestEachRequestGetsItsOwnID(t *testing.T) {
	backend, got := idBackend(t)
	b := newBalancer(t, balancerOptions{requestIDHeader: "X-Request-ID"}, backend.URL)
	b.get(t, "/")
	b.get(t, "/")
	if first, second := <-got, <-got; first == second {
		t.Errorf("two requests share the ID %q", first)
	}
}

func TestTheRetryLogLineCarriesTheRequestID(t *testing.T) {
	backend, got := idBackend(t)
	b := newBalancer(t, balancerOptions{retries: 1, requestIDHeader: "X-Request-ID"}, deadURL(t), backend.URL)
	resp := b.getResp(t, "/")
	id := resp.Header.Get("X-Request-ID")
	if seen := <-got; seen != id {
		t.Errorf("backend saw %q, client got %q", seen, id)
	}
	b.log.waitFor(t, 1, "retrying on another backend", "request_id="+id)
	b.log.waitFor(t, 1, "access", "request_id="+id, "attempts=2")
}

func TestRequestIDsCanBeTurnedOff(t *testing.T) {
	backend, got := idBackend(t)
	b := newBalancer(t, balancerOptions{}, backend.URL)
	resp := b.getResp(t, "/")
	if seen := <-got; seen != "" {
		t.Errorf("backend saw ID %q with request IDs off", seen)
	}
	if id := resp.Header.Get("X-Request-ID"); id != "from-the-backend" {
		t.Errorf("client got ID %q, want the backend's own, untouched", id)
	}
}

// getResp sends GET path and returns the response, its body read and closed.
func (b *balancer) getResp(t *testing.T, path string) *http.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := b.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// BenchmarkNewRequestID measures what a request pays for its new ID.
func BenchmarkNewRequestID(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if id := newRequestID(); len(id) != 32 {
			b.Fatalf("ID %q", id)
		}
	}
}
