package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"net/http"
	"time"

	"github.com/roundhouse/roundhouse/actors"
	"github.com/roundhouse/roundhouse/admin"
	"github.com/roundhouse/roundhouse/config"
	"github.com/roundhouse/roundhouse/discovery"
	"github.com/roundhouse/roundhouse/routing"
	"github.com/roundhouse/roundhouse/transport"
)

// pool is one running pool: its settings, its selector (the same actor
// for every pool, one each), what the proxy sees of it, and its discovery
// providers. The balancer's loop goroutine owns the set of pools
// (balancer.pools): it builds them at start-up, and a reload adds,
// changes and removes them there, one at a time.
type pool struct {
	s     config.Pool
	sel   *actors.Selector
	tp    *transport.Pool
	feeds []discovery.Provider
	// ctx is the pool's actors' context, a child of the balancer's:
	// cancelling it (stop) ends the selector, its monitors and its
	// discovery providers, when a reload has removed the pool and it has
	// drained.
	ctx  context.Context
	stop context.CancelFunc
}

// buildPool makes a pool's parts from its settings, none of them running
// yet (startPool runs them).
func (b *balancer) buildPool(p config.Pool) (*pool, error) {
	tr := b.transportFor(p)
	secret := poolSecret(b.s.StickySecret(), p.Name)
	cfg, err := selectorConfig(p, secret, tr, b.s.TLS.BackendCAs)
	if err != nil {
		return nil, fmt.Errorf("pool %s: %w", p.Name, err)
	}
	cfg.Logger = b.log.Named("selector")
	if p.Name != config.DefaultPool {
		cfg.Logger = cfg.Logger.With("pool", p.Name)
	}
	cfg.TraceMessages = true // shown at --log-level trace
	sel, err := actors.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("pool %s: %w", p.Name, err)
	}
	feeds, err := discovery.NewAll(p.Discover, discovery.Options{Logger: b.log, DNSServer: b.s.DNSServer})
	if err != nil {
		return nil, fmt.Errorf("pool %s: %w", p.Name, err)
	}
	return &pool{s: p, sel: sel, tp: b.proxyPool(p, sel, actors.KeyOf(cfg.Policy), secret), feeds: feeds}, nil
}

// proxyPool is the pool as the proxy sees it.
func (b *balancer) proxyPool(p config.Pool, sel *actors.Selector, key actors.KeySpec, secret []byte) *transport.Pool {
	return transport.NewPool(transport.Pool{
		Name: p.Name, Selector: sel, Transport: b.transportFor(p), Key: key, StickySecret: secret,
		Retries: p.Retries, RetryAfter: p.Health.Interval, RequestTimeout: p.Timeouts.Request,
	})
}

// startPool runs a pool's selector and discovery providers under b.wg,
// in a context of the pool's own.
func (b *balancer) startPool(p *pool) {
	p.ctx, p.stop = context.WithCancel(b.actorCtx)
	b.wg.Go(func() { _ = p.sel.Run(p.ctx) })
	for _, f := range p.feeds {
		b.wg.Go(func() {
			if err := f.Run(p.ctx, p.sel.Feed(f.Source())); err != nil {
				b.log.Error("discovery stopped", "source", f.Source(), "error", err)
			}
		})
	}
}

// drainPool stops a pool a reload removed, once nothing is in flight in
// it: requests and WebSockets that started before the new routes finish
// first. A handler that took the old routes and picks after the pool
// stopped routes again (see transport.Proxy's route stage). It runs in a
// goroutine of its own under b.wg, and ends when the pool has stopped or
// the actors stop.
func (b *balancer) drainPool(p *pool) {
	defer p.stop()
	tick := time.NewTicker(drainPoll)
	defer tick.Stop()
	idle := 0
	for idle < 2 { // twice in a row: a request that had the old table has picked by then
		select {
		case <-tick.C:
		case <-p.ctx.Done():
			return
		}
		st, err := p.sel.Status(p.ctx)
		if err != nil {
			return
		}
		idle++
		for _, s := range st {
			if s.InFlight > 0 {
				idle = 0
			}
		}
	}
	b.log.Info("pool drained and stopped", "pool", p.s.Name)
}

// drainPoll is how often drainPool asks a removed pool what is in flight.
const drainPoll = 100 * time.Millisecond

// transportFor returns the transport for a pool's settings: one per
// distinct set of options, shared by every pool that has it.
func (b *balancer) transportFor(p config.Pool) http.RoundTripper {
	opts := transportOptions(b.s, p)
	if tr, ok := b.transports[opts]; ok {
		return tr
	}
	shared := transport.New(opts)
	b.shared = append(b.shared, shared)
	// Backends with proxy-protocol get transports of their own (see
	// transport/proxyproto_out.go); the rest share one pool.
	tr := transport.WithProxyProtocol(shared, opts)
	b.transports[opts] = tr
	return tr
}

// poolSecret keys a pool's sticky cookies: the default pool's is the
// secret itself (cookies stay valid across the upgrade to pools); another
// pool's is derived from it and its name, so that a cookie pinned in one
// pool never moves a request in another.
func poolSecret(secret []byte, name string) []byte {
	if name == config.DefaultPool {
		return secret
	}
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("roundhouse pool " + name))
	return m.Sum(nil)
}

// table builds the routing table of the given pools and the routes.
func table(s *config.Settings, pools []*pool) (*transport.Table, error) {
	tps := make([]*transport.Pool, len(pools))
	for i, p := range pools {
		tps[i] = p.tp
	}
	return transport.NewTable(s.Routes, tps)
}

// adminPools lists the current pools for the admin API, from the router's
// current table (a reload changes it).
func (b *balancer) adminPools(ctx context.Context) ([]admin.Pool, error) {
	t, err := b.router.Table(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]admin.Pool, len(t.Pools()))
	for i, p := range t.Pools() {
		out[i] = admin.Pool{Name: p.Name, Selector: p.Selector}
	}
	return out, nil
}

// adminRoutes lists the current routes for the admin API.
func (b *balancer) adminRoutes(ctx context.Context) ([]routing.Route, error) {
	t, err := b.router.Table(ctx)
	if err != nil {
		return nil, err
	}
	return t.Routes(), nil
}
