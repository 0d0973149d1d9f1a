package actors

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/roundhouse/roundhouse/internal/testenv"
)

func TestParseStatusRanges(t *testing.T) {
	tests := []struct {
		in      string
		want    StatusRanges
		str     string // String() of the result
		problem string // in the error; "" for none
	}{
		{in: "200-399", want: StatusRanges{{200, 399}}, str: "200-399"},
		{in: "200", want: StatusRanges{{200, 200}}, str: "200"},
		{in: "200,204,300-399", want: StatusRanges{{200, 200}, {204, 204}, {300, 399}}, str: "200,204,300-399"},
		{in: " 200 , 204 - 206 ", want: StatusRanges{{200, 200}, {204, 206}}, str: "200,204-206"},
		{in: "", problem: "want statuses such as 200-399"},
		{in: "ok", problem: `"ok": want a status such as 200 or a range such as 200-399`},
		{in: "200,", problem: `"": want a status`},
		{in: "200-", problem: `"200-": want a status`},
		{in: "99", problem: `"99": statuses run from 100 to 599`},
		{in: "200-600", problem: `"200-600": statuses run from 100 to 599`},
		{in: "399-200", problem: `"399-200": the range runs backwards`},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q", tt.in), func(t *testing.T) {
			got, err := ParseStatusRanges(tt.in)
			switch {
			case tt.problem != "" && (err == nil || !strings.Contains(err.Error(), tt.problem)):
				t.Fatalf("ParseStatusRanges = %v, %v; want an error containing %q", got, err, tt.problem)
			case tt.problem != "":
				return
			case err != nil:
				t.Fatalf("ParseStatusRanges: %v", err)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) || got.String() != tt.str {
				t.Errorf("ParseStatusRanges = %v (%s), want %v (%s)", got, got, tt.want, tt.str)
			}
		})
	}
	r := StatusRanges{{200, 200}, {300, 399}}
	for code, want := range map[int]bool{199: false, 200: true, 201: false, 300: true, 399: true, 400: false} {
		if r.Contains(code) != want {
			t.Errorf("%s contains %d: %v, want %v", r, code, !want, want)
		}
	}
}

// need is what a health server requires of a probe.
type need struct {
	host   string // "": any
	header string // "Name: value" the request must carry; "": none
}

// healthServer answers every path with code and body, but only when the
// request carries what n says; otherwise 421 (wrong Host) or 401 (missing
// header). It is closed when the test ends.
func healthServer(t *testing.T, code int, body string, n need) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(healthHandler(t, code, body, n))
	t.Cleanup(srv.Close)
	return srv
}

func healthHandler(t *testing.T, code int, body string, n need) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.host != "" && r.Host != n.host {
			w.WriteHeader(http.StatusMisdirectedRequest)
			return
		}
		if name, value, ok := strings.Cut(n.header, ": "); ok && r.Header.Get(name) != value {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.WriteHeader(code)
		_, _ = io.WriteString(w, body)
	})
}

// refusedURL is a loopback URL that nothing listens on.
func refusedURL(t *testing.T) (*url.URL, int) {
	t.Helper()
	addr := testenv.DeadAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	n, _ := strconv.Atoi(port)
	return &url.URL{Scheme: "http", Host: addr}, n
}

