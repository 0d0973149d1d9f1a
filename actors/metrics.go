package actors

// DurationBuckets are the upper bounds, in seconds, of the request duration
// histogram that Metrics reports.
var DurationBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

// RequestClass groups requests for metrics with bounded cardinality: the
// method (GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS, or OTHER) and the
// status class the client got ("1xx" ... "5xx", "other" for a status outside
// 100-599).
type RequestClass struct {
	Method string
	Code   string
}

// Histogram is a cumulative-free histogram: Counts[i] requests took at most
// DurationBuckets[i] seconds and more than the bucket before; the last entry
// counts the rest.
type Histogram struct {
	Counts []uint64
	Count  uint64
	Sum    float64 // seconds
}

// requestCounts are the per-backend request statistics the selector keeps
// for metrics; the zero value is ready.
type requestCounts struct {
	byClass  map[RequestClass]uint64
	byGRPC   map[int]uint64 // gRPC calls by status (see GRPCStatusCount)
	duration Histogram
	retries  uint64 // attempts that were retries
}

// totals are the selector's counters that belong to no backend.
type totals struct {
	none          requestCounts // requests that reached no backend
	reloads       uint64
	queueTimeouts uint64
	queueFull     uint64
}

func (c *requestCounts) add(r Report) {
	if r.Attempt > 0 {
		c.retries++
	}
	if !r.Final {
		return
	}
	if c.byClass == nil {
		c.byClass = make(map[RequestClass]uint64)
		c.duration.Counts = make([]uint64, len(DurationBuckets)+1)
	}
	c.byClass[RequestClass{Method: methodClass(r.Method), Code: codeClass(r.Status)}]++
	if r.GRPC {
		if c.byGRPC == nil {
			c.byGRPC = make(map[int]uint64)
		}
		c.byGRPC[grpcStatusClass(r.GRPCStatus)]++
	}
	secs := r.Duration.Seconds()
	i := 0
	for i < len(DurationBuckets) && secs > DurationBuckets[i] {
		i++
	}
	c.duration.Counts[i]++
	c.duration.Count++
	c.duration.Sum += secs
}

// count adds a report to the metrics of its backend (or, for a Final
// report, the backend its request last went to), or to the requests that
// reached none.
func (s *Selector) count(r Report) {
	b := r.Backend
	if b == nil {
		b = r.Last
	}
	if st, ok := s.byPtr[b]; ok {
		st.counts.add(r)
	} else if b == nil {
		s.totals.none.add(r)
	}
}

func methodClass(m string) string {
	switch m {
	case "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS":
		return m
	}
	return "OTHER"
}

// GRPCStatusCount is how many gRPC status codes there are (0 OK to 16
// UNAUTHENTICATED); metrics count any other status as 2 UNKNOWN, as gRPC
// clients read it, so that their cardinality stays bounded.
const GRPCStatusCount = 17

func grpcStatusClass(s int) int {
	if s < 0 || s >= GRPCStatusCount {
		return 2
	}
	return s
}

var codeClasses = [...]string{"1xx", "2xx", "3xx", "4xx", "5xx"}

func codeClass(status int) string {
	if status >= 100 && status < 600 {
		return codeClasses[status/100-1]
	}
	return "other"
}

// Metrics is a snapshot of the selector's counters.
type Metrics struct {
	Backends []BackendMetrics
	// NoBackend counts requests that reached no backend (503s when none
	// was eligible), under the same classes.
	NoBackend map[RequestClass]uint64
	// NoBackendGRPC counts the gRPC calls among NoBackend by gRPC status.
	NoBackendGRPC map[int]uint64
	Reloads       uint64 // successful Reconfigure calls
	// Queued is how many requests wait for a connection now;
	// QueueTimeouts counts those refused after waiting too long, and
	// QueueFull those refused at once because the queue was full.
	Queued        int
	QueueTimeouts uint64
	QueueFull     uint64
}

// BackendMetrics is one backend's counters.
type BackendMetrics struct {
	BackendStatus
	Requests map[RequestClass]uint64 // client requests this backend answered last
	GRPC     map[int]uint64          // the gRPC calls among Requests, by gRPC status
	Duration Histogram               // of those requests, start to end
	Retries  uint64                  // attempts here that were retries
}

func (s *Selector) metricsSnapshot() Metrics {
	status := s.status()
	m := Metrics{
		Backends: make([]BackendMetrics, len(status)), Reloads: s.totals.reloads,
		Queued: len(s.queue), QueueTimeouts: s.totals.queueTimeouts, QueueFull: s.totals.queueFull,
	}
	for i, st := range s.backends {
		m.Backends[i] = BackendMetrics{
			BackendStatus: status[i],
			Requests:      cloneMap(st.counts.byClass),
			GRPC:          cloneMap(st.counts.byGRPC),
			Duration:      cloneHistogram(st.counts.duration),
			Retries:       st.counts.retries,
		}
	}
	m.NoBackend = cloneMap(s.totals.none.byClass)
	m.NoBackendGRPC = cloneMap(s.totals.none.byGRPC)
	return m
}

func cloneMap[K comparable](m map[K]uint64) map[K]uint64 {
	out := make(map[K]uint64, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func cloneHistogram(h Histogram) Histogram {
	h.Counts = append([]uint64(nil), h.Counts...)
	if h.Counts == nil {
		h.Counts = make([]uint64, len(DurationBuckets)+1)
	}
	return h
}
