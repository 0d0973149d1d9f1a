// Package discovery keeps the selector's backend set in step with systems
// operators already run: etcd (a key per backend under a prefix, watched)
// and DNS (SRV or A/AAAA records, re-resolved on their TTL). It is how
// several Roundhouse instances share one backend set.
//
// Each provider is an actor: one goroutine, Run, started by serve under its
// conc.WaitGroup and ending when its context ends. It alone owns what it has
// learnt (the etcd keys and the last revision seen, or the last DNS answer)
// and what it has told the selector. It computes the backend set it sees,
// diffs it against what it has applied, and sends the selector the same
// messages the admin API does, through an actors.Feed stamped with its
// source (its --discover URL): Add for a new backend, Remove for one that
// went (it drains, it is never cut), SetEnabled for "enabled": false and
// SetWeight for a new weight. The Feed lets a provider touch only the
// backends it added, and a reload of the static configuration leaves them
// alone (see actors.BackendConfig.Source).
//
// When its source cannot be reached, a provider changes nothing: the last
// known set stays in service. It logs the outage once and the recovery
// once, and retries with a doubling wait from Options.RetryMin to
// Options.RetryMax.
package discovery

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/roundhouse/roundhouse/actors"
	"github.com/roundhouse/roundhouse/internal/parse"
)

// Sink is where a provider sends its changes: *actors.Feed. The methods
// are the admin API's commands, and each may block until the selector
// takes it; they return ctx's error or actors.ErrStopped once either ends.
type Sink interface {
	Add(ctx context.Context, bc actors.BackendConfig) (string, error)
	Remove(ctx context.Context, id string) error
	SetEnabled(ctx context.Context, id string, enabled bool) error
	SetWeight(ctx context.Context, id string, weight int) error
}

var _ Sink = (*actors.Feed)(nil)

// Provider is one --discover source.
type Provider interface {
	// Source is the provider's URL as parse.Discovery.String writes it. Its backends
	// carry it as their actors.BackendConfig.Source.
	Source() string
	// Ready is closed by Run once the provider has applied its first
	// backend set (which may be empty). It is never closed if the source
	// has not answered yet.
	Ready() <-chan struct{}
	// Run is the provider's goroutine: it feeds sink until ctx ends, then
	// releases what it holds (an etcd client's connections) and returns
	// nil. It returns early with an error only if the selector behind sink
	// has stopped. Start it once.
	Run(ctx context.Context, sink Sink) error
}

// Options tune the providers. Every zero field takes the default named in
// its comment.
type Options struct {
	Logger hclog.Logger // each provider logs as Named("discovery").With("source", URL); nil: no logging
	// DNSServer is the resolver the DNS providers ask, host:port; "": the
	// first nameserver in /etc/resolv.conf.
	DNSServer string
	// MinTTL and MaxTTL bound the wait between two DNS resolutions, which
	// is otherwise the answer's smallest TTL (a negative answer's SOA
	// minimum); defaults 1s and 5m. Consul answers with TTL 0 by default,
	// so MinTTL is how often Consul is asked.
	MinTTL, MaxTTL time.Duration
	// Timeout bounds each request to a source: one DNS query, one etcd
	// read or check; default 2s.
	Timeout time.Duration
	// CheckInterval is how often an etcd provider whose watch is quiet
	// checks that etcd still answers, so that an outage is noticed (and
	// logged) even when nothing changes; default 2s.
	CheckInterval time.Duration
	// RetryMin and RetryMax bound the wait between attempts while a source
	// cannot be reached: it starts at RetryMin and doubles up to RetryMax;
	// defaults 250ms and 5s.
	RetryMin, RetryMax time.Duration
}

func (o Options) withDefaults() Options {
	set := func(d *time.Duration, def time.Duration) {
		if *d <= 0 {
			*d = def
		}
	}
	set(&o.MinTTL, time.Second)
	set(&o.MaxTTL, 5*time.Minute)
	set(&o.Timeout, 2*time.Second)
	set(&o.CheckInterval, 2*time.Second)
	set(&o.RetryMin, 250*time.Millisecond)
	set(&o.RetryMax, 5*time.Second)
	o.MaxTTL = max(o.MaxTTL, o.MinTTL)
	o.RetryMax = max(o.RetryMax, o.RetryMin)
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
	return o
}

// New returns the provider raw (a --discover value) names. It only reads
// /etc/resolv.conf, for a DNS provider without Options.DNSServer; nothing
// is contacted before Run.
func New(raw string, opts Options) (Provider, error) {
	spec, err := parse.DiscoverURL(raw)
	if err != nil {
		return nil, fmt.Errorf("--discover %s: %w", raw, err)
	}
	opts = opts.withDefaults()
	log := opts.Logger.Named("discovery").With("source", spec.String())
	switch spec.Kind {
	case parse.KindEtcd:
		return newEtcd(spec, opts, log), nil
	default:
		p, err := newDNS(spec, opts, log)
		if err != nil {
			return nil, fmt.Errorf("--discover %s: %w", raw, err)
		}
		return p, nil
	}
}

// NewAll returns a provider for each of sources (--discover values), in
// order.
func NewAll(sources []string, opts Options) ([]Provider, error) {
	var out []Provider
	for _, raw := range sources {
		p, err := New(raw, opts)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// WaitReady waits until every provider is Ready, ctx ends or timeout
// passes, and returns the sources of those that are not ready.
func WaitReady(ctx context.Context, ps []Provider, timeout time.Duration) []string {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for _, p := range ps {
		select {
		case <-p.Ready():
		case <-ctx.Done():
			return notReady(ps)
		case <-deadline.C:
			return notReady(ps)
		}
	}
	return nil
}

func notReady(ps []Provider) []string {
	var late []string
	for _, p := range ps {
		select {
		case <-p.Ready():
		default:
			late = append(late, p.Source())
		}
	}
	return late
}

// Backend is one backend as a source describes it.
type Backend struct {
	URL     *url.URL // as actors.ParseBackendURL accepts it
	Weight  int      // 0 to actors.MaxWeight; 0 is a standby
	Enabled bool     // false: known, probed, but given no traffic
}

func (b Backend) config() actors.BackendConfig {
	return actors.BackendConfig{URL: b.URL, Weight: b.Weight, Disabled: !b.Enabled}
}

// sleep waits for d or until ctx ends; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// fatal reports whether err from a Sink means the provider must end: its
// context has ended or the selector has stopped.
func fatal(ctx context.Context, err error) bool {
	return ctx.Err() != nil || errors.Is(err, actors.ErrStopped)
}

// outage logs a source's reachability on transitions only: the first
// failure ("unreachable", once, however long it lasts) and the first
// success after it ("reachable again"). It belongs to its provider's
// goroutine.
type outage struct {
	log   hclog.Logger
	what  string    // "etcd", "dns"
	down  bool      // the last attempt failed
	since time.Time // when the outage began
}

// failed records a failed attempt; backends is the size of the set that
// stays in service.
func (o *outage) failed(err error, backends int) {
	if o.down {
		o.log.Debug(o.what+" still unreachable", "error", err)
		return
	}
	o.down, o.since = true, time.Now()
	o.log.Warn(o.what+" unreachable; the last known backends stay in service", "backends", backends, "error", err)
}

// succeeded records a successful attempt; kv are logged with a recovery.
func (o *outage) succeeded(kv ...any) {
	if !o.down {
		return
	}
	o.down = false
	o.log.Info(o.what+" reachable again", append([]any{"down_for", time.Since(o.since).Round(time.Millisecond)}, kv...)...)
}
