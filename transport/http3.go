package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"github.com/sourcegraph/conc"

	"github.com/roundhouse/roundhouse/internal/defaults"
)

// HTTP/3.
//
// An HTTP3 server serves the Frontend's handler (the Proxy) over QUIC, on
// a UDP socket bound to the TLS listener's port, with the same
// certificate source: its TLS configuration is ServerTLSConfig's, so every
// handshake asks the CertStore, and a certificate reloaded on SIGHUP
// applies to HTTP/3 too. Requests reach the handler as *http.Request with
// ProtoMajor 3, TLS set and RemoteAddr the client's UDP address, so the
// proxy treats them as it treats HTTP/2 requests: policies, retries with
// the body intact, limits, rate limits, request IDs, forwarded headers
// (proto=https).
//
// What the TCP listener stack does and HTTP/3 does not need, or does
// otherwise:
//   - the framing guard (guard.go) checks HTTP/1.1's byte stream for
//     smuggling; HTTP/3, like HTTP/2, frames every message, and quic-go's
//     parser refuses malformed frames and headers;
//   - the connection cap (--max-conns) caps QUIC connections too, counted
//     apart from TCP's (quicLimitListener): at the cap, handshaken
//     connections wait in quic-go's accept queue (32), and beyond it
//     quic-go refuses new ones, so clients fall back to TCP;
//   - ReadHeaderTimeout bounds the QUIC handshake; a connection that sends
//     nothing for IdleTimeout is closed; each connection may have at most
//     MaxStreams requests open at once;
//   - the PROXY protocol is TCP's: over QUIC the client is the UDP peer.
//
// 0-RTT is off: a request is never served from early data, which an
// attacker could replay.

// handOverLinger is how long HandOver waits with no request in flight
// before it closes the connections: time for the GOAWAY to reach the
// clients and for requests they sent before it to arrive, which are then
// refused with H3_REQUEST_REJECTED, which clients retry on a new
// connection, where closing the connection would fail them.
const handOverLinger = time.Second

// AltSvcMaxAge is how long clients may remember the HTTP/3 advertisement.
const AltSvcMaxAge = 24 * time.Hour

// HTTP3Options configures an HTTP3 server. Every zero field but TLS takes
// the default named in its comment.
type HTTP3Options struct {
	// TLS is the certificate source and settings (ServerTLSConfig); ALPN
	// offers h3 only. Required: there is no cleartext HTTP/3.
	TLS *tls.Config
	// HandshakeTimeout bounds the QUIC handshake; 0:
	// defaults.ClientHeaderTimeout (as the TLS handshake on TCP).
	HandshakeTimeout time.Duration
	// IdleTimeout closes a connection that has had no traffic for this
	// long; 0: defaults.ClientIdleTimeout.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds a request's headers; 0: 64 KiB.
	MaxHeaderBytes int
	// MaxConns caps concurrent QUIC connections; beyond it new ones wait
	// in quic-go's accept queue, then are refused. 0: no cap.
	MaxConns int
	// MaxStreams caps the requests one connection may have open at once
	// (HTTP/2's SETTINGS_MAX_CONCURRENT_STREAMS); 0: 100.
	MaxStreams int64
	Logger     hclog.Logger // nil: no logging
}

func (o HTTP3Options) withDefaults() HTTP3Options {
	if o.HandshakeTimeout <= 0 {
		o.HandshakeTimeout = defaults.ClientHeaderTimeout
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = defaults.ClientIdleTimeout
	}
	if o.MaxHeaderBytes <= 0 {
		o.MaxHeaderBytes = 64 << 10
	}
	if o.MaxStreams <= 0 {
		o.MaxStreams = 100
	}
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
	return o
}

// HTTP3 serves HTTP/3 on a UDP socket. Serve runs on a goroutine its
// owner starts and waits for; it returns after Shutdown (or HandOver),
// which the owner must call once, whether Serve ran or not. quic-go runs
// a goroutine that reads the socket and goroutines per connection and per
// request, and HTTP3 one that counts the requests in flight: all of them
// end before Shutdown returns. The socket stays the
// caller's: HTTP3 never closes it (a seamless upgrade hands it on).
type HTTP3 struct {
	srv      *http3.Server
	tr       *quic.Transport
	ln       http3.QUICListener
	port     int
	inFlight *inFlight
	stop     context.CancelFunc // ends inFlight's goroutine
	wg       conc.WaitGroup     // inFlight's goroutine, from NewHTTP3 to Shutdown
}

