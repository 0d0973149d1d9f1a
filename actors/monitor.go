package actors

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/roundhouse/roundhouse/internal/defaults"
)

// ProbeFunc checks one backend once. A nil error is a pass. It must return
// when ctx is done.
type ProbeFunc func(ctx context.Context, b *Backend) error

// MaxProbeBody is how much of a probe's response body is read: all of it
// is matched against HTTPCheck.Body, and a body no longer than this is
// drained so that the connection is reused.
const MaxProbeBody = 64 << 10

// HTTPCheck says what an HTTP health probe asks for and what passes. The
// zero value sends GET /health to the backend's own address and passes on
// any 2xx or 3xx status, whatever the body.
type HTTPCheck struct {
	// Path is joined to the backend URL's path; "": /health.
	Path string
	// Expect lists the statuses that pass; empty: 200-399.
	Expect StatusRanges
	// Body, if not nil, must match the body's first MaxProbeBody bytes;
	// nil: any body passes.
	Body *regexp.Regexp
	// Host is the probe's Host header; "": the host and port probed. TLS
	// still verifies, and sends as SNI, the host of the backend's URL.
	Host string
	// Header holds extra request headers; a User-Agent here replaces
	// roundhouse-health-check, and a Host here is ignored (use Host). nil:
	// none.
	Header http.Header
	// Port is probed instead of the port in the backend's URL; 0: the
	// URL's port.
	Port int
}

func (c HTTPCheck) withDefaults() HTTPCheck {
	if c.Path == "" {
		c.Path = defaults.HealthPath
	}
	if len(c.Expect) == 0 {
		c.Expect = DefaultExpect
	}
	return c
}

// equal reports whether two checks probe the same way: regular
// expressions are compared by their source, headers by their contents.
func (c HTTPCheck) equal(o HTTPCheck) bool {
	c, o = c.withDefaults(), o.withDefaults()
	return c.Path == o.Path && slices.Equal(c.Expect, o.Expect) && (c.Body == nil) == (o.Body == nil) &&
		(c.Body == nil || c.Body.String() == o.Body.String()) && c.Host == o.Host && c.Port == o.Port &&
		maps.EqualFunc(c.Header, o.Header, slices.Equal)
}

// StatusRange is the HTTP statuses from Lo to Hi, both included.
type StatusRange struct{ Lo, Hi int }

// StatusRanges is a list of status ranges; a status in any of them passes.
type StatusRanges []StatusRange

// DefaultExpect is what a probe expects when HTTPCheck.Expect is empty:
// any 2xx or 3xx status.
var DefaultExpect = StatusRanges{{200, 399}}

// ParseStatusRanges reads a comma-separated list of statuses and ranges,
// such as "200-399" or "200,204,300-399". Statuses run from 100 to 599.
func ParseStatusRanges(s string) (StatusRanges, error) {
	if strings.TrimSpace(s) == "" {
		return nil, errors.New("want statuses such as 200-399 or 200,204")
	}
	var out StatusRanges
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		lo, hi, isRange := strings.Cut(part, "-")
		if !isRange {
			hi = lo
		}
		a, errA := strconv.Atoi(strings.TrimSpace(lo))
		b, errB := strconv.Atoi(strings.TrimSpace(hi))
		switch {
		case errA != nil || errB != nil:
			return nil, fmt.Errorf("%q: want a status such as 200 or a range such as 200-399", part)
		case a < 100 || a > 599 || b < 100 || b > 599:
			return nil, fmt.Errorf("%q: statuses run from 100 to 599", part)
		case a > b:
			return nil, fmt.Errorf("%q: the range runs backwards", part)
		}
		out = append(out, StatusRange{a, b})
	}
	return out, nil
}

// Contains reports whether code is in one of the ranges.
func (r StatusRanges) Contains(code int) bool {
	return slices.ContainsFunc(r, func(x StatusRange) bool { return x.Lo <= code && code <= x.Hi })
}

// String returns the ranges as ParseStatusRanges reads them: "200-399",
// "200,204,300-399".
func (r StatusRanges) String() string {
	parts := make([]string, len(r))
	for i, x := range r {
		parts[i] = strconv.Itoa(x.Lo)
		if x.Hi != x.Lo {
			parts[i] += "-" + strconv.Itoa(x.Hi)
		}
	}
	return strings.Join(parts, ",")
}

