package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/roundhouse/roundhouse/actors"
)

// ErrUnknownPool is the error, answered as a 404, for a path that names a
// pool the balancer does not have (now: pools change on reload).
var ErrUnknownPool = errors.New("unknown pool")

// listPools returns the current pools: Config.Pools's, checked, or the
// one default pool of Config.Selector.
func (h *Handler) listPools(ctx context.Context) ([]Pool, error) {
	if h.pools == nil {
		return []Pool{{Name: DefaultPool, Selector: h.sel}}, nil
	}
	pools, err := h.pools(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing the pools: %w", err)
	}
	seen := make(map[string]bool, len(pools))
	for _, p := range pools {
		switch {
		case p.Selector == nil:
			return nil, fmt.Errorf("listing the pools: pool %q has no selector", p.Name)
		case seen[p.Name]:
			return nil, fmt.Errorf("listing the pools: pool %q listed twice", p.Name)
		}
		seen[p.Name] = true
	}
	return pools, nil
}

// poolOf returns the pool a backend operation's path names: its {pool}
// segment, or DefaultPool for the paths without one. An error wraps
// ErrUnknownPool when there is no such pool.
func (h *Handler) poolOf(r *http.Request) (Pool, error) {
	name := r.PathValue("pool")
	if name == "" && !strings.HasPrefix(r.URL.Path, "/pools/") {
		name = DefaultPool
	}
	pools, err := h.listPools(r.Context())
	if err != nil {
		return Pool{}, err
	}
	names := make([]string, len(pools))
	for i, p := range pools {
		if p.Name == name {
			return p, nil
		}
		names[i] = p.Name
	}
	if len(names) == 0 {
		return Pool{}, fmt.Errorf("%w %q: the balancer has no pools", ErrUnknownPool, name)
	}
	return Pool{}, fmt.Errorf("%w %q; the pools are: %s", ErrUnknownPool, name, strings.Join(names, ", "))
}

// skipStopped reports whether a pool whose selector answered err should
// be left out of a listing rather than fail it: with Config.Pools, a
// selector that has stopped belongs to a pool a reload has removed since
// the list was made. The one selector of Config.Selector never is.
func (h *Handler) skipStopped(err error) bool {
	return h.pools != nil && errors.Is(err, actors.ErrStopped)
}