func TestHTTPCheckExpectations(t *testing.T) {
	far := strings.Repeat("x", MaxProbeBody) + "ok" // "ok" past what is read
	tests := []struct {
		name   string
		code   int
		body   string
		need   need
		check  HTTPCheck
		reason string // "" for a pass; else in the error
	}{
		{name: "the default passes a 200", code: 200},
		{name: "the default passes a 399", code: 399},
		{name: "the default fails a 503 and names the range", code: 503,
			reason: "health probe: GET /health: status 503, want 200-399"},
		{name: "an expected list passes a status in it", code: 204, check: HTTPCheck{Expect: StatusRanges{{200, 200}, {204, 204}}}},
		{name: "an expected list fails a redirect outside it", code: 302, check: HTTPCheck{Expect: StatusRanges{{200, 200}, {204, 204}}},
			reason: "status 302, want 200,204"},
		{name: "an expected 5xx range passes a 503", code: 503, check: HTTPCheck{Expect: StatusRanges{{500, 599}}}},
		{name: "a body pattern passes a matching body", code: 200, body: "ok\n", check: HTTPCheck{Body: regexp.MustCompile(`^ok\s*$`)}},
		{name: "a body pattern fails another body and names the pattern", code: 200, body: "degraded",
			check: HTTPCheck{Body: regexp.MustCompile(`^ok$`)}, reason: "health probe: GET /health: body does not match ^ok$"},
		{name: "a body pattern is matched within the first 64 KiB", code: 200, body: "ok" + strings.Repeat("x", 100<<10),
			check: HTTPCheck{Body: regexp.MustCompile(`^ok`)}},
		{name: "a body pattern past 64 KiB is not seen", code: 200, body: far,
			check: HTTPCheck{Body: regexp.MustCompile(`ok`)}, reason: "body does not match ok"},
		{name: "a wrong status is the reason even when the body matches", code: 500, body: "ok",
			check: HTTPCheck{Body: regexp.MustCompile(`^ok$`)}, reason: "status 500, want 200-399"},
		{name: "a Host header reaches the backend", code: 200, need: need{host: "health.example"},
			check: HTTPCheck{Host: "health.example"}},
		{name: "without the Host the backend wants the probe fails", code: 200, need: need{host: "health.example"},
			reason: "status 421, want 200-399"},
		{name: "an extra header reaches the backend", code: 200, need: need{header: "X-Probe-Token: s3cret"},
			check: HTTPCheck{Header: http.Header{"X-Probe-Token": {"s3cret"}}}},
		{name: "the User-Agent can be replaced", code: 200, need: need{header: "User-Agent: my-probe"},
			check: HTTPCheck{Header: http.Header{"User-Agent": {"my-probe"}}}},
		{name: "without the header the backend wants the probe fails", code: 200, need: need{header: "X-Probe-Token: s3cret"},
			reason: "status 401, want 200-399"},
		{name: "the path is the check's", code: 200, check: HTTPCheck{Path: "/ready", Expect: StatusRanges{{404, 404}}},
			reason: "GET /ready: status 200, want 404"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := healthServer(t, tt.code, tt.body, tt.need)
			err := callProbe(t, t.Context(), HTTPProbe(newTransport(t), tt.check), newBackend(t, srv.URL))
			switch {
			case tt.reason == "" && err != nil:
				t.Errorf("probe = %v, want a pass", err)
			case tt.reason != "" && err == nil:
				t.Errorf("probe passed, want a failure saying %q", tt.reason)
			case tt.reason != "" && !strings.Contains(err.Error(), tt.reason):
				t.Errorf("probe = %q, want it to say %q", err, tt.reason)
			}
		})
	}
}

func TestHTTPCheckPort(t *testing.T) {
	// The traffic port says 503 on /health; the health port says 200.
	traffic := healthServer(t, 503, "", need{})
	health := healthServer(t, 200, "", need{})
	port := health.Listener.Addr().(*net.TCPAddr).Port
	b := newBackend(t, traffic.URL)

	if err := callProbe(t, t.Context(), HTTPProbe(newTransport(t), HTTPCheck{}), b); err == nil {
		t.Error("the traffic port's 503 passed")
	}
	if err := callProbe(t, t.Context(), HTTPProbe(newTransport(t), HTTPCheck{Port: port}), b); err != nil {
		t.Errorf("probe of the health port = %v, want a pass", err)
	}

	// A health port nothing listens on: the reason names the address.
	_, closed := refusedURL(t)
	err := callProbe(t, t.Context(), HTTPProbe(newTransport(t), HTTPCheck{Port: closed}), b)
	want := fmt.Sprintf("health probe: dial tcp 127.0.0.1:%d: connect: connection refused", closed)
	if !errors.Is(err, syscall.ECONNREFUSED) || !strings.Contains(err.Error(), want) {
		t.Errorf("probe = %v, want %q", err, want)
	}

	// A status failure on the health port names the URL probed.
	sick := healthServer(t, 500, "", need{})
	sickPort := sick.Listener.Addr().(*net.TCPAddr).Port
	err = callProbe(t, t.Context(), HTTPProbe(newTransport(t), HTTPCheck{Port: sickPort}), b)
	want = fmt.Sprintf("GET http://127.0.0.1:%d/health: status 500, want 200-399", sickPort)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("probe = %v, want %q", err, want)
	}
}

