package actors

import (
	"maps"
	"math"
	"slices"
	"testing"
	"testing/synctest"
	"time"
)

func TestMethodClass(t *testing.T) {
	tests := []struct {
		method, want string
	}{
		{"GET", "GET"},
		{"HEAD", "HEAD"},
		{"POST", "POST"},
		{"PUT", "PUT"},
		{"DELETE", "DELETE"},
		{"PATCH", "PATCH"},
		{"OPTIONS", "OPTIONS"},
		{"PROPFIND", "OTHER"},
		{"CONNECT", "OTHER"},
		{"TRACE", "OTHER"},
		{"get", "OTHER"}, // methods are case-sensitive
		{"", "OTHER"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" counts as "+tt.want, func(t *testing.T) {
			if got := methodClass(tt.method); got != tt.want {
				t.Errorf("methodClass(%q) = %q, want %q", tt.method, got, tt.want)
			}
		})
	}
}

func TestCodeClass(t *testing.T) {
	tests := []struct {
		status int
		want   string
	}{
		{100, "1xx"}, {101, "1xx"},
		{200, "2xx"}, {204, "2xx"}, {299, "2xx"},
		{300, "3xx"}, {304, "3xx"},
		{400, "4xx"}, {404, "4xx"}, {499, "4xx"}, // 499: the client went away
		{500, "5xx"}, {502, "5xx"}, {503, "5xx"}, {599, "5xx"},
	}
	for _, tt := range tests {
		if got := codeClass(tt.status); got != tt.want {
			t.Errorf("codeClass(%d) = %q, want %q", tt.status, got, tt.want)
		}
	}
}

// bucketOf returns the index of the one histogram bucket a Final report
// of duration d is counted in.
func bucketOf(t *testing.T, d time.Duration) int {
	t.Helper()
	var c requestCounts
	c.add(Report{Final: true, Method: "GET", Status: 200, Duration: d})
	at := -1
	for i, n := range c.duration.Counts {
		switch {
		case n == 1 && at < 0:
			at = i
		case n != 0:
			t.Fatalf("duration %v: counts %v, want a single 1", d, c.duration.Counts)
		}
	}
	if c.duration.Count != 1 || c.duration.Sum != d.Seconds() {
		t.Errorf("duration %v: Count %d, Sum %v; want 1, %v", d, c.duration.Count, c.duration.Sum, d.Seconds())
	}
	return at
}

func TestDurationBuckets(t *testing.T) {
	if !slices.IsSorted(DurationBuckets) {
		t.Fatalf("DurationBuckets %v are not in order", DurationBuckets)
	}
	last := len(DurationBuckets) // the overflow bucket
	tests := []struct {
		name string
		d    time.Duration
		want int
	}{
		{"no time at all goes in the first bucket", 0, 0},
		{"exactly 1ms goes in the first bucket", time.Millisecond, 0},
		{"just over 1ms goes in the second", time.Millisecond + 100*time.Nanosecond, 1},
		{"exactly 2.5ms goes in the second", 2500 * time.Microsecond, 1},
		{"just over 2.5ms goes in the third", 2500*time.Microsecond + time.Nanosecond, 2},
		{"exactly 10ms goes in the fourth", 10 * time.Millisecond, 3},
		{"exactly 1s goes in its bucket", time.Second, 9},
		{"exactly 60s goes in the last bounded bucket", time.Minute, last - 1},
		{"just over 60s overflows", time.Minute + time.Nanosecond, last},
		{"an hour overflows", time.Hour, last},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := bucketOf(t, tt.d); got != tt.want {
				t.Errorf("%v in bucket %d, want %d", tt.d, got, tt.want)
			}
		})
	}
	t.Run("every bound belongs to its own bucket and a nanosecond more to the next", func(t *testing.T) {
		for i, bound := range DurationBuckets {
			d := time.Duration(math.Round(bound * float64(time.Second)))
			if got := bucketOf(t, d); got != i {
				t.Errorf("%v (bound %v) in bucket %d, want %d", d, bound, got, i)
			}
			if got := bucketOf(t, d+time.Nanosecond); got != i+1 {
				t.Errorf("%v in bucket %d, want %d", d+time.Nanosecond, got, i+1)
			}
		}
	})
}

