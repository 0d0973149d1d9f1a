package actors

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Backend is one upstream server. It is immutable once the selector has
// created it, so the selector hands out *Backend values freely and any
// goroutine may read them; only the selector keeps state about a backend.
type Backend struct {
	// URL is where requests go: scheme://host:port with an optional path
	// prefix. Never nil.
	URL *url.URL
	// Name is URL as a string, the key used in logs and in /status.
	Name string
	// ID is a short stable identifier derived from Name alone, so it is the
	// same on every start and every instance.
	ID string
	// ProxyProtocol is the PROXY protocol version (1 or 2) sent first on
	// every connection to the backend; 0: none. See BackendConfig.
	ProxyProtocol int
}

// backendFor returns the Backend for u.
func backendFor(u *url.URL) *Backend {
	name := u.String()
	sum := sha256.Sum256([]byte(name))
	return &Backend{URL: u, Name: name, ID: hex.EncodeToString(sum[:6])}
}

// BackendConfig is one backend as configured.
type BackendConfig struct {
	URL *url.URL // required: scheme://host:port with an optional path prefix
	// Weight is the backend's share of traffic for the weighted policies.
	// 0 makes it a standby, used only while no backend with a weight is
	// eligible.
	Weight int
	// Disabled keeps the backend out of rotation from the start; it is
	// still probed, so enabling it later puts it straight to work if UP.
	Disabled bool
	// ProxyProtocol, 1 or 2, makes every connection to the backend, health
	// probes' included, begin with a PROXY protocol header of that version
	// (see transport.WithProxyProtocol); 0 (the zero value): none. It is
	// fixed when the backend is added: Reconfigure refuses to change it for
	// a backend that stays.
	ProxyProtocol int
	// Source says who manages the backend. "" (the zero value) is the
	// static configuration: the file, the flags and the admin API, which
	// Reconfigure manages. Anything else names a discovery provider (its
	// --discover URL), which adds it through a Feed and alone may change or
	// remove it that way; Reconfigure leaves it alone. Config.Backends are
	// static whatever their Source says.
	Source string
}

type backendKey struct{}

// WithBackend returns ctx carrying b, so that a RoundTripper can tell which
// backend a request is for. The health probes' requests carry it.
func WithBackend(ctx context.Context, b *Backend) context.Context {
	return context.WithValue(ctx, backendKey{}, b)
}

// BackendOf returns the backend WithBackend put in ctx; nil if none.
func BackendOf(ctx context.Context) *Backend {
	b, _ := ctx.Value(backendKey{}).(*Backend)
	return b
}

// String returns the backend's URL.
func (b *Backend) String() string { return b.Name }

// BackendStatus is a snapshot of one backend as the selector sees it.
type BackendStatus struct {
	Name   string `json:"url"`
	ID     string `json:"id"`
	State  string `json:"state"` // up, down, ejected, draining or disabled
	Up     bool   `json:"up"`    // health alone, whatever the operator chose
	Weight int    `json:"weight"`
	// Source is who manages the backend: "" for the static configuration,
	// otherwise the discovery provider's URL (see BackendConfig.Source).
	Source string `json:"source,omitempty"`
	// Reason says why health last changed, and Changed when.
	Reason         string    `json:"reason,omitempty"`
	Changed        time.Time `json:"changed,omitzero"`
	InFlight       int       `json:"in_flight"`
	Requests       uint64    `json:"requests"` // attempts completed, any outcome
	Failures       uint64    `json:"failures"` // ConnectFailed and Failed outcomes
	EjectedUntil   time.Time `json:"ejected_until,omitzero"`
	Ejections      uint64    `json:"ejections"`
	LastProbe      time.Time `json:"last_probe,omitzero"`
	LastProbeError string    `json:"last_probe_error,omitempty"`
	Probes         uint64    `json:"probes"`
	ProbeFailures  uint64    `json:"probe_failures"`
}

// MaxWeight is the largest backend weight the command line and the admin
// API accept.
const MaxWeight = 1000

// ParseBackendURL checks a backend's URL as an operator wrote it:
// http(s)://host[:port][/path] or h2c://host[:port][/path] (cleartext
// HTTP/2 by prior knowledge, as gRPC services speak it; port 80 by
// default), with no user info, query or fragment. A
// lone "/" path is dropped, so http://h:1/ and http://h:1 name the same
// backend.
func ParseBackendURL(s string) (*url.URL, error) {
	if !strings.Contains(s, "://") {
		return nil, fmt.Errorf("want a URL such as http://%s", s)
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, err
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "h2c":
		return nil, fmt.Errorf("scheme %q: want http, https or h2c", u.Scheme)
	case u.Hostname() == "":
		return nil, errors.New("missing host")
	case u.User != nil, u.RawQuery != "", u.Fragment != "", u.ForceQuery:
		return nil, errors.New("must not carry user info, a query or a fragment")
	}
	if u.Path == "/" {
		u.Path = "" // http://h:1/ and http://h:1 are the same backend
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("bad port %q", p)
		}
	}
	// The URL is kept and logged as written out again; refuse one that
	// would not read back (net/url accepts some hosts it cannot write,
	// such as a zone with a byte that is not ASCII).
	if again, err := url.Parse(u.String()); err != nil || again.String() != u.String() {
		return nil, fmt.Errorf("host %q: not a host name or address", u.Host)
	}
	return u, nil
}
