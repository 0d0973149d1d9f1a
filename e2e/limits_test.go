package e2e

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestEdgeLimitFlagsTakeEffect(t *testing.T) {
	b := start(t, "backend", "--listen", "127.0.0.1:0")
	baddr := b.waitFor(t, listening)
	lb := start(t, "--listen", "127.0.0.1:0", "--backend", "http://"+baddr,
		"--max-body", "10B", "--rate-limit", "0.1/s", "--rate-burst", "2")
	url := "http://" + lb.waitFor(t, listening)
	client := &http.Client{Transport: &http.Transport{}}
	t.Cleanup(client.CloseIdleConnections)
	do := func(method, path, body string) (int, string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, method, url+path, strings.NewReader(body))
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, resp.Header.Get("Retry-After")
	}
	if code, _ := do(http.MethodPost, "/echo", "eleven byte"); code != http.StatusRequestEntityTooLarge {
		t.Errorf("11-byte body: %d, want 413", code)
	}
	if code, _ := do(http.MethodGet, "/", ""); code != http.StatusOK {
		t.Errorf("second request: %d, want 200", code)
	}
	if code, retry := do(http.MethodGet, "/", ""); code != http.StatusTooManyRequests || retry != "10" {
		t.Errorf("third request: %d, Retry-After %q; want 429, 10", code, retry)
	}
	lb.stop(t)
	b.stop(t)
}
