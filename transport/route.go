package transport

import (
	"context"
	"errors"
	"net/http"
	"net/url"

	"github.com/roundhouse/roundhouse/actors"
	"github.com/roundhouse/roundhouse/routing"
)

// route is the stage between admit and pick: it finds the pool r goes to
// and takes the first pick from that pool's selector. With routes it first
// cleans r's path (400 for one that climbs above the root), matches it
// against the routes in order (404 when none matches), and strips the
// matched prefix if the route says so; without routes every request goes
// to the one pool, with its path as it came.
//
// It returns r as forward should send it (nil: the request has been
// answered), with the pick. A pool that a reload removed may have stopped
// between the table this request took and its pick: the request then
// routes once more, with the current table.
func (p *Proxy) route(ex *exchange, r *http.Request) (*http.Request, *actors.Backend, error) {
	for again := true; ; again = false {
		t, err := p.currentTable(r.Context())
		if err != nil {
			return r, nil, err // as a failed pick: 503, or 499 if the client went
		}
		out := p.choose(ex, t, r)
		if out == nil {
			return nil, nil, nil
		}
		b, err := p.pick(ex, out)
		if again && p.router != nil && errors.Is(err, actors.ErrStopped) {
			if ex.cancel != nil { // the stopped pool's request timeout
				ex.cancel()
				ex.cancel = nil
			}
			continue
		}
		return out, b, err
	}
}

// currentTable returns the routing table this request follows.
func (p *Proxy) currentTable(ctx context.Context) (*Table, error) {
	if p.router == nil {
		return p.table, nil
	}
	return p.router.Table(ctx)
}

// choose matches r against t: it sets the exchange's pool, route and
// prefix, and returns r with the forwarded path and the pool's request
// timeout, or nil once it has answered a request that goes nowhere.
func (p *Proxy) choose(ex *exchange, t *Table, r *http.Request) *http.Request {
	ex.pool, ex.route, ex.prefix = nil, "", ""
	escaped := r.URL.EscapedPath()
	path := escaped
	if t.Routed() {
		ex.route = noRoute // until a route matches: logged as pool=- route=-
		var err error
		if path, err = routing.CleanPath(escaped); err != nil {
			plainError(&ex.rec, http.StatusBadRequest, "bad request path")
			return nil
		}
	}
	pool, i, ok := t.match(r, path)
	if !ok {
		if p.router != nil {
			p.router.miss(r.Context())
		}
		plainError(&ex.rec, http.StatusNotFound, "no route for this request")
		return nil
	}
	ex.pool, ex.route = pool, ""
	if i >= 0 {
		rt := t.routes.Route(i)
		ex.route = rt.Name
		if rt.StripPrefix {
			path, ex.prefix = routing.Strip(path, rt.PathPrefix)
		}
	}
	if path != escaped {
		r = withPath(r, path)
	}
	timeout := pool.RequestTimeout
	if ex.rec.grpc {
		// The client's deadline, bounded by the pool's.
		if d, ok := grpcTimeout(r); ok && (timeout <= 0 || d < timeout) {
			timeout = max(d, 1)
		}
	}
	if timeout > 0 {
		var ctx context.Context
		ctx, ex.cancel = context.WithTimeout(r.Context(), timeout)
		r = r.WithContext(ctx)
	}
	return r
}

// noRoute is the exchange's route, and the access log's pool and route,
// for a request that no route sends to a pool (answered 400 or 404).
const noRoute = "-"

// withPath returns a copy of r whose URL has the escaped path given. The
// client's request keeps its own URL: the access log shows the path as
// the client sent it.
func withPath(r *http.Request, escaped string) *http.Request {
	u := *r.URL
	u.RawPath = escaped
	if p, err := url.PathUnescape(escaped); err == nil {
		u.Path = p
	}
	out := new(http.Request)
	*out = *r
	out.URL = &u
	return out
}
