package actors

import (
	"fmt"
	"math/rand/v2"
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

// DefaultCookie is the sticky-session cookie's name when "cookie" gives none.
const DefaultCookie = "roundhouse_sticky"

// PolicyNames lists the --policy values NewPolicy accepts.
var PolicyNames = []string{
	"round-robin", "weighted-round-robin", "least-conn", "p2c", "random", "first",
	"ip-hash", "header-hash:NAME", "cookie[:NAME]",
}

// NewPolicy returns the policy a --policy value names. secret keys the
// sticky cookie's values (see StickyToken); seed seeds the policy's own
// random generator.
func NewPolicy(spec string, secret []byte, seed uint64) (Policy, error) {
	name, arg, hasArg := strings.Cut(spec, ":")
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	noArg := func(p Policy) (Policy, error) {
		if hasArg {
			return nil, fmt.Errorf("policy %q takes no argument", name)
		}
		return p, nil
	}
	switch name {
	case "round-robin":
		return noArg(&RoundRobin{})
	case "weighted-round-robin":
		return noArg(&WeightedRoundRobin{})
	case "least-conn":
		return noArg(&LeastConn{})
	case "p2c":
		return noArg(&P2C{rng: rng})
	case "random":
		return noArg(&Random{rng: rng})
	case "first":
		return noArg(First{})
	case "ip-hash":
		if hasArg {
			return nil, fmt.Errorf("policy %q takes no argument", name)
		}
		return &Hash{Spec: KeySpec{Kind: KeyClientIP}}, nil
	case "header-hash":
		if arg == "" || strings.ContainsAny(arg, " \t:") {
			return nil, fmt.Errorf("policy header-hash needs a header name: header-hash:X-User-ID")
		}
		return &Hash{Spec: KeySpec{Kind: KeyHeader, Name: arg}}, nil
	case "cookie":
		if hasArg && !validCookieName(arg) {
			return nil, fmt.Errorf("policy cookie: bad cookie name %q", arg)
		}
		if !hasArg {
			arg = DefaultCookie
		}
		return NewSticky(arg, secret), nil
	}
	return nil, fmt.Errorf("unknown policy %q (known: %s)", spec, strings.Join(PolicyNames, ", "))
}

// validCookieName reports whether s is an RFC 6265 token.
func validCookieName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r <= ' ' || r >= 0x7f || strings.ContainsRune(`()<>@,;:\"/[]?={}`, r) {
			return false
		}
	}
	return true
}
