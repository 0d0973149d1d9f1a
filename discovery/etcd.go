package discovery

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"time"

	"github.com/hashicorp/go-hclog"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"

	"github.com/roundhouse/roundhouse/actors"
	"github.com/roundhouse/roundhouse/internal/parse"
)

// etcdProvider watches the keys under a prefix: every key is a backend,
// its value JSON as ParseValue reads it.
//
// Run reads the whole prefix (a sync), then watches it from the revision
// after the read, applying each change as it comes. While the watch is
// quiet it checks every Options.CheckInterval that etcd still answers.
// When etcd cannot be reached it stops the watch, keeps the backends as
// they are, logs once, and tries again with a doubling wait; when etcd
// answers again it logs once and resumes the watch after the last revision
// it saw, so that no change made meanwhile is missed. If etcd has compacted
// its history past that revision (the watch fails with ErrCompacted), or
// its revision went back (a restored or new cluster), it syncs again and
// diffs.
type etcdProvider struct {
	spec  parse.Discovery
	opts  Options
	log   hclog.Logger
	ready chan struct{} // closed by Run after the first sync

	// Everything below is owned by Run's goroutine.
	keys   map[string]Backend // the valid backends, by key
	rev    int64              // the last revision seen: the watch resumes after it
	synced bool               // ready has been closed
	// needSync says the whole prefix must be read again before the next
	// watch: at the start, after a compaction, after the revision went back.
	needSync bool
	outage   outage
	applier  *applier
}

func newEtcd(spec parse.Discovery, opts Options, log hclog.Logger) *etcdProvider {
	return &etcdProvider{
		spec: spec, opts: opts, log: log, ready: make(chan struct{}),
		keys: map[string]Backend{}, needSync: true, outage: outage{log: log, what: "etcd"},
	}
}

func (p *etcdProvider) Source() string         { return p.spec.String() }
func (p *etcdProvider) Ready() <-chan struct{} { return p.ready }

// Run is the provider's goroutine; see Provider. It owns the etcd client,
// and so the goroutines and connections the client runs, which end when
// Run closes it on its way out; and its watch (etcdWatch), whose starter
// goroutines Run waits for before that. Each turn of its loop first gets
// a watch if it has none (reconnect, then etcdWatch.start), then takes one
// event: the new watch, a watch response (watched) or a check tick
// (checked). A step that fails logs the outage and drops the watch, for
// the next turn to reconnect. Run returns nil when ctx ends, and an error
// when the client cannot be created or the selector has stopped.
func (p *etcdProvider) Run(ctx context.Context, sink Sink) error {
	cli, err := p.newClient()
	if err != nil {
		return fmt.Errorf("etcd %s: %w", p.Source(), err)
	}
	defer cli.Close() // ends the client's goroutines and connections
	p.applier = newApplier(sink, p.log)
	w := &etcdWatch{cli: cli, prefix: p.spec.Prefix}
	defer w.close() // before cli.Close: defers run in reverse
	check := time.NewTicker(p.opts.CheckInterval)
	defer check.Stop()
	for {
		if w.idle() {
			if err := p.reconnect(ctx, cli); err != nil {
				return p.end(ctx, err)
			}
			w.start(ctx, p.rev+1)
			check.Reset(p.opts.CheckInterval)
		}
		var (
			rewatch bool // stop the watch; the next turn starts another
			err     error
		)
		select {
		case <-ctx.Done():
			return nil
		case ch := <-w.starting:
			w.started(ch)
		case wr, ok := <-w.ch:
			rewatch, err = p.watched(ctx, wr, ok)
		case <-check.C:
			rewatch, err = p.checked(ctx, cli)
		}
		if fatal(ctx, err) {
			return p.end(ctx, err)
		}
		if err != nil {
			p.outage.failed(err, p.applier.size())
		}
		if rewatch || err != nil {
			w.stop() // the next turn connects and watches again
		}
	}
}

// newClient creates Run's etcd client, which connects in the background
// and reconnects with a backoff from Options.RetryMin to RetryMax. Its
// goroutines and connections are the caller's to end, with Close.
func (p *etcdProvider) newClient() (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{
		Endpoints:   p.spec.Endpoints,
		DialTimeout: p.opts.Timeout,
		Logger:      zap.NewNop(), // the provider logs what matters itself
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			// gRPC's default backoff grows to 2 minutes: etcd would come
			// back long before the client noticed.
			Backoff:           backoff.Config{BaseDelay: p.opts.RetryMin, Multiplier: 1.6, Jitter: 0.2, MaxDelay: p.opts.RetryMax},
			MinConnectTimeout: p.opts.Timeout,
		})},
	})
}

