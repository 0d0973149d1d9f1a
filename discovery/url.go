package discovery

import "github.com/roundhouse/roundhouse/internal/parse"

// The kinds of source a --discover URL names, by its scheme.
const (
	KindEtcd   = parse.KindEtcd   // etcd://HOST:PORT[,HOST:PORT...]/PREFIX
	KindDNSSRV = parse.KindDNSSRV // dns+srv://_service._tcp.NAME
	KindDNSA   = parse.KindDNSA   // dns+a://NAME:PORT
)

// DefaultEtcdPort is an etcd endpoint's port when the URL gives none.
const DefaultEtcdPort = parse.DefaultEtcdPort

// Spec is a parsed --discover URL (see parse.Discovery, where it is
// defined so that package config can check --discover values without
// importing this package).
type Spec = parse.Discovery

// ParseURL reads a --discover value; see parse.DiscoverURL.
func ParseURL(raw string) (Spec, error) { return parse.DiscoverURL(raw) }
