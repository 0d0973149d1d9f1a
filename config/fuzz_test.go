package config

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
)

// FuzzConfig reads arbitrary bytes as a configuration file. Whatever they
// are, reading them must not panic (parse recovers from a panic, so one
// shows up as a "cannot parse" problem, which fails here too), and every
// problem must point into the file.
func FuzzConfig(f *testing.F) {
	example, err := os.ReadFile("../examples/roundhouse.hcl")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(example)
	routes, err := os.ReadFile("../examples/routes.hcl")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(routes)
	for _, seed := range []string{
		"",
		`backend "http://127.0.0.1:8081" { weight = 3 }`,
		"health {\n  interval = \"10 seconds\"\n  rise = 0\n}\n",
		"retries = 1e30\nlisten = [1, {a = 2}]\npolicy = null\n",
		"backend \"http://h:1\" {}\nbackend \"http://h:1/\" {}\nbackend {}\nbackend \"a\" \"b\" {}\n",
		"log { level = \"${x}\" }\nadmin \"x\" { inner {} }\nhealth = 3\nlisten {}\n",
		"listen = \nretries = -1\n",
		"retries = 1 + \"x\"\nlisten = upper(\"x\")\nshutdown_grace = <<EOT\n10s\nEOT\n",
		"pool \"api\" {\n  retries = 1\n  backend \"http://127.0.0.1:9001\" {}\n  health { path = \"/healthz\" }\n  listen = \"x\"\n}\n" +
			"pool \"default\" {}\npool \"api\" { route \"x\" {} }\n" +
			"route \"r\" {\n  hosts = [\"*.\", 1]\n  path_prefix = \"/a\"\n  headers = { \"X-A\" = \"1\" }\n  pool = \"api\"\n  strip_prefix = true\n}\nroute \"r\" { pool = \"nope\" }\nroute {}\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		l := newLoader(Defaults())
		l.parse("fuzz.hcl", src)
		l.check(Options{})
		lines := strings.Count(string(src), "\n") + 1
		for _, p := range l.problems {
			switch {
			case strings.HasPrefix(p.Msg, "cannot parse:"):
				t.Fatalf("parse panicked: %s", p)
			case p.File != "fuzz.hcl":
				t.Errorf("problem not in the file: %s", p)
			case p.Line > lines+1:
				t.Errorf("problem past the end of the file (%d lines): %s", lines, p)
			}
		}
		if len(l.problems) == 0 {
			for _, b := range l.s.Backends {
				if b.URL == nil || b.URL.Host == "" || b.Weight < 0 || b.Weight > 1000 {
					t.Errorf("accepted a bad backend %+v", b)
				}
			}
		}
	})
}

// FuzzParseBackendFlag checks the --backend syntax, URL[,weight=N]
// [,proxy-protocol=v1|v2]: it never panics, what it accepts is a usable
// backend, and its canonical form reads back the same.
func FuzzParseBackendFlag(f *testing.F) {
	for _, seed := range []string{
		"http://127.0.0.1:8081", "http://h:1,weight=3", "https://h/p,weight=0,proxy-protocol=v2",
		"http://h:1,proxy-protocol=v1,weight=1000", "http://h:1,", "http://h:1,,weight=2", "http://h:1,weight=",
		"http://h:1,weight=1001", "http://h:1,weight=-1", "http://h:1,weight=+5", "http://h:1,proxy-protocol=v3",
		"http://h:1,weight=2,weight=3", "http://h:1,colour=red", ",weight=1", "http://h:1,weight=1,",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, err := parseBackend(s)
		if err != nil {
			return
		}
		if b.URL == nil || b.URL.Hostname() == "" || b.Weight < 0 || b.Weight > 1000 || b.ProxyProtocol < 0 || b.ProxyProtocol > 2 {
			t.Fatalf("%q: accepted %+v", s, b)
		}
		canonical := fmt.Sprintf("%s,weight=%d", b.URL, b.Weight)
		if b.ProxyProtocol != 0 {
			canonical += fmt.Sprintf(",proxy-protocol=v%d", b.ProxyProtocol)
		}
		again, err := parseBackend(canonical)
		if err != nil {
			t.Fatalf("%q reads as %q, which does not parse: %v", s, canonical, err)
		}
		if again.URL.String() != b.URL.String() || again.Weight != b.Weight || again.ProxyProtocol != b.ProxyProtocol {
			t.Fatalf("%q reads as %+v, its canonical form %q as %+v", s, b, canonical, again)
		}
	})
}

// errNoDial stops a probe before it connects: net/http checks a request's
// headers before it dials.
var errNoDial = errors.New("no dialing in a fuzz test")

// FuzzHealthHeader checks --health-header "Name: value": whatever it
// accepts, net/http must be willing to send (a header it refuses would
// fail every probe, and the backend would never come UP).
func FuzzHealthHeader(f *testing.F) {
	for _, seed := range []string{
		"X-Probe: 1", "x-probe:b", "User-Agent:  probe/1 ", "X-Probe", ": v", "X Probe: v", "Host: a",
		"X-A: a\x01b", "X-A: a\tb", "X-A: a\x7fb", "X-A: caf\xc3\xa9", "X-A: a\r\nX-B: b", "X-A:",
	} {
		f.Add(seed)
	}
	tr := &http.Transport{DialContext: func(context.Context, string, string) (net.Conn, error) { return nil, errNoDial }}
	f.Fuzz(func(t *testing.T, v string) {
		fs := flag.NewFlagSet("fuzz", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		var s Settings
		Register(fs, &s)
		if err := fs.Set("health-header", v); err != nil {
			return
		}
		req, err := http.NewRequest(http.MethodGet, "http://127.0.0.1:1/health", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header = s.Health.Headers
		resp, err := tr.RoundTrip(req)
		if err == nil {
			resp.Body.Close()
			t.Fatalf("%q: the request was sent", v)
		}
		if !errors.Is(err, errNoDial) {
			t.Fatalf("--health-header %q was accepted, but net/http will not send it: %v", v, err)
		}
	})
}
