package admin

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/roundhouse/roundhouse/actors"
)

// scrape fetches /metrics and parses it with the Prometheus text parser.
func (f *fixture) scrape(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	a := f.call(t, request{method: "GET", path: "/metrics"})
	if a.code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", a.code, a.body)
	}
	if ct := a.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("Content-Type %q, want the text format", ct)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(a.body))
	if err != nil {
		t.Fatalf("parsing /metrics: %v\n%s", err, a.body)
	}
	return fams
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// sum adds the values of family's samples whose labels include want.
func sum(t *testing.T, fams map[string]*dto.MetricFamily, family string, want map[string]string) float64 {
	t.Helper()
	fam, ok := fams[family]
	if !ok {
		t.Fatalf("no metric %s", family)
	}
	total := 0.0
next:
	for _, m := range fam.GetMetric() {
		for k, v := range want {
			if label(m, k) != v {
				continue next
			}
		}
		switch fam.GetType() {
		case dto.MetricType_COUNTER:
			total += m.GetCounter().GetValue()
		case dto.MetricType_GAUGE:
			total += m.GetGauge().GetValue()
		case dto.MetricType_HISTOGRAM:
			total += float64(m.GetHistogram().GetSampleCount())
		default:
			t.Fatalf("%s: unexpected type %v", family, fam.GetType())
		}
	}
	return total
}

func TestMetricsCountEveryRequestExactly(t *testing.T) {
	f := newFixture(t, fixtureOptions{}, "a", "b")
	a, b := f.originURL(0), f.originURL(1)
	// 30 requests over two backends, round-robin: 15 each. 20 GET / (200),
	// 6 GET /teapot (418), 4 POST / (200).
	const get, teapot, post = 20, 6, 4
	for i := range get + teapot + post {
		method, path := "GET", "/"
		switch {
		case i >= get+teapot:
			method = "POST"
		case i >= get:
			path = "/teapot"
		}
		if _, _, err := f.send(method, path); err != nil {
			t.Fatal(err)
		}
	}
	// Then both backends out of rotation: 5 requests that reach none (503).
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, st := range f.status(t) {
		if err := f.sel.SetEnabled(ctx, st.ID, false); err != nil {
			t.Fatal(err)
		}
	}
	const unserved = 5
	for range unserved {
		if code, _ := f.get(t, "/"); code != http.StatusServiceUnavailable {
			t.Fatalf("with every backend disabled the proxy answered %d, want 503", code)
		}
	}
	const total = get + teapot + post + unserved

	// Each request is counted when its handler reports to the selector,
	// just after the client has its answer: scrape until all are in.
	var fams map[string]*dto.MetricFamily
	eventually(t, func() string { return fmt.Sprintf("%d requests in roundhouse_requests_total", total) }, func() bool {
		fams = f.scrape(t)
		return sum(t, fams, "roundhouse_requests_total", nil) >= total
	})
	checks := []struct {
		name   string
		family string
		labels map[string]string
		want   float64
	}{
		{"every request is counted once", "roundhouse_requests_total", nil, total},
		{"backend a answered half", "roundhouse_requests_total", map[string]string{"backend": a}, 15},
		{"backend b answered half", "roundhouse_requests_total", map[string]string{"backend": b}, 15},
		{"requests that reached no backend are labelled none", "roundhouse_requests_total", map[string]string{"backend": "none"}, unserved},
		{"unserved requests are 5xx", "roundhouse_requests_total", map[string]string{"backend": "none", "code": "5xx", "method": "GET"}, unserved},
		{"200s are 2xx", "roundhouse_requests_total", map[string]string{"code": "2xx"}, get + post},
		{"418s are 4xx", "roundhouse_requests_total", map[string]string{"code": "4xx"}, teapot},
		{"POSTs are counted by method", "roundhouse_requests_total", map[string]string{"method": "POST"}, post},
		{"the histograms count the requests backends answered", "roundhouse_request_duration_seconds", nil, get + teapot + post},
		{"a's histogram counts a's requests", "roundhouse_request_duration_seconds", map[string]string{"backend": a}, 15},
		{"attempts are per backend", "roundhouse_backend_attempts_total", map[string]string{"backend": b}, 15},
		{"no attempt failed", "roundhouse_backend_failures_total", nil, 0},
		{"nothing was retried", "roundhouse_retries_total", nil, 0},
		{"nothing is in flight", "roundhouse_backend_in_flight_requests", nil, 0},
		{"both backends are healthy", "roundhouse_backend_up", nil, 2},
		{"both backends are disabled", "roundhouse_backend_state", map[string]string{"state": "disabled"}, 2},
		{"no backend is in the up state", "roundhouse_backend_state", map[string]string{"state": "up"}, 0},
		{"every backend has exactly one state", "roundhouse_backend_state", nil, 2},
		{"weights are reported", "roundhouse_backend_weight", nil, 2},
		{"no probe failed", "roundhouse_health_probe_failures_total", nil, 0},
		{"no reload yet", "roundhouse_config_reloads_total", nil, 0},
		{"every request is counted by protocol", "roundhouse_requests_by_protocol_total", nil, total},
		{"the client spoke HTTP/1.1", "roundhouse_requests_by_protocol_total", map[string]string{"proto": "HTTP/1.1"}, total},
	}
	for _, c := range checks {
		if got := sum(t, fams, c.family, c.labels); got != c.want {
			t.Errorf("%s: %s%v = %v, want %v", c.name, c.family, c.labels, got, c.want)
		}
	}
	if n := len(fams["roundhouse_health_probes_total"].GetMetric()); n != 2 {
		t.Errorf("%d roundhouse_health_probes_total series, want one per backend", n)
	}
	for _, std := range []string{"go_goroutines", "process_cpu_seconds_total"} {
		if _, ok := fams[std]; !ok {
			t.Errorf("standard metric %s missing", std)
		}
	}

	// The histogram's buckets are cumulative, on actors.DurationBuckets
	// and then +Inf, which holds the total count.
	for _, m := range fams["roundhouse_request_duration_seconds"].GetMetric() {
		h := m.GetHistogram()
		buckets := h.GetBucket()
		if len(buckets) != len(actors.DurationBuckets)+1 {
			t.Fatalf("%d buckets, want %d and +Inf", len(buckets), len(actors.DurationBuckets))
		}
		prev := uint64(0)
		for i, bk := range buckets {
			le := math.Inf(1)
			if i < len(actors.DurationBuckets) {
				le = actors.DurationBuckets[i]
			}
			if bk.GetUpperBound() != le || bk.GetCumulativeCount() < prev {
				t.Errorf("bucket %d: le=%v count %d after %d: not cumulative on DurationBuckets", i, bk.GetUpperBound(), bk.GetCumulativeCount(), prev)
			}
			prev = bk.GetCumulativeCount()
		}
		if prev != h.GetSampleCount() || h.GetSampleCount() != 15 || h.GetSampleSum() <= 0 {
			t.Errorf("backend %s: +Inf bucket %d, count %d, sum %v; want 15, 15 and a positive sum", label(m, "backend"), prev, h.GetSampleCount(), h.GetSampleSum())
		}
	}

	// A reload counts.
	if err := f.sel.Reconfigure(ctx, actors.Config{Backends: nil}); err != nil {
		t.Fatal(err)
	}
	if got := sum(t, f.scrape(t), "roundhouse_config_reloads_total", nil); got != 1 {
		t.Errorf("roundhouse_config_reloads_total = %v after one reload, want 1", got)
	}
}

