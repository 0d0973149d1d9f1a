// Package admin serves Roundhouse's admin listener: a JSON API to see and
// steer the backends at runtime, Prometheus metrics, and a live dashboard.
//
// The balancer has one or more pools, each with its own selector (see
// Config.Pools). The package keeps no state that two requests share. Every
// handler asks for the current pools, then asks a pool's selector by its
// methods (Status, Add, Drain, Metrics, ...), which are messages to that
// selector's goroutine (see package actors), so nothing here needs a lock,
// and a change made here is applied in order with the picks, reports and
// health transitions around it. Changes last until the next reload, which
// replaces each pool's backend set with the configuration's.
//
// net/http runs each request on its own goroutine and ends it; the package
// starts no goroutine of its own (a scrape's Prometheus registry gathers on
// goroutines that end before the scrape does).
package admin

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/roundhouse/roundhouse/actors"
	"github.com/roundhouse/roundhouse/routing"
)

// maxBody bounds a request body; the largest the API takes is one backend.
const maxBody = 64 << 10

// DefaultPool is the name of the pool that top-level backends, --backend
// and --discover form, and that the paths without a pool (/backends/...)
// and the top level of GET /status speak of.
const DefaultPool = "default"

// Pool is one pool as the admin API sees it.
type Pool struct {
	Name     string           // unique among the pools; DefaultPool for the default one
	Selector *actors.Selector // the pool's selector; never nil
}

// Config describes the admin handler. Pools or Selector is required; every
// other zero field takes the default named in its comment.
type Config struct {
	// Selector is the default pool's selector, used only when Pools is
	// nil: then the balancer has one pool, DefaultPool, and every endpoint
	// asks this selector. nil: Pools must be set.
	Selector *actors.Selector
	// Pools lists the current pools, in order (DefaultPool first when it
	// exists); it changes on reload, and every request and scrape calls it
	// afresh. Names must be unique and selectors non-nil; an error (or a
	// list that breaks those rules) is answered as a 500, or fails the
	// scrape. A pool whose selector has stopped by the time it is asked
	// (a reload removed it meanwhile) is left out of /status and /metrics.
	// nil: one pool, DefaultPool, whose selector is Selector.
	Pools func(ctx context.Context) ([]Pool, error)
	// Routes lists the current routes in order, for GET /routes; an error
	// is answered as a 500. nil: none (every request goes to DefaultPool).
	Routes func(ctx context.Context) ([]routing.Route, error)
	// Unrouted counts the requests no route matched (answered 404), for
	// the roundhouse_unrouted_requests_total metric. nil: the metric is
	// not exported.
	Unrouted func(ctx context.Context) (uint64, error)
	// Reload re-reads the configuration and applies it, for POST /reload;
	// its error is answered as a 500 with the error's text. nil: the
	// balancer has nothing to reload from, and POST /reload answers 501.
	Reload func(context.Context) error
	// Logger logs every change made through the API (and every refused
	// one) with the client's address. nil: no logging.
	Logger hclog.Logger
	// Token, if not nil, is the bearer token every request must carry
	// except the dashboard page itself (GET /), which is static and holds
	// no data. nil: no authentication, and then the handler answers only
	// requests addressed to a loopback host name (see parse.AdminAddr for the
	// listener). A non-nil Token must not be empty.
	Token []byte
	// ScrapeTimeout bounds how long GET /metrics waits for the selector's
	// counters; 0: 10s.
	ScrapeTimeout time.Duration
	// LogDropped, if not nil, counts the log lines lost to a failing log
	// output (logbatch.Writer.Dropped), for
	// roundhouse_log_lines_dropped_total; nil: no such metric.
	LogDropped func(context.Context) (uint64, error)
	// IdleReclaimed, if not nil, counts the idle keep-alive client
	// connections closed to make room for new ones at the connection cap
	// (transport.IdleConns.Reclaimed), for
	// roundhouse_idle_connections_reclaimed_total; nil: no such metric.
	IdleReclaimed func(context.Context) (uint64, error)
	// Certificates, if not nil, lists the certificates served, one entry
	// per name (ACME's, and each name a certificate from files covers),
	// for GET /status's certificates field and the roundhouse_certificate_*
	// metrics; nil: neither ACME nor files (cleartext), neither appears.
	Certificates func() []CertificateStatus
}