// HTTPProbe returns a ProbeFunc that sends GET <backend URL><check.Path>
// through rt, on check.Port if it is set, and passes when the status is in
// check.Expect and the body matches check.Body. It never follows
// redirects, and it drains (up to MaxProbeBody) and closes every response
// body so the connection is reused. An https:// backend is probed over TLS
// as rt is configured for it. A nil rt means a plain http.Transport that
// ignores proxy environment variables.
//
// Each failure says what was wrong: "status 503, want 200-399", "body
// does not match ^ok$", or the transport's error, such as "dial tcp
// 127.0.0.1:8081: connect: connection refused"; all start with "health
// probe: ".
func HTTPProbe(rt http.RoundTripper, check HTTPCheck) ProbeFunc {
	if rt == nil {
		rt = &http.Transport{} // unlike http.DefaultTransport, no proxy from the environment
	}
	check = check.withDefaults()
	return func(ctx context.Context, b *Backend) error {
		u := b.URL.JoinPath(check.Path)
		target := check.Path
		if check.Port != 0 {
			u.Host = net.JoinHostPort(u.Hostname(), strconv.Itoa(check.Port))
			target = u.Redacted()
		}
		req, err := http.NewRequestWithContext(WithBackend(ctx, b), http.MethodGet, u.String(), nil)
		if err != nil {
			return fmt.Errorf("health probe: %w", err)
		}
		req.Header.Set("User-Agent", "roundhouse-health-check")
		for k, vs := range check.Header {
			req.Header[k] = slices.Clone(vs)
		}
		if check.Host != "" {
			req.Host = check.Host
		}
		resp, err := rt.RoundTrip(req)
		if err != nil {
			return fmt.Errorf("health probe: %w", err)
		}
		defer resp.Body.Close()
		body := io.LimitReader(resp.Body, MaxProbeBody)
		var got []byte
		var readErr error
		if check.Body != nil {
			got, readErr = io.ReadAll(body)
		} else {
			_, _ = io.Copy(io.Discard, body)
		}
		switch {
		case !check.Expect.Contains(resp.StatusCode):
			return fmt.Errorf("health probe: GET %s: status %d, want %s", target, resp.StatusCode, check.Expect)
		case readErr != nil:
			return fmt.Errorf("health probe: GET %s: reading the body: %w", target, readErr)
		case check.Body != nil && !check.Body.Match(got):
			return fmt.Errorf("health probe: GET %s: body does not match %s", target, check.Body)
		}
		return nil
	}
}

// MonitorConfig says how each backend is probed. Every zero field takes the
// default named in its comment.
type MonitorConfig struct {
	// Probe checks the backend once; nil: HTTPProbe(Transport, Check). Set
	// it only to probe some other way (tests do).
	Probe ProbeFunc
	// Check is what HTTPProbe asks for and expects; its zero value probes
	// GET /health and passes on 2xx or 3xx. Ignored when Probe or GRPC is
	// set.
	Check HTTPCheck
	// GRPC, if not nil, makes each monitor call grpc.health.v1.Health/Check
	// on its backend over a gRPC connection of its own, as GRPCCheck says,
	// instead of the HTTP probe; Check and Transport are then ignored. nil:
	// HTTP probes. Ignored when Probe is set.
	GRPC      *GRPCCheck
	Transport http.RoundTripper // carries the probes; nil: see HTTPProbe
	Interval  time.Duration     // between probes; 0: defaults.HealthInterval
	Timeout   time.Duration     // per probe; 0: defaults.HealthTimeout
	Rise      int               // consecutive passes that bring a DOWN backend UP; 0: defaults.Rise
	Fall      int               // consecutive failures that take an UP backend DOWN; 0: defaults.Fall
}

func (c MonitorConfig) withDefaults() MonitorConfig {
	c.Check = c.Check.withDefaults()
	if c.Probe == nil && c.GRPC == nil {
		c.Probe = HTTPProbe(c.Transport, c.Check)
	}
	if c.Interval <= 0 {
		c.Interval = defaults.HealthInterval
	}
	if c.Timeout <= 0 {
		c.Timeout = defaults.HealthTimeout
	}
	if c.Rise <= 0 {
		c.Rise = defaults.Rise
	}
	if c.Fall <= 0 {
		c.Fall = defaults.Fall
	}
	return c
}

// prober checks one backend, and keeps what it needs between probes (the
// gRPC check's connection). The monitor's goroutine makes it when Run
// starts, alone calls Probe, and calls Close when Run ends.
type prober interface {
	// Probe checks the backend once; nil is a pass. It returns when ctx
	// is done.
	Probe(ctx context.Context) error
	Close() error
}

// probeFunc is the prober of a ProbeFunc, which keeps nothing.
type probeFunc struct {
	f ProbeFunc
	b *Backend
}

func (p probeFunc) Probe(ctx context.Context) error { return p.f(ctx, p.b) }
func (probeFunc) Close() error                      { return nil }

var (
	_ prober = probeFunc{}
	_ prober = failing{}
)

// failing is the prober of a check that could not be set up: every probe
// fails with err.
type failing struct{ err error }

func (p failing) Probe(context.Context) error { return p.err }
func (failing) Close() error                  { return nil }

