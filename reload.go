package main

import (
	"bytes"
	"context"
	"fmt"
	"slices"

	"github.com/roundhouse/roundhouse/actors"
	"github.com/roundhouse/roundhouse/config"
	"github.com/roundhouse/roundhouse/discovery"
	"github.com/roundhouse/roundhouse/transport"
)

// reload is SIGHUP: the TLS certificate is read again (transport.CertStore
// keeps the current one if the new one does not load), and with --config
// the settings too (applyReload). Without either there is nothing to
// reload. It runs on the loop goroutine.
func (b *balancer) reload(ctx context.Context) {
	b.ed.reloadCertificate(ctx)
	switch {
	case b.apply != nil:
		if err := b.applyReload(ctx); err != nil {
			b.log.Error("reload failed; the running configuration stays", "error", err)
		}
	case b.s.TLS.Certificate == nil:
		b.log.Warn("reload ignored: no configuration file (--config) and no certificate (--tls-cert)")
	}
}

// reloadRequest is POST /reload's request to the loop goroutine, which
// owns the pools and so runs every reload; reply (capacity 1) carries
// applyReload's answer.
type reloadRequest struct{ reply chan error }

// askReload is the admin API's reload: the loop runs it (applyReload)
// and answers.
func (b *balancer) askReload(ctx context.Context) error {
	req := reloadRequest{reply: make(chan error, 1)}
	select {
	case b.reloads <- req:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-req.reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// applyReload reads the settings again and applies what can change while
// running: pools and routes; in each pool that stays, its backends,
// policy, health checks, limits, ejection and slow start, and in the
// proxy its retries and timeouts. An invalid file changes nothing.
// Listeners, the servers' timeouts, logging and the discovery sources of
// a pool that stays (running, the ones it started with) need a restart;
// backends the sources found are not the file's, and stay.
//
// A pool that stays keeps its selector, and so its state: health,
// counters, round-robin position, ejections, sticky pins. A new pool
// starts probing at once, and its routes take effect once its discovery
// sources have answered (up to discoveryWait, as at start-up). A removed
// pool drains (drainPool): requests and WebSockets in flight finish, then
// its selector and monitors stop.
//
// It runs on the loop goroutine, the pools' owner. Everything is prepared
// (planReload) before anything changes, so that a refused reload changes
// nothing.
func (b *balancer) applyReload(ctx context.Context) error {
	b.proc.Reloading() // tell systemd a reload runs
	defer b.proc.Reloaded()
	s, err := b.o.reload()
	if err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	plan, err := b.planReload(s)
	if err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	for _, c := range plan.changed {
		if err := c.p.sel.Reconfigure(ctx, c.cfg); err != nil {
			return fmt.Errorf("reload: pool %s: %w", c.p.s.Name, err)
		}
	}
	var feeds []discovery.Provider
	for _, p := range plan.added {
		b.startPool(p)
		feeds = append(feeds, p.feeds...)
	}
	// As at start-up: a new pool whose backends come from discovery gets
	// its routes once its sources have answered, not before with none.
	if late := discovery.WaitReady(ctx, feeds, discoveryWait); len(late) > 0 {
		b.log.Warn("discovery sources not answering yet; routing to the new pools with the backends known so far", "sources", late)
	}
	if err := b.router.Set(ctx, plan.table); err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	for _, p := range plan.removed {
		b.log.Info("pool removed; draining", "pool", p.s.Name)
		b.wg.Go(func() { b.drainPool(p) })
	}
	b.running = plan.next
	b.log.Info("reloaded", reloadedArgs(s)...)
	return nil
}

// reloadPlan is what a reload will do, prepared without changing anything.
type reloadPlan struct {
	next    []*pool // the pools after the reload, in order
	added   []*pool // built, not yet started
	removed []*pool // running, to drain
	changed []poolChange
	table   *transport.Table // the routes to next
}

// poolChange is a running pool's new selector configuration.
type poolChange struct {
	p   *pool
	cfg actors.Config // for p's selector's Reconfigure
}

// planReload prepares the reload to settings s: it builds the new pools,
// the new selector configurations of the pools that stay, and the table.
func (b *balancer) planReload(s *config.Settings) (reloadPlan, error) {
	var plan reloadPlan
	old := make(map[string]*pool, len(b.running))
	for _, p := range b.running {
		old[p.s.Name] = p
	}
	for _, ps := range s.EveryPool() {
		p, ok := old[ps.Name]
		if !ok {
			p, err := b.buildPool(ps)
			if err != nil {
				return plan, err
			}
			plan.added, plan.next = append(plan.added, p), append(plan.next, p)
			continue
		}
		delete(old, ps.Name)
		secret := poolSecret(s.StickySecret(), ps.Name)
		cfg, err := selectorConfig(ps, secret, b.transportFor(ps), b.s.TLS.BackendCAs)
		if err != nil {
			return plan, fmt.Errorf("pool %s: %w", ps.Name, err)
		}
		// The pool's selector keeps the request key's kind its proxy pool
		// extracts (ip-hash, header-hash, cookie) and its sticky cookies'
		// key: changing either would strand the pins it holds.
		if actors.KeyOf(cfg.Policy) != p.tp.Key || !bytes.Equal(secret, p.tp.StickySecret) {
			return plan, fmt.Errorf("policy %q keys requests differently from %q, or the sticky secret changed: that needs a restart", ps.Policy, p.s.Policy)
		}
		if policyName(ps) == policyName(p.s) {
			cfg.Policy = nil // the running one, with its state: round-robin position, pins
		}
		if !slices.Equal(ps.Discover, p.s.Discover) {
			b.log.Warn("discover changes of a running pool take effect at the next start", "pool", ps.Name, "running", p.s.Discover)
		}
		plan.changed = append(plan.changed, poolChange{p, cfg})
		plan.next = append(plan.next, &pool{s: ps, sel: p.sel, tp: b.proxyPool(ps, p.sel, p.tp.Key, secret), feeds: p.feeds, ctx: p.ctx, stop: p.stop})
	}
	for _, p := range b.running {
		if _, gone := old[p.s.Name]; gone {
			plan.removed = append(plan.removed, p)
		}
	}
	if s.DNSServer != b.s.DNSServer {
		b.log.Warn("dns_server changes take effect at the next start", "running", b.s.DNSServer)
	}
	var err error
	plan.table, err = table(s, plan.next)
	return plan, err
}

// reloadedArgs are the "reloaded" line's: as before pools, and the
// pools and routes when there are more than the default pool. backends
// counts every pool's, as the "listening" line does.
func reloadedArgs(s *config.Settings) []any {
	backends := 0
	for _, p := range s.EveryPool() {
		backends += len(p.Backends)
	}
	args := []any{"file", s.File, "backends", backends, "policy", s.Policy}
	if len(s.Pools) > 1 || len(s.Pools) == 1 && s.Pools[0].Name != config.DefaultPool {
		args = append(args, "pools", len(s.Pools), "routes", len(s.Routes))
	}
	return args
}