// Handler is the admin listener's http.Handler. Its routes:
//
//	GET    /                       the dashboard (HTML)
//	GET    /status                 every pool's backends, their state and counters (JSON)
//	GET    /routes                 the routes, in the order they are tried (JSON)
//	POST   /pools/{pool}/backends               add a backend to a pool: {"url": ..., "weight": N, "enabled": bool}
//	DELETE /pools/{pool}/backends/{id}          remove a backend once its in-flight requests finish
//	POST   /pools/{pool}/backends/{id}/drain    no new requests; in-flight ones finish
//	POST   /pools/{pool}/backends/{id}/enable   back in rotation (ends a drain too)
//	POST   /pools/{pool}/backends/{id}/disable  out of rotation; still probed
//	POST   /backends, DELETE /backends/{id}, POST /backends/{id}/drain, /enable, /disable:
//	                               the same five in the pool DefaultPool
//	POST   /reload                 re-read the configuration
//	GET    /metrics                Prometheus metrics (text exposition)
//
// Errors are JSON objects {"error": "..."}: 400 bad input, 401 missing or
// wrong token, 403 a cross-origin browser request or (without a token) a
// non-loopback Host, 404 unknown pool, backend or path, 405 wrong method,
// 409 a backend already configured, 413 a body over 64 KiB, 415 a body
// that is not JSON, 501 reload without a configuration, 503 the selector
// has stopped.
type Handler struct {
	sel     *actors.Selector                               // used when pools is nil
	pools   func(context.Context) ([]Pool, error)          // nil: one pool, sel
	routeFn func(context.Context) ([]routing.Route, error) // nil: no routes
	reload  func(context.Context) error
	log     hclog.Logger
	token   *[sha256.Size]byte         // nil: no authentication
	certs   func() []CertificateStatus // nil: no certificates field
	mux     *http.ServeMux
	metrics http.Handler
	origin  *http.CrossOriginProtection
}

// New returns the admin handler, with its metrics registered on a private
// Prometheus registry.
func New(cfg Config) (*Handler, error) {
	if cfg.Selector == nil && cfg.Pools == nil {
		return nil, errors.New("admin: no selector and no pools")
	}
	h := &Handler{
		certs: cfg.Certificates,
		sel:   cfg.Selector, pools: cfg.Pools, routeFn: cfg.Routes, reload: cfg.Reload, log: cfg.Logger,
		mux: http.NewServeMux(), origin: http.NewCrossOriginProtection(),
	}
	if h.log == nil {
		h.log = hclog.NewNullLogger()
	}
	if cfg.Token != nil {
		if len(cfg.Token) == 0 {
			return nil, errors.New("admin: empty token")
		}
		sum := sha256.Sum256(cfg.Token)
		h.token = &sum
	}
	timeout := cfg.ScrapeTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	reg := prometheus.NewRegistry()
	registerMetrics(reg, h, cfg.Unrouted, timeout)
	if cfg.LogDropped != nil {
		reg.MustRegister(&askedCounter{count: cfg.LogDropped, timeout: timeout, desc: logDroppedDesc, asked: "the log writer"})
	}
	if cfg.IdleReclaimed != nil {
		reg.MustRegister(&askedCounter{count: cfg.IdleReclaimed, timeout: timeout, desc: idleReclaimedDesc, asked: "the connection tracker"})
	}
	if cfg.Certificates != nil {
		reg.MustRegister(&certificates{list: cfg.Certificates})
	}
	h.metrics = metricsHandler(reg, h.log)
	h.routes()
	return h, nil
}

// endpoint is one method and path pattern of the API and its handler.
type endpoint struct {
	method, path string
	handler      http.HandlerFunc
}

