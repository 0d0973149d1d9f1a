package e2e

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
)

func TestGracefulShutdownFinishesTheRequestInFlight(t *testing.T) {
	t.Cleanup(http.DefaultClient.CloseIdleConnections)
	arrived, release := make(chan struct{}), make(chan struct{})
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			return
		}
		close(arrived)
		<-release
		_, _ = io.WriteString(w, "finished")
	}))
	t.Cleanup(backend.Close)
	lb := start(t, "--listen", "127.0.0.1:0", "--backend", backend.URL, "--shutdown-grace", "20s")
	addr := lb.waitFor(t, listening)

	type result struct {
		code int
		body string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		code, body, err := fetch("http://" + addr + "/work")
		done <- result{code, body, err}
	}()
	<-arrived
	lb.signal(t, syscall.SIGINT)
	lb.waitFor(t, "shutting down")
	close(release)
	if r := <-done; r.err != nil || r.code != http.StatusOK || r.body != "finished" {
		t.Errorf("in-flight request got %d %q (%v), want 200 finished", r.code, r.body, r.err)
	}
	if code := lb.wait(t); code != 0 {
		t.Errorf("exit status %d, want 0; output:\n%s", code, lb.output())
	}
	out := lb.output()
	if i, j := strings.Index(out, "path=/work"), strings.Index(out, "stopped"); i < 0 || j < i {
		t.Errorf("stopped before the in-flight request finished:\n%s", out)
	}
}
