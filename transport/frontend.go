package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/roundhouse/roundhouse/internal/defaults"
)

// FrontendOptions configures the client-facing side. Every zero field
// takes the default named in its comment.
type FrontendOptions struct {
	// ReadHeaderTimeout bounds the time to read a request head, so a client
	// trickling headers (slowloris) is cut off; 0: defaults.ClientHeaderTimeout.
	ReadHeaderTimeout time.Duration
	// IdleTimeout closes a keep-alive connection that sends no new request;
	// 0: defaults.ClientIdleTimeout.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds a request's headers (431 beyond); 0: 64 KiB.
	MaxHeaderBytes int
	// MaxConns caps concurrent client connections; beyond it new
	// connections wait in the kernel's accept queue (unless IdleConns
	// makes room). 0: no cap.
	MaxConns int
	// IdleConns, with MaxConns, closes the connection idle the longest
	// when a new one arrives at the cap, and hears of every connection's
	// state; its Run must run while the Frontend serves. nil: at the cap,
	// new connections wait for one to close.
	IdleConns *IdleConns
	// Tunnels is the Proxy's count of upgraded connections: Shutdown waits
	// for them too. nil: Shutdown does not wait for upgraded connections.
	Tunnels *Tunnels
	// TLS terminates TLS with these settings (see ServerTLSConfig), with
	// HTTP/2 and HTTP/1.1 chosen by ALPN; the handshake must finish within
	// ReadHeaderTimeout. nil: cleartext.
	TLS *tls.Config
	// H2C accepts cleartext HTTP/2 from clients that start with the
	// HTTP/2 connection preface (prior knowledge). Only for cleartext
	// listeners, normally behind a trusted proxy. false: HTTP/1.x only.
	H2C bool
	// ProxyProtocol requires a PROXY protocol header, v1 or v2, from a
	// trusted peer on every connection, and makes the address it carries
	// the client's (see proxyproto.go); its header read is bounded by
	// ReadHeaderTimeout. nil: no PROXY protocol, the peer is the client.
	ProxyProtocol *ProxyProtocol
	// ConnState, if not nil, is the http.Server's ConnState hook (a
	// seamless upgrade's drainer watches connections with it); with
	// IdleConns, it is called after IdleConns has heard of each change.
	ConnState func(net.Conn, http.ConnState)
	Logger    hclog.Logger // nil: no logging
}

func (o FrontendOptions) withDefaults() FrontendOptions {
	if o.ReadHeaderTimeout <= 0 {
		o.ReadHeaderTimeout = defaults.ClientHeaderTimeout
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = defaults.ClientIdleTimeout
	}
	if o.MaxHeaderBytes <= 0 {
		o.MaxHeaderBytes = 64 << 10
	}
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
	return o
}

// Frontend is where clients connect: a listener stack (PROXY protocol,
// connection cap, TLS, the framing guard of guard.go) in front of an http.Server with
// hardened timeouts and limits, serving a handler (normally a Proxy) over
// HTTP/1.1 and, by ALPN on TLS or by prior knowledge with H2C, HTTP/2.
//
// Serve runs on a goroutine its owner starts and waits for; it returns
// after Shutdown. Every request's context derives from one the Frontend
// cancels when Shutdown gives up waiting, so nothing outlives Shutdown.
type Frontend struct {
	srv          *http.Server
	ln           net.Listener
	tunnels      *Tunnels
	stopRequests context.CancelFunc
}

// NewFrontend returns a Frontend that will serve h on ln.
func NewFrontend(ln net.Listener, h http.Handler, o FrontendOptions) *Frontend {
	o = o.withDefaults()
	reqCtx, stop := context.WithCancel(context.Background())
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetHTTP2(o.TLS != nil)
	protocols.SetUnencryptedHTTP2(o.H2C && o.TLS == nil)
	if o.MaxConns <= 0 {
		o.IdleConns = nil
	}
	connState := o.ConnState
	if ic, hook := o.IdleConns, o.ConnState; ic != nil {
		connState = func(c net.Conn, s http.ConnState) {
			ic.ConnState(c, s)
			if hook != nil {
				hook(c, s)
			}
		}
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: o.ReadHeaderTimeout,
		IdleTimeout:       o.IdleTimeout,
		MaxHeaderBytes:    o.MaxHeaderBytes,
		Protocols:         &protocols,
		BaseContext:       func(net.Listener) context.Context { return reqCtx },
		ConnState:         connState,
		ErrorLog:          o.Logger.Named("http").StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}),
	}
	// The guard's head limit is net/http's (MaxHeaderBytes plus 4 KiB for
	// the request line) plus the 4 KiB it may already hold buffered, so the
	// guard never refuses a head that net/http would read.
	headLimit := o.MaxHeaderBytes + 8<<10
	ln = newFDListener(ln, o.TLS == nil, o.Logger.Named("accept"))
	if o.ProxyProtocol != nil {
		ln = o.ProxyProtocol.listener(ln, o.ReadHeaderTimeout)
	}
	if o.MaxConns > 0 {
		ln = newLimitListener(ln, o.MaxConns, o.IdleConns, o.Logger.Named("limits"))
	}
	guard := &guardConfig{limit: headLimit, log: o.Logger.Named("guard")}
	if o.TLS != nil {
		wrap := func(c net.Conn) net.Conn { return newGuardConn(c, guard) }
		ln = newTLSListener(ln, o.TLS, o.ReadHeaderTimeout, wrap, o.Logger.Named("tls"))
	} else {
		guard.h2c = o.H2C
		ln = &guardListener{Listener: ln, guard: guard}
	}
	return &Frontend{srv: srv, ln: ln, tunnels: o.Tunnels, stopRequests: stop}
}

// Addr is the address clients connect to.
func (f *Frontend) Addr() net.Addr { return f.ln.Addr() }

// Serve accepts and serves connections until Shutdown; it then returns
// http.ErrServerClosed.
func (f *Frontend) Serve() error { return f.srv.Serve(f.ln) }

// Shutdown stops accepting and waits for requests in flight and open
// tunnels (WebSockets) to finish. If ctx ends first, it closes every
// connection, cancels the requests still running, which closes the
// tunnels (ReverseProxy closes both ends of a tunnel when its request's
// context ends), waits briefly for them to wind down and returns ctx's
// error.
func (f *Frontend) Shutdown(ctx context.Context) error {
	defer f.stopRequests()
	defer f.ln.Close() // its goroutines end even if Serve never ran
	err := f.srv.Shutdown(ctx)
	// net.ErrClosed: the listener was closed already (after a hand-over)
	// and Serve had not yet returned; the connections were still drained.
	if errors.Is(err, http.ErrServerClosed) || errors.Is(err, net.ErrClosed) {
		err = nil
	}
	if err == nil && f.tunnels != nil {
		err = f.tunnels.Wait(ctx)
	}
	if err != nil {
		_ = f.srv.Close()
		f.stopRequests()
		if f.tunnels != nil {
			windDown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = f.tunnels.Wait(windDown)
			cancel()
		}
	}
	return err
}

// guardListener wraps each accepted connection in a framing guard.
type guardListener struct {
	net.Listener
	guard *guardConfig
}

func (l *guardListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return newGuardConn(c, l.guard), nil
}
