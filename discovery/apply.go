package discovery

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/hashicorp/go-hclog"

	"github.com/roundhouse/roundhouse/actors"
)

// Set is a backend set by URL (URL.String()).
type Set map[string]Backend

// changeKind is what one change does to the selector's set.
type changeKind int

const (
	changeAdd    changeKind = iota // Add
	changeUpdate                   // SetWeight and/or SetEnabled
	changeRemove                   // Remove: it drains
)

func (k changeKind) String() string { return [...]string{"add", "update", "remove"}[k] }

// change is one step from the set applied to the set wanted.
type change struct {
	kind changeKind
	b    Backend // the wanted backend; for a remove, the applied one
}

// diff lists the changes that take have to want: adds first, then
// updates, then removes, each in URL order. Adding before removing means
// that a backend replaced by another never leaves the set empty between
// the two messages.
func diff(have, want Set) []change {
	var adds, updates []change
	for _, u := range slices.Sorted(maps.Keys(want)) {
		w := want[u]
		if h, ok := have[u]; !ok {
			adds = append(adds, change{changeAdd, w})
		} else if h.Weight != w.Weight || h.Enabled != w.Enabled {
			updates = append(updates, change{changeUpdate, w})
		}
	}
	out := append(adds, updates...)
	for _, u := range slices.Sorted(maps.Keys(have)) {
		if _, ok := want[u]; !ok {
			out = append(out, change{changeRemove, have[u]})
		}
	}
	return out
}

// applier turns the sets a provider computes into messages to the
// selector. It belongs to the provider's goroutine.
type applier struct {
	sink Sink
	log  hclog.Logger
	// have is what the selector holds from this provider, with the IDs
	// the selector gave.
	have Set
	ids  map[string]string
	// others holds backends the provider wants that another source has:
	// the static configuration or an earlier provider. Every apply tries
	// to add them again, so the provider takes them over once that source
	// lets go.
	others Set
}

func newApplier(sink Sink, log hclog.Logger) *applier {
	return &applier{sink: sink, log: log, have: Set{}, ids: map[string]string{}, others: Set{}}
}

// waiting reports whether some wanted backend belongs to another source.
func (a *applier) waiting() bool { return len(a.others) > 0 }

// size is how many backends the provider has in the selector.
func (a *applier) size() int { return len(a.have) }

// apply brings the selector's backends of this provider to want. It
// returns an error only when the provider must end (fatal); a change the
// selector refuses is logged and skipped.
func (a *applier) apply(ctx context.Context, want Set) error {
	var added, updated, removed int
	for u := range a.others {
		if _, ok := want[u]; !ok {
			delete(a.others, u)
		}
	}
	for _, c := range diff(a.have, want) {
		u := c.b.URL.String()
		var err error
		switch c.kind {
		case changeAdd:
			var ok bool
			if ok, err = a.add(ctx, c.b); ok {
				added++
			}
		case changeUpdate:
			var ok bool
			if ok, err = a.update(ctx, c.b); ok {
				updated++
			}
		case changeRemove:
			err = a.sink.Remove(ctx, a.ids[u])
			if err == nil || errors.Is(err, actors.ErrUnknownBackend) || errors.Is(err, actors.ErrNotOwner) {
				// Gone already, or taken over: either way not ours now.
				delete(a.have, u)
				delete(a.ids, u)
				removed++
				err = nil
			}
		}
		if err != nil {
			if fatal(ctx, err) {
				return fmt.Errorf("%s %s: %w", c.kind, u, err)
			}
			a.log.Warn("selector refused a change", "op", c.kind.String(), "backend", u, "error", err)
		}
	}
	if added+updated+removed > 0 {
		a.log.Info("backends changed", "added", added, "updated", updated, "removed", removed, "backends", len(a.have))
	}
	return nil
}

// add adds b, or notes that another source has it. It reports whether b
// is now the provider's.
func (a *applier) add(ctx context.Context, b Backend) (bool, error) {
	u := b.URL.String()
	id, err := a.sink.Add(ctx, b.config())
	switch {
	case err == nil:
		a.have[u], a.ids[u] = b, id
		if _, was := a.others[u]; was {
			a.log.Info("backend taken over from another source", "backend", u)
			delete(a.others, u)
		}
		return true, nil
	case errors.Is(err, actors.ErrDuplicateBackend):
		if _, was := a.others[u]; !was {
			a.log.Info("backend left to the source that has it (static configuration or another provider)", "backend", u)
		}
		a.others[u] = b
		return false, nil
	}
	return false, err
}

// update gives the provider's backend b's weight and enabled state. If
// an operator has removed it meanwhile, it is added again; if the static
// configuration has taken it over, it is left to it.
func (a *applier) update(ctx context.Context, b Backend) (bool, error) {
	u, id, old := b.URL.String(), a.ids[b.URL.String()], a.have[b.URL.String()]
	var err error
	if old.Weight != b.Weight {
		err = a.sink.SetWeight(ctx, id, b.Weight)
	}
	if err == nil && old.Enabled != b.Enabled {
		err = a.sink.SetEnabled(ctx, id, b.Enabled)
	}
	switch {
	case err == nil:
		a.have[u] = b
		return true, nil
	case errors.Is(err, actors.ErrUnknownBackend):
		delete(a.have, u)
		delete(a.ids, u)
		return a.add(ctx, b)
	case errors.Is(err, actors.ErrNotOwner):
		delete(a.have, u)
		delete(a.ids, u)
		return a.add(ctx, b) // refused as a duplicate: noted in others
	}
	return false, err
}
