package e2e

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// The backend-side timeout flags reach the balancer's transport and
// proxy: each is set well below its default, and the test fails long
// before the default would have taken effect.
func TestBackendTimeoutFlagsTakeEffect(t *testing.T) {
	do := func(t *testing.T, url, method, body string, within time.Duration) (int, string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), within)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: no answer within %v: %v", method, url, within, err)
		}
		defer resp.Body.Close()
		got, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(got)
	}

	t.Run("--tls-handshake-timeout passes a silent https backend over", func(t *testing.T) {
		// Takes TCP connections into its queue and never answers (default: 5s).
		silent, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { silent.Close() })
		b := start(t, "backend", "--listen", "127.0.0.1:0", "--name", "live")
		baddr := b.waitFor(t, listening)
		lb := start(t, "--listen", "127.0.0.1:0", "--backend", "https://"+silent.Addr().String(),
			"--backend", "http://"+baddr, "--tls-handshake-timeout", "300ms", "--health-interval", "1h")
		url := "http://" + lb.waitFor(t, listening)
		if code, body := do(t, url+"/echo", http.MethodPost, "a body", 3*time.Second); code != http.StatusOK || body != "a body" {
			t.Errorf("POST: %d %q, want 200 with the body from the live backend", code, body)
		}
		lb.stop(t)
	})

	t.Run("--backend-idle-timeout closes idle backend connections", func(t *testing.T) {
		closed := make(chan struct{}, 16)
		backend := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
		backend.Config.ConnState = func(_ net.Conn, s http.ConnState) {
			if s == http.StateClosed {
				select {
				case closed <- struct{}{}:
				default:
				}
			}
		}
		backend.Start()
		t.Cleanup(backend.Close)
		lb := start(t, "--listen", "127.0.0.1:0", "--backend", backend.URL,
			"--backend-idle-timeout", "200ms", "--health-interval", "1h")
		url := "http://" + lb.waitFor(t, listening)
		if code, _ := do(t, url+"/", http.MethodGet, "", 5*time.Second); code != http.StatusOK {
			t.Fatalf("GET: %d, want 200", code)
		}
		select { // default: 90s
		case <-closed:
		case <-time.After(5 * time.Second):
			t.Error("the balancer kept its idle backend connection for 5s")
		}
		lb.stop(t)
	})

	t.Run("--request-timeout answers 504 for a backend that does not", func(t *testing.T) {
		b := start(t, "backend", "--listen", "127.0.0.1:0")
		baddr := b.waitFor(t, listening)
		lb := start(t, "--listen", "127.0.0.1:0", "--backend", "http://"+baddr, "--request-timeout", "300ms")
		url := "http://" + lb.waitFor(t, listening)
		if code, _ := do(t, url+"/slow?d=1m", http.MethodGet, "", 5*time.Second); code != http.StatusGatewayTimeout {
			t.Errorf("GET /slow?d=1m: %d, want 504", code)
		}
		lb.stop(t)
	})
}
