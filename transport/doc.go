// Package transport is the balancer's data path: the client-facing server
// (Frontend), the routes to the pools (Table, offered by the Router) and
// the handler that forwards each request (Proxy). Handler goroutines take
// the current routing table (from the Router), match the request to a pool,
// ask that pool's selector (package actors) for a backend and send the
// request through the pool's shared, tuned Transport (an *http.Transport,
// with an h2c sibling for cleartext HTTP/2 backends): with a forwarder of
// its own for requests without a body or upgrade, with
// httputil.ReverseProxy for the others (forwarder.go says why).
//
// # One request
//
// Frontend's listener stack accepts the connection, and net/http calls
// Proxy.ServeHTTP on the connection's goroutine, the handler goroutine.
// ServeHTTP runs the request's stages in order, each a method: begin,
// admit, route (the request's pool, then pick from its selector), forward
// (with retry after a failure that is safe to repeat), answer, end. The
// exchange (exchange.go) carries the request's state from stage to stage,
// its pool among it.
//
// # Files
//
// The client side, in the order a connection meets it:
//
//	frontend.go       Frontend: the listener stack and the http.Server; Serve, Shutdown
//	fdlimit.go        fdListener: a spare descriptor, to shed connections with 503
//	                  when the process is out of file descriptors
//	proxyproto.go     PROXY protocol in: the client's address from an L4 balancer
//	limits.go         the connection cap (limitListener)
//	tls.go            TLS termination: CertStore, the handshaking tlsListener
//	guard.go          the framing guard: request smuggling defence for HTTP/1.x
//	http3.go          HTTP3: HTTP/3 over QUIC on a UDP socket (quic-go), the
//	                  same handler and certificate source; AdvertiseHTTP3
//	http3_limits.go   the QUIC connection cap (quicLimitListener)
//	http3_inflight.go inFlight: HTTP/3 requests in flight, for HandOver
//	http3_buffers*.go the UDP socket's buffers
//
// One request, in the order of its stages:
//
//	proxy.go          Config, Proxy, ServeHTTP and its stages pick, forward,
//	                  retry, answer, end; retryable (a response-header
//	                  timeout is retried like a broken exchange)
//	exchange.go       the exchange, the request's state; begin and release
//	admit.go          admit: the requests the balancer refuses itself; linger
//	route.go          route: clean the path, match the routes, take the first
//	                  pick from the pool's selector; route again if that pool
//	                  stopped after a reload
//	routes.go         Table: the routes and their pools, immutable; Router:
//	                  the actor that offers the current Table
//	pool.go           Pool: one pool as the proxy sees it (its selector,
//	                  transport, retries, timeouts); poolTransport
//	ratelimit.go      RateLimiter: per-client token buckets (admit's 429)
//	requestid.go      request IDs
//	body.go           replayableBody: the request body, resendable and capped;
//	                  attemptBody, an h2c attempt's
//	recorder.go       recorder: the client's ResponseWriter, status and bytes
//	forwarder.go      send: one attempt; the fast path (outbound, respond,
//	                  copyBody, relayInformational) or ReverseProxy
//	hooks.go          the attempt's hooks: rewrite, modifyResponse, recordError
//	                  (which classifies a failed attempt: headerTimedOut, ...)
//	grpc.go           gRPC calls: the balancer's errors as gRPC statuses, grpc-timeout
//	forwarded.go      X-Forwarded-* and Forwarded; TrustedProxies
//	tunnels.go        Tunnels: the count of upgraded connections (WebSockets)
//	buffers.go        the response copy's buffer pool
//
// The backend side:
//
//	transport.go      New: a shared Transport for http://, https:// and h2c://
//	                  (one per distinct Options; pools with the same
//	                  settings share one)
//	proxyproto_out.go PROXY protocol out: a header per connection to a backend
//	h2cconns.go       boundConns, sendBounded: an HTTP/2 attempt (h2c, https that
//	                  chose h2, probes) tries at most two connections and is
//	                  never resent on the connection that refused it
//
// # Goroutines
//
// Six parts of the package own goroutines. Five are actors with a Run
// method: the owner (serve, in package main, under a conc.WaitGroup)
// starts each on a goroutine of its own and ends it by cancelling Run's
// context, then waits for it. Each owns its state alone and is reached
// only by message, and no caller ever waits on one whose Run has
// returned: its methods also select on its end (ProxyProtocol's never
// wait at all).
//
//   - Router.Run (routes.go) owns the current routing Table and the count
//     of requests no route matched. It keeps up to 64 copies of the
//     Table's pointer in a buffered channel and refills it when a handler
//     finds it empty, so Router.Table is usually one receive that does not
//     wait for Run's goroutine (an unbuffered offer, as the selector makes
//     for picks, would wake Run on every request).
//     A reload (serve's loop goroutine) replaces the Table whole with Set;
//     a handler that took the old one finishes with it. serve starts Run
//     with the actors (startActors) and ends it with them, by cancelling
//     their context; from then on Table, Set and Unrouted return
//     ErrRouterStopped.
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
// The sixth starts its own goroutines: the tlsListener (tls.go), which
// Frontend builds when it terminates TLS, runs one accept loop and one
// goroutine per handshake in progress, all under its own conc.WaitGroup.
// Its Close (Frontend.Shutdown closes the listener) stops the loop,
// aborts the handshakes and waits for them.
//
// HTTP3 (http3.go) starts one goroutine, inFlight's count, at NewHTTP3,
// and ends it in Shutdown (or HandOver), which its owner calls once;
// quic-go's goroutines (the socket's reader, one per connection, one per
// request) have ended by then too. HTTP3.Serve runs on a goroutine its
// owner starts, as Frontend.Serve does.
//
// The fdListener (fdlimit.go) starts none: its Accept runs on the
// goroutine that accepts (Frontend.Serve's, or the tlsListener's accept
// loop), which owns its spare descriptor and closes it once the listener
// has closed.
//
// Pools own no goroutine here: a Pool names its selector, which package
// main starts and stops (one per pool). Table and Pool are immutable, so
// handlers read them without asking anyone.
//
// Frontend.Serve runs on a goroutine its owner starts; it returns after
// Shutdown. The rest runs on goroutines net/http owns: the handler
// goroutine (every stage of a request, and the attempt's hooks), and
// http.Transport's (dials, each connection's reader and writer, HTTP/2
// streams). Three places hand data to those: the request body, which the
// transport's writer reads (see replayableBody for what orders it), the
// PROXY header's addresses, which the dial goroutine gets as a value
// (see headerAddrsValue), and the client's header during a fast-path
// attempt, whose right to write moves by message between the handler and
// the transport's reader relaying a 1xx (see relayInformational). The
// package has no mutex and no atomic.
package transport
