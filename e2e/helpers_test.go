package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	mathrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/roundhouse/roundhouse/demo"
)

// binary is the roundhouse command, built once by TestMain (with the race
// detector) for every test of the package to run as a real process.
var binary string

// long runs the long variants of the fault matrix (15 s per toxic instead
// of 3 s) and of the exhaustion tests (longer loads, more requests or
// rounds; docs/exhaustion.md gives each): one flag for both. Each also has
// its own environment variable (longVariant).
var long = flag.Bool("long", false,
	"run the long variants of the fault matrix and the exhaustion tests (also $ROUNDHOUSE_FAULTS_LONG=1, $ROUNDHOUSE_EXHAUST_LONG=1)")

// longVariant says whether a test runs its long variant: -long, or the
// variable env set to anything but "".
func longVariant(env string) bool { return *long || os.Getenv(env) != "" }

// TestMain builds the command from the module's root package, by import
// path, so that the tests do not depend on the directory they run in,
// then runs the tests under goleak and removes the binary.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "roundhouse-test")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "roundhouse")
	if out, err := exec.Command("go", "build", "-race", "-o", binary, "github.com/roundhouse/roundhouse").CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		panic("go build: " + err.Error() + "\n" + string(out))
	}
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		os.RemoveAll(dir)
		os.Exit(code)
	}))
}

// The command's exit statuses (main.go): 0 for success, 1 when it fails
// at run time, 2 for a bad command line or configuration.
const (
	exitRuntime = 1
	exitUsage   = 2
)

// listening matches the balancer's (and a demo backend's) first line once
// it serves; its submatch is the address.
const listening = `listening: addr=(127\.0\.0\.1:\d+)`

// usageCase is a command line the binary must refuse with exit status 2,
// and a text its output must contain.
type usageCase struct {
	name string
	args []string
	want string
}

// expectUsageErrors runs each case as a subtest.
func expectUsageErrors(t *testing.T, cases []usageCase) {
	t.Helper()
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			p := start(t, tt.args...)
			if code := p.wait(t); code != exitUsage {
				t.Errorf("exit status %d, want 2; output:\n%s", code, p.output())
			}
			if !strings.Contains(p.output(), tt.want) {
				t.Errorf("output does not mention %q:\n%s", tt.want, p.output())
			}
		})
	}
}

// writeConfig writes src to a file in a fresh directory and returns its name.
func writeConfig(t *testing.T, src string) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "roundhouse.hcl")
	if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

// configWith is a configuration file listing backends, with the given
// weights (1 when absent).
func configWith(backends []string, weights map[string]int) string {
	var b strings.Builder
	b.WriteString("policy = \"weighted-round-robin\"\n")
	for _, u := range backends {
		w, ok := weights[u]
		if !ok {
			w = 1
		}
		fmt.Fprintf(&b, "backend %q {\n  weight = %d\n}\n", u, w)
	}
	return b.String()
}

// writeToken writes an admin token file and returns its path.
func writeToken(t *testing.T, token string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "admin-token")
	if err := os.WriteFile(p, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// get fetches url and returns the status and body.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	code, body, err := fetch(url)
	if err != nil {
		t.Fatal(err)
	}
	return code, body
}

// fetch gets url with http.DefaultClient within 10 s and returns the
// status and body.
func fetch(url string) (int, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// demoBackend starts a demo backend (package demo's handler, as
// "roundhouse backend" serves it) named name, in the test process, and
// returns its URL.
func demoBackend(t *testing.T, name string) string {
	t.Helper()
	srv := httptest.NewServer(demo.Handler(name))
	t.Cleanup(srv.Close)
	return srv.URL
}

// demoBackends starts named demo backends and returns their URLs by name.
func demoBackends(t *testing.T, names ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, n := range names {
		out[n] = demoBackend(t, n)
	}
	return out
}

// namedBackend is an origin that answers with its name; it does not count
// health probes.
func namedBackend(t *testing.T, name string, hits *atomic.Int64) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			return
		}
		hits.Add(1)
		_, _ = io.WriteString(w, name)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// checkedRequest sends GET / or POST /sha256 to a demo backend, or a
// balancer in front of demo backends, with a random body of up to maxBody
// bytes, and checks the answer (the body's SHA-256 for a POST). A
// non-empty key goes in an Idempotency-Key header.
func checkedRequest(client *http.Client, url string, post bool, maxBody int, key string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var body []byte
	method, path := http.MethodGet, "/"
	if post {
		body = make([]byte, 1+mathrand.IntN(maxBody))
		_, _ = rand.Read(body)
		method, path = http.MethodPost, "/sha256"
	}
	req, err := http.NewRequestWithContext(ctx, method, url+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	switch {
	case err != nil:
		return fmt.Errorf("%s %s: reading body: %w", method, path, err)
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("%s %s: status %d: %s", method, path, resp.StatusCode, strings.TrimSpace(string(got)))
	case post:
		sum := sha256.Sum256(body)
		if strings.TrimSpace(string(got)) != hex.EncodeToString(sum[:]) {
			return fmt.Errorf("POST /sha256: digest %q does not match the %d bytes sent", got, len(body))
		}
	case !strings.HasPrefix(string(got), "Hello from "):
		return fmt.Errorf("GET /: body %q", got)
	}
	return nil
}
