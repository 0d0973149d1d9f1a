package config

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// Pools. The file's pool "NAME" { ... } blocks name sets of backends with
// balancing settings of their own; the top-level backend blocks, --backend
// and --discover make the pool named DefaultPool. The top-level balancing
// settings (the keys of poolKeys, whoever gave them: the file or a flag)
// are every pool's defaults, overridden key by key by the values set in
// the pool's block. Everything else (listen, admin, tls, edge, log, the
// client and backend_idle timeouts, ...) belongs to the whole balancer and
// is refused inside a pool block.

// DefaultPool is the name of the pool the top-level backends, --backend and
// --discover make, or that a pool "default" block declares. With no routes,
// every request goes to it.
const DefaultPool = "default"

// Pool is one pool of backends and how it is balanced: plain data, ready
// for a selector of its own. Settings.Pools holds every pool.
type Pool struct {
	// Name is the pool's name: DefaultPool or a pool block's label
	// (letters, digits, '-', '_' and '.').
	Name string
	// Source is where the pool was declared, for messages:
	// "roundhouse.hcl:12:6" (its block's label); "" for the default pool
	// made of top-level backends and flags.
	Source string
	// Backends are the pool's own backends, in policy order; nil: none
	// (then Discover is not empty). Backends are never inherited.
	Backends []Backend
	// Discover lists the pool's discovery sources, as Settings.Discover;
	// nil: none. Never inherited.
	Discover []string

	// The balancing settings below start as the top-level ones (file, then
	// flags) and take each value the pool's block sets. Their zero values
	// mean what the top-level fields' do.

	Policy    string        // a name actors.NewPolicy accepts
	Retries   int           // other backends of this pool a failed request may try
	SlowStart time.Duration // 0: off
	Health    Health
	Limits    Limits
	Ejection  Ejection
	// Timeouts: only Dial, TLSHandshake, ResponseHeader and Request are
	// the pool's own (settable in its timeouts block); the other fields are
	// copies of Settings.Timeouts, which apply to the whole balancer.
	Timeouts Timeouts
}

// poolKeys are the file paths a pool block may set: the per-pool
// balancing settings. Each inherits the top-level value.
var poolKeys = []string{
	"policy", "retries", "slow_start", "discover",
	"health.path", "health.expect", "health.body", "health.host", "health.headers",
	"health.port", "health.grpc", "health.grpc_service",
	"health.interval", "health.timeout", "health.rise", "health.fall",
	"timeouts.dial", "timeouts.tls_handshake", "timeouts.response_header", "timeouts.request",
	"limits.max_conns_per_backend", "limits.queue_size", "limits.queue_timeout",
	"ejection.after", "ejection.time", "ejection.max_percent",
	"ejection.failure_rate", "ejection.failure_window",
}

// poolBlocks are the blocks a pool block may hold besides backend.
var poolBlocks = []string{"health", "timeouts", "limits", "ejection"}

// poolBlock is one pool block as read, before inheritance.
type poolBlock struct {
	name  string
	label hcl.Range // the label's position (the block's type when it has none)
	ok    bool      // the label is a good, unrepeated name
	// sub read the block: sub.s holds the values the block set, sub.from
	// which rows it set, sub.backendRanges its backends' positions and
	// sub.rejected how many of them (or its discover list) had problems.
	sub *loader
}

// pool reads a pool "NAME" { ... } block.
func (l *loader) pool(b *hclsyntax.Block) {
	pb := &poolBlock{label: b.TypeRange}
	switch {
	case len(b.Labels) != 1:
		l.problems = append(l.problems, problemAt(b.TypeRange,
			fmt.Sprintf(`pool: want one label, the pool's name: pool "api" { ... }; got %d`, len(b.Labels))))
	default:
		pb.name, pb.label = b.Labels[0], b.LabelRanges[0]
		pb.ok = l.checkName("pool", pb.name, pb.label)
		for _, other := range l.poolBlocks {
			if other.name == pb.name && other.ok && pb.ok {
				l.problems = append(l.problems, problemAt(pb.label,
					fmt.Sprintf("pool %q: given twice; the first is at line %d", pb.name, other.label.Start.Line)))
				pb.ok = false
			}
		}
	}
	pb.sub = &loader{s: &Settings{}, file: l.file, dir: l.dir, from: make([]origin, len(table)), inPool: true}
	pb.sub.body(b.Body)
	l.takeProblems(pb)
	l.poolBlocks = append(l.poolBlocks, pb)
}

// takeProblems moves the problems pb's loader found to l, each said to be
// the pool's.
func (l *loader) takeProblems(pb *poolBlock) {
	for _, p := range pb.sub.problems {
		p.Msg = fmt.Sprintf("pool %q: %s", pb.name, p.Msg)
		l.problems = append(l.problems, p)
	}
	pb.sub.problems = nil
}

