package config

import (
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
	for _, seed := range []string{
		"",
		`backend "http://127.0.0.1:8081" { weight = 3 }`,
		"health {\n  interval = \"10 seconds\"\n  rise = 0\n}\n",
		"retries = 1e30\nlisten = [1, {a = 2}]\npolicy = null\n",
		"backend \"http://h:1\" {}\nbackend \"http://h:1/\" {}\nbackend {}\nbackend \"a\" \"b\" {}\n",
		"log { level = \"${x}\" }\nadmin \"x\" { inner {} }\nhealth = 3\nlisten {}\n",
		"listen = \nretries = -1\n",
		"retries = 1 + \"x\"\nlisten = upper(\"x\")\nshutdown_grace = <<EOT\n10s\nEOT\n",
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
