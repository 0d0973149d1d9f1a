package transport

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/hashicorp/go-hclog"
)

// FrontendOptions configures the client-facing side. Every zero field
// takes the default named in its comment.
type FrontendOptions struct {
	// ReadHeaderTimeout bounds the time to read a request head, so a client
	// trickling headers (slowloris) is cut off; 0: 10s.
	ReadHeaderTimeout time.Duration
	// IdleTimeout closes a keep-alive connection that sends no new request;
	// 0: 120s.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds a request's headers (431 beyond); 0: 64 KiB.
	MaxHeaderBytes int
	// MaxConns caps concurrent client connections; beyond it new
	// connections wait in the kernel's accept queue. 0: no cap.
	MaxConns int
	// Tunnels is the Proxy's count of upgraded connections: Shutdown waits
	// for them too. nil: Shutdown does not wait for upgraded connections.
	Tunnels *Tunnels
	Logger  hclog.Logger // nil: no logging
}

func (o FrontendOptions) withDefaults() FrontendOptions {
	if o.ReadHeaderTimeout <= 0 {
		o.ReadHeaderTimeout = 10 * time.Second
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 120 * time.Second
	}
	if o.MaxHeaderBytes <= 0 {
		o.MaxHeaderBytes = 64 << 10
	}
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
	return o
}

// Frontend is where clients connect: a listener stack that guards request
// framing (guard.go) in front of an http.Server with hardened timeouts and
// limits, serving a handler (normally a Proxy).
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
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: o.ReadHeaderTimeout,
		IdleTimeout:       o.IdleTimeout,
		MaxHeaderBytes:    o.MaxHeaderBytes,
		Protocols:         &protocols,
		BaseContext:       func(net.Listener) context.Context { return reqCtx },
		ErrorLog:          o.Logger.Named("http").StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}),
	}
	// The guard's head limit is net/http's (MaxHeaderBytes plus 4 KiB for
	// the request line) plus the 4 KiB it may already hold buffered, so the
	// guard never refuses a head that net/http would read.
	headLimit := o.MaxHeaderBytes + 8<<10
	if o.MaxConns > 0 {
		ln = newLimitListener(ln, o.MaxConns, o.Logger.Named("limits"))
	}
	ln = &guardListener{Listener: ln, headLimit: headLimit, log: o.Logger.Named("guard")}
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
	err := f.srv.Shutdown(ctx)
	if errors.Is(err, http.ErrServerClosed) {
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
	headLimit int
	log       hclog.Logger
}

func (l *guardListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return newGuardConn(c, l.headLimit, l.log), nil
}
