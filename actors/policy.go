package actors

import (
	"cmp"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
)

// Candidate is a policy's read-only view of one backend for one pick. The
// selector fills in a slice of them, one per backend in configuration order,
// before every choice.
type Candidate struct {
	Backend  *Backend
	Eligible bool // UP, not already tried by this request, within limits
	Weight   int  // at least 1 for an eligible candidate
	InFlight int  // requests the backend is serving now
}

// Policy decides which backend serves the next request. The selector
// goroutine is its only caller, so an implementation keeps its state in plain
// fields: no locks, and randomness from its own generator.
//
// The selector may call Choose again before anyone takes the answer (it
// offers a pick in advance and recomputes it when health changes), so Choose
// must not commit to its answer; Taken commits the most recent Choose.
type Policy interface {
	// Choose returns the index in cands of the backend to use, or -1 when
	// no candidate is eligible. key is the request's key for the policies
	// that implement Keyed, "" otherwise or when the request has none.
	Choose(cands []Candidate, key string) int
	// Taken records that the most recent choice, cands[i], was handed out.
	Taken(cands []Candidate, i int)
}

// Keyed is implemented by the policies that choose by something in the
// request. The proxy reads Key once to learn what to extract; the selector
// passes the extracted value to Choose.
type Keyed interface {
	Policy
	Key() KeySpec
}

// KeyKind says where in a request a policy's key comes from.
type KeyKind int

// The kinds of request key.
const (
	KeyNone     KeyKind = iota
	KeyClientIP         // the client's address
	KeyHeader           // the value of header Name
	KeyCookie           // the value of cookie Name, set by the proxy (sticky sessions)
)

// KeySpec names a request key: a kind and, for headers and cookies, a name.
type KeySpec struct {
	Kind KeyKind
	Name string
}

// KeyOf returns p's request key, or the zero KeySpec when p is not Keyed.
func KeyOf(p Policy) KeySpec {
	if k, ok := p.(Keyed); ok {
		return k.Key()
	}
	return KeySpec{}
}

// PolicyNames lists the --policy values NewPolicy accepts, in the order
// --help shows them. Each policy's own file adds it (registerPolicy).
var PolicyNames []string

// policies holds every registered policy by name; only registerPolicy,
// called from the policy files' init functions, writes it.
var policies = map[string]policyEntry{}

// policyEntry is one --policy value: how NewPolicy makes it, and how --help
// lists it. A policy file registers its entry in an init function:
//
//	func init() {
//		registerPolicy(policyEntry{name: "first", rank: 60,
//			make: func(policyArgs) (Policy, error) { return First{}, nil }})
//	}
type policyEntry struct {
	name  string // the value before any ":ARG"
	usage string // how PolicyNames lists it ("header-hash:NAME"); "": name
	rank  int    // its place in PolicyNames, lowest first; unique
	// takesArg lets the value carry an argument after ":"; when false,
	// NewPolicy refuses one before calling make.
	takesArg bool
	// make returns a fresh policy; its error says what is wrong with the
	// argument.
	make func(policyArgs) (Policy, error)
}

// policyArgs is what NewPolicy hands a policyEntry's make.
type policyArgs struct {
	arg    string     // the text after ":"
	hasArg bool       // whether there was a ":"
	secret []byte     // keys the sticky cookie's values (see StickyToken)
	rng    *rand.Rand // the policy's own random generator, seeded
}

// registerPolicy adds e to the policies NewPolicy knows and to PolicyNames,
// which it keeps in rank order whatever order the files' init functions run
// in. It panics on a name or rank already taken: a programming error.
func registerPolicy(e policyEntry) {
	if _, dup := policies[e.name]; dup {
		panic("actors: policy " + e.name + " registered twice")
	}
	for _, other := range policies {
		if other.rank == e.rank {
			panic(fmt.Sprintf("actors: policies %s and %s share rank %d", other.name, e.name, e.rank))
		}
	}
	policies[e.name] = e
	entries := slices.SortedFunc(maps.Values(policies), func(a, b policyEntry) int { return cmp.Compare(a.rank, b.rank) })
	PolicyNames = PolicyNames[:0]
	for _, e := range entries {
		PolicyNames = append(PolicyNames, cmp.Or(e.usage, e.name))
	}
}

// NewPolicy returns the policy a --policy value names: NAME or NAME:ARG,
// one of PolicyNames. secret keys the sticky cookie's values (see
// StickyToken); seed seeds the policy's own random generator.
func NewPolicy(spec string, secret []byte, seed uint64) (Policy, error) {
	name, arg, hasArg := strings.Cut(spec, ":")
	e, ok := policies[name]
	if !ok {
		return nil, fmt.Errorf("unknown policy %q (known: %s)", spec, strings.Join(PolicyNames, ", "))
	}
	if hasArg && !e.takesArg {
		return nil, fmt.Errorf("policy %q takes no argument", name)
	}
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	return e.make(policyArgs{arg: arg, hasArg: hasArg, secret: secret, rng: rng})
}
