package actors

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/hashicorp/go-hclog"
)

// ProbeFunc checks one backend once. A nil error is a pass. It must return
// when ctx is done.
type ProbeFunc func(ctx context.Context, b *Backend) error

// HTTPProbe returns a ProbeFunc that sends GET <backend URL><path> through rt
// and passes on a 2xx or 3xx status. It never follows redirects, and it
// drains and closes every response body so the connection is reused. A nil
// rt means a plain http.Transport that ignores proxy environment variables.
func HTTPProbe(rt http.RoundTripper, path string) ProbeFunc {
	if rt == nil {
		rt = &http.Transport{} // unlike http.DefaultTransport, no proxy from the environment
	}
	return func(ctx context.Context, b *Backend) error {
		req, err := http.NewRequestWithContext(WithBackend(ctx, b), http.MethodGet, b.URL.JoinPath(path).String(), nil)
		if err != nil {
			return fmt.Errorf("health probe: %w", err)
		}
		req.Header.Set("User-Agent", "roundhouse-health-check")
		resp, err := rt.RoundTrip(req)
		if err != nil {
			return fmt.Errorf("health probe: %w", err)
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		if resp.StatusCode < 200 || resp.StatusCode > 399 {
			return fmt.Errorf("health probe: GET %s: status %d", path, resp.StatusCode)
		}
		return nil
	}
}

// MonitorConfig says how each backend is probed. Every zero field takes the
// default named in its comment.
type MonitorConfig struct {
	// Probe checks the backend once; nil: HTTPProbe(Transport, Path). Set it
	// only to probe some other way (tests do).
	Probe     ProbeFunc
	Path      string            // probed with GET; "": /health
	Transport http.RoundTripper // carries the probes; nil: see HTTPProbe
	Interval  time.Duration     // between probes; 0: 10s
	Timeout   time.Duration     // per probe; 0: 2s
	Rise      int               // consecutive passes that bring a DOWN backend UP; 0: 2
	Fall      int               // consecutive failures that take an UP backend DOWN; 0: 3
}

func (c MonitorConfig) withDefaults() MonitorConfig {
	if c.Path == "" {
		c.Path = "/health"
	}
	if c.Probe == nil {
		c.Probe = HTTPProbe(c.Transport, c.Path)
	}
	if c.Interval <= 0 {
		c.Interval = 10 * time.Second
	}
	if c.Timeout <= 0 {
		c.Timeout = 2 * time.Second
	}
	if c.Rise <= 0 {
		c.Rise = 2
	}
	if c.Fall <= 0 {
		c.Fall = 3
	}
	return c
}

// Monitor probes one backend and tells the selector when its health changes.
//
// Its goroutine is started and owned by the selector (one per backend) and
// ends when the context given to Run is done. It owns nothing shared: its
// only state is the streak counters below, and it talks to the selector by
// two channels, out (transitions it saw) and suspect (the selector saw a
// connection fail and already treats the backend as DOWN).
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
	tick := time.NewTicker(cfg.Interval)
	defer tick.Stop()
	for {
		err := m.probe(ctx, cfg)
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
		if h.observe(err == nil) {
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

func (m *Monitor) probe(ctx context.Context, cfg MonitorConfig) error {
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	return cfg.Probe(ctx, m.Backend)
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
