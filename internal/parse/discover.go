package parse

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// The kinds of source a --discover URL names, by its scheme.
const (
	KindEtcd   = "etcd"    // etcd://HOST:PORT[,HOST:PORT...]/PREFIX
	KindDNSSRV = "dns+srv" // dns+srv://_service._tcp.NAME
	KindDNSA   = "dns+a"   // dns+a://NAME:PORT
)

// DefaultEtcdPort is an etcd endpoint's port when the URL gives none.
const DefaultEtcdPort = 2379

// Discovery is a parsed --discover URL; package discovery calls it Spec.
type Discovery struct {
	Kind string // KindEtcd, KindDNSSRV or KindDNSA
	// Endpoints are etcd's client addresses, host:port each, in the order
	// given.
	Endpoints []string
	// Prefix is the etcd key prefix: it starts and ends with "/", so
	// etcd://h/roundhouse/backends watches the keys under
	// /roundhouse/backends/ and not /roundhouse/backends-old/x.
	Prefix string
	// Name is the DNS name to resolve: lower case, without the final dot.
	Name string
	// Port is the backends' port for KindDNSA (SRV records give their own).
	Port int
	// Scheme is the scheme of the backends DNS finds: "http" (the
	// default), "https" or "h2c", from the URL's ?scheme= option. "" for
	// etcd, whose values give their URLs whole.
	Scheme string
}

const urlExamples = "etcd://127.0.0.1:2379/roundhouse/backends, dns+srv://_web._tcp.service.consul or dns+a://web.default.svc.cluster.local:8080"

// DiscoverURL reads a --discover value:
//
//	etcd://HOST[:PORT][,HOST[:PORT]...]/PREFIX   every key under PREFIX/ is a backend (port 2379 by default)
//	dns+srv://NAME[?scheme=S]                    SRV records: one backend per target address and port
//	dns+a://NAME:PORT[?scheme=S]                 A and AAAA records: one backend per address, on PORT
//
// Backends found through DNS are http:// ones, or, with ?scheme=h2c or
// ?scheme=https, h2c:// (cleartext HTTP/2, as gRPC services speak it) or
// https:// ones; an etcd key gives its URL whole. Schemes and DNS names
// are case-insensitive; user info, fragments, and any other query are
// refused.
func DiscoverURL(raw string) (Discovery, error) {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return Discovery{}, fmt.Errorf("want a URL such as %s", urlExamples)
	}
	rest, query, hasQuery := strings.Cut(rest, "?")
	if strings.ContainsAny(rest, "#@") || strings.ContainsAny(query, "#@") {
		return Discovery{}, errors.New("must not carry user info, a query or a fragment")
	}
	for _, r := range rest {
		if r <= ' ' || r >= 0x7f {
			return Discovery{}, fmt.Errorf("character %q not allowed", r)
		}
	}
	kind := strings.ToLower(scheme)
	backendScheme := "http"
	if hasQuery {
		var err error
		if backendScheme, err = schemeOption(kind, query); err != nil {
			return Discovery{}, err
		}
	}
	d, err := discoverKind(kind, scheme, rest)
	if err != nil {
		return Discovery{}, err
	}
	if d.Kind != KindEtcd {
		d.Scheme = backendScheme
	}
	return d, nil
}

// schemeOption reads a DNS source's query: scheme=http, https or h2c, and
// nothing else.
func schemeOption(kind, query string) (string, error) {
	if kind != KindDNSSRV && kind != KindDNSA {
		return "", errors.New("must not carry user info, a query or a fragment")
	}
	name, value, _ := strings.Cut(query, "=")
	if name != "scheme" || strings.ContainsAny(value, "&;") {
		return "", fmt.Errorf("query %q: the only option is scheme=http, https or h2c", query)
	}
	switch v := strings.ToLower(value); v {
	case "http", "https", "h2c":
		return v, nil
	}
	return "", fmt.Errorf("scheme=%q: want http, https or h2c", value)
}

