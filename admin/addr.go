package admin

import (
	"net"
	"strings"

	"github.com/roundhouse/roundhouse/internal/parse"
)

// MinTokenLen is the shortest bearer token ReadTokenFile accepts, in bytes.
const MinTokenLen = parse.MinTokenLen

// ErrNotLoopback is CheckAddr's error for an address that other machines
// could reach while no token protects it.
var ErrNotLoopback = parse.ErrNotLoopback

// CheckAddr checks the admin listener's address; see parse.AdminAddr,
// where it is defined so that package config can check --admin without
// importing this package.
func CheckAddr(addr string, haveToken bool) error { return parse.AdminAddr(addr, haveToken) }

// loopbackHost reports whether a request's Host header (host[:port])
// names a loopback address.
func loopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	return parse.LoopbackName(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"))
}

// ReadTokenFile reads a bearer token from file; see parse.TokenFile.
func ReadTokenFile(file string) ([]byte, error) { return parse.TokenFile(file) }