// checkName reports a pool or route name that is empty or holds characters
// other than letters, digits, '-', '_' and '.': names appear in admin
// paths, metric labels and log lines.
func (l *loader) checkName(kind, name string, at hcl.Range) bool {
	bad := name == "" || strings.ContainsFunc(name, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.')
	})
	if bad {
		l.problems = append(l.problems, problemAt(at,
			fmt.Sprintf("%s %q: a name is letters, digits, '-', '_' and '.', such as \"api-v1\"", kind, name)))
	}
	return !bad
}

// notInPool explains why path, a known key, cannot be set in a pool block.
func notInPool(path string) string {
	return fmt.Sprintf("%s cannot be set in a pool block: it applies to the whole balancer; set it at the top level (a pool may set %s)",
		path, strings.Join(poolKeyNames(), ", "))
}

// poolKeyNames lists what a pool block may hold, for messages.
func poolKeyNames() []string {
	out := []string{"backend"}
	for _, k := range poolKeys {
		if b, _, nested := strings.Cut(k, "."); nested {
			if !slices.Contains(out, b+" {}") {
				out = append(out, b+" {}")
			}
			continue
		}
		out = append(out, k)
	}
	return out
}

// resolvePools builds s.Pools: the default pool, then the pool blocks in
// file order, each inheriting the top-level settings (file and flags
// merged) and taking what its block sets. It runs after the top-level
// checks, and records the pools' problems.
//
// It returns the name of every pool declared, good or not, for the routes'
// checks.
func (l *loader) resolvePools() []string {
	s := l.s
	topLevel := len(s.Backends) > 0 || len(s.Discover) > 0 || len(l.backendRanges) > 0 || l.rejected > 0
	var pools []Pool
	var declared []string
	if topLevel {
		pools = append(pools, s.defaultPool())
		declared = append(declared, DefaultPool)
	}
	for _, pb := range l.poolBlocks {
		if pb.ok && !slices.Contains(declared, pb.name) {
			declared = append(declared, pb.name)
		}
	}
	var blocks []*poolBlock
	for _, pb := range l.poolBlocks {
		if !pb.ok {
			continue
		}
		if pb.name == DefaultPool {
			if topLevel {
				l.problems = append(l.problems, problemAt(pb.label,
					`pool "default": the top-level backend blocks, --backend and --discover already make the default pool; move them into this block, or give this pool another name`))
				continue
			}
			blocks = append([]*poolBlock{pb}, blocks...)
			continue
		}
		blocks = append(blocks, pb)
	}
	for _, pb := range blocks {
		p, ok := l.poolFrom(pb)
		if ok {
			pools = append(pools, p)
		}
	}
	s.Pools = pools
	return declared
}

// defaultPool is the pool the top-level settings make.
func (s *Settings) defaultPool() Pool {
	return Pool{
		Name: DefaultPool, Backends: s.Backends, Discover: s.Discover,
		Policy: s.Policy, Retries: s.Retries, SlowStart: s.SlowStart,
		Health: s.Health, Limits: s.Limits, Ejection: s.Ejection, Timeouts: s.Timeouts,
	}
}

// poolFrom makes the pool of pb: the top-level settings, then the rows its
// block set, checked. ok is false when it has problems.
func (l *loader) poolFrom(pb *poolBlock) (Pool, bool) {
	ps := *l.s
	ps.Backends, ps.Discover = nil, nil
	ps.Health.Headers = maps.Clone(ps.Health.Headers)
	before := len(l.problems)
	for i, o := range pb.sub.from {
		if o.rng == nil {
			continue
		}
		table[i].copy(&ps, pb.sub.s)
		if err := table[i].validate(&ps); err != nil {
			pb.sub.problemFrom(i, err.Error())
		}
	}
	checkGRPCHealth(ps.Health, pb.sub.from, pb.sub.problemFrom)
	rate := rowByPath["ejection.failure_rate"]
	rateFollowsAfter(&ps.Ejection, l.from[rate] != origin{} || pb.sub.from[rate].rng != nil)
	ps.Backends = pb.sub.s.Backends
	if err := (backends{}).validate(&ps); err != nil {
		l.problems = append(l.problems, problemAt(pb.label, "pool "+pb.name+": backend "+err.Error()))
	}
	l.takeProblems(pb)
	if len(ps.Backends) == 0 && len(ps.Discover) == 0 && pb.sub.rejected == 0 {
		l.problems = append(l.problems, problemAt(pb.label, fmt.Sprintf(
			`pool %q: no backend: add a block such as backend "http://127.0.0.1:8081" {} or a discover list`, pb.name)))
	}
	p := ps.defaultPool()
	p.Name = pb.name
	p.Source = fmt.Sprintf("%s:%d:%d", pb.label.Filename, pb.label.Start.Line, pb.label.Start.Column)
	return p, len(l.problems) == before
}

// poolNamed returns the index in pools of the pool called name, or -1.
func poolNamed(pools []Pool, name string) int {
	return slices.IndexFunc(pools, func(p Pool) bool { return p.Name == name })
}
