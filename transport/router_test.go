package transport

import (
	"context"
	"errors"
	"testing"

	"github.com/sourcegraph/conc"
)

// TestRouterHandsOutItsCurrentTable asks the Router for its table far
// more often than one fill of its offers holds, from several goroutines
// while Set replaces the table: once Set has returned, no one gets the old
// table, and once Run has returned, every call says the router stopped.
func TestRouterHandsOutItsCurrentTable(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tables := make([]*Table, 20)
	for i := range tables {
		tables[i] = &Table{}
	}
	rt := NewRouter(tables[0])
	var run conc.WaitGroup
	run.Go(func() { _ = rt.Run(ctx) })

	// Handlers that ask all the time; each table they get is one the
	// Router has had.
	loadCtx, stopLoad := context.WithCancel(ctx)
	var load conc.WaitGroup
	for range 4 {
		load.Go(func() {
			for loadCtx.Err() == nil {
				got, err := rt.Table(loadCtx)
				if err != nil {
					if loadCtx.Err() == nil {
						t.Errorf("Table: %v", err)
					}
					return
				}
				if got == nil {
					t.Error("Table gave nil")
					return
				}
			}
		})
	}
	for i, tab := range tables {
		if i > 0 {
			if err := rt.Set(ctx, tab); err != nil {
				t.Fatal(err)
			}
		}
		for range 3 * offerBatch {
			got, err := rt.Table(ctx)
			if err != nil || got != tab {
				t.Fatalf("after Set of table %d: Table gave another table (%v)", i, err)
			}
		}
	}
	stopLoad()
	load.Wait()

	cancel()
	run.Wait()
	for range 3 {
		if _, err := rt.Table(context.Background()); !errors.Is(err, ErrRouterStopped) {
			t.Fatalf("Table after Run returned: %v, want ErrRouterStopped", err)
		}
	}
	if err := rt.Set(context.Background(), tables[0]); !errors.Is(err, ErrRouterStopped) {
		t.Errorf("Set after Run returned: %v, want ErrRouterStopped", err)
	}
}