// newProber returns the prober of b that c (with defaults) describes:
// Probe when set, else the gRPC check when GRPC is set, else Probe made
// by withDefaults from Check.
func (c MonitorConfig) newProber(b *Backend) prober {
	if c.Probe != nil {
		return probeFunc{c.Probe, b}
	}
	p, err := newGRPCProber(b, *c.GRPC, c.Interval, c.Timeout)
	if err != nil {
		return failing{err}
	}
	return p
}

// Monitor probes one backend and tells the selector when its health changes.
//
// Its goroutine is started and owned by the selector (one per backend) and
// ends when the context given to Run is done. It owns nothing shared: its
// state is the streak counters below and, for a gRPC check, its own
// connection to the backend (made when Run starts, closed before Run
// returns); it talks to the selector by two channels, out (transitions it
// saw) and suspect (the selector saw a connection fail and already treats
// the backend as DOWN).
type Monitor struct {
	Backend *Backend
	Config  MonitorConfig
	Logger  hclog.Logger // nil: no logging
	// StartDown starts the monitor believing the backend DOWN, so that its
	// first transition is to UP; the zero value starts it UP.
	StartDown bool
	// Stats, if not nil, is a mailbox of capacity 1 where the monitor keeps
	// its latest ProbeStats, replacing any copy nobody has taken yet.
	Stats chan ProbeStats
}

// Run probes at once and then every Interval until ctx is done, then
// returns nil. It sends a Health on out only when the rise/fall rules change
// the backend's state; every send also watches ctx. A value on suspect means
// the selector has marked the backend DOWN: the monitor adopts that state, so
// it will need Rise passes to report it UP again. A nil suspect is never ready.
func (m *Monitor) Run(ctx context.Context, out chan<- Health, suspect <-chan struct{}) error {
	cfg := m.Config.withDefaults()
	log := m.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	h := hysteresis{rise: cfg.Rise, fall: cfg.Fall, up: !m.StartDown}
	var stats ProbeStats
	p := cfg.newProber(m.Backend)
	defer func() {
		if err := p.Close(); err != nil {
			log.Debug("closing the probe's connection", "error", err)
		}
	}()
	tick := time.NewTicker(cfg.Interval)
	defer tick.Stop()
	for {
		err := probe(ctx, p, cfg.Timeout)
		if ctx.Err() != nil {
			return nil
		}
		log.Trace("probe", "error", err)
		m.publish(&stats, err)
		// A note from the selector that arrived while we probed predates
		// this result: adopt it first, or we could report UP and only then
		// read a stale DOWN, and disagree with the selector from then on.
		select {
		case <-suspect:
			h.markDown()
		default:
		}
		switch {
		case outOfDescriptors(err):
			// The balancer's own lack of file descriptors says nothing
			// about the backend: no verdict.
			log.Debug("probe skipped: out of file descriptors", "error", err)
		case h.observe(err == nil):
			msg := Health{Backend: m.Backend, Up: h.up, Reason: h.reason(err), from: m}
			select {
			case out <- msg:
				log.Trace("sent health", "up", msg.Up)
			case <-ctx.Done():
				return nil
			}
		}
	wait:
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-suspect:
				log.Trace("received suspect note")
				h.markDown()
			case <-tick.C:
				break wait
			}
		}
	}
}

// outOfDescriptors reports whether err is this process (or the system)
// running out of file descriptors.
func outOfDescriptors(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)
}

// publish adds a probe result to stats and leaves a copy in the Stats
// mailbox. The monitor is the mailbox's only sender, so after taking out any
// stale copy there is room; neither step can block.
func (m *Monitor) publish(stats *ProbeStats, err error) {
	stats.At = time.Now()
	stats.Probes++
	stats.Err = ""
	if err != nil {
		stats.Failures++
		stats.Err = err.Error()
	}
	if m.Stats == nil {
		return
	}
	select {
	case <-m.Stats:
	default:
	}
	select {
	case m.Stats <- *stats:
	default:
	}
}

// probe runs one probe of p, given timeout.
func probe(ctx context.Context, p prober, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return p.Probe(ctx)
}

// hysteresis applies the rise/fall rules to a stream of probe results.
// The zero value is not useful: set rise, fall and the starting state.
type hysteresis struct {
	rise, fall int
	up         bool
	streak     int // consecutive results that disagree with up
}

// observe records one probe result and reports whether up changed.
func (h *hysteresis) observe(pass bool) bool {
	if pass == h.up {
		h.streak = 0
		return false
	}
	h.streak++
	need := h.fall
	if !h.up {
		need = h.rise
	}
	if h.streak < need {
		return false
	}
	h.up, h.streak = pass, 0
	return true
}

// markDown adopts DOWN without a transition of our own (the selector made it).
func (h *hysteresis) markDown() { h.up, h.streak = false, 0 }

func (h *hysteresis) reason(err error) string {
	if err != nil {
		return fmt.Sprintf("%d consecutive failed probes, last: %v", h.fall, err)
	}
	return fmt.Sprintf("%d consecutive passing probes", h.rise)
}
