package admin

import (
	"net"
	"strings"

	"github.com/roundhouse/roundhouse/internal/parse"
)

// loopbackHost reports whether a request's Host header (host[:port])
// names a loopback address.
func loopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	return parse.LoopbackName(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"))
}
