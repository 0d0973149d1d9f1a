// Package transport is the balancer's data path: the client-facing server
// (Frontend) and the handler that forwards each request (Proxy). Handler
// goroutines ask the selector (package actors) for a backend and send the
// request through one shared, tuned Transport (an *http.Transport, with an
// h2c sibling for cleartext HTTP/2 backends) with httputil.ReverseProxy.
//
// # One request
//
// Frontend's listener stack accepts the connection, and net/http calls
// Proxy.ServeHTTP on the connection's goroutine, the handler goroutine.
// ServeHTTP runs the request's stages in order, each a method: begin,
// admit, pick, forward (with retry after a failure that is safe to
// repeat), answer, end. The exchange (exchange.go) carries the request's
// state from stage to stage.
//
// # Files
//
// The client side, in the order a connection meets it:
//
//	frontend.go       Frontend: the listener stack and the http.Server; Serve, Shutdown
//	proxyproto.go     PROXY protocol in: the client's address from an L4 balancer
//	limits.go         the connection cap (limitListener)
//	tls.go            TLS termination: CertStore, the handshaking tlsListener
//	guard.go          the framing guard: request smuggling defence for HTTP/1.x
//
// One request, in the order of its stages:
//
//	proxy.go          Config, Proxy, ServeHTTP and its stages pick, forward,
//	                  retry, answer, end
//	exchange.go       the exchange, the request's state; begin and release
//	admit.go          admit: the requests the balancer refuses itself; linger
//	ratelimit.go      RateLimiter: per-client token buckets (admit's 429)
//	requestid.go      request IDs
//	body.go           replayableBody: the request body, resendable and capped
//	recorder.go       recorder: the client's ResponseWriter, status and bytes
//	hooks.go          ReverseProxy's hooks: rewrite, modifyResponse, recordError
//	grpc.go           gRPC calls: the balancer's errors as gRPC statuses, grpc-timeout
//	forwarded.go      X-Forwarded-* and Forwarded; TrustedProxies
//	tunnels.go        Tunnels: the count of upgraded connections (WebSockets)
//	buffers.go        the response copy's buffer pool
//
// The backend side:
//
//	transport.go      New: the one shared Transport, for http://, https:// and h2c://
//	proxyproto_out.go PROXY protocol out: a header per connection to a backend
//
// # Goroutines
//
// Five parts of the package own goroutines. Four are actors with a Run
// method: the owner (serve, in package main, under a conc.WaitGroup)
// starts each on a goroutine of its own and ends it by cancelling Run's
// context, then waits for it. Each owns its state alone and is reached
// only by message, and no caller ever waits on one whose Run has
// returned: its methods also select on its end (ProxyProtocol's never
// wait at all).
//
//   - Tunnels.Run (tunnels.go) owns the count of open tunnels. Handlers
//     send Enter and Leave; Frontend.Shutdown waits on it for the tunnels
//     to close.
//   - RateLimiter.Run (ratelimit.go) owns the clients' token buckets.
//     admit asks it (Allow) with a reply channel; a ticker in its loop
//     forgets idle clients.
//   - CertStore.Run (tls.go) owns the serving certificate. Every TLS
//     handshake asks it for the certificate; Reload hands it a new one.
//   - ProxyProtocol.Run (proxyproto.go) owns the memory of which peers'
//     refusals were logged when. Connection goroutines hand it refusals on
//     a buffered channel without waiting (a full one drops the line).
//
// The fifth starts its own goroutines: the tlsListener (tls.go), which
// Frontend builds when it terminates TLS, runs one accept loop and one
// goroutine per handshake in progress, all under its own conc.WaitGroup.
// Its Close (Frontend.Shutdown closes the listener) stops the loop,
// aborts the handshakes and waits for them.
//
// Frontend.Serve runs on a goroutine its owner starts; it returns after
// Shutdown. The rest runs on goroutines net/http owns: the handler
// goroutine (every stage of a request, and ReverseProxy's hooks), and
// http.Transport's (dials, each connection's reader and writer, HTTP/2
// streams). Two places hand data to those: the request body, which the
// transport's writer reads (see replayableBody for what orders it), and
// the PROXY header's addresses, which the dial goroutine gets as a value
// (see headerAddrsValue). The package has no mutex and no atomic.
package transport
