package e2e

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestBadCommandLinesExitWithStatus2AndNameTheProblem(t *testing.T) {
	backend := "--backend=http://127.0.0.1:1"
	badFile := writeConfig(t, "retries = -1\nhealth {\n  interval = \"soon\"\n}\nbackend \"http://127.0.0.1:1\" {}\n")
	backendFile := writeConfig(t, "backend \"http://127.0.0.1:1\" {}\n")
	dir := t.TempDir()
	shortSecret := filepath.Join(dir, "short")
	if err := os.WriteFile(shortSecret, []byte("too short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missingSecret := filepath.Join(dir, "missing")
	tests := []usageCase{
		{"no arguments at all print usage", nil, "usage:"},
		{"an unknown command is named", []string{"frobnicate"}, `unknown command "frobnicate"`},
		{"an unknown flag is named", []string{"serve", backend, "--bogus"}, "-bogus"},
		{"serve without a backend says so", []string{"serve"}, "no backend"},
		{"a backend without a scheme is refused", []string{"--backend", "127.0.0.1:8081"}, "http://127.0.0.1:8081"},
		{"a backend with another scheme is refused", []string{"--backend", "ftp://127.0.0.1:21"}, `scheme "ftp"`},
		{"a backend given twice is refused", []string{backend, backend}, "given twice"},
		{"a bad duration names its flag", []string{backend, "--health-interval", "soon"}, "-health-interval"},
		{"a zero duration names its flag", []string{backend, "--dial-timeout", "0s"}, "--dial-timeout"},
		{"rise below one names its flag", []string{backend, "--rise", "0"}, "--rise"},
		{"fall below one names its flag", []string{backend, "--fall", "0"}, "--fall"},
		{"negative retries name their flag", []string{backend, "--retries", "-1"}, "--retries"},
		{"an unknown policy is named", []string{backend, "--policy", "fastest"}, `"fastest"`},
		{"a negative weight is refused", []string{"--backend", "http://127.0.0.1:1,weight=-1"}, `-backend: weight "-1": want a whole number from 0 to 1000`},
		{"a weight that is not a number is refused", []string{"--backend", "http://127.0.0.1:1,weight=abc"}, `-backend: weight "abc"`},
		{"a bad PROXY protocol version names the flag", []string{"--backend", "http://127.0.0.1:1,proxy-protocol=v3"}, `-backend: proxy-protocol: "v3": want v1 or v2`},
		{"an unknown backend option is named", []string{"--backend", "http://127.0.0.1:1,colour=red"}, `-backend: unknown option "colour=red"`},
		{"header-hash without a header name asks for one", []string{backend, "--policy", "header-hash"}, "flag -policy: policy header-hash needs a header name"},
		{"a policy argument where none is allowed is refused", []string{backend, "--policy", "round-robin:3"}, `flag -policy: policy "round-robin" takes no argument`},
		{"a missing cookie secret file is named", []string{backend, "--cookie-secret-file", missingSecret}, "--cookie-secret-file: open " + missingSecret},
		{"a short cookie secret is refused", []string{backend, "--cookie-secret-file", shortSecret}, "want at least 16 bytes of secret, got 9"},
		{"a bad log level names its flag", []string{backend, "--log-level", "loud"}, "-log-level"},
		{"a bad log format names its flag", []string{backend, "--log-format", "xml"}, "-log-format"},
		{"a stray argument is named", []string{backend, "extra"}, `"extra"`},
		{"a health path without a slash is refused", []string{backend, "--health-path", "health"}, "--health-path"},
		{"a bad trusted proxy names its flag", []string{backend, "--trusted-proxy", "proxy.example"}, "-trusted-proxy"},
		{"PROXY protocol without a trusted proxy names its flag", []string{backend, "--proxy-protocol"}, "--proxy-protocol: needs --trusted-proxy"},
		{"a bad request ID header name names its flag", []string{backend, "--request-id-header", "X Request"}, "--request-id-header: want a header name"},
		{"a max body without a number names its flag", []string{backend, "--max-body", "lots"}, "-max-body"},
		{"a max body with an ambiguous unit names its flag", []string{backend, "--max-body", "10m"}, "-max-body"},
		{"negative max conns name their flag", []string{backend, "--max-conns", "-1"}, "--max-conns"},
		{"a zero header timeout names its flag", []string{backend, "--client-header-timeout", "0s"}, "-client-header-timeout"},
		{"a zero idle timeout names its flag", []string{backend, "--client-idle-timeout", "0s"}, "-client-idle-timeout"},
		{"a bad rate limit names its flag", []string{backend, "--rate-limit", "fast"}, "-rate-limit"},
		{"a rate limit per hour names its flag", []string{backend, "--rate-limit", "10/h"}, "-rate-limit"},
		{"a negative burst names its flag", []string{backend, "--rate-limit", "10/s", "--rate-burst", "-1"}, "--rate-burst"},
		{"a burst without a rate names its flag", []string{backend, "--rate-burst", "5"}, "--rate-burst"},
		{"backend without --listen says so", []string{"backend"}, "--listen"},
		{"demo refuses backends", []string{"demo", backend}, "--backend"},
		{"a bad config file's first problem is named with its position", []string{"--config", badFile},
			"roundhouse: " + badFile + ":1:11: retries: must not be negative, got -1\n"},
		{"a bad config file's every problem is named with its position", []string{"--config", badFile},
			"roundhouse: " + badFile + ":3:14: health.interval: bad duration \"soon\""},
		{"a missing config file is named", []string{"--config", "/nonexistent/roundhouse.hcl"}, "/nonexistent/roundhouse.hcl: no such file"},
		{"demo refuses backends from a config file", []string{"demo", "--config", backendFile}, backendFile + ":1:9: backend: demo starts its own backends"},
		{"validate without a file", []string{"validate"}, "usage: roundhouse validate FILE"},
		{"validate with two files", []string{"validate", badFile, badFile}, "usage: roundhouse validate FILE"},
		{"a non-loopback admin address without a token is refused", []string{backend, "--admin", "0.0.0.0:9090"}, "--admin: 0.0.0.0:9090: not a loopback address"},
		{"an admin address on every interface without a token is refused", []string{backend, "--admin", ":9090"}, "--admin: :9090: not a loopback address"},
		{"an admin address without a port is refused", []string{backend, "--admin", "127.0.0.1"}, `--admin: want host:port, such as 127.0.0.1:8080, got "127.0.0.1"`},
		{"a missing admin token file is named", []string{backend, "--admin", "127.0.0.1:0", "--admin-token-file", "/nonexistent/token"}, "--admin-token-file"},
		{"an admin token file without --admin is refused", []string{backend, "--admin-token-file", "/nonexistent/token"}, "--admin-token-file: needs --admin"},
		{"upgrade needs a PID file or a PID", []string{"upgrade"}, "give --pid-file FILE or --pid PID (one of them)"},
		{"upgrade takes only one of them", []string{"upgrade", "--pid", "1", "--pid-file", "x"}, "one of them"},
		{"a bad health status list names its flag", []string{backend, "--health-expect", "2xx"}, "-health-expect"},
		{"a Host among the probe headers is refused", []string{backend, "--health-header", "Host: x"}, "--health-host"},
		{"status refuses a stray argument", []string{"status", "extra"}, `"extra"`},
		{"status refuses an address without a port", []string{"status", "--admin", "localhost"}, "--admin localhost"},
	}
	expectUsageErrors(t, tests)
}

func TestVersionAndHelpExitZero(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"help"}, {"serve", "-h"}, {"-h"}} {
		p := start(t, args...)
		if code := p.wait(t); code != 0 {
			t.Errorf("%v: exit status %d, want 0; output:\n%s", args, code, p.output())
		}
	}
	if p := start(t, "version"); p.wait(t) == 0 && !strings.HasPrefix(p.output(), "roundhouse ") {
		t.Errorf("version printed %q", p.output())
	}
}

