package admin

import (
	"net/http"

	"github.com/roundhouse/roundhouse/routing"
)

// RoutesResponse is GET /routes's answer.
type RoutesResponse struct {
	// Routes are the current routes in the order they are tried; the
	// first that matches a request wins. Empty ([]) when the
	// configuration has no route blocks, and then every request goes to
	// the pool DefaultPool.
	Routes []RouteInfo `json:"routes"`
}

// RouteInfo is one route, its keys named as in the configuration's route
// block. A condition that is not stated is an empty list, "" or an empty
// object, and holds for every request.
type RouteInfo struct {
	Name        string            `json:"name"`
	Hosts       []string          `json:"hosts"`       // exact names or "*." and a suffix; []: any host
	PathPrefix  string            `json:"path_prefix"` // "": any path
	Methods     []string          `json:"methods"`     // []: any method
	Headers     map[string]string `json:"headers"`     // {}: no header condition
	Pool        string            `json:"pool"`
	StripPrefix bool              `json:"strip_prefix"`
}

// routeInfo copies r into its JSON form, with empty lists and maps
// rather than nulls.
func routeInfo(r routing.Route) RouteInfo {
	ri := RouteInfo{
		Name: r.Name, Hosts: r.Hosts, PathPrefix: r.PathPrefix, Methods: r.Methods,
		Headers: r.Headers, Pool: r.Pool, StripPrefix: r.StripPrefix,
	}
	if ri.Hosts == nil {
		ri.Hosts = []string{}
	}
	if ri.Methods == nil {
		ri.Methods = []string{}
	}
	if ri.Headers == nil {
		ri.Headers = map[string]string{}
	}
	return ri
}

// listRoutes answers GET /routes.
func (h *Handler) listRoutes(w http.ResponseWriter, r *http.Request) {
	resp := RoutesResponse{Routes: []RouteInfo{}}
	if h.routeFn != nil {
		routes, err := h.routeFn(r.Context())
		if err != nil {
			h.fail(w, r, "routes", err)
			return
		}
		for _, rt := range routes {
			resp.Routes = append(resp.Routes, routeInfo(rt))
		}
	}
	writeJSON(w, http.StatusOK, resp)
}
