package config

import (
	"errors"
	"flag"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// oneBackend ends the files of tests about something else, so that they do
// not also report "no backend". It comes last, so it moves no position.
const oneBackend = "\n" + `backend "http://127.0.0.1:8081" {}` + "\n"

// load writes src to roundhouse.hcl in a fresh directory, makes that the
// working directory (so that positions read "roundhouse.hcl:1:1"), and
// loads it with --config and then args.
// testToken is what the admin token files load writes hold.
const testToken = "a-token-of-24-bytes-long"

func load(t *testing.T, src string, args ...string) (*Settings, error) {
	t.Helper()
	dir := t.TempDir()
	t.Chdir(dir)
	// The admin token files the good files name, which are read.
	for _, name := range []string{"admin.token", "secrets/admin.token"} {
		if err := os.MkdirAll(filepath.Dir(name), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(name, []byte(testToken+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile("roundhouse.hcl", []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return Load(append([]string{"--config", "roundhouse.hcl"}, args...), Options{})
}

// problems returns err's problems as strings, failing the test when err is
// not Problems.
func problems(t *testing.T, err error) []string {
	t.Helper()
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("error %v (%T), want Problems", err, err)
	}
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return out
}

func mustURL(t *testing.T, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// fileBackend is the backend a file's backend block at line:column gives.
func fileBackend(t *testing.T, raw string, weight int, disabled bool, pos string) Backend {
	return Backend{URL: mustURL(t, raw), Weight: weight, Disabled: disabled, Source: "roundhouse.hcl:" + pos}
}

func TestDefaultsAreTheDocumentedOnes(t *testing.T) {
	want := &Settings{
		Listen: "127.0.0.1:8080", Policy: "round-robin", Retries: 2, ShutdownGrace: 15 * time.Second,
		Health: Health{Path: "/health", Interval: 10 * time.Second, Timeout: 2 * time.Second, Rise: 2, Fall: 3, Expect: "200-399"},
		Timeouts: Timeouts{
			Dial: 3 * time.Second, TLSHandshake: 5 * time.Second, ResponseHeader: 30 * time.Second,
			BackendIdle: 90 * time.Second, BackendH2Ping: 5 * time.Second, ClientHeader: 10 * time.Second, ClientIdle: 120 * time.Second, ClientBody: 60 * time.Second,
		},
		Limits:      Limits{QueueSize: 100, QueueTimeout: 5 * time.Second},
		Ejection:    Ejection{After: 5, Time: 30 * time.Second, MaxPercent: 50, FailureRate: 50, FailureWindow: 50},
		RetryBuffer: 64 << 10,
		Edge:        Edge{MaxConns: 10000, RequestIDHeader: "X-Request-ID"},
		TLS:         TLS{ACME: ACME{CA: LetsEncrypt}},
		Log:         Log{Level: "info", Format: "text", Access: true},
	}
	if got := Defaults(); !reflect.DeepEqual(got, want) {
		t.Errorf("Defaults() =\n%+v\nwant\n%+v", got, want)
	}
}

func TestRegisterGivesEveryServeFlagItsDefault(t *testing.T) {
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	var s Settings
	Register(fs, &s)
	if !reflect.DeepEqual(&s, Defaults()) {
		t.Errorf("Register left %+v, want the defaults", s)
	}
	// DefValue is what -h prints; "" for the flags whose help states it.
	want := map[string]string{
		"listen": "127.0.0.1:8080", "backend": "", "policy": "", "cookie-secret-file": "",
		"health-path": "/health", "health-interval": "10s", "health-timeout": "2s", "rise": "2", "fall": "3",
		"dial-timeout": "3s", "response-header-timeout": "30s", "retries": "2", "shutdown-grace": "15s",
		"access-log": "true", "log-level": "", "log-format": "",
		"config": "", "admin": "", "admin-token-file": "",
		"tls-handshake-timeout": "5s", "backend-idle-timeout": "1m30s", "backend-h2-ping": "5s", "client-header-timeout": "10s",
		"client-idle-timeout": "2m0s", "client-body-timeout": "1m0s", "request-timeout": "0s", "max-conns-per-backend": "0",
		"queue-size": "100", "queue-timeout": "5s", "eject-after": "5", "eject-time": "30s",
		"max-ejection-percent": "50", "eject-failure-rate": "50", "eject-failure-window": "50",
		"slow-start": "0s", "retry-buffer": "65536",
		"trusted-proxy": "", "max-body": "", "max-conns": "10000", "h2c": "false", "rate-limit": "",
		"rate-burst": "0", "tls-cert": "", "tls-key": "", "http3": "false", "backend-ca": "",
		"discover": "", "dns-server": "", "proxy-protocol": "false", "request-id-header": "X-Request-ID",
		"health-expect": "", "health-body": "", "health-host": "", "health-header": "", "health-port": "0",
		"health-grpc": "false", "health-grpc-service": "", "pid-file": "",
		"http-listen": "", "acme-domain": "", "acme-email": "", "acme-ca": LetsEncrypt, "acme-ca-root": "", "acme-storage": "",
	}
	n := 0
	fs.VisitAll(func(f *flag.Flag) {
		n++
		def, ok := want[f.Name]
		switch {
		case !ok:
			t.Errorf("unexpected flag --%s", f.Name)
		case f.DefValue != def:
			t.Errorf("--%s default %q, want %q", f.Name, f.DefValue, def)
		}
	})
	if n != len(want) {
		t.Errorf("%d flags, want %d", n, len(want))
	}
}

func TestGoodFiles(t *testing.T) {
	tests := []struct {
		name string
		src  string
		args []string
		want func(t *testing.T, s *Settings) // changes from the defaults
	}{
		{"a file with one backend block takes every default", `backend "http://127.0.0.1:8081" {}`, nil,
			func(t *testing.T, s *Settings) {
				s.Backends = []Backend{fileBackend(t, "http://127.0.0.1:8081", 1, false, "1:9")}
			}},
		{"every top-level attribute and block is read", `
listen         = "0.0.0.0:80"
policy         = "header-hash:X-User"
retries        = 0
shutdown_grace = "1m30s"
backend "https://10.0.0.1:8443/api" { weight = 0 }
backend "http://10.0.0.2/" {
  weight  = 1000
  enabled = true
}
backend "http://10.0.0.3:80" { enabled = false }
health {
  path     = "/ready?full=1"
  interval = "500ms"
  timeout  = "250ms"
  rise     = 1
  fall     = 10
}
timeouts {
  dial            = "1s"
  response_header = "2m"
}
log {
  level  = "WARN"
  format = "json"
  access = false
}
admin {
  listen     = "127.0.0.1:9090"
  token_file = "admin.token"
}
`, nil, func(t *testing.T, s *Settings) {
			s.Listen, s.Policy, s.Retries, s.ShutdownGrace = "0.0.0.0:80", "header-hash:X-User", 0, 90*time.Second
			s.Backends = []Backend{
				fileBackend(t, "https://10.0.0.1:8443/api", 0, false, "6:9"),
				fileBackend(t, "http://10.0.0.2", 1000, false, "7:9"),
				fileBackend(t, "http://10.0.0.3:80", 1, true, "11:9"),
			}
			s.Health = Health{Path: "/ready?full=1", Interval: 500 * time.Millisecond, Timeout: 250 * time.Millisecond, Rise: 1, Fall: 10, Expect: "200-399"}
			s.Timeouts.Dial, s.Timeouts.ResponseHeader = time.Second, 2*time.Minute
			s.Log = Log{Level: "warn", Format: "json", Access: false}
			s.Admin = Admin{Listen: "127.0.0.1:9090", TokenFile: "admin.token", Token: []byte(testToken)}
		}},
		{"comments and empty blocks are fine", `
# a comment
// another
/* and a block comment */
backend "http://127.0.0.1:8081" {} # trailing
health {}
log {
}
policy = "ip-hash" /* inline */
`, nil, func(t *testing.T, s *Settings) {
			s.Backends = []Backend{fileBackend(t, "http://127.0.0.1:8081", 1, false, "5:9")}
			s.Policy = "ip-hash"
		}},
		{"a file of disabled backends is valid", `backend "http://127.0.0.1:8081" { enabled = false }`, nil,
			func(t *testing.T, s *Settings) {
				s.Backends = []Backend{fileBackend(t, "http://127.0.0.1:8081", 1, true, "1:9")}
			}},
		{"a relative file name is taken relative to the config file", `
admin {
  listen     = "[::1]:9090"
  token_file = "secrets/admin.token"
}` + oneBackend, nil, func(t *testing.T, s *Settings) {
			s.Backends = []Backend{fileBackend(t, "http://127.0.0.1:8081", 1, false, "6:9")}
			s.Admin = Admin{Listen: "[::1]:9090", TokenFile: "secrets/admin.token", Token: []byte(testToken)}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := load(t, tt.src, tt.args...)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			want := Defaults()
			want.File = "roundhouse.hcl"
			tt.want(t, want)
			want.Pools = []Pool{want.defaultPool()} // no pool blocks: the top level is the one pool
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got\n%+v\nwant\n%+v", got, want)
			}
		})
	}
}

func TestRelativeFileNamesFollowTheConfigFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "cookie.secret"), []byte("  0123456789abcdef0123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "admin.token"), []byte("a-token-of-24-bytes-long\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "roundhouse.hcl")
	src := "sticky {\n  secret_file = \"cookie.secret\"\n}\nadmin {\n  listen = \"127.0.0.1:9090\"\n  token_file = \"admin.token\"\n}\n" + oneBackend
	if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := Load([]string{"--config", file}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "cookie.secret"); s.Sticky.SecretFile != want {
		t.Errorf("secret_file %q, want %q", s.Sticky.SecretFile, want)
	}
	if want := filepath.Join(dir, "admin.token"); s.Admin.TokenFile != want {
		t.Errorf("token_file %q, want %q", s.Admin.TokenFile, want)
	}
	if got := string(s.StickySecret()); got != "0123456789abcdef0123" {
		t.Errorf("StickySecret() = %q, want the file's contents trimmed", got)
	}
	// The same relative name as a flag is relative to the working directory.
	t.Chdir(dir)
	s, err = Load([]string{"--config", file, "--cookie-secret-file", "cookie.secret"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if s.Sticky.SecretFile != "cookie.secret" {
		t.Errorf("--cookie-secret-file gave %q, want it as given", s.Sticky.SecretFile)
	}
}

func TestBadFilesReportEveryProblemWithItsPosition(t *testing.T) {
	const policies = "round-robin, weighted-round-robin, least-conn, p2c, random, first, ip-hash, header-hash:NAME, cookie[:NAME]"
	tests := []struct {
		name string
		src  string
		want []string
	}{
		// Names the file does not know.
		{"an unknown attribute lists the known ones", `lissen = "x"` + oneBackend,
			[]string{`roundhouse.hcl:1:1: unknown attribute "lissen" at the top level (known: listen, discover, dns_server, policy, retries, shutdown_grace, slow_start, retry_buffer, pid_file)`}},
		{"a block's attribute at the top level names its block", `interval = "5s"` + oneBackend,
			[]string{`roundhouse.hcl:1:1: unknown attribute "interval" at the top level; it belongs in the health block`}},
		{"an unknown attribute in a block lists the block's", "health {\n  intervall = \"5s\"\n}" + oneBackend,
			[]string{`roundhouse.hcl:2:3: unknown attribute "intervall" in the health block (known: path, expect, body, host, headers, port, grpc, grpc_service, interval, timeout, rise, fall)`}},
		{"an unknown block lists the known ones", "cache {\n}" + oneBackend,
			[]string{`roundhouse.hcl:1:1: unknown block "cache" (known: backend, health, timeouts, limits, ejection, log, admin, sticky, edge, tls, pool, route)`}},
		{"a nested block at the top level names its block", "acme {\n}" + oneBackend,
			[]string{`roundhouse.hcl:1:1: the acme block belongs in the tls block: write tls { acme { ... } }`}},
		{"a block written as an attribute says so", "health = 3" + oneBackend,
			[]string{`roundhouse.hcl:1:1: health is a block, not an attribute: write health { ... }`}},
		{"an attribute written as a block says so", "listen {}" + oneBackend,
			[]string{`roundhouse.hcl:1:1: listen is an attribute, not a block: write listen = ...`}},
		{"a block inside a block is refused", "log {\n  file {}\n}" + oneBackend,
			[]string{`roundhouse.hcl:2:3: unexpected block "file" in the log block: it takes only attributes`}},
		{"a label on a settings block is refused", `health "x" {}` + oneBackend,
			[]string{`roundhouse.hcl:1:8: health: the health block takes no label`}},
		{"a second settings block is refused", "log {}\nlog {}" + oneBackend,
			[]string{`roundhouse.hcl:2:1: log: a second log block; the first is at line 1`}},
		{"an attribute set twice is refused", "retries = 1\nretries = 2" + oneBackend,
			[]string{`roundhouse.hcl:2:1: Attribute redefined: The argument "retries" was already set at roundhouse.hcl:1,1-8. Each argument may be set only once.`}},

		// Values.
		{"a bad duration", "health {\n  interval = \"10 seconds\"\n}" + oneBackend,
			[]string{`roundhouse.hcl:2:14: health.interval: bad duration "10 seconds": want a number and a unit, such as 500ms, 10s or 1m30s`}},
		{"a duration must be a string", "shutdown_grace = 15" + oneBackend,
			[]string{`roundhouse.hcl:1:18: shutdown_grace: want a duration such as "10s", got a number`}},
		{"a zero duration", "timeouts {\n  dial = \"0s\"\n}" + oneBackend,
			[]string{`roundhouse.hcl:2:10: timeouts.dial: must be positive, got 0s`}},
		{"a negative duration", `shutdown_grace = "-1s"` + oneBackend,
			[]string{`roundhouse.hcl:1:18: shutdown_grace: must be positive, got -1s`}},
		{"a number must be a number", `retries = "two"` + oneBackend,
			[]string{`roundhouse.hcl:1:11: retries: want a whole number, got a string`}},
		{"a number must be whole", "health {\n  fall = 1.5\n}" + oneBackend,
			[]string{`roundhouse.hcl:2:10: health.fall: want a whole number, got 1.5`}},
		{"a number must fit", "retries = 1e30" + oneBackend,
			[]string{`roundhouse.hcl:1:11: retries: 1e+30 is out of range`}},
		{"rise below one", "health {\n  rise = 0\n}" + oneBackend,
			[]string{`roundhouse.hcl:2:10: health.rise: must be at least 1, got 0`}},
		{"negative retries", "retries = -1" + oneBackend,
			[]string{`roundhouse.hcl:1:11: retries: must not be negative, got -1`}},
		{"a bool must be a bool", "log {\n  access = \"yes\"\n}" + oneBackend,
			[]string{`roundhouse.hcl:2:12: log.access: want true or false, got a string`}},
		{"null is not a value", "policy = null" + oneBackend,
			[]string{`roundhouse.hcl:1:10: policy: want a string, got null`}},
		{"a list is not a string", `listen = ["127.0.0.1:80"]` + oneBackend,
			[]string{`roundhouse.hcl:1:10: listen: want a string, got a list`}},
		{"an unknown log level", "log {\n  level = \"loud\"\n}" + oneBackend,
			[]string{`roundhouse.hcl:2:11: log.level: bad value "loud": want trace, debug, info, warn or error`}},
		{"an unknown policy", `policy = "fastest"` + oneBackend,
			[]string{`roundhouse.hcl:1:10: policy: bad value "fastest": unknown policy "fastest" (known: ` + policies + `)`}},
		{"a listen address without a port", `listen = "8080"` + oneBackend,
			[]string{`roundhouse.hcl:1:10: listen: want host:port, such as 127.0.0.1:8080, got "8080"`}},
		{"an admin address without a port", "admin {\n  listen = \"localhost\"\n}" + oneBackend,
			[]string{`roundhouse.hcl:2:12: admin.listen: want host:port, such as 127.0.0.1:8080, got "localhost"`}},
		{"a health path without a slash", "health {\n  path = \"health\"\n}" + oneBackend,
			[]string{`roundhouse.hcl:2:10: health.path: must start with /, got "health"`}},
		{"variables are refused", "retries = var.n" + oneBackend,
			[]string{`roundhouse.hcl:1:11: retries: Variables not allowed: Variables may not be used here.`}},
		{"functions are refused", `listen = upper("x")` + oneBackend,
			[]string{`roundhouse.hcl:1:10: listen: Function calls not allowed: Functions may not be called here.`}},
		{"a missing secret file", "sticky {\n  secret_file = \"missing.secret\"\n}" + oneBackend,
			[]string{`roundhouse.hcl:2:17: sticky.secret_file: open missing.secret: no such file or directory`}},

		// Backends.
		{"a backend without a scheme", `backend "127.0.0.1:8081" {}`,
			[]string{`roundhouse.hcl:1:9: backend "127.0.0.1:8081": want a URL such as http://127.0.0.1:8081`}},
		{"a backend with another scheme", `backend "ftp://127.0.0.1:21" {}` + oneBackend,
			[]string{`roundhouse.hcl:1:9: backend "ftp://127.0.0.1:21": scheme "ftp": want http, https or h2c`}},
		{"a backend with a bad port", `backend "http://127.0.0.1:99999" {}` + oneBackend,
			[]string{`roundhouse.hcl:1:9: backend "http://127.0.0.1:99999": bad port "99999"`}},
		{"a backend with a query", `backend "http://127.0.0.1:1/?a=b" {}` + oneBackend,
			[]string{`roundhouse.hcl:1:9: backend "http://127.0.0.1:1/?a=b": must not carry user info, a query or a fragment`}},
		{"a backend listed twice, once with a slash", "backend \"http://127.0.0.1:8081\" {}\nbackend \"http://127.0.0.1:8081/\" {}",
			[]string{`roundhouse.hcl:2:9: backend http://127.0.0.1:8081: given twice; the first is at line 1`}},
		{"a backend listed twice is reported when either block has other problems", "backend \"http://127.0.0.1:8083\" {\n  weight = 1001\n}\nbackend \"http://127.0.0.1:8083\" {\n  weight = -1\n}" + oneBackend,
			[]string{
				`roundhouse.hcl:2:12: backend.weight: want a whole number from 0 to 1000, got 1001`,
				`roundhouse.hcl:4:9: backend http://127.0.0.1:8083: given twice; the first is at line 1`,
				`roundhouse.hcl:5:12: backend.weight: want a whole number from 0 to 1000, got -1`,
			}},
		{"a weight above 1000", "backend \"http://127.0.0.1:8082\" {\n  weight = 1001\n}" + oneBackend,
			[]string{`roundhouse.hcl:2:12: backend.weight: want a whole number from 0 to 1000, got 1001`}},
		{"a negative weight", "backend \"http://127.0.0.1:8082\" {\n  weight = -1\n}" + oneBackend,
			[]string{`roundhouse.hcl:2:12: backend.weight: want a whole number from 0 to 1000, got -1`}},
		{"enabled must be a bool", "backend \"http://127.0.0.1:8082\" {\n  enabled = 0\n}" + oneBackend,
			[]string{`roundhouse.hcl:2:13: backend.enabled: want true or false, got a number`}},
		{"an unknown backend attribute", "backend \"http://127.0.0.1:8082\" {\n  wieght = 2\n}" + oneBackend,
			[]string{`roundhouse.hcl:2:3: unknown attribute "wieght" in a backend block (known: weight, enabled, proxy_protocol)`}},
		{"an unknown PROXY protocol version", "backend \"http://127.0.0.1:8082\" {\n  proxy_protocol = \"v3\"\n}" + oneBackend,
			[]string{`roundhouse.hcl:2:20: backend.proxy_protocol: "v3": want v1 or v2`}},
		{"PROXY protocol to an h2c backend", "backend \"h2c://127.0.0.1:8082\" {\n  proxy_protocol = \"v1\"\n}" + oneBackend,
			[]string{`roundhouse.hcl:2:20: backend.proxy_protocol: not for an h2c:// backend, whose connections carry many clients' requests`}},
		{"a backend without its URL", "backend {}" + oneBackend,
			[]string{`roundhouse.hcl:1:1: backend: want one label, the URL: backend "http://127.0.0.1:8081" { }; got 0`}},
		{"a backend with two labels", `backend "http://a:1" "http://b:1" {}` + oneBackend,
			[]string{`roundhouse.hcl:1:1: backend: want one label, the URL: backend "http://127.0.0.1:8081" { }; got 2`}},
		{"a backend written as an attribute", `backend = "http://127.0.0.1:8081"` + oneBackend,
			[]string{`roundhouse.hcl:1:11: backend: backend is a block, one per backend: backend "http://127.0.0.1:8081" { weight = 1 }`}},
		{"no backend at all", `listen = "127.0.0.1:8080"`,
			[]string{`roundhouse.hcl: no backend: add a block such as backend "http://127.0.0.1:8081" {} or a discover list, or give --backend or --discover`}},

		// The whole file.
		{"a syntax error stops the reading there", "listen = \nretries = -1\n",
			[]string{`roundhouse.hcl:1:10: Invalid expression: Expected the start of an expression, but found an invalid expression token.`}},
		{"every problem is reported, in file order", `
listen = "nowhere"
retries = -1
health {
  interval = "soon"
  rise     = 0
  fall     = true
}
backend "http://127.0.0.1:8081" { weight = -3 }
backend "tcp://127.0.0.1:8082" {}
log {
  format = "xml"
}
colour = "blue"
`, []string{
			`roundhouse.hcl:2:10: listen: want host:port, such as 127.0.0.1:8080, got "nowhere"`,
			`roundhouse.hcl:3:11: retries: must not be negative, got -1`,
			`roundhouse.hcl:5:14: health.interval: bad duration "soon": want a number and a unit, such as 500ms, 10s or 1m30s`,
			`roundhouse.hcl:6:14: health.rise: must be at least 1, got 0`,
			`roundhouse.hcl:7:14: health.fall: want a whole number, got a bool`,
			`roundhouse.hcl:9:44: backend.weight: want a whole number from 0 to 1000, got -3`,
			`roundhouse.hcl:10:9: backend "tcp://127.0.0.1:8082": scheme "tcp": want http, https or h2c`,
			`roundhouse.hcl:12:12: log.format: bad value "xml": want text or json`,
			`roundhouse.hcl:14:1: unknown attribute "colour" at the top level (known: listen, discover, dns_server, policy, retries, shutdown_grace, slow_start, retry_buffer, pid_file)`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := load(t, tt.src)
			if err == nil {
				t.Fatalf("Load accepted the file: %+v", s)
			}
			got := problems(t, err)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestAShortSecretFileIsRefusedWhereItIsNamed(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	if err := os.WriteFile("short.secret", []byte("abc\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile("roundhouse.hcl", []byte("sticky {\n  secret_file = \"short.secret\"\n}"+oneBackend), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load([]string{"--config", "roundhouse.hcl"}, Options{})
	want := []string{`roundhouse.hcl:2:17: sticky.secret_file: short.secret: want at least 16 bytes of secret, got 3`}
	if got := problems(t, err); !reflect.DeepEqual(got, want) {
		t.Errorf("problems %q, want %q", got, want)
	}
	_, err = Load([]string{"--cookie-secret-file", "short.secret", "--backend", "http://127.0.0.1:1"}, Options{})
	want = []string{`--cookie-secret-file: short.secret: want at least 16 bytes of secret, got 3`}
	if got := problems(t, err); !reflect.DeepEqual(got, want) {
		t.Errorf("problems %q, want %q", got, want)
	}
}

// TestTheAdminRulesAreCheckedWhereTheyAreGiven: validate refuses what serve
// would refuse about the admin API, at the position of the setting.
func TestTheAdminRulesAreCheckedWhereTheyAreGiven(t *testing.T) {
	tests := []struct {
		name  string
		admin string // the admin block's body
		args  []string
		want  []string
	}{
		{"an address other machines reach needs a token", `listen = "0.0.0.0:9090"`, nil, []string{
			`roundhouse.hcl:2:12: admin.listen: 0.0.0.0:9090: not a loopback address, and no token protects it: give --admin-token-file FILE, or a loopback address such as 127.0.0.1:9090`}},
		{"every interface needs a token too", "", []string{"--admin", ":9090"}, []string{
			`--admin: :9090: not a loopback address, and no token protects it: give --admin-token-file FILE, or a loopback address such as 127.0.0.1:9090`}},
		{"a token file needs a listener", `token_file = "good.token"`, nil, []string{
			`roundhouse.hcl:2:16: admin.token_file: needs --admin ADDR`}},
		{"a token file that cannot be read", "listen = \"0.0.0.0:9090\"\n  token_file = \"missing.token\"", nil, []string{
			`roundhouse.hcl:3:16: admin.token_file: open missing.token: no such file or directory`}},
		{"a short token", "listen = \"127.0.0.1:9090\"\n  token_file = \"short.token\"", nil, []string{
			`roundhouse.hcl:3:16: admin.token_file: short.token: want a token of at least 16 bytes, got 5`}},
		{"a good token allows any address", "listen = \"0.0.0.0:9090\"\n  token_file = \"good.token\"", nil, nil},
		{"loopback needs no token", `listen = "127.0.0.1:9090"`, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			t.Chdir(dir)
			for name, token := range map[string]string{"good.token": "a-token-of-24-bytes-long\n", "short.token": "short"} {
				if err := os.WriteFile(name, []byte(token), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			src := "admin {\n  " + tt.admin + "\n}" + oneBackend
			if err := os.WriteFile("roundhouse.hcl", []byte(src), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := Load(append([]string{"--config", "roundhouse.hcl"}, tt.args...), Options{})
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				return
			}
			if got := problems(t, err); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("problems %q, want %q", got, tt.want)
			}
		})
	}
}

func TestAMissingConfigFileIsOneProblem(t *testing.T) {
	t.Chdir(t.TempDir())
	_, err := Load([]string{"--config", "nope.hcl"}, Options{})
	want := []string{"nope.hcl: no such file or directory"}
	if got := problems(t, err); !reflect.DeepEqual(got, want) {
		t.Errorf("problems %q, want %q", got, want)
	}
}

func TestPrecedence(t *testing.T) {
	const file = `
listen  = "127.0.0.1:7000"
retries = 5
backend "http://127.0.0.1:8081" { weight = 3 }
backend "http://127.0.0.1:8082" {}
health {
  rise = 4
}
log {
  access = false
}
`
	tests := []struct {
		name string
		args []string
		want func(t *testing.T, s *Settings) // changes from the file's settings
	}{
		{"the file overrides the defaults", nil, func(*testing.T, *Settings) {}},
		{"a flag overrides the file", []string{"--listen", "127.0.0.1:0", "--retries=1"},
			func(_ *testing.T, s *Settings) { s.Listen, s.Retries = "127.0.0.1:0", 1 }},
		{"a flag that repeats the default still overrides the file", []string{"--rise", "2", "--retries", "2"},
			func(_ *testing.T, s *Settings) { s.Health.Rise, s.Retries = 2, 2 }},
		{"a bool flag overrides the file", []string{"--access-log"},
			func(_ *testing.T, s *Settings) { s.Log.Access = true }},
		{"flags before --config still win", []string{"--retries", "0"},
			func(_ *testing.T, s *Settings) { s.Retries = 0 }},
		{"--backend replaces the file's backends", []string{"--backend", "http://127.0.0.1:9001,weight=2", "--backend", "http://127.0.0.1:9002"},
			func(t *testing.T, s *Settings) {
				s.Backends = []Backend{
					{URL: mustURL(t, "http://127.0.0.1:9001"), Weight: 2, Source: "--backend"},
					{URL: mustURL(t, "http://127.0.0.1:9002"), Weight: 1, Source: "--backend"},
				}
			}},
		{"a flag fills in what the file leaves out", []string{"--fall", "7", "--admin", "127.0.0.1:9090"},
			func(_ *testing.T, s *Settings) { s.Health.Fall, s.Admin.Listen = 7, "127.0.0.1:9090" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := load(t, file, tt.args...)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			want := Defaults()
			want.File = "roundhouse.hcl"
			want.Listen, want.Retries, want.Health.Rise, want.Log.Access = "127.0.0.1:7000", 5, 4, false
			want.Backends = []Backend{
				fileBackend(t, "http://127.0.0.1:8081", 3, false, "4:9"),
				fileBackend(t, "http://127.0.0.1:8082", 1, false, "5:9"),
			}
			tt.want(t, want)
			want.Pools = []Pool{want.defaultPool()} // no pool blocks: the top level is the one pool
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got\n%+v\nwant\n%+v", got, want)
			}
		})
	}
}

func TestPrecedenceDecidesWhichProblemIsReported(t *testing.T) {
	tests := []struct {
		name string
		src  string
		args []string
		want []string // nil: Load succeeds
	}{
		{"a flag's good value hides the file's out-of-range one", "health {\n  rise = 0\n}" + oneBackend,
			[]string{"--rise", "1"}, nil},
		{"a flag's bad value is named by the flag, not the file", "health {\n  rise = 3\n}" + oneBackend,
			[]string{"--rise", "0"}, []string{"--rise: must be at least 1, got 0"}},
		{"a file value of the wrong type is reported even when a flag overrides it", `retries = "x"` + oneBackend,
			[]string{"--retries", "1"}, []string{`roundhouse.hcl:1:11: retries: want a whole number, got a string`}},
		{"file problems come before flag problems", "retries = -1" + oneBackend,
			[]string{"--fall", "0", "--dial-timeout", "0s"}, []string{
				"roundhouse.hcl:1:11: retries: must not be negative, got -1",
				"--fall: must be at least 1, got 0",
				"--dial-timeout: must be positive, got 0s",
			}},
		{"backends given twice on the command line", "",
			[]string{"--backend", "http://127.0.0.1:1", "--backend", "http://127.0.0.1:1/"},
			[]string{"--backend: http://127.0.0.1:1: given twice"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := load(t, tt.src, tt.args...)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				return
			}
			if got := problems(t, err); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestFlagsAloneWorkAsBefore(t *testing.T) {
	s, err := Load([]string{"--backend", "http://127.0.0.1:8081,weight=0", "--policy", "cookie:sid", "--log-level", "DEBUG"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := Defaults()
	want.Backends = []Backend{{URL: mustURL(t, "http://127.0.0.1:8081"), Weight: 0, Source: "--backend"}}
	want.Policy, want.Log.Level = "cookie:sid", "debug"
	want.Pools = []Pool{want.defaultPool()}
	if !reflect.DeepEqual(s, want) {
		t.Errorf("got\n%+v\nwant\n%+v", s, want)
	}

	tests := []struct {
		args []string
		want string // in the error
	}{
		{[]string{"--policy", "fastest"}, `unknown policy "fastest"`},
		{[]string{"--log-format", "xml"}, "-log-format"},
		{[]string{"--health-interval", "soon"}, "-health-interval"},
		{[]string{"--backend", "127.0.0.1:1"}, "http://127.0.0.1:1"},
		{[]string{"--bogus"}, "-bogus"},
		{[]string{"--backend", "http://127.0.0.1:1", "extra"}, `unexpected argument "extra"`},
		{nil, "no backend: give at least one --backend http://host:port or --discover URL"},
	}
	for _, tt := range tests {
		_, err := Load(tt.args, Options{})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Load(%q) = %v, want an error containing %q", tt.args, err, tt.want)
		}
	}
	if _, err := Load([]string{"-h"}, Options{}); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("Load(-h) = %v, want flag.ErrHelp", err)
	}
}

func TestOwnBackendsRefusesEveryConfiguredBackend(t *testing.T) {
	src := "backend \"http://127.0.0.1:8081\" {}\nbackend \"http://127.0.0.1:8082\" {}\n"
	_, err := load(t, src)
	if err != nil {
		t.Fatalf("serve refused the file: %v", err)
	}
	_, err = Load([]string{"--config", "roundhouse.hcl"}, Options{OwnBackends: true})
	want := []string{
		"roundhouse.hcl:1:9: backend: demo starts its own backends; remove this block",
		"roundhouse.hcl:2:9: backend: demo starts its own backends; remove this block",
	}
	if got := problems(t, err); !reflect.DeepEqual(got, want) {
		t.Errorf("problems %q, want %q", got, want)
	}
	_, err = Load([]string{"--backend", "http://127.0.0.1:1"}, Options{OwnBackends: true})
	want = []string{"--backend: demo starts its own backends"}
	if got := problems(t, err); !reflect.DeepEqual(got, want) {
		t.Errorf("problems %q, want %q", got, want)
	}
	if _, err := Load([]string{"--listen", "127.0.0.1:0"}, Options{OwnBackends: true}); err != nil {
		t.Errorf("no backends with OwnBackends: %v", err)
	}
}

func TestLoadAgainRereadsTheFileUnderTheSameFlags(t *testing.T) {
	t.Chdir(t.TempDir())
	write := func(src string) {
		t.Helper()
		if err := os.WriteFile("roundhouse.hcl", []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	args := []string{"--config", "roundhouse.hcl", "--retries", "1"}
	write("retries = 4\npolicy = \"least-conn\"\n" + oneBackend)
	first, err := Load(args, Options{})
	if err != nil {
		t.Fatal(err)
	}
	write("retries = 4\npolicy = \"p2c\"\nbackend \"http://127.0.0.1:8082\" { weight = 2 }\n")
	second, err := Load(args, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if first.Policy != "least-conn" || second.Policy != "p2c" {
		t.Errorf("policies %q then %q, want least-conn then p2c", first.Policy, second.Policy)
	}
	if first.Retries != 1 || second.Retries != 1 {
		t.Errorf("retries %d then %d, want the flag's 1 both times", first.Retries, second.Retries)
	}
	if len(second.Backends) != 1 || second.Backends[0].URL.String() != "http://127.0.0.1:8082" || second.Backends[0].Weight != 2 {
		t.Errorf("backends after the change: %+v", second.Backends)
	}
	write("retries = \"many\"\n")
	if _, err := Load(args, Options{}); err == nil {
		t.Error("a broken file loaded")
	}
}

func TestWhatServeIsGiven(t *testing.T) {
	s, err := load(t, `
policy = "weighted-round-robin"
backend "http://127.0.0.1:8081" { weight = 3 }
backend "http://127.0.0.1:8082" { enabled = false }
backend "http://127.0.0.1:8083" { weight = 0 }
health {
  path     = "/ready"
  interval = "5s"
  timeout  = "1s"
  rise     = 4
  fall     = 6
}
admin {
  listen = "127.0.0.1:9090"
}
`)
	if err != nil {
		t.Fatal(err)
	}
	want := []Backend{
		fileBackend(t, "http://127.0.0.1:8081", 3, false, "3:9"),
		fileBackend(t, "http://127.0.0.1:8082", 1, true, "4:9"),
		fileBackend(t, "http://127.0.0.1:8083", 0, false, "5:9"),
	}
	if !reflect.DeepEqual(s.Backends, want) {
		t.Errorf("Backends = %+v, want all, the disabled one marked: %+v", s.Backends, want)
	}
	if h := s.Health; h.Path != "/ready" || h.Interval != 5*time.Second || h.Timeout != time.Second || h.Rise != 4 || h.Fall != 6 {
		t.Errorf("Health = %+v", h)
	}
	if a, b := s.StickySecret(), s.StickySecret(); len(a) < 16 || string(a) != string(b) {
		t.Errorf("random sticky secrets %q and %q: want one key of 16 bytes or more per process", a, b)
	}
	if got, want := s.Summary(), "3 backends (1 disabled), policy weighted-round-robin, listen 127.0.0.1:8080, admin 127.0.0.1:9090"; got != want {
		t.Errorf("Summary() = %q, want %q", got, want)
	}
	s.Backends, s.Admin.Listen = s.Backends[:1], ""
	if got, want := s.Summary(), "1 backend, policy weighted-round-robin, listen 127.0.0.1:8080"; got != want {
		t.Errorf("Summary() = %q, want %q", got, want)
	}
}

func TestTheExampleFileIsValidAndCoversEverySetting(t *testing.T) {
	const example = "../examples/roundhouse.hcl"
	s, err := Load([]string{"--config", example}, Options{})
	if err != nil {
		t.Fatalf("examples/roundhouse.hcl: %v", err)
	}
	if got, want := s.Summary(), "3 backends (1 disabled), policy weighted-round-robin, listen 127.0.0.1:8080, admin 127.0.0.1:9090"; got != want {
		t.Errorf("Summary() = %q, want %q", got, want)
	}
	src, err := os.ReadFile(example)
	if err != nil {
		t.Fatal(err)
	}
	// Every attribute appears, set or in a comment, and every flag is named.
	for _, row := range table {
		path, fl := row.names()
		if path != "" {
			attr := path[strings.LastIndex(path, ".")+1:] // tls.acme.domains: domains
			if !strings.Contains(string(src), attr+" ") {
				t.Errorf("the example does not show %s", path)
			}
		}
		if fl != "" && fl != "config" && !strings.Contains(string(src), "--"+fl) {
			t.Errorf("the example does not name --%s", fl)
		}
	}
}

func TestBackendsTakeAPROXYProtocolVersion(t *testing.T) {
	file := filepath.Join(t.TempDir(), "roundhouse.hcl")
	src := "backend \"http://127.0.0.1:8081\" {\n  proxy_protocol = \"v2\"\n}\nbackend \"http://127.0.0.1:8082\" {}\n"
	if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want []int
	}{
		{"the flag's option sets version 1", []string{"--backend", "http://127.0.0.1:8081,proxy-protocol=v1"}, []int{1}},
		{"the flag's option follows a weight", []string{"--backend", "http://127.0.0.1:8081,weight=2,proxy-protocol=v2"}, []int{2}},
		{"the file's attribute sets it per backend", []string{"--config", file}, []int{2, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Load(tt.args, Options{})
			if err != nil {
				t.Fatal(err)
			}
			var got []int
			for _, b := range s.Backends {
				got = append(got, b.ProxyProtocol)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("versions %v, want %v", got, tt.want)
			}
		})
	}
}

func TestHealthCheckSettings(t *testing.T) {
	t.Run("the file sets every part of the check", func(t *testing.T) {
		s, err := load(t, `
health {
  path    = "/ready"
  expect  = "200, 204,300-399"
  body    = "^ok$"
  host    = "app.example:8080"
  headers = { "X-Probe-Token" = "s3cret", accept = "text/plain" }
  port    = 9000
}`+oneBackend)
		if err != nil {
			t.Fatal(err)
		}
		want := Health{Path: "/ready", Interval: 10 * time.Second, Timeout: 2 * time.Second, Rise: 2, Fall: 3,
			Expect: "200,204,300-399", Body: "^ok$", Host: "app.example:8080",
			Headers: http.Header{"X-Probe-Token": {"s3cret"}, "Accept": {"text/plain"}}, Port: 9000}
		if !reflect.DeepEqual(s.Health, want) {
			t.Errorf("Health = %+v, want %+v", s.Health, want)
		}
	})
	t.Run("flags set every part and --health-header replaces the file's headers", func(t *testing.T) {
		s, err := load(t, "health {\n  headers = { \"X-From-File\" = \"1\" }\n}"+oneBackend,
			"--health-expect", "200", "--health-body", "ready", "--health-host", "health.internal",
			"--health-header", "X-Probe: a", "--health-header", "x-probe:b", "--health-header", "User-Agent:  probe/1 ",
			"--health-port", "8443")
		if err != nil {
			t.Fatal(err)
		}
		h := s.Health
		wantHeaders := http.Header{"X-Probe": {"a", "b"}, "User-Agent": {"probe/1"}}
		if h.Expect != "200" || h.Body != "ready" || h.Host != "health.internal" || h.Port != 8443 || !reflect.DeepEqual(h.Headers, wantHeaders) {
			t.Errorf("Health = %+v", h)
		}
	})
	bad := []struct {
		name string
		src  string
		args []string
		want string
	}{
		{"a status list with a word", "health {\n  expect = \"2xx\"\n}", nil,
			`roundhouse.hcl:2:12: health.expect: bad value "2xx": "2xx": want a status such as 200 or a range such as 200-399`},
		{"a range that runs backwards", "", []string{"--health-expect", "399-200"}, `"399-200": the range runs backwards`},
		{"a status out of range", "", []string{"--health-expect", "200,600"}, `"600": statuses run from 100 to 599`},
		{"a body pattern that does not compile", "health {\n  body = \"(ok\"\n}", nil,
			`roundhouse.hcl:2:10: health.body: bad value "(ok": error parsing regexp: missing closing ): ` + "`(ok`"},
		{"a Host with a path", "health {\n  host = \"app.example/x\"\n}", nil,
			`roundhouse.hcl:2:10: health.host: want a host such as app.example or app.example:8080, got "app.example/x"`},
		{"a Host with a space", "", []string{"--health-host", "app example"}, `--health-host: want a host such as app.example`},
		{"headers that are not an object", "health {\n  headers = \"X-Probe: 1\"\n}", nil,
			`roundhouse.hcl:2:13: health.headers: want header names and values, such as { "X-Probe" = "1" }, got a string`},
		{"a header value that is not a string", "health {\n  headers = { \"X-Probe\" = 1 }\n}", nil,
			`roundhouse.hcl:2:13: health.headers: X-Probe: want a string, got a number`},
		{"a header name with a space", "health {\n  headers = { \"X Probe\" = \"1\" }\n}", nil,
			`health.headers: header name "X Probe": want letters, digits and -`},
		{"a Host header among the headers", "", []string{"--health-header", "host: app.example"},
			"header Host: set the probe's Host header with --health-host"},
		{"a header flag without a colon", "", []string{"--health-header", "X-Probe"}, `"X-Probe": want Name: value`},
		{"a header value with a control character", "", []string{"--health-header", "X-Probe: a\x01b"},
			`header X-Probe: the value holds a control character`},
		{"a header value with DEL in the file", "health {\n  headers = { \"X-Probe\" = \"a\\u007fb\" }\n}", nil,
			`header X-Probe: the value holds a control character`},
		{"a probe port out of range", "health {\n  port = 65536\n}", nil, `roundhouse.hcl:2:10: health.port: want 0 to 65535, got 65536`},
		{"a negative probe port", "", []string{"--health-port", "-1"}, `--health-port: want 0 to 65535, got -1`},
	}
	for _, tt := range bad {
		t.Run(tt.name+" is refused", func(t *testing.T) {
			_, err := load(t, tt.src+oneBackend, tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Load = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestHTTP3NeedsACertificate(t *testing.T) {
	_, err := Load([]string{"--http3", "--backend", "http://127.0.0.1:9001"}, Options{})
	if err == nil || !strings.Contains(err.Error(), "--http3: HTTP/3 runs over TLS only: give --tls-cert and --tls-key") {
		t.Errorf("--http3 without a certificate: %v, want it refused", err)
	}
}
