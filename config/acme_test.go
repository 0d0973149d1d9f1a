package config

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestTheACMEBlockIsReadInsideTheTLSBlock(t *testing.T) {
	s, err := load(t, `
backend "http://127.0.0.1:8081" {}
tls {
  http_listen = "127.0.0.1:8080"
  acme {
    domains = ["example.com", "www.example.com"]
    email   = "ops@example.com"
    ca      = "https://acme-staging-v02.api.letsencrypt.org/directory"
    storage = "acme"
  }
}
listen = "127.0.0.1:8443"
`)
	if err != nil {
		t.Fatal(err)
	}
	a := s.TLS.ACME
	if !reflect.DeepEqual(a.Domains, []string{"example.com", "www.example.com"}) || a.Email != "ops@example.com" || a.CA != LetsEncryptStaging {
		t.Errorf("ACME = %+v", a)
	}
	if a.Storage != filepath.Join(".", "acme") { // relative to the file's directory, the working one here
		t.Errorf("storage %q, want acme", a.Storage)
	}
	if got := s.TLS.HTTPAddr(); got != "127.0.0.1:8080" {
		t.Errorf("HTTPAddr() = %q", got)
	}
}

func TestACMEDefaults(t *testing.T) {
	t.Setenv("XDG_DATA_HOME", "/data")
	s, err := Load([]string{"--backend", "http://127.0.0.1:1", "--acme-domain", "example.com"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.TLS.HTTPAddr(); got != ":80" {
		t.Errorf("HTTPAddr() = %q, want :80 with ACME on", got)
	}
	if got, err := s.TLS.ACME.StorageDir(); err != nil || got != "/data/roundhouse/acme" {
		t.Errorf("StorageDir() = %q, %v", got, err)
	}
	if s.TLS.ACME.CA != LetsEncrypt {
		t.Errorf("CA %q, want Let's Encrypt's production", s.TLS.ACME.CA)
	}
	if s, _ := Load([]string{"--backend", "http://127.0.0.1:1"}, Options{}); s.TLS.HTTPAddr() != "" {
		t.Errorf("without ACME HTTPAddr() = %q, want none", s.TLS.HTTPAddr())
	}
}

func TestBadACMEBlocks(t *testing.T) {
	tests := []struct{ name, src, want string }{
		{"an unknown attribute in the acme block", "tls {\n  acme { domain = [\"a.test\"] }\n}", `unknown attribute "domain" in the tls.acme block`},
		{"a second acme block", `tls {
  acme { domains = ["a.test"] }
  acme { domains = ["b.test"] }
}`, "a second acme block"},
		{"a block inside the acme block", "tls {\n  acme {\n    x {}\n  }\n}", `unexpected block "x" in the tls.acme block`},
		{"an acme block at the top level", `acme { domains = ["a.test"] }`, `the acme block belongs in the tls block`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := load(t, `backend "http://127.0.0.1:8081" {}`+"\n"+tt.src)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want %q", err, tt.want)
			}
		})
	}
}
