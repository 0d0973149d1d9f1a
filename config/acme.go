package config

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// Automatic certificates (ACME): the checks and the derived values of the
// tls.acme block and of --http-listen. See docs/acme.md.

// LetsEncrypt and LetsEncryptStaging are Let's Encrypt's ACME directories:
// production, the default of --acme-ca, and staging, for trying a set-up
// out (its certificates are not trusted by browsers, and its rate limits
// are far higher).
const (
	LetsEncrypt        = "https://acme-v02.api.letsencrypt.org/directory"
	LetsEncryptStaging = "https://acme-staging-v02.api.letsencrypt.org/directory"
)

// HTTPAddr is the plain-HTTP listener's address: HTTPListen, or ":80"
// when ACME is on and HTTPListen is ""; "" means no such listener.
func (t TLS) HTTPAddr() string {
	if t.HTTPListen == "" && t.ACME.On() {
		return ":80"
	}
	return t.HTTPListen
}

// StorageDir is where ACME keeps its accounts, keys and certificates:
// Storage, or by default $XDG_DATA_HOME/roundhouse/acme, else
// $HOME/.local/share/roundhouse/acme. It fails when none of them is set.
func (a ACME) StorageDir() (string, error) {
	if a.Storage != "" {
		return a.Storage, nil
	}
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "roundhouse", "acme"), nil
	}
	if h, err := os.UserHomeDir(); err == nil && h != "" {
		return filepath.Join(h, ".local", "share", "roundhouse", "acme"), nil
	}
	return "", errors.New("no default ACME storage: neither XDG_DATA_HOME nor HOME is set; give --acme-storage DIR")
}

// checkACME checks the ACME settings against each other and against the
// rest of the tls block. Certificates from files are checked against the
// ACME names in readACME, once they are loaded.
func (l *loader) checkACME() {
	s := l.s
	a := s.TLS.ACME
	if !a.On() {
		for _, fl := range []string{"acme-email", "acme-ca", "acme-ca-root", "acme-storage"} {
			if i := rowByFlag[fl]; l.from[i] != (origin{}) {
				l.problemFrom(i, "needs --acme-domain NAME")
			}
		}
		if s.TLS.HTTPListen != "" && s.TLS.Cert == "" {
			l.problemFrom(rowByFlag["http-listen"], "the plain-HTTP listener redirects to https: it needs --tls-cert or --acme-domain")
		}
		return
	}
	if s.Edge.H2C {
		l.problemFrom(rowByFlag["h2c"], "cleartext HTTP/2 needs a cleartext listener; with --acme-domain, HTTP/2 is negotiated by ALPN")
	}
	if _, err := a.StorageDir(); err != nil {
		l.problemFrom(rowByFlag["acme-storage"], err.Error())
	}
	if addr := s.TLS.HTTPAddr(); addr == s.Listen {
		l.problemFrom(rowByFlag["http-listen"], fmt.Sprintf("%s is also --listen: the plain-HTTP listener needs an address of its own", addr))
	}
}

// readACME reads --acme-ca-root and refuses a certificate file that covers
// a name ACME manages: each name has one source.
func (l *loader) readACME() {
	s := l.s
	a := &s.TLS.ACME
	if f := a.CARoot; f != "" && a.On() {
		pool, err := loadCAs(f)
		if err != nil {
			l.problemFrom(rowByFlag["acme-ca-root"], err.Error())
		}
		a.CARoots = pool
	}
	if s.TLS.Certificate == nil || s.TLS.Certificate.Leaf == nil {
		return
	}
	for _, d := range a.Domains {
		if s.TLS.Certificate.Leaf.VerifyHostname(d) == nil {
			l.problemFrom(rowByFlag["acme-domain"], fmt.Sprintf(
				"%s is also covered by --tls-cert %s: a name gets its certificate from ACME or from a file, not both; drop it from one of them",
				d, s.TLS.Cert))
		}
	}
}

// acmeDomain checks one --acme-domain: a DNS name (no wildcard: the HTTP-01
// and TLS-ALPN-01 challenges cannot prove one), no port, no scheme.
func acmeDomain(d string) error {
	switch {
	case d == "":
		return errors.New("an empty name")
	case strings.Contains(d, "*"):
		return errors.New("a wildcard needs the DNS-01 challenge, which Roundhouse does not do; list each name")
	case strings.ContainsAny(d, ":/ "):
		return errors.New("want a DNS name such as example.com, without scheme, port or path")
	case strings.HasPrefix(d, ".") || strings.HasSuffix(d, ".") || strings.Contains(d, ".."):
		return errors.New("want a DNS name such as example.com")
	}
	return nil
}

// acmeCA checks --acme-ca: an https URL.
func acmeCA(v string) error {
	u, err := url.Parse(v)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("want the https:// URL of an ACME directory, such as %s", LetsEncrypt)
	}
	return nil
}