func TestAnAddressInUseExitsWithStatus1(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	p := start(t, "--listen", ln.Addr().String(), "--backend", "http://127.0.0.1:1")
	if code := p.wait(t); code != exitRuntime {
		t.Errorf("exit status %d, want 1; output:\n%s", code, p.output())
	}
	if !strings.Contains(p.output(), ln.Addr().String()) {
		t.Errorf("the error does not name the address:\n%s", p.output())
	}
}

func TestValidateAcceptsTheExampleWithASummary(t *testing.T) {
	p := start(t, "validate", "../examples/roundhouse.hcl")
	if code := p.wait(t); code != 0 {
		t.Fatalf("exit status %d, want 0; output:\n%s", code, p.output())
	}
	want := "../examples/roundhouse.hcl: ok: 3 backends (1 disabled), policy weighted-round-robin, listen 127.0.0.1:8080, admin 127.0.0.1:9090\n"
	if got := p.output(); got != want {
		t.Errorf("output %q, want %q", got, want)
	}
}

func TestValidateAcceptsTheRoutesExampleWithASummary(t *testing.T) {
	p := start(t, "validate", "../examples/routes.hcl")
	if code := p.wait(t); code != 0 {
		t.Fatalf("exit status %d, want 0; output:\n%s", code, p.output())
	}
	want := "../examples/routes.hcl: ok: 3 backends in 2 pools: api (2 backends, policy least-conn), web (1 backend, policy round-robin); 2 routes: api -> api, site -> web; listen 127.0.0.1:8080\n"
	if got := p.output(); got != want {
		t.Errorf("output %q, want %q", got, want)
	}
}

