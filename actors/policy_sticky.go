package actors

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
)

// Sticky pins a client to a backend with a cookie. The proxy sets the cookie
// to StickyToken(secret, backend) on responses; requests that carry a token
// go to that backend while it is eligible, and otherwise to the fallback's
// choice, which the proxy then pins afresh. Tokens are keyed hashes, so the
// cookie does not reveal the backend's address, and every instance sharing
// the secret honours every other's cookies.
type Sticky struct {
	Cookie   string // the cookie's name
	secret   []byte
	tokens   map[*Backend]string // cache of StickyToken per backend
	fallback RoundRobin          // chooses for clients not (or no longer) pinned
	pinned   bool                // the most recent Choose followed a cookie
}

var _ Keyed = (*Sticky)(nil)

// DefaultCookie is the sticky-session cookie's name when "cookie" gives none.
const DefaultCookie = "roundhouse_sticky"

func init() {
	registerPolicy(policyEntry{name: "cookie", usage: "cookie[:NAME]", rank: 90, takesArg: true,
		make: func(a policyArgs) (Policy, error) {
			if !a.hasArg {
				return NewSticky(DefaultCookie, a.secret), nil
			}
			if !validCookieName(a.arg) {
				return nil, fmt.Errorf("policy cookie: bad cookie name %q", a.arg)
			}
			return NewSticky(a.arg, a.secret), nil
		}})
}

// NewSticky returns a sticky-cookie policy with the given cookie name and
// token secret.
func NewSticky(cookie string, secret []byte) *Sticky {
	return &Sticky{Cookie: cookie, secret: secret, tokens: map[*Backend]string{}}
}

// Key says the key is the cookie's value.
func (s *Sticky) Key() KeySpec { return KeySpec{Kind: KeyCookie, Name: s.Cookie} }

// Choose returns the pinned backend if it is eligible, else the fallback's.
func (s *Sticky) Choose(cands []Candidate, key string) int {
	s.pinned = false
	if key != "" {
		for i, c := range cands {
			if c.Eligible && s.token(c.Backend) == key {
				s.pinned = true
				return i
			}
		}
	}
	return s.fallback.Choose(cands, key)
}

// Taken advances the fallback when it made the choice. Pinned requests
// leave it alone: otherwise every client arriving between a busy pinned
// client's requests would be pinned to the backend after that client's.
func (s *Sticky) Taken(cands []Candidate, i int) {
	if !s.pinned {
		s.fallback.Taken(cands, i)
	}
}

func (s *Sticky) token(b *Backend) string {
	t, ok := s.tokens[b]
	if !ok {
		if len(s.tokens) > 1024 {
			clear(s.tokens) // backends come and go; never grow without bound
		}
		t = StickyToken(s.secret, b)
		s.tokens[b] = t
	}
	return t
}

// StickyToken is the sticky cookie's value for b: 16 bytes of
// HMAC-SHA256(secret, b's URL), hex-encoded. It is a pure function, safe
// from any goroutine.
func StickyToken(secret []byte, b *Backend) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(b.Name))
	return hex.EncodeToString(m.Sum(nil)[:16])
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
