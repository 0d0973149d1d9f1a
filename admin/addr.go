package admin

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
)

// MinTokenLen is the shortest bearer token ReadTokenFile accepts, in bytes.
const MinTokenLen = 16

// ErrNotLoopback is CheckAddr's error for an address that other machines
// could reach while no token protects it.
var ErrNotLoopback = errors.New("not a loopback address, and no token protects it")

// CheckAddr checks the admin listener's address. Without a token it must be
// a loopback address: 127.0.0.0/8, ::1 or "localhost" with a port. An
// empty host (":9090", every interface) and any other name are refused,
// since other machines could reach them. With a token any address passes.
func CheckAddr(addr string, haveToken bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if haveToken || loopbackName(host) {
		return nil
	}
	return ErrNotLoopback
}

// loopbackName reports whether host (no port, no brackets) is a loopback
// IP address or "localhost".
func loopbackName(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// loopbackHost reports whether a request's Host header (host[:port])
// names a loopback address.
func loopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	return loopbackName(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"))
}

// ReadTokenFile reads a bearer token from file: its contents with the
// surrounding white space trimmed, at least MinTokenLen bytes, with no
// spaces or control characters inside. The error
// names the file but never repeats its contents.
func ReadTokenFile(file string) ([]byte, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	b = bytes.TrimSpace(b)
	if len(b) < MinTokenLen {
		return nil, fmt.Errorf("%s: want a token of at least %d bytes, got %d", file, MinTokenLen, len(b))
	}
	if bytes.ContainsFunc(b, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		// It could never arrive intact in an Authorization header.
		return nil, fmt.Errorf("%s: the token must not contain spaces or control characters", file)
	}
	return b, nil
}