func TestValidateListsEveryProblemWithItsPosition(t *testing.T) {
	file := writeConfig(t, `listen = "8080"
retries = "two"
backend "ftp://127.0.0.1:21" {}
backend "http://127.0.0.1:8081" {
  weight = 1001
}
health {
  interval = "10 seconds"
}
cache {}
`)
	p := start(t, "validate", file)
	if code := p.wait(t); code != exitRuntime {
		t.Fatalf("exit status %d, want 1; output:\n%s", code, p.output())
	}
	want := []string{
		file + `:1:10: listen: want host:port, such as 127.0.0.1:8080, got "8080"`,
		file + `:2:11: retries: want a whole number, got a string`,
		file + `:3:9: backend "ftp://127.0.0.1:21": scheme "ftp": want http, https or h2c`,
		file + `:5:12: backend.weight: want a whole number from 0 to 1000, got 1001`,
		file + `:8:14: health.interval: bad duration "10 seconds": want a number and a unit, such as 500ms, 10s or 1m30s`,
		file + `:10:1: unknown block "cache" (known: backend, health, timeouts, limits, ejection, log, admin, sticky, edge, tls, pool, route)`,
	}
	if got := strings.Split(strings.TrimSpace(p.output()), "\n"); !slices.Equal(got, want) {
		t.Errorf("output:\n%s\nwant:\n%s", p.output(), strings.Join(want, "\n"))
	}
}

func TestServeTakesTheConfigFileAndFlagsOverrideIt(t *testing.T) {
	t.Cleanup(http.DefaultClient.CloseIdleConnections)
	backend := func(name string) string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, name)
		}))
		t.Cleanup(srv.Close)
		return srv.URL
	}
	disabled, a, b := backend("disabled"), backend("a"), backend("b")
	// The file's listen address is taken, so the balancer can only start if
	// --listen overrides it. Policy "first" would send everything to the
	// disabled backend if it were not left out, and to a otherwise.
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	file := writeConfig(t, `
listen = "`+taken.Addr().String()+`"
policy = "first"
backend "`+disabled+`" {
  enabled = false
}
backend "`+a+`" {}
backend "`+b+`" {}
log {
  access = false
}
`)
	lb := start(t, "serve", "--config", file, "--listen", "127.0.0.1:0", "--access-log")
	addr := lb.waitFor(t, listening)
	for range 4 {
		if code, body := get(t, "http://"+addr+"/"); code != http.StatusOK || body != "a" {
			t.Fatalf("got %d %q, want 200 from backend a (the first enabled one)", code, body)
		}
	}
	lb.waitFor(t, `access: request: method=GET path=/ .*status=200`) // --access-log beat the file's false
}

func TestAShortAdminTokenIsAUsageErrorNamingTheFlag(t *testing.T) {
	p := start(t, "--backend", "http://127.0.0.1:1", "--admin", "0.0.0.0:9090", "--admin-token-file", writeToken(t, "tiny-secret"))
	if code := p.wait(t); code != exitUsage {
		t.Errorf("exit status %d, want 2; output:\n%s", code, p.output())
	}
	out := p.output()
	if !strings.Contains(out, "--admin-token-file") || !strings.Contains(out, "at least 16 bytes") {
		t.Errorf("the error does not name the flag and the rule:\n%s", out)
	}
	if strings.Contains(out, "tiny-secret") {
		t.Errorf("the error repeats the token:\n%s", out)
	}
}

func TestStatusPrintsTheBackendsOfARunningBalancer(t *testing.T) {
	t.Cleanup(http.DefaultClient.CloseIdleConnections)
	var backends []string
	for range 2 {
		b := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
		t.Cleanup(b.Close)
		backends = append(backends, b.URL)
	}
	token := writeToken(t, "a-token-of-24-bytes-long")
	lb := start(t, "--listen", "127.0.0.1:0", "--backend", backends[0], "--backend", backends[1],
		"--admin", "127.0.0.1:0", "--admin-token-file", token)
	addr := lb.waitFor(t, listening)
	admin := lb.waitFor(t, `listening: .*admin=(127\.0\.0\.1:\d+)`)
	for range 4 {
		if code, body := get(t, "http://"+addr+"/"); code != http.StatusOK {
			t.Fatalf("proxy: %d %s", code, body)
		}
	}

	st := start(t, "status", "--admin", admin, "--admin-token-file", token)
	if code := st.wait(t); code != 0 {
		t.Fatalf("status exit status %d; output:\n%s", code, st.output())
	}
	lines := strings.Split(strings.TrimSpace(st.output()), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "ID") || !strings.Contains(lines[0], "STATE") {
		t.Fatalf("want a header and two rows:\n%s", st.output())
	}
	for i, b := range backends {
		if !strings.Contains(lines[i+1], b) || !strings.Contains(lines[i+1], " up ") {
			t.Errorf("row %d does not show %s up: %q", i+1, b, lines[i+1])
		}
	}

	noToken := start(t, "status", "--admin", admin)
	if code := noToken.wait(t); code != exitRuntime || !strings.Contains(noToken.output(), "401") {
		t.Errorf("status without the token: exit %d, output:\n%s\nwant 1 and the 401", code, noToken.output())
	}

	lb.stop(t)
	gone := start(t, "status", "--admin", admin, "--admin-token-file", token)
	if code := gone.wait(t); code != exitRuntime || !strings.Contains(gone.output(), "unreachable") {
		t.Errorf("status after shutdown: exit %d, output:\n%s\nwant 1 and unreachable", code, gone.output())
	}
}
