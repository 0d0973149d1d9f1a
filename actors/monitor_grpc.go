package actors

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"maps"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pires/go-proxyproto"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
)

// GRPCCheck says what a gRPC health probe asks: it calls
// grpc.health.v1.Health/Check for Service on the backend, and passes when
// the answer is SERVING. Anything else fails: another serving status, an
// error status (NOT_FOUND for a service the server does not know,
// UNIMPLEMENTED for a server without the health service), or no answer
// within the probe's timeout.
//
// The probe speaks the backend's own protocol: TLS (HTTP/2 by ALPN) for an
// https:// backend, verified against RootCAs for the host name in its URL,
// which is also sent as SNI; cleartext HTTP/2 by prior knowledge (h2c)
// for any other scheme (h2c://, http://). The zero value asks about the
// server as a whole (Service "") on the backend's own address, over TLS
// verified against the system's roots for https://.
type GRPCCheck struct {
	// Service is the service name asked about; "": the server as a whole,
	// by the health protocol's convention.
	Service string
	// Authority is the probe's :authority; "": the host and port probed.
	Authority string
	// Header holds extra request metadata, sent with lower-case names; a
	// Host here is ignored (use Authority). nil: none.
	Header http.Header
	// Port is probed instead of the port in the backend's URL; 0: the
	// URL's port (or 443 for https://, 80 otherwise, when it has none).
	Port int
	// RootCAs verifies https:// backends; nil: the system's roots.
	RootCAs *x509.CertPool
}

// equal reports whether two checks probe the same way: headers by their
// contents, root pools by their certificates.
func (c GRPCCheck) equal(o GRPCCheck) bool {
	return c.Service == o.Service && c.Authority == o.Authority && c.Port == o.Port &&
		maps.EqualFunc(c.Header, o.Header, slices.Equal) &&
		(c.RootCAs == o.RootCAs || c.RootCAs != nil && c.RootCAs.Equal(o.RootCAs))
}

// grpcProber is the gRPC health check of one backend. It owns a
// grpc.ClientConn, made when the monitor's goroutine starts and closed by
// Close when it ends (grpc-go runs goroutines of its own per ClientConn
// until then). Probe and Close are called by that goroutine alone.
type grpcProber struct {
	conn    *grpc.ClientConn
	client  healthpb.HealthClient
	service string
	target  string // host:port dialled, for messages
	md      metadata.MD
}

var _ prober = (*grpcProber)(nil)

// newGRPCProber returns the prober of b that c describes. The connection
// is made lazily, on the first probe; afterwards grpc-go keeps it up, and
// after a failure reconnects (backing off, at most interval apart, each
// attempt given at least timeout).
func newGRPCProber(b *Backend, c GRPCCheck, interval, timeout time.Duration) (*grpcProber, error) {
	u := b.URL
	port := u.Port()
	switch {
	case c.Port != 0:
		port = strconv.Itoa(c.Port)
	case port == "" && u.Scheme == "https":
		port = "443"
	case port == "":
		port = "80"
	}
	addr := net.JoinHostPort(u.Hostname(), port)
	creds := insecure.NewCredentials()
	if u.Scheme == "https" {
		creds = credentials.NewTLS(&tls.Config{RootCAs: c.RootCAs, ServerName: u.Hostname(), MinVersion: tls.VersionTLS12})
	}
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithUserAgent("roundhouse-health-check"),
		grpc.WithContextDialer(dialForProbe(b.ProxyProtocol)),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff: backoff.Config{
				BaseDelay: min(time.Second, interval), Multiplier: 1.6, Jitter: 0.2, MaxDelay: interval,
			},
			MinConnectTimeout: timeout,
		}),
	}
	if c.Authority != "" {
		opts = append(opts, grpc.WithAuthority(c.Authority))
	}
	// passthrough: the address goes to the dialer as it is, with no
	// resolver of grpc-go's own (and no goroutine for one).
	conn, err := grpc.NewClient("passthrough:///"+addr, opts...)
	if err != nil {
		return nil, fmt.Errorf("health probe: grpc %s: %w", addr, err)
	}
	md := metadata.MD{}
	for k, vs := range c.Header {
		if http.CanonicalHeaderKey(k) == "Host" {
			continue
		}
		md[strings.ToLower(k)] = slices.Clone(vs)
	}
	return &grpcProber{conn: conn, client: healthpb.NewHealthClient(conn), service: c.Service, target: addr, md: md}, nil
}

// dialForProbe returns the probe connections' dialer: TCP, then, for a
// backend that expects one (version 1 or 2), a PROXY header that says the
// balancer speaks for itself (LOCAL in v2, UNKNOWN in v1), as the HTTP
// probes send.
func dialForProbe(version int) func(ctx context.Context, addr string) (net.Conn, error) {
	return func(ctx context.Context, addr string) (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil || version == 0 {
			return c, err
		}
		if _, err := proxyproto.HeaderProxyFromAddrs(byte(version), nil, nil).WriteTo(c); err != nil {
			_ = c.Close()
			return nil, fmt.Errorf("writing the PROXY header: %w", err)
		}
		return c, nil
	}
}

// Probe calls Health/Check once and returns nil for SERVING. It waits for
// the connection to be ready until ctx is done, so a backend that is down
// fails after the probe's timeout, with the last connection error:
// "health probe: grpc 127.0.0.1:9000: rpc error: code = DeadlineExceeded
// desc = latest balancer error: connection error: ... connection refused".
// Other failures read "... service \"x\": rpc error: code = NotFound ..."
// and "... service \"\": status NOT_SERVING".
func (p *grpcProber) Probe(ctx context.Context) error {
	if p.conn.GetState() == connectivity.TransientFailure {
		// The backend may be back: try now rather than when the backoff
		// ends.
		p.conn.ResetConnectBackoff()
	}
	if len(p.md) > 0 {
		ctx = metadata.NewOutgoingContext(ctx, p.md)
	}
	resp, err := p.client.Check(ctx, &healthpb.HealthCheckRequest{Service: p.service}, grpc.WaitForReady(true))
	switch {
	case err != nil:
		return fmt.Errorf("health probe: grpc %s service %q: %w", p.target, p.service, err)
	case resp.GetStatus() != healthpb.HealthCheckResponse_SERVING:
		return fmt.Errorf("health probe: grpc %s service %q: status %s", p.target, p.service, resp.GetStatus())
	}
	return nil
}

// Close closes the connection and waits for nothing more: grpc-go's own
// goroutines for it end soon after.
func (p *grpcProber) Close() error { return p.conn.Close() }