func TestRequestCounts(t *testing.T) {
	tests := []struct {
		name        string
		report      Report
		wantClass   map[RequestClass]uint64
		wantRetries uint64
	}{
		{"a final report counts one request in its class",
			Report{Final: true, Method: "PUT", Status: 201},
			map[RequestClass]uint64{{"PUT", "2xx"}: 1}, 0},
		{"a report that is not final counts no request",
			Report{Method: "PUT", Status: 502, Outcome: Failed}, nil, 0},
		{"a retry that is not final counts a retry only",
			Report{Method: "GET", Status: 502, Attempt: 1}, nil, 1},
		{"a final retry counts a request and a retry",
			Report{Final: true, Method: "GET", Status: 200, Attempt: 2},
			map[RequestClass]uint64{{"GET", "2xx"}: 1}, 1},
		{"a client that left counts as 4xx",
			Report{Final: true, Method: "POST", Status: 499, Outcome: ClientGone},
			map[RequestClass]uint64{{"POST", "4xx"}: 1}, 0},
		{"an unusual method counts as OTHER",
			Report{Final: true, Method: "PROPFIND", Status: 207},
			map[RequestClass]uint64{{"OTHER", "2xx"}: 1}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c requestCounts
			c.add(tt.report)
			if !maps.Equal(c.byClass, tt.wantClass) {
				t.Errorf("classes %v, want %v", c.byClass, tt.wantClass)
			}
			if c.retries != tt.wantRetries {
				t.Errorf("retries %d, want %d", c.retries, tt.wantRetries)
			}
			wantCount := uint64(len(tt.wantClass))
			if c.duration.Count != wantCount {
				t.Errorf("histogram count %d, want %d", c.duration.Count, wantCount)
			}
		})
	}
}

func TestGRPCCounts(t *testing.T) {
	var c requestCounts
	for _, r := range []Report{
		{Final: true, Method: "POST", Status: 200, GRPC: true, GRPCStatus: 0},
		{Final: true, Method: "POST", Status: 200, GRPC: true, GRPCStatus: 14},
		{Final: true, Method: "POST", Status: 200, GRPC: true, GRPCStatus: 14},
		{Final: true, Method: "POST", Status: 200, GRPC: true, GRPCStatus: 99}, // no such code: UNKNOWN
		{Final: true, Method: "GET", Status: 200},                              // not gRPC
		{Method: "POST", Status: 200, GRPC: true, GRPCStatus: 14},              // not final
	} {
		c.add(r)
	}
	if want := map[int]uint64{0: 1, 14: 2, 2: 1}; !maps.Equal(c.byGRPC, want) {
		t.Errorf("gRPC statuses %v, want %v", c.byGRPC, want)
	}
	if want := map[RequestClass]uint64{{"POST", "2xx"}: 4, {"GET", "2xx"}: 1}; !maps.Equal(c.byClass, want) {
		t.Errorf("classes %v, want %v: a gRPC call is a request too", c.byClass, want)
	}
}

// hist builds a Histogram with the given bucket counts (index: count).
func hist(counts map[int]uint64, sum float64) Histogram {
	h := Histogram{Counts: make([]uint64, len(DurationBuckets)+1), Sum: sum}
	for i, n := range counts {
		h.Counts[i] = n
		h.Count += n
	}
	return h
}

// equalHistogram reports whether a and b are equal.
func equalHistogram(a, b Histogram) bool {
	return slices.Equal(a.Counts, b.Counts) && a.Count == b.Count && a.Sum == b.Sum
}

func TestSelectorMetrics(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, _ := startSelector(t, testConfig(t, newSwitchProbe().Probe, urlA, urlB))
		ms := time.Millisecond
		sum := func(ds ...time.Duration) float64 {
			var secs float64
			for _, d := range ds {
				secs += d.Seconds()
			}
			return secs
		}

		// A GET answered by A.
		a := take(t, s, urlA)
		s.Report(Report{Backend: a, Status: 200, Method: "GET", Duration: ms, Final: true})
		// A POST whose first attempt at B broke and whose retry at A got a 502.
		b := take(t, s, urlB)
		s.Report(Report{Backend: b, Outcome: Failed, Err: errRefused, Method: "POST", Duration: 5 * ms})
		a, err := s.PickFor(t.Context(), "", []*Backend{b})
		if err != nil || a == nil || a.Name != urlA {
			t.Fatalf("PickFor(not B) = %v, %v; want A", a, err)
		}
		s.Report(Report{Backend: a, Status: 502, Method: "POST", Duration: 30 * ms, Final: true, Attempt: 1})
		// A PROPFIND answered by B.
		b = take(t, s, urlB)
		s.Report(Report{Backend: b, Status: 207, Method: "PROPFIND", Duration: 2 * ms, Final: true})
		// A DELETE whose client left while A worked on it.
		a = take(t, s, urlA)
		s.Report(Report{Backend: a, Outcome: ClientGone, Status: 499, Method: "DELETE", Duration: ms + 100*time.Nanosecond, Final: true})
		// Two requests that reached no backend: 503s.
		s.Report(Report{Status: 503, Method: "GET", Final: true})
		s.Report(Report{Status: 503, Method: "GET", Final: true})
		// A report for a backend this selector did not hand out counts nowhere.
		s.Report(Report{Backend: newBackend(t, urlA), Status: 200, Method: "GET", Final: true, Attempt: 1})
		synctest.Wait()

		m, err := s.Metrics(t.Context())
		if err != nil {
			t.Fatalf("Metrics: %v", err)
		}
		if len(m.Backends) != 2 || m.Backends[0].Name != urlA || m.Backends[1].Name != urlB {
			t.Fatalf("Metrics has backends %+v, want A and B", m.Backends)
		}
		ma, mb := m.Backends[0], m.Backends[1]
		wantA := map[RequestClass]uint64{{"GET", "2xx"}: 1, {"POST", "5xx"}: 1, {"DELETE", "4xx"}: 1}
		if !maps.Equal(ma.Requests, wantA) {
			t.Errorf("A's requests %v, want %v", ma.Requests, wantA)
		}
		if h := hist(map[int]uint64{0: 1, 1: 1, 5: 1}, sum(ms, 30*ms, ms+100*time.Nanosecond)); !equalHistogram(ma.Duration, h) {
			t.Errorf("A's durations %+v, want %+v", ma.Duration, h)
		}
		if ma.Retries != 1 {
			t.Errorf("A's retries %d, want 1", ma.Retries)
		}
		// B's broken first attempt counts as an attempt in its status, but
		// not as a request: the retry at A answered the client.
		wantB := map[RequestClass]uint64{{"OTHER", "2xx"}: 1}
		if !maps.Equal(mb.Requests, wantB) {
			t.Errorf("B's requests %v, want %v", mb.Requests, wantB)
		}
		if h := hist(map[int]uint64{1: 1}, sum(2*ms)); !equalHistogram(mb.Duration, h) {
			t.Errorf("B's durations %+v, want %+v", mb.Duration, h)
		}
		if mb.Retries != 0 || mb.BackendStatus.Requests != 2 || mb.BackendStatus.Failures != 1 {
			t.Errorf("B's metrics %+v, want no retries, 2 attempts, 1 failure", mb)
		}
		if want := map[RequestClass]uint64{{"GET", "5xx"}: 2}; !maps.Equal(m.NoBackend, want) {
			t.Errorf("NoBackend %v, want %v", m.NoBackend, want)
		}
		if m.Reloads != 0 {
			t.Errorf("Reloads %d, want 0", m.Reloads)
		}
		if st := fullStatus(t, s); ma.BackendStatus != st[0] || mb.BackendStatus != st[1] {
			t.Errorf("Metrics' statuses %+v, %+v; want Status' %+v", ma.BackendStatus, mb.BackendStatus, st)
		}
	})
}

