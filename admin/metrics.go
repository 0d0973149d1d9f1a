package admin

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/roundhouse/roundhouse/actors"
)

// noBackend is the backend label of requests that reached no backend.
// Backends are labelled by URL, so it cannot clash with one.
const noBackend = "none"

// states is every value the roundhouse_backend_state metric's state label
// takes, in the order it is reported.
var states = []string{"up", "down", "ejected", "draining", "disabled"}

// registerMetrics registers the pools' collector and the standard Go and
// process collectors on reg. h lists the current pools at each scrape;
// unrouted, if not nil, counts the requests no route matched.
func registerMetrics(reg *prometheus.Registry, h *Handler, unrouted func(context.Context) (uint64, error), timeout time.Duration) {
	reg.MustRegister(
		&collector{pools: h.listPools, skipStopped: h.skipStopped, unrouted: unrouted, timeout: timeout, descs: newDescs()},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
}

// metricsHandler serves reg's metrics in the Prometheus text format. A
// scrape fails as a whole (500) if the pools or a running selector cannot
// be asked.
func metricsHandler(reg *prometheus.Registry, log hclog.Logger) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:      promLogger{log},
		ErrorHandling: promhttp.HTTPErrorOnError,
	})
}

// promLogger adapts hclog to promhttp's Logger.
type promLogger struct{ log hclog.Logger }

func (l promLogger) Println(v ...any) {
	l.log.Error("metrics scrape failed", "error", fmt.Sprint(v...))
}

// collector turns the pools' counters into Prometheus metrics at scrape
// time. It keeps nothing between scrapes: each Collect lists the current
// pools, asks each pool's selector for a snapshot (a message, like every
// other question to it) and emits constant metrics from it, each labelled
// with its pool. Collect may run on several scrape goroutines at once;
// each works on its own snapshots.
type collector struct {
	pools       func(context.Context) ([]Pool, error)
	skipStopped func(error) bool                      // whether a pool answering this error is left out
	unrouted    func(context.Context) (uint64, error) // nil: no unrouted metric
	timeout     time.Duration
	descs
}

// descs are the metrics' descriptions.
type descs struct {
	requests      *prometheus.Desc
	grpcRequests  *prometheus.Desc
	duration      *prometheus.Desc
	inFlight      *prometheus.Desc
	up            *prometheus.Desc
	state         *prometheus.Desc
	weight        *prometheus.Desc
	attempts      *prometheus.Desc
	failures      *prometheus.Desc
	retries       *prometheus.Desc
	probes        *prometheus.Desc
	probeFailures *prometheus.Desc
	reloads       *prometheus.Desc
	ejections     *prometheus.Desc
	queued        *prometheus.Desc
	queueTimeouts *prometheus.Desc
	queueFull     *prometheus.Desc
	unroutedReqs  *prometheus.Desc
	byProto       *prometheus.Desc
}

var _ prometheus.Collector = (*collector)(nil)