// NewHTTP3 returns a server that will serve h over QUIC on conn.
func NewHTTP3(conn net.PacketConn, h http.Handler, o HTTP3Options) (*HTTP3, error) {
	if o.TLS == nil {
		return nil, errors.New("HTTP/3 needs a TLS configuration")
	}
	o = o.withDefaults()
	port := 0
	if a, ok := conn.LocalAddr().(*net.UDPAddr); ok {
		port = a.Port
	}
	checkUDPBuffers(conn, o.Logger.Named("quic"))
	tr := &quic.Transport{Conn: conn}
	ln, err := tr.Listen(http3.ConfigureTLSConfig(o.TLS), &quic.Config{
		HandshakeIdleTimeout: o.HandshakeTimeout,
		MaxIdleTimeout:       o.IdleTimeout,
		MaxIncomingStreams:   o.MaxStreams,
		Allow0RTT:            false, // no request from replayable early data
	})
	if err != nil {
		_ = tr.Close()
		return nil, fmt.Errorf("QUIC on %s: %w", conn.LocalAddr(), err)
	}
	var qln http3.QUICListener = ln
	if o.MaxConns > 0 {
		qln = newQUICLimitListener(ln, o.MaxConns, o.Logger.Named("limits"))
	}
	ctx, stop := context.WithCancel(context.Background())
	s := &HTTP3{tr: tr, ln: qln, port: port, inFlight: newInFlight(), stop: stop}
	s.wg.Go(func() { s.inFlight.run(ctx) })
	s.srv = &http3.Server{
		Handler:        s.inFlight.handler(h),
		MaxHeaderBytes: o.MaxHeaderBytes,
		IdleTimeout:    o.IdleTimeout,
		Logger:         nil, // quic-go's messages are debug-level details
	}
	return s, nil
}

// Addr is the UDP address clients connect to.
func (s *HTTP3) Addr() net.Addr { return s.ln.Addr() }

// AltSvc is the Alt-Svc header value that advertises this server to
// HTTP/1.1 and HTTP/2 clients: h3 on the same port, for AltSvcMaxAge.
func (s *HTTP3) AltSvc() string {
	return `h3=":` + strconv.Itoa(s.port) + `"; ma=` + strconv.Itoa(int(AltSvcMaxAge/time.Second))
}

// Serve accepts and serves QUIC connections until Shutdown; it then
// returns http.ErrServerClosed.
func (s *HTTP3) Serve() error { return s.srv.ServeListener(s.ln) }

// Shutdown stops accepting connections, sends every connection a GOAWAY
// and waits for the requests in flight to finish. If ctx ends first, it
// closes every connection (their requests' contexts end) and returns
// ctx's error. Either way quic-go's goroutines have ended when it returns;
// the socket stays open.
func (s *HTTP3) Shutdown(ctx context.Context) error { return s.shutdown(ctx, false) }

// HandOver is Shutdown for a process that has handed its UDP socket to a
// new one: it also closes every connection (CONNECTION_CLOSE, no error)
// once no request has been in flight for handOverLinger. Both processes
// now read the one socket, so this one may never see its clients close
// their connections (their datagrams reach either process), and until it
// stops reading it takes datagrams meant for the new process's
// connections.
func (s *HTTP3) HandOver(ctx context.Context) error { return s.shutdown(ctx, true) }

func (s *HTTP3) shutdown(ctx context.Context, closeWhenIdle bool) error {
	defer s.wg.Wait()
	defer s.stop()
	// Closing the listener first refuses handshakes at once; the server's
	// Shutdown would leave them waiting in the accept queue.
	_ = s.ln.Close()
	var err error
	if closeWhenIdle {
		done := make(chan error, 1)
		var wg conc.WaitGroup
		wg.Go(func() { done <- s.srv.Shutdown(ctx) })
		select {
		case err = <-done:
		case <-s.inFlight.whenIdleFor(handOverLinger):
			_ = s.srv.Close()
			err = <-done
		}
		wg.Wait()
	} else {
		err = s.srv.Shutdown(ctx)
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	_ = s.tr.Close() // the socket is not the Transport's: it stays open
	return err
}

// AdvertiseHTTP3 returns h with every response carrying altSvc (see
// HTTP3.AltSvc) in its Alt-Svc header, for the TCP listener: clients
// learn that they may use HTTP/3. The header is set before h runs, so it
// is on the proxy's own answers (502, 503, 429) too.
func AdvertiseHTTP3(h http.Handler, altSvc string) http.Handler {
	v := []string{altSvc}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Alt-Svc"] = v
		h.ServeHTTP(w, r)
	})
}
