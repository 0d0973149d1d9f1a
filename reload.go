package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"slices"

	"github.com/hashicorp/go-hclog"

	"github.com/roundhouse/roundhouse/actors"
	"github.com/roundhouse/roundhouse/config"
)

// reload is SIGHUP: the TLS certificate is read again (transport.CertStore
// keeps the current one if the new one does not load), and with --config
// the settings too (applyReload). Without either there is nothing to
// reload.
func (b *balancer) reload(ctx context.Context) {
	b.ed.reloadCertificate(ctx)
	switch {
	case b.apply != nil:
		if err := b.apply(ctx); err != nil {
			b.log.Error("reload failed; the running configuration stays", "error", err)
		}
	case b.s.TLS.Certificate == nil:
		b.log.Warn("reload ignored: no configuration file (--config) and no certificate (--tls-cert)")
	}
}

// applyReload reads the settings again and hands the selector what it can
// change while running: backends, policy, health checks, limits, ejection
// and slow start. An invalid file changes nothing. Listeners, timeouts of
// the servers and the transport, logging and the discovery sources
// (running, the ones serve started with) need a restart; backends the
// sources found are not the file's, and stay.
//
// key is the request key the running proxy extracts (see actors.KeyOf),
// which a reload cannot change.
func applyReload(ctx context.Context, sel *actors.Selector, reload func() (*config.Settings, error), tr http.RoundTripper, log hclog.Logger, running *config.Settings, key actors.KeySpec) error {
	s, err := reload()
	if err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	cfg, err := selectorConfig(s, tr)
	if err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	// The proxy reads the request key (ip-hash, header-hash, cookie) and
	// signs sticky cookies with what it was started with.
	if actors.KeyOf(cfg.Policy) != key || !bytes.Equal(s.StickySecret(), running.StickySecret()) {
		return fmt.Errorf("reload: policy %q keys requests differently from %q, or the sticky secret changed: that needs a restart", s.Policy, running.Policy)
	}
	if err := sel.Reconfigure(ctx, cfg); err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	if !slices.Equal(s.Discover, running.Discover) || s.DNSServer != running.DNSServer {
		log.Warn("discover and dns_server changes take effect at the next start", "running", running.Discover)
	}
	log.Info("reloaded", "file", s.File, "backends", len(s.Backends), "policy", s.Policy)
	return nil
}