func TestMetricsShowABackendGoingDown(t *testing.T) {
	f := newFixture(t, fixtureOptions{monitor: actors.MonitorConfig{Interval: 20 * time.Millisecond, Rise: 1, Fall: 1}}, "a", "b")
	f.origins[1].setSick(true)
	b := f.originURL(1)
	var fams map[string]*dto.MetricFamily
	eventually(t, func() string { return "backend b down in /metrics" }, func() bool {
		fams = f.scrape(t)
		return sum(t, fams, "roundhouse_backend_up", map[string]string{"backend": b}) == 0
	})
	if got := sum(t, fams, "roundhouse_backend_state", map[string]string{"backend": b, "state": "down"}); got != 1 {
		t.Errorf("b's down state gauge = %v, want 1", got)
	}
	if got := sum(t, fams, "roundhouse_backend_up", nil); got != 1 {
		t.Errorf("%v backends up, want 1", got)
	}
	if got := sum(t, fams, "roundhouse_health_probe_failures_total", map[string]string{"backend": b}); got < 1 {
		t.Errorf("b's probe failures = %v, want at least 1", got)
	}
	if got := sum(t, fams, "roundhouse_health_probes_total", map[string]string{"backend": b}); got < 1 {
		t.Errorf("b's probes = %v, want at least 1", got)
	}
}

func TestCumulativeBuckets(t *testing.T) {
	counts := make([]uint64, len(actors.DurationBuckets)+1)
	counts[0], counts[2], counts[len(counts)-1] = 1, 3, 5 // the last: over every bound
	got := cumulative(actors.Histogram{Counts: counts, Count: 9})
	want := map[float64]uint64{}
	for i, le := range actors.DurationBuckets {
		switch {
		case i < 2:
			want[le] = 1
		default:
			want[le] = 4
		}
	}
	for le, n := range want {
		if got[le] != n {
			t.Errorf("le=%v: %d, want %d", le, got[le], n)
		}
	}
	if len(got) != len(actors.DurationBuckets) {
		t.Errorf("%d buckets, want %d (+Inf is the count)", len(got), len(actors.DurationBuckets))
	}
}
