// Package admin serves Roundhouse's admin listener: a JSON API to see and
// steer the backends at runtime, Prometheus metrics, and a live dashboard.
//
// The package keeps no state that two requests share. Every handler asks
// the selector by its methods (Status, Add, Drain, Metrics, ...), which
// are messages to the selector goroutine (see package actors), so nothing
// here needs a lock, and a change made here is applied in order with the
// picks, reports and health transitions around it. Changes last until the
// next reload, which replaces the backend set with the configuration's.
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
)

// maxBody bounds a request body; the largest the API takes is one backend.
const maxBody = 64 << 10

// Config describes the admin handler. Selector is required; every other
// zero field takes the default named in its comment.
type Config struct {
	// Selector is the balancer's selector, which every endpoint asks.
	Selector *actors.Selector
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
}

// Handler is the admin listener's http.Handler. Its routes:
//
//	GET    /                       the dashboard (HTML)
//	GET    /status                 every backend's state and counters (JSON)
//	POST   /backends               add a backend: {"url": ..., "weight": N, "enabled": bool}
//	DELETE /backends/{id}          remove a backend once its in-flight requests finish
//	POST   /backends/{id}/drain    no new requests; in-flight ones finish
//	POST   /backends/{id}/enable   back in rotation (ends a drain too)
//	POST   /backends/{id}/disable  out of rotation; still probed
//	POST   /reload                 re-read the configuration
//	GET    /metrics                Prometheus metrics (text exposition)
//
// Errors are JSON objects {"error": "..."}: 400 bad input, 401 missing or
// wrong token, 403 a cross-origin browser request or (without a token) a
// non-loopback Host, 404 unknown backend or path, 405 wrong method, 409 a
// backend already configured, 413 a body over 64 KiB, 415 a body that is
// not JSON, 501 reload without a configuration, 503 the selector has
// stopped.
type Handler struct {
	sel     *actors.Selector
	reload  func(context.Context) error
	log     hclog.Logger
	token   *[sha256.Size]byte // nil: no authentication
	mux     *http.ServeMux
	metrics http.Handler
	origin  *http.CrossOriginProtection
}

// New returns the admin handler, with its metrics registered on a private
// Prometheus registry.
func New(cfg Config) (*Handler, error) {
	if cfg.Selector == nil {
		return nil, errors.New("admin: no selector")
	}
	h := &Handler{
		sel: cfg.Selector, reload: cfg.Reload, log: cfg.Logger,
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
	registerMetrics(reg, cfg.Selector, timeout)
	if cfg.LogDropped != nil {
		reg.MustRegister(&logDropped{count: cfg.LogDropped, timeout: timeout, desc: logDroppedDesc})
	}
	h.metrics = metricsHandler(reg, h.log)
	h.routes()
	return h, nil
}

// routes registers every endpoint, plus a 405 for each path's other
// methods and a JSON 404 for every other path.
func (h *Handler) routes() {
	routes := []struct {
		method, path string
		handler      http.HandlerFunc
	}{
		{"GET", "/{$}", h.dashboard},
		{"GET", "/status", h.status},
		{"GET", "/metrics", h.metrics.ServeHTTP},
		{"POST", "/backends", h.add},
		{"DELETE", "/backends/{id}", h.remove},
		{"POST", "/backends/{id}/drain", h.change(opDrain)},
		{"POST", "/backends/{id}/enable", h.change(opEnable)},
		{"POST", "/backends/{id}/disable", h.change(opDisable)},
		{"POST", "/reload", h.reloadConfig},
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
	case errors.Is(err, actors.ErrUnknownBackend):
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
