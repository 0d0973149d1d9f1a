package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"time"

	"github.com/roundhouse/roundhouse/actors"
)

// StatusResponse is GET /status's answer. Its top level is the pool
// DefaultPool, as it was before there were pools, so that clients that
// know only one pool keep working; Pools has every pool, that one too.
type StatusResponse struct {
	Time time.Time `json:"time"` // when the snapshot was taken
	// Backends are the default pool's backends, in configuration order;
	// empty ([]) when no pool is named DefaultPool.
	Backends []actors.BackendStatus `json:"backends"`
	// Pools are every pool's backends, in the pools' order (DefaultPool
	// first when it exists). nil in an answer from a balancer that
	// predates pools: then Backends are the default pool's (see
	// StatusResponse.PoolList).
	Pools []PoolStatus `json:"pools,omitempty"`
	// Certificates are the certificates served, one per name: ACME's in
	// the order of --acme-domain, then the names the certificate from
	// files (--tls-cert) covers; nil (left out) without TLS.
	Certificates []CertificateStatus `json:"certificates,omitempty"`
}

// PoolStatus is one pool in GET /status's answer.
type PoolStatus struct {
	Name     string                 `json:"name"`
	Backends []actors.BackendStatus `json:"backends"` // in configuration order
}

// PoolList returns st's pools: Pools, or for an answer without them (an
// older balancer) the one pool DefaultPool with Backends.
func (st *StatusResponse) PoolList() []PoolStatus {
	if st.Pools != nil {
		return st.Pools
	}
	return []PoolStatus{{Name: DefaultPool, Backends: st.Backends}}
}

// status answers GET /status: each pool's selector is asked in turn.
func (h *Handler) status(w http.ResponseWriter, r *http.Request) {
	pools, err := h.listPools(r.Context())
	if err != nil {
		h.fail(w, r, "status", err)
		return
	}
	resp := StatusResponse{Backends: []actors.BackendStatus{}, Pools: make([]PoolStatus, 0, len(pools))}
	for _, p := range pools {
		st, err := p.Selector.Status(r.Context())
		switch {
		case h.skipStopped(err):
			continue
		case err != nil:
			h.fail(w, r, "status", err)
			return
		}
		if st == nil {
			st = []actors.BackendStatus{}
		}
		if p.Name == DefaultPool {
			resp.Backends = st
		}
		resp.Pools = append(resp.Pools, PoolStatus{Name: p.Name, Backends: st})
	}
	if h.certs != nil {
		resp.Certificates = h.certs()
	}
	resp.Time = time.Now()
	writeJSON(w, http.StatusOK, resp)
}

// AddRequest is POST /backends's body.
type AddRequest struct {
	URL     string `json:"url"`               // http(s)://host[:port][/path]; required
	Weight  *int   `json:"weight,omitempty"`  // 0 to actors.MaxWeight; nil: 1
	Enabled *bool  `json:"enabled,omitempty"` // nil: true
}

// add answers POST /backends and /pools/{pool}/backends: 201 and the new
// backend's status.
func (h *Handler) add(w http.ResponseWriter, r *http.Request) {
	pool, err := h.poolOf(r)
	if err != nil {
		h.fail(w, r, "add", err)
		return
	}
	var req AddRequest
	if status, err := decodeJSON(w, r, &req); err != nil {
		h.refuse(w, r, "add", status, err)
		return
	}
	bc := actors.BackendConfig{Weight: 1}
	if req.URL == "" {
		h.refuse(w, r, "add", http.StatusBadRequest, errors.New(`url: required, e.g. {"url": "http://127.0.0.1:8081"}`))
		return
	}
	u, err := actors.ParseBackendURL(req.URL)
	if err != nil {
		h.refuse(w, r, "add", http.StatusBadRequest, fmt.Errorf("url: %w", err))
		return
	}
	bc.URL = u
	if req.Weight != nil {
		if *req.Weight < 0 || *req.Weight > actors.MaxWeight {
			h.refuse(w, r, "add", http.StatusBadRequest, fmt.Errorf("weight: want a whole number from 0 to %d, got %d", actors.MaxWeight, *req.Weight))
			return
		}
		bc.Weight = *req.Weight
	}
	bc.Disabled = req.Enabled != nil && !*req.Enabled
	id, err := pool.Selector.Add(r.Context(), bc)
	if err != nil {
		h.fail(w, r, "add", err)
		return
	}
	h.answerBackend(w, r, pool, http.StatusCreated, id, "", "backend added", "weight", bc.Weight, "enabled", !bc.Disabled)
}