// routes registers every endpoint, plus a 405 for each path's other
// methods and a JSON 404 for every other path.
func (h *Handler) routes() {
	routes := []endpoint{
		{"GET", "/{$}", h.dashboard},
		{"GET", "/status", h.status},
		{"GET", "/routes", h.listRoutes},
		{"GET", "/metrics", h.metrics.ServeHTTP},
		{"POST", "/reload", h.reloadConfig},
	}
	// The backend operations, once for the default pool at the paths it
	// had before there were pools, and once for any pool under /pools/.
	for _, prefix := range []string{"", "/pools/{pool}"} {
		routes = append(routes,
			endpoint{"POST", prefix + "/backends", h.add},
			endpoint{"DELETE", prefix + "/backends/{id}", h.remove},
			endpoint{"POST", prefix + "/backends/{id}/drain", h.change(opDrain)},
			endpoint{"POST", prefix + "/backends/{id}/enable", h.change(opEnable)},
			endpoint{"POST", prefix + "/backends/{id}/disable", h.change(opDisable)},
		)
	}
	var paths []string
	allow := map[string][]string{}
	for _, rt := range routes {
		h.mux.HandleFunc(rt.method+" "+rt.path, rt.handler)
		if allow[rt.path] == nil {
			paths = append(paths, rt.path)
		}
		allow[rt.path] = append(allow[rt.path], rt.method)
		if rt.method == "GET" {
			allow[rt.path] = append(allow[rt.path], "HEAD")
		}
	}
	for _, p := range paths {
		methods := strings.Join(allow[p], ", ")
		h.mux.HandleFunc(p, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", methods)
			writeError(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed; allowed: "+methods)
		})
	}
	h.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint: "+r.URL.Path)
	})
}

// ServeHTTP checks where the request comes from and who sent it, then
// routes it.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Cache-Control", "no-store")
	// A page elsewhere in the operator's browser must not be able to press
	// the buttons: refuse cross-origin writes (Sec-Fetch-Site, Origin).
	if err := h.origin.Check(r); err != nil {
		h.log.Warn("refused cross-origin request", "method", r.Method, "path", r.URL.Path, "client", r.RemoteAddr)
		writeError(w, http.StatusForbidden, "cross-origin request refused")
		return
	}
	if !h.authorized(w, r) {
		return
	}
	h.mux.ServeHTTP(w, r)
}

// authorized checks the token, or without one the Host header, and answers
// the request itself when it fails.
func (h *Handler) authorized(w http.ResponseWriter, r *http.Request) bool {
	if h.token == nil {
		// Without a token the listener is on loopback (parse.AdminAddr). A Host
		// that is not loopback means a browser was led here by a name that
		// resolves to this machine (DNS rebinding): refuse it.
		if !loopbackHost(r.Host) {
			writeError(w, http.StatusForbidden, "without a token the admin API answers only requests addressed to 127.0.0.1, [::1] or localhost")
			return false
		}
		return true
	}
	if (r.Method == http.MethodGet || r.Method == http.MethodHead) && r.URL.Path == "/" {
		return true // the dashboard page: static, no data; it asks for the token
	}
	scheme, got, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || got == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="roundhouse admin"`)
		writeError(w, http.StatusUnauthorized, "missing bearer token: send Authorization: Bearer <token>")
		return false
	}
	// Comparing fixed-size digests in constant time reveals neither the
	// token nor its length.
	sum := sha256.Sum256([]byte(strings.TrimSpace(got)))
	if subtle.ConstantTimeCompare(sum[:], h.token[:]) != 1 {
		h.log.Warn("refused wrong token", "method", r.Method, "path", r.URL.Path, "client", r.RemoteAddr)
		w.Header().Set("WWW-Authenticate", `Bearer realm="roundhouse admin", error="invalid_token"`)
		writeError(w, http.StatusUnauthorized, "wrong bearer token")
		return false
	}
	return true
}

// errorBody is every error's JSON shape.
type errorBody struct {
	Error string `json:"error"`
}

// writeJSON answers with v as indented JSON. encoding/json escapes <, >
// and & too, so text that came from a request is never echoed raw.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v) // the client may have gone; nothing to do about it
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, errorBody{Error: msg})
}

// statusFor maps a selector error to its HTTP status.
func statusFor(err error) int {
	switch {
	case errors.Is(err, actors.ErrUnknownBackend), errors.Is(err, ErrUnknownPool):
		return http.StatusNotFound
	case errors.Is(err, actors.ErrDuplicateBackend):
		return http.StatusConflict
	case errors.Is(err, actors.ErrStopped):
		return http.StatusServiceUnavailable
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable // the client left or gave up
	}
	return http.StatusInternalServerError
}