func newDescs() descs {
	backend := []string{"pool", "backend"}
	pool := []string{"pool"}
	return descs{
		requests: prometheus.NewDesc("roundhouse_requests_total",
			`Client requests, by the backend that answered last ("none": no backend was left to send it to, so the balancer answered 503, or 502 after failed attempts), method (GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS or OTHER) and status class (2xx ... 5xx; 4xx includes 499, the client left).`,
			[]string{"pool", "backend", "method", "code"}, nil),
		grpcRequests: prometheus.NewDesc("roundhouse_grpc_requests_total",
			`gRPC calls (requests whose content-type is application/grpc), by the backend that answered last ("none" as for roundhouse_requests_total) and the gRPC status they ended with (grpc_status: OK, UNAVAILABLE, ...), which the HTTP status, 200 for most, does not tell. Each is also in roundhouse_requests_total.`,
			[]string{"pool", "backend", "grpc_status"}, nil),
		duration: prometheus.NewDesc("roundhouse_request_duration_seconds",
			"Time from a client request's arrival to the end of its response, for requests a backend answered, by that backend; retries included.",
			backend, nil),
		inFlight: prometheus.NewDesc("roundhouse_backend_in_flight_requests",
			"Requests a backend is handling now.", backend, nil),
		up: prometheus.NewDesc("roundhouse_backend_up",
			"1 if the backend's health is UP (whatever an operator chose), 0 if DOWN.", backend, nil),
		state: prometheus.NewDesc("roundhouse_backend_state",
			"1 for the backend's current state (up, down, ejected, draining or disabled), 0 for the others.",
			[]string{"pool", "backend", "state"}, nil),
		weight: prometheus.NewDesc("roundhouse_backend_weight",
			"The backend's weight; 0 is a standby.", backend, nil),
		attempts: prometheus.NewDesc("roundhouse_backend_attempts_total",
			"Attempts a backend completed, any outcome (a retried request counts once per backend tried).", backend, nil),
		failures: prometheus.NewDesc("roundhouse_backend_failures_total",
			"Attempts that failed at a backend: no connection, or the exchange broke.", backend, nil),
		retries: prometheus.NewDesc("roundhouse_retries_total",
			"Attempts at a backend that were retries of a request another backend failed.", backend, nil),
		probes: prometheus.NewDesc("roundhouse_health_probes_total",
			"Health probes sent to a backend.", backend, nil),
		probeFailures: prometheus.NewDesc("roundhouse_health_probe_failures_total",
			"Health probes of a backend that failed.", backend, nil),
		reloads: prometheus.NewDesc("roundhouse_config_reloads_total",
			"Configuration reloads applied to the pool (a pool a reload created counts from 0).", pool, nil),
		ejections: prometheus.NewDesc("roundhouse_backend_ejections_total",
			"Times outlier detection ejected a backend.", backend, nil),
		queued: prometheus.NewDesc("roundhouse_queued_requests",
			"Requests waiting for a backend under its connection cap.", pool, nil),
		queueTimeouts: prometheus.NewDesc("roundhouse_queue_timeouts_total",
			"Requests refused (503) after waiting --queue-timeout for a backend.", pool, nil),
		queueFull: prometheus.NewDesc("roundhouse_queue_full_total",
			"Requests refused (503) at once because every backend was at its connection cap and the queue was full.", pool, nil),
		unroutedReqs: prometheus.NewDesc("roundhouse_unrouted_requests_total",
			"Client requests that matched no route, answered 404.", nil, nil),
		byProto: prometheus.NewDesc("roundhouse_requests_by_protocol_total",
			"Client requests a pool served (as roundhouse_requests_total), by protocol: HTTP/1.0, HTTP/1.1, HTTP/2 or HTTP/3.",
			[]string{"pool", "proto"}, nil),
	}
}

// Describe sends every metric's description.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.requests, c.grpcRequests, c.duration, c.inFlight, c.up, c.state, c.weight,
		c.attempts, c.failures, c.retries, c.probes, c.probeFailures, c.reloads,
		c.ejections, c.queued, c.queueTimeouts, c.queueFull, c.unroutedReqs, c.byProto,
	} {
		ch <- d
	}
}

// Collect lists the pools, asks each one's selector for its counters and
// sends them as metrics, then the unrouted count. A pool whose selector
// has stopped (a reload removed it) is left out; any other failure to ask
// fails the scrape.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	pools, err := c.pools(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.reloads, err)
		return
	}
	for _, p := range pools {
		m, err := p.Selector.Metrics(ctx)
		switch {
		case c.skipStopped(err):
			continue // removed by a reload since the list was made
		case err != nil:
			ch <- prometheus.NewInvalidMetric(c.reloads, fmt.Errorf("asking pool %s's selector: %w", p.Name, err))
			return
		}
		c.collectPool(ch, p.Name, m)
	}
	if c.unrouted != nil {
		n, err := c.unrouted(ctx)
		if err != nil {
			ch <- prometheus.NewInvalidMetric(c.unroutedReqs, fmt.Errorf("counting unrouted requests: %w", err))
			return
		}
		ch <- prometheus.MustNewConstMetric(c.unroutedReqs, prometheus.CounterValue, float64(n))
	}
}

