package transport

import (
	"context"
	"errors"
	"math"
	"net/netip"
	"strconv"
	"time"
)

// RateLimitOptions configures a RateLimiter. Every zero field but Rate
// takes the default named in its comment.
type RateLimitOptions struct {
	Rate       float64       // requests per second a client may sustain; must be positive
	Burst      int           // requests a client may make at once; 0: Rate rounded up, at least 1
	MaxClients int           // clients remembered at once; 0: 100000
	SweepEvery time.Duration // how often idle clients are forgotten; 0: one minute
}

// RateLimiter limits each client to a token bucket: Burst tokens, refilled
// at Rate per second, one taken per request; a request finding the bucket
// empty is refused (429) and told when the next token comes (Retry-After).
//
// A client is an IPv4 address or an IPv6 /64 (one subscriber's usual
// allocation; per-address limits would let any IPv6 client step around
// them by changing addresses).
//
// The buckets belong to one goroutine, Run. Handlers ask it by message
// (Allow) and get the answer on a reply channel of capacity 1, so the
// limiter never waits for a handler. Memory is bounded: a bucket that has
// refilled is the same as no bucket, so such "idle" clients are forgotten
// every SweepEvery, and when MaxClients are remembered anyway a newcomer
// first sweeps and then, if need be, evicts an arbitrary client, which only
// ever makes that client's limit start afresh.
type RateLimiter struct {
	rate, burst float64
	maxClients  int
	sweepEvery  time.Duration
	asks        chan limitAsk
	counts      chan chan int // Clients' requests, answered with capacity 1
	stopped     chan struct{} // closed by Run on its way out
}

type limitAsk struct {
	client netip.Prefix
	reply  chan limitAnswer // capacity 1
}

type limitAnswer struct {
	allowed bool
	wait    time.Duration // until a token is available, when refused
}

// bucket is one client's tokens as of last.
type bucket struct {
	tokens float64
	last   time.Time
}

// NewRateLimiter returns a limiter that has not started yet.
func NewRateLimiter(o RateLimitOptions) (*RateLimiter, error) {
	if !(o.Rate > 0) || math.IsInf(o.Rate, 0) {
		return nil, errors.New("rate limit: the rate must be positive")
	}
	if o.Burst <= 0 {
		o.Burst = max(1, int(math.Ceil(o.Rate)))
	}
	if o.MaxClients <= 0 {
		o.MaxClients = 100000
	}
	if o.SweepEvery <= 0 {
		o.SweepEvery = time.Minute
	}
	return &RateLimiter{
		rate: o.Rate, burst: float64(o.Burst), maxClients: o.MaxClients, sweepEvery: o.SweepEvery,
		asks: make(chan limitAsk), counts: make(chan chan int), stopped: make(chan struct{}),
	}, nil
}

// errLimiterStopped is Allow's answer once Run has returned.
var errLimiterStopped = errors.New("rate limiter stopped")

// Run owns the buckets until ctx is done, then returns nil.
func (l *RateLimiter) Run(ctx context.Context) error {
	defer close(l.stopped)
	buckets := make(map[netip.Prefix]bucket)
	sweep := time.NewTicker(l.sweepEvery)
	defer sweep.Stop()
	for {
		select {
		case a := <-l.asks:
			a.reply <- l.take(buckets, a.client, time.Now()) // capacity 1: never blocks
		case now := <-sweep.C:
			l.forget(buckets, now)
		case reply := <-l.counts:
			reply <- len(buckets)
		case <-ctx.Done():
			return nil
		}
	}
}

// take spends one of client's tokens, if it has one.
func (l *RateLimiter) take(buckets map[netip.Prefix]bucket, client netip.Prefix, now time.Time) limitAnswer {
	b, known := buckets[client]
	if known {
		b.tokens = l.refilled(b, now)
	} else {
		if len(buckets) >= l.maxClients {
			l.forget(buckets, now)
		}
		for k := range buckets { // still full: evict an arbitrary client
			if len(buckets) < l.maxClients {
				break
			}
			delete(buckets, k)
		}
		b.tokens = l.burst
	}
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		buckets[client] = b
		return limitAnswer{allowed: true}
	}
	buckets[client] = b
	return limitAnswer{wait: time.Duration((1 - b.tokens) / l.rate * float64(time.Second))}
}

func (l *RateLimiter) refilled(b bucket, now time.Time) float64 {
	return min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.rate)
}

// forget drops the clients whose buckets have refilled.
func (l *RateLimiter) forget(buckets map[netip.Prefix]bucket, now time.Time) {
	for k, b := range buckets {
		if l.refilled(b, now) >= l.burst {
			delete(buckets, k)
		}
	}
}

// Allow asks whether addr may make a request now; if not, it also says how
// long until it may. It returns an error only when ctx is done or the
// limiter has stopped.
func (l *RateLimiter) Allow(ctx context.Context, addr netip.Addr) (bool, time.Duration, error) {
	a := limitAsk{client: clientPrefix(addr), reply: make(chan limitAnswer, 1)}
	select {
	case l.asks <- a:
	case <-ctx.Done():
		return false, 0, ctx.Err()
	case <-l.stopped:
		return false, 0, errLimiterStopped
	}
	ans := <-a.reply // answered in the same step that took the ask
	return ans.allowed, ans.wait, nil
}

// Clients returns how many clients the limiter remembers.
func (l *RateLimiter) Clients(ctx context.Context) (int, error) {
	reply := make(chan int, 1)
	select {
	case l.counts <- reply:
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-l.stopped:
		return 0, errLimiterStopped
	}
	return <-reply, nil
}

// clientPrefix is the unit a client is limited by: an IPv4 address, or the
// /64 an IPv6 address belongs to.
func clientPrefix(a netip.Addr) netip.Prefix {
	a = a.WithZone("").Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p
	}
	return netip.PrefixFrom(a, a.BitLen())
}

// retryAfter is a Retry-After value: whole seconds, rounded up, at least 1.
func retryAfter(d time.Duration) string {
	return strconv.FormatInt(max(1, int64(math.Ceil(d.Seconds()))), 10)
}