// end is Run's return for a fatal error: nil once ctx has ended, the
// error when the selector stopped first.
func (p *etcdProvider) end(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("etcd %s: %w", p.Source(), err)
}

// reconnect is Run's step while it has no watch: it connects, and while
// etcd cannot be reached it logs the outage (once), keeps the backends as
// they are and tries again after a wait that doubles from Options.RetryMin
// to RetryMax. It returns nil once connected, and otherwise why Run must
// end: ctx has ended or the selector has stopped (fatal).
func (p *etcdProvider) reconnect(ctx context.Context, cli *clientv3.Client) error {
	for wait := p.opts.RetryMin; ; wait = min(2*wait, p.opts.RetryMax) {
		err := p.connect(ctx, cli)
		if fatal(ctx, err) {
			return cmp.Or(err, ctx.Err()) // err is nil if ctx ended as etcd answered
		}
		if err == nil {
			p.outage.succeeded("resume_revision", p.rev+1)
			return nil
		}
		p.outage.failed(err, p.applier.size())
		if !sleep(ctx, wait) {
			return ctx.Err()
		}
	}
}

// connect gets the provider ready to watch: it syncs if it must, and
// otherwise checks that etcd answers and has not gone back in time.
func (p *etcdProvider) connect(ctx context.Context, cli *clientv3.Client) error {
	if !p.needSync {
		wentBack, err := p.check(ctx, cli)
		if err != nil || !wentBack {
			return err
		}
	}
	if err := p.sync(ctx, cli); err != nil {
		return err
	}
	p.needSync = false
	return nil
}

// check asks etcd for one key (a linearizable read, so it fails without a
// quorum) and reports whether etcd's revision went back behind the last
// one seen (a restored or new cluster), which it logs.
func (p *etcdProvider) check(ctx context.Context, cli *clientv3.Client) (wentBack bool, err error) {
	rctx, cancel := context.WithTimeout(ctx, p.opts.Timeout)
	defer cancel()
	resp, err := cli.Get(rctx, p.spec.Prefix, clientv3.WithCountOnly())
	if err != nil {
		return false, fmt.Errorf("check: %w", err)
	}
	if rev := resp.Header.Revision; rev < p.rev {
		p.log.Warn("etcd revision went back (a restored or new cluster); reading the prefix again", "revision", rev, "last_seen", p.rev)
		return true, nil
	}
	return false, nil
}

// sync reads every key under the prefix, replaces the provider's view
// with it and applies the difference.
func (p *etcdProvider) sync(ctx context.Context, cli *clientv3.Client) error {
	rctx, cancel := context.WithTimeout(ctx, p.opts.Timeout)
	defer cancel()
	resp, err := cli.Get(rctx, p.spec.Prefix, clientv3.WithPrefix())
	if err != nil {
		return fmt.Errorf("read %s: %w", p.spec.Prefix, err)
	}
	clear(p.keys)
	for _, kv := range resp.Kvs {
		p.put(string(kv.Key), kv.Value)
	}
	p.rev = resp.Header.Revision
	if err := p.applier.apply(ctx, p.want()); err != nil {
		return err
	}
	p.log.Info("read the backends from etcd", "keys", len(resp.Kvs), "backends", p.applier.size(), "revision", p.rev)
	if !p.synced {
		p.synced = true
		close(p.ready)
	}
	return nil
}

