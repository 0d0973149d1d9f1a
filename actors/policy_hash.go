package actors

import (
	"errors"
	"hash/fnv"
	"math"
	"strings"
)

// Hash sends requests with the same key to the same backend: ip-hash (the
// client's address) and header-hash:NAME. Requests without a key go
// round-robin.
//
// It uses rendezvous (highest random weight) hashing: every backend scores
// the key with a hash of (backend, key), weighted, and the highest score
// wins. When a backend goes DOWN only the keys it won move, each to its
// runner-up; when it returns they move back, exactly. It needs no ring to
// build or keep in step with the backend set, the mapping depends only on
// the backends' URLs and the key (so every instance that sees the same
// backends agrees), and its O(backends) cost per pick is small for the
// backend counts a balancer has.
type Hash struct {
	Spec     KeySpec
	fallback RoundRobin // chooses for requests without a key
	keyed    bool       // the most recent Choose had a key
}

var _ Keyed = (*Hash)(nil)

func init() {
	registerPolicy(policyEntry{name: "ip-hash", rank: 70,
		make: func(policyArgs) (Policy, error) { return &Hash{Spec: KeySpec{Kind: KeyClientIP}}, nil }})
	registerPolicy(policyEntry{name: "header-hash", usage: "header-hash:NAME", rank: 80, takesArg: true,
		make: func(a policyArgs) (Policy, error) {
			if a.arg == "" || strings.ContainsAny(a.arg, " \t:") {
				return nil, errors.New("policy header-hash needs a header name: header-hash:X-User-ID")
			}
			return &Hash{Spec: KeySpec{Kind: KeyHeader, Name: a.arg}}, nil
		}})
}

// Key says where the key comes from.
func (h *Hash) Key() KeySpec { return h.Spec }

// Choose returns the eligible candidate with the highest score for key.
func (h *Hash) Choose(cands []Candidate, key string) int {
	h.keyed = key != ""
	if !h.keyed {
		return h.fallback.Choose(cands, key)
	}
	return rendezvous(cands, key)
}

// Taken advances the fallback's position when a keyless request used it.
// Keyed requests leave it alone, so that they do not steer the keyless
// ones (all to the backend after a busy key's).
func (h *Hash) Taken(cands []Candidate, i int) {
	if !h.keyed {
		h.fallback.Taken(cands, i)
	}
}

// rendezvous returns the eligible candidate with the highest weighted score:
// weight / -ln(u), with u in (0,1) from the hash of the backend and key.
func rendezvous(cands []Candidate, key string) int {
	best, bestScore := -1, 0.0
	for i, c := range cands {
		if !c.Eligible {
			continue
		}
		u := (float64(keyHash(c.Backend.Name, key)>>11) + 0.5) / (1 << 53)
		score := float64(c.Weight) / -math.Log(u)
		if best < 0 || score > bestScore {
			best, bestScore = i, score
		}
	}
	return best
}

// keyHash is FNV-1a over backend and key, finished with splitmix64 so that
// similar inputs give unrelated outputs. It is the same in every process.
func keyHash(backend, key string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(backend))
	_, _ = h.Write([]byte{0})
	_, _ = h.Write([]byte(key))
	x := h.Sum64()
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