func TestHTTPCheckHTTPS(t *testing.T) {
	srv := httptest.NewUnstartedServer(healthHandler(t, 200, "ok", need{}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake
	srv.StartTLS()
	t.Cleanup(srv.Close)
	b := newBackend(t, srv.URL) // https://127.0.0.1:port
	check := HTTPCheck{Body: regexp.MustCompile("^ok$")}

	trusted := x509.NewCertPool()
	trusted.AddCert(srv.Certificate())
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: trusted}}
	t.Cleanup(tr.CloseIdleConnections)
	if err := callProbe(t, t.Context(), HTTPProbe(tr, check), b); err != nil {
		t.Errorf("probe over TLS with the backend's CA = %v, want a pass", err)
	}

	untrusted := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: x509.NewCertPool()}}
	t.Cleanup(untrusted.CloseIdleConnections)
	err := callProbe(t, t.Context(), HTTPProbe(untrusted, check), b)
	if err == nil || !strings.Contains(err.Error(), "certificate signed by unknown authority") {
		t.Errorf("probe without the CA = %v, want a certificate error", err)
	}
}

// watchedLog is an hclog output whose readers can wait for a line.
type watchedLog struct {
	mu   sync.Mutex
	buf  strings.Builder
	grew chan struct{} // closed and replaced on every write
}

func (l *watchedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	close(l.grew)
	l.grew = make(chan struct{})
	return len(p), nil
}

// waitFor returns the first line matching re, failing the test after 10s.
func (l *watchedLog) waitFor(t *testing.T, re string) string {
	t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.After(10 * time.Second)
	for {
		l.mu.Lock()
		m := rx.FindString(l.buf.String())
		grew := l.grew
		l.mu.Unlock()
		if m != "" {
			return m
		}
		select {
		case <-grew:
		case <-deadline:
			t.Fatalf("no line matching %q in:\n%s", re, l.buf.String())
		}
	}
}

func TestHealthCheckReasonsReachTheLogAndStatus(t *testing.T) {
	// One check for every backend: status 200 exactly, body "ok", Host
	// health.example and a token header. Each sick backend breaks one rule.
	check := HTTPCheck{
		Expect: StatusRanges{{200, 200}}, Body: regexp.MustCompile(`^ok$`), Host: "health.example",
		Header: http.Header{"X-Probe-Token": {"s3cret"}},
	}
	wants := need{host: "health.example", header: "X-Probe-Token: s3cret"}
	healthy := healthServer(t, 200, "ok", wants)
	refused, _ := refusedURL(t)
	sick := map[string]string{ // URL → the reason its DOWN line must give
		healthServer(t, 503, "ok", wants).URL:                                "status 503, want 200",
		healthServer(t, 204, "", wants).URL:                                  "status 204, want 200",
		healthServer(t, 200, "degraded", wants).URL:                          "body does not match ^ok$",
		healthServer(t, 200, "ok", need{host: "other.example"}).URL:          "status 421, want 200",
		healthServer(t, 200, "ok", need{header: "X-Probe-Token: other"}).URL: "status 401, want 200",
		refused.String(): "dial tcp " + refused.Host + ": connect: connection refused",
	}
	raws := []string{healthy.URL}
	for u := range sick {
		raws = append(raws, u)
	}
	tr := newTransport(t)
	out := &watchedLog{grew: make(chan struct{})}
	cfg := Config{
		Backends: configs(parseURLs(t, raws...)),
		Monitor:  MonitorConfig{Check: check, Transport: tr, Interval: 20 * time.Millisecond, Timeout: 5 * time.Second, Rise: 1, Fall: 1},
		Logger:   hclog.New(&hclog.LoggerOptions{Name: "selector", Output: out, Level: hclog.Info, DisableTime: true}),
	}
	s, _ := startSelector(t, cfg)
	for u, reason := range sick {
		line := out.waitFor(t, `backend down: backend=`+regexp.QuoteMeta(u)+` .*`)
		if want := "last: health probe: "; !strings.Contains(line, want) || !strings.Contains(line, reason) {
			t.Errorf("down line %q, want it to give the reason %q", line, reason)
		}
		st := statusOf(t, s, u)
		full, err := s.Status(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range full {
			if f.Name == u && !strings.Contains(f.LastProbeError, reason) {
				t.Errorf("%s: last_probe_error %q, want %q", u, f.LastProbeError, reason)
			}
		}
		if st.Up {
			t.Errorf("%s: up after its down line", u)
		}
	}
	if up := statusOf(t, s, healthy.URL); !up.Up {
		t.Errorf("the healthy backend is down: %+v", up)
	}
}