// discoverKind parses the part of a --discover URL after "kind://".
func discoverKind(kind, scheme, rest string) (Discovery, error) {
	switch kind {
	case KindEtcd:
		return parseEtcd(rest)
	case KindDNSSRV:
		name := strings.TrimSuffix(rest, "/")
		if strings.Contains(name, ":") {
			return Discovery{}, errors.New("dns+srv takes no port: the SRV records give it")
		}
		if strings.Contains(name, "/") {
			return Discovery{}, errors.New("dns+srv takes no path")
		}
		name, err := domainName(name)
		if err != nil {
			return Discovery{}, err
		}
		return Discovery{Kind: kind, Name: name}, nil
	case KindDNSA:
		hostport := strings.TrimSuffix(rest, "/")
		if strings.Contains(hostport, "/") {
			return Discovery{}, errors.New("dns+a takes no path")
		}
		host, portStr, err := net.SplitHostPort(hostport)
		if err != nil {
			return Discovery{}, errors.New("want dns+a://NAME:PORT: the records give no port")
		}
		port, err := parsePort(portStr)
		if err != nil {
			return Discovery{}, err
		}
		name, err := domainName(host)
		if err != nil {
			return Discovery{}, err
		}
		return Discovery{Kind: kind, Name: name, Port: port}, nil
	}
	return Discovery{}, fmt.Errorf("scheme %q: want etcd, dns+srv or dns+a", scheme)
}

func parseEtcd(rest string) (Discovery, error) {
	hosts, path, _ := strings.Cut(rest, "/")
	if hosts == "" {
		return Discovery{}, errors.New("missing endpoint: want etcd://HOST:PORT/PREFIX")
	}
	if path == "" {
		return Discovery{}, errors.New("missing key prefix: want etcd://HOST:PORT/PREFIX")
	}
	s := Discovery{Kind: KindEtcd, Prefix: "/" + path}
	if !strings.HasSuffix(s.Prefix, "/") {
		s.Prefix += "/"
	}
	if strings.Contains(s.Prefix, "//") {
		return Discovery{}, fmt.Errorf("key prefix %q: empty path segment", s.Prefix)
	}
	for h := range strings.SplitSeq(hosts, ",") {
		host, portStr, err := net.SplitHostPort(h)
		if err != nil { // no port
			host, portStr = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]"), strconv.Itoa(DefaultEtcdPort)
		}
		port, err := parsePort(portStr)
		if err != nil {
			return Discovery{}, fmt.Errorf("endpoint %q: %w", h, err)
		}
		if ip, err := netip.ParseAddr(host); err == nil {
			if ip.Zone() != "" {
				return Discovery{}, fmt.Errorf("endpoint %q: zoned addresses are not supported", h)
			}
			host = ip.String()
		} else if host, err = domainName(host); err != nil {
			return Discovery{}, fmt.Errorf("endpoint %q: %w", h, err)
		}
		s.Endpoints = append(s.Endpoints, net.JoinHostPort(host, strconv.Itoa(port)))
	}
	return s, nil
}

func parsePort(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != s {
		return 0, fmt.Errorf("bad port %q", s)
	}
	return n, nil
}

// domainName checks a DNS name: labels of letters, digits, '-' and '_'
// (for SRV's _service._proto), at most 63 bytes each and 253 in all, an
// optional final dot. It returns the name in lower case without the dot.
func domainName(s string) (string, error) {
	name := strings.ToLower(strings.TrimSuffix(s, "."))
	if name == "" {
		return "", errors.New("missing name")
	}
	if len(name) > 253 {
		return "", fmt.Errorf("name %q: longer than 253 bytes", s)
	}
	for label := range strings.SplitSeq(name, ".") {
		if label == "" || len(label) > 63 {
			return "", fmt.Errorf("name %q: empty or over-long label", s)
		}
		for _, r := range label {
			if !('a' <= r && r <= 'z' || '0' <= r && r <= '9' || r == '-' || r == '_') {
				return "", fmt.Errorf("name %q: character %q not allowed", s, r)
			}
		}
	}
	return name, nil
}

// String writes s as a --discover URL in canonical form: lower-case
// scheme and name, every etcd port given, the prefix's slashes. DiscoverURL
// gives s back from it.
func (s Discovery) String() string {
	opt := ""
	if s.Scheme != "" && s.Scheme != "http" {
		opt = "?scheme=" + s.Scheme
	}
	switch s.Kind {
	case KindEtcd:
		return "etcd://" + strings.Join(s.Endpoints, ",") + s.Prefix
	case KindDNSA:
		return "dns+a://" + net.JoinHostPort(s.Name, strconv.Itoa(s.Port)) + opt
	}
	return s.Kind + "://" + s.Name + opt
}