// collectPool sends one pool's metrics, each labelled pool=pool.
func (c *collector) collectPool(ch chan<- prometheus.Metric, pool string, m actors.Metrics) {
	counter, gauge := prometheus.CounterValue, prometheus.GaugeValue
	for _, b := range m.Backends {
		name := b.Name
		c.sendRequests(ch, pool, name, b.Requests)
		c.sendGRPC(ch, pool, name, b.GRPC)
		ch <- prometheus.MustNewConstHistogram(c.duration, b.Duration.Count, b.Duration.Sum, cumulative(b.Duration), pool, name)
		ch <- prometheus.MustNewConstMetric(c.inFlight, gauge, float64(b.InFlight), pool, name)
		ch <- prometheus.MustNewConstMetric(c.up, gauge, boolValue(b.Up), pool, name)
		for _, s := range states {
			ch <- prometheus.MustNewConstMetric(c.state, gauge, boolValue(b.State == s), pool, name, s)
		}
		if !slices.Contains(states, b.State) { // a state this list does not know yet
			ch <- prometheus.MustNewConstMetric(c.state, gauge, 1, pool, name, b.State)
		}
		ch <- prometheus.MustNewConstMetric(c.weight, gauge, float64(b.Weight), pool, name)
		ch <- prometheus.MustNewConstMetric(c.attempts, counter, float64(b.BackendStatus.Requests), pool, name)
		ch <- prometheus.MustNewConstMetric(c.failures, counter, float64(b.Failures), pool, name)
		ch <- prometheus.MustNewConstMetric(c.retries, counter, float64(b.Retries), pool, name)
		ch <- prometheus.MustNewConstMetric(c.probes, counter, float64(b.Probes), pool, name)
		ch <- prometheus.MustNewConstMetric(c.probeFailures, counter, float64(b.ProbeFailures), pool, name)
		ch <- prometheus.MustNewConstMetric(c.ejections, counter, float64(b.Ejections), pool, name)
	}
	c.sendRequests(ch, pool, noBackend, m.NoBackend)
	c.sendGRPC(ch, pool, noBackend, m.NoBackendGRPC)
	ch <- prometheus.MustNewConstMetric(c.reloads, counter, float64(m.Reloads), pool)
	ch <- prometheus.MustNewConstMetric(c.queued, gauge, float64(m.Queued), pool)
	ch <- prometheus.MustNewConstMetric(c.queueTimeouts, counter, float64(m.QueueTimeouts), pool)
	ch <- prometheus.MustNewConstMetric(c.queueFull, counter, float64(m.QueueFull), pool)
	for proto, n := range m.ByProto {
		ch <- prometheus.MustNewConstMetric(c.byProto, counter, float64(n), pool, proto)
	}
}

func (c *collector) sendRequests(ch chan<- prometheus.Metric, pool, backend string, byClass map[actors.RequestClass]uint64) {
	for class, n := range byClass {
		ch <- prometheus.MustNewConstMetric(c.requests, prometheus.CounterValue, float64(n), pool, backend, class.Method, class.Code)
	}
}

func (c *collector) sendGRPC(ch chan<- prometheus.Metric, pool, backend string, byStatus map[int]uint64) {
	for s, n := range byStatus {
		ch <- prometheus.MustNewConstMetric(c.grpcRequests, prometheus.CounterValue, float64(n), pool, backend, grpcStatusName(s))
	}
}

// grpcStatusNames are the gRPC status codes' names, by code
// (google.golang.org/grpc/codes).
var grpcStatusNames = [actors.GRPCStatusCount]string{
	"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
	"ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
	"ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
	"UNAUTHENTICATED",
}

func grpcStatusName(s int) string {
	if s >= 0 && s < len(grpcStatusNames) {
		return grpcStatusNames[s]
	}
	return "UNKNOWN"
}

// cumulative converts the selector's per-bucket counts into Prometheus's
// cumulative ones: bucket i counts every request of at most
// actors.DurationBuckets[i] seconds. The last count (over the largest
// bound) is only in the histogram's total, Prometheus's +Inf bucket.
func cumulative(h actors.Histogram) map[float64]uint64 {
	out := make(map[float64]uint64, len(actors.DurationBuckets))
	var sum uint64
	for i, le := range actors.DurationBuckets {
		if i < len(h.Counts) {
			sum += h.Counts[i]
		}
		out[le] = sum
	}
	return out
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

var logDroppedDesc = prometheus.NewDesc("roundhouse_log_lines_dropped_total",
	"Log lines (the access log's and the others) lost because writing them failed, as on a full disk.", nil, nil)

var idleReclaimedDesc = prometheus.NewDesc("roundhouse_idle_connections_reclaimed_total",
	"Idle keep-alive client connections closed to make room for a new client at the connection cap (--max-conns).", nil, nil)

// askedCounter reports a counter that belongs to another goroutine (the
// log writer's count of lost lines, the connection tracker's count of
// idle connections closed), asking it (a message) at each scrape.
type askedCounter struct {
	count   func(context.Context) (uint64, error)
	timeout time.Duration
	desc    *prometheus.Desc
	asked   string // who count asks, for a failed scrape's error
}

func (c *askedCounter) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *askedCounter) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	n, err := c.count(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.desc, fmt.Errorf("asking %s: %w", c.asked, err))
		return
	}
	ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(n))
}