// remove answers DELETE /backends/{id} and /pools/{pool}/backends/{id}.
// The backend takes no new requests at once and is forgotten when its
// in-flight requests have finished; until then it shows as draining.
func (h *Handler) remove(w http.ResponseWriter, r *http.Request) {
	pool, err := h.poolOf(r)
	if err != nil {
		h.fail(w, r, "remove", err)
		return
	}
	id := r.PathValue("id")
	// The backend's URL, for the log: a backend with nothing in flight
	// is gone from the status once removed.
	var name string
	if st, err := pool.Selector.Status(r.Context()); err == nil {
		for _, b := range st {
			if b.ID == id {
				name = b.Name
			}
		}
	}
	if err := pool.Selector.Remove(r.Context(), id); err != nil {
		h.fail(w, r, "remove", err)
		return
	}
	h.answerBackend(w, r, pool, http.StatusOK, id, name, "backend removing")
}

// An op is one of the changes POST /backends/{id}/... makes.
type op int

const (
	opDrain op = iota
	opEnable
	opDisable
)

var opNames = [...]struct{ verb, done string }{
	{"drain", "backend drained"}, {"enable", "backend enabled"}, {"disable", "backend disabled"},
}

// change returns the handler for POST [/pools/{pool}]/backends/{id}/drain,
// /enable or /disable: 200 and the backend's status after the change.
func (h *Handler) change(o op) http.HandlerFunc {
	name, done := opNames[o].verb, opNames[o].done
	return func(w http.ResponseWriter, r *http.Request) {
		pool, err := h.poolOf(r)
		if err != nil {
			h.fail(w, r, name, err)
			return
		}
		id := r.PathValue("id")
		switch o {
		case opDrain:
			err = pool.Selector.Drain(r.Context(), id)
		case opEnable, opDisable:
			err = pool.Selector.SetEnabled(r.Context(), id, o == opEnable)
		}
		if err != nil {
			h.fail(w, r, name, err)
			return
		}
		h.answerBackend(w, r, pool, http.StatusOK, id, "", done)
	}
}

// reloadConfig answers POST /reload.
func (h *Handler) reloadConfig(w http.ResponseWriter, r *http.Request) {
	if h.reload == nil {
		writeError(w, http.StatusNotImplemented, "reload needs --config: this balancer was started without a configuration file")
		return
	}
	if err := h.reload(r.Context()); err != nil {
		h.fail(w, r, "reload", err) // Config.Reload's errors say they are the reload's
		return
	}
	h.log.Info("configuration reloaded", "client", r.RemoteAddr)
	writeJSON(w, http.StatusOK, map[string]bool{"reloaded": true})
}

// Removed is the answer about a backend that the selector has already
// forgotten (DELETE of a backend with nothing in flight).
type Removed struct {
	ID    string `json:"id"`
	State string `json:"state"` // always "removed"
}

// answerBackend logs a change that has been made in pool, msg with
// keyvals, and answers with the backend's status as the pool's selector
// has it now, or with Removed when it is gone. name is the backend's URL
// for the log when the caller knows it ("": the status gives it).
func (h *Handler) answerBackend(w http.ResponseWriter, r *http.Request, pool Pool, code int, id, name, msg string, keyvals ...any) {
	st, err := pool.Selector.Status(r.Context())
	var answer any = Removed{ID: id, State: "removed"}
	for _, b := range st {
		if b.ID == id {
			answer, name = b, b.Name
		}
	}
	if pool.Name != DefaultPool { // unnamed, as before pools and as the selector logs it
		keyvals = append(keyvals, "pool", pool.Name)
	}
	h.log.Info(msg, append([]any{"backend", name, "id", id, "client", r.RemoteAddr}, keyvals...)...)
	if err != nil {
		h.fail(w, r, "status", err) // the change was made; only its answer failed
		return
	}
	writeJSON(w, code, answer)
}

// refuse answers a request the API will not carry out because of its input.
func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, what string, status int, err error) {
	h.log.Info("change refused", "op", what, "error", err, "status", status, "client", r.RemoteAddr)
	writeError(w, status, err.Error())
}

// fail answers a request the selector (or the reload) turned down.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, what string, err error) {
	status := statusFor(err)
	switch {
	case status == http.StatusInternalServerError:
		h.log.Error("request failed", "op", what, "error", err, "client", r.RemoteAddr)
	case what != "status" && what != "routes": // reads change nothing
		h.log.Info("change refused", "op", what, "error", err, "status", status, "client", r.RemoteAddr)
	}
	writeError(w, status, err.Error())
}

// decodeJSON reads exactly one JSON object of at most maxBody bytes into v,
// refusing unknown fields. On an error it returns the status to answer.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) (int, error) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return http.StatusUnsupportedMediaType, errors.New("body: want Content-Type: application/json")
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	err = dec.Decode(v)
	if err == nil && dec.Decode(&struct{}{}) != io.EOF {
		err = errors.New("more than one JSON value")
	}
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return http.StatusRequestEntityTooLarge, fmt.Errorf("body: larger than %d bytes", maxBody)
	case errors.Is(err, io.EOF):
		return http.StatusBadRequest, errors.New("body: empty; want a JSON object")
	case err != nil:
		return http.StatusBadRequest, fmt.Errorf("body: %w", err)
	}
	return 0, nil
}