// watched is Run's step for one watch response (ok false: the channel
// closed). It reports rewatch when the watch must be stopped and started
// again: it ended without a word (cancelled), or etcd compacted the
// history it needs (then needSync is set too). Its error is a failed
// watch, or a fatal one from applying the changes.
func (p *etcdProvider) watched(ctx context.Context, wr clientv3.WatchResponse, ok bool) (rewatch bool, err error) {
	if !ok {
		return true, nil
	}
	if wr.CompactRevision != 0 || errors.Is(wr.Err(), rpctypes.ErrCompacted) {
		p.log.Info("etcd compacted the history after the last revision seen; reading the prefix again",
			"last_seen", p.rev, "compacted", wr.CompactRevision)
		p.needSync = true
		return true, nil
	}
	if err := wr.Err(); err != nil {
		return false, fmt.Errorf("watch: %w", err)
	}
	for _, ev := range wr.Events {
		key := string(ev.Kv.Key)
		switch ev.Type {
		case mvccpb.PUT:
			p.put(key, ev.Kv.Value)
		case mvccpb.DELETE:
			delete(p.keys, key)
		}
		p.rev = max(p.rev, ev.Kv.ModRevision)
	}
	if wr.IsProgressNotify() {
		p.rev = max(p.rev, wr.Header.Revision)
	}
	if len(wr.Events) == 0 {
		return false, nil
	}
	p.log.Debug("etcd changes", "events", len(wr.Events), "revision", p.rev)
	return false, p.applier.apply(ctx, p.want())
}

// checked is Run's step when the check ticker fires: it checks that etcd
// still answers and has not gone back in time (if it has, rewatch: the
// prefix is read again before the next watch), and while some wanted
// backend belongs to another source it applies the keys again, to take
// over what that source has let go. Its error is a failed check, or a
// fatal one from applying.
func (p *etcdProvider) checked(ctx context.Context, cli *clientv3.Client) (rewatch bool, err error) {
	wentBack, err := p.check(ctx, cli)
	if wentBack {
		p.needSync = true
	}
	if err != nil || p.needSync {
		return true, err
	}
	if p.applier.waiting() {
		return false, p.applier.apply(ctx, p.want())
	}
	return false, nil
}

// put records key's new value; an invalid one is logged and the key is
// no backend, as it would be for every other instance reading it.
func (p *etcdProvider) put(key string, value []byte) {
	b, err := ParseValue(value)
	if err != nil {
		delete(p.keys, key)
		p.log.Warn("invalid backend in etcd; key skipped", "key", key, "error", err)
		return
	}
	for other, ob := range p.keys {
		if other != key && ob.URL.String() == b.URL.String() {
			p.log.Warn("two keys give one backend; the first key in order counts", "key", key, "other", other, "backend", b.URL.String())
		}
	}
	p.keys[key] = b
}

// want is the backend set the keys give. When two keys give one URL, the
// first key in byte order counts, so every instance agrees.
func (p *etcdProvider) want() Set {
	out := make(Set, len(p.keys))
	for _, k := range slices.Sorted(maps.Keys(p.keys)) {
		b := p.keys[k]
		if _, dup := out[b.URL.String()]; !dup {
			out[b.URL.String()] = b
		}
	}
	return out
}

// etcdValue is a key's value: {"url": "http://10.0.0.5:8080", "weight": 2,
// "enabled": true}.
type etcdValue struct {
	URL     string `json:"url"`
	Weight  *int   `json:"weight"`  // nil: 1
	Enabled *bool  `json:"enabled"` // nil: true
}

// ParseValue reads an etcd key's value: a JSON object with "url" (required,
// http(s)://host:port[/path]), "weight" (0 to 1000, default 1; 0 is a
// standby) and "enabled" (default true). Unknown fields are refused, so a
// misspelt "wieght" is an error rather than a silent weight of 1.
func ParseValue(data []byte) (Backend, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var v etcdValue
	if err := dec.Decode(&v); err != nil {
		return Backend{}, fmt.Errorf("want JSON such as {\"url\": \"http://10.0.0.5:8080\", \"weight\": 1}: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Backend{}, errors.New("trailing data after the JSON object")
	}
	if v.URL == "" {
		return Backend{}, errors.New("url: required")
	}
	u, err := actors.ParseBackendURL(v.URL)
	if err != nil {
		return Backend{}, fmt.Errorf("url %q: %w", v.URL, err)
	}
	b := Backend{URL: u, Weight: 1, Enabled: true}
	if v.Weight != nil {
		if *v.Weight < 0 || *v.Weight > actors.MaxWeight {
			return Backend{}, fmt.Errorf("weight: want 0 to %d, got %d", actors.MaxWeight, *v.Weight)
		}
		b.Weight = *v.Weight
	}
	if v.Enabled != nil {
		b.Enabled = *v.Enabled
	}
	return b, nil
}
