package transport

import (
	"net/http"
	"strconv"
	"time"

	"github.com/roundhouse/roundhouse/actors"
)

// Pool is one pool as the proxy sees it: the selector that picks its
// backends and the settings its requests follow. Each pool is its own
// selector actor, with its own health, limits, queue and stickiness; a
// request talks to the selector of the pool its route names, and to no
// other.
//
// A Pool is immutable once NewPool returns it, so any number of handler
// goroutines may read it. A reload that changes a pool's settings makes a
// new Pool, which may keep the old one's selector (and so its state).
type Pool struct {
	// Name is the pool's name; "default" for the one the top-level
	// backends form.
	Name string
	// Selector picks the pool's backends; required.
	Selector *actors.Selector
	// Transport sends the pool's requests; required. Pools with the same
	// transport settings share one.
	Transport http.RoundTripper
	// Key says what request key the pool's policy chooses by (see
	// actors.Keyed); the zero value means none, and picks take the
	// selector's ready offer.
	Key actors.KeySpec
	// StickySecret keys the sticky cookie's values when Key is a cookie.
	// Each pool needs its own, so that a cookie pinned in one pool never
	// moves a request in another.
	StickySecret []byte
	// Retries is how many other backends a request may try after a
	// failure that is safe to retry (see Proxy). 0: none.
	Retries int
	// RetryAfter is the Retry-After of a 503, rounded up to seconds; 0: 1s.
	RetryAfter time.Duration
	// RequestTimeout bounds a whole request, response body included;
	// exceeded before the response starts: 504. 0: no limit.
	RequestTimeout time.Duration

	retryAfter string // RetryAfter in whole seconds, as the header says it
}

// NewPool returns an immutable copy of p, ready for a Table.
func NewPool(p Pool) *Pool {
	p.Retries = max(p.Retries, 0)
	secs := int64((max(p.RetryAfter, time.Second) + time.Second - 1) / time.Second)
	p.retryAfter = strconv.FormatInt(secs, 10)
	return &p
}

// poolTransport is the one RoundTripper the ReverseProxy has: it sends
// each request through its pool's transport. Like ReverseProxy's hooks,
// it finds the exchange in the request's context (see exchangeKey).
type poolTransport struct{}

func (poolTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	return exchangeOf(r).pool.Transport.RoundTrip(r)
}