func TestSelectorMetricsEmpty(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, _ := startSelector(t, testConfig(t, newSwitchProbe().Probe, urlA))
		m, err := s.Metrics(t.Context())
		if err != nil {
			t.Fatalf("Metrics: %v", err)
		}
		if len(m.Backends) != 1 {
			t.Fatalf("Metrics has %d backends, want 1", len(m.Backends))
		}
		b := m.Backends[0]
		if b.Requests == nil || len(b.Requests) != 0 || m.NoBackend == nil || len(m.NoBackend) != 0 {
			t.Errorf("requests %v, no backend %v; want empty, non-nil maps", b.Requests, m.NoBackend)
		}
		if h := hist(nil, 0); !equalHistogram(b.Duration, h) {
			t.Errorf("durations %+v, want %+v: one zero per bucket and the overflow", b.Duration, h)
		}
	})
}

func TestSelectorMetricsAreCopies(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, _ := startSelector(t, testConfig(t, newSwitchProbe().Probe, urlA))
		a := take(t, s, urlA)
		s.Report(Report{Backend: a, Status: 200, Method: "GET", Duration: time.Millisecond, Final: true})
		s.Report(Report{Status: 503, Method: "GET", Final: true})
		synctest.Wait()
		first, err := s.Metrics(t.Context())
		if err != nil {
			t.Fatalf("Metrics: %v", err)
		}
		second, err := s.Metrics(t.Context())
		if err != nil {
			t.Fatalf("Metrics: %v", err)
		}

		// Change everything the first snapshot can reach.
		first.Backends[0].Requests[RequestClass{"GET", "2xx"}] = 99
		first.Backends[0].Requests[RequestClass{"PUT", "2xx"}] = 99
		first.Backends[0].Duration.Counts[0] = 99
		first.Backends[0].Duration.Count = 99
		first.NoBackend[RequestClass{"GET", "5xx"}] = 99
		first.Backends[0].InFlight = 99
		first.Backends = append(first.Backends[:0], BackendMetrics{})

		third, err := s.Metrics(t.Context())
		if err != nil {
			t.Fatalf("Metrics: %v", err)
		}
		if len(third.Backends) != 1 {
			t.Fatalf("Metrics has %d backends, want 1", len(third.Backends))
		}
		got, want := third.Backends[0], second.Backends[0]
		if !maps.Equal(got.Requests, want.Requests) || !equalHistogram(got.Duration, want.Duration) ||
			got.BackendStatus != want.BackendStatus || !maps.Equal(third.NoBackend, second.NoBackend) {
			t.Errorf("after changing an earlier snapshot: Metrics = %+v, want %+v", third, second)
		}
		if n := got.Requests[RequestClass{"GET", "2xx"}]; n != 1 {
			t.Errorf("GET 2xx = %d, want 1", n)
		}
	})
}
