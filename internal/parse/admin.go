package parse

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
)

// DefaultAdminAddr is the admin listener's usual address, and the address
// the status command asks by default.
const DefaultAdminAddr = "127.0.0.1:9090"

// MinTokenLen is the shortest bearer token TokenFile accepts, in bytes.
const MinTokenLen = 16

// ErrNotLoopback is AdminAddr's error for an address that other machines
// could reach while no token protects it.
var ErrNotLoopback = errors.New("not a loopback address, and no token protects it")

// AdminAddr checks the admin listener's address. Without a token it must
// be a loopback address: 127.0.0.0/8, ::1 or "localhost" with a port. An
// empty host (":9090", every interface) and any other name are refused,
// since other machines could reach them. With a token any address passes.
func AdminAddr(addr string, haveToken bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if haveToken || LoopbackName(host) {
		return nil
	}
	return ErrNotLoopback
}

// LoopbackName reports whether host (no port, no brackets) is a loopback
// IP address or "localhost".
func LoopbackName(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// TokenFile reads a bearer token from file: its contents with the
// surrounding white space trimmed, at least MinTokenLen bytes, with no
// spaces or control characters inside. The error names the file but never
// repeats its contents.
func TokenFile(file string) ([]byte, error) {
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
