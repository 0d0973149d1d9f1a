package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2/client"

	"github.com/roundhouse/roundhouse/internal/testenv"
)

// faultToxic is one row of the matrix: a toxic put on the first backend's
// Toxiproxy for one phase. Downstream is the backend's answer towards the
// balancer, upstream the request towards the backend.
type faultToxic struct {
	name, kind, stream string
	attrs              toxiproxy.Attributes
	// allowSavable lets the toxic cause client errors that a retry could
	// have saved; none does today: the balancer retries those itself.
	allowSavable bool
	// avoidBy, if set, is how the balancer must take b0 out of rotation
	// during the phase ("ejected": well before its probes would fail).
	avoidBy string
}

var faultToxics = []faultToxic{
	{name: "none (baseline)"},
	{name: "latency 300ms ±200ms", kind: "latency", stream: "downstream", attrs: toxiproxy.Attributes{"latency": 300, "jitter": 200}},
	{name: "timeout (black hole)", kind: "timeout", stream: "downstream", attrs: toxiproxy.Attributes{"timeout": 0}, avoidBy: "ejected"},
	{name: "bandwidth 4 KB/s", kind: "bandwidth", stream: "downstream", attrs: toxiproxy.Attributes{"rate": 4}},
	{name: "slow_close 2s", kind: "slow_close", stream: "downstream", attrs: toxiproxy.Attributes{"delay": 2000}},
	{name: "reset_peer upstream", kind: "reset_peer", stream: "upstream", attrs: toxiproxy.Attributes{"timeout": 0}, avoidBy: "ejected"},
	{name: "reset_peer downstream", kind: "reset_peer", stream: "downstream", attrs: toxiproxy.Attributes{"timeout": 0}, avoidBy: "ejected"},
	{name: "limit_data 2 KiB down", kind: "limit_data", stream: "downstream", attrs: toxiproxy.Attributes{"bytes": 2048}},
	{name: "slicer 16±8 B, 100µs", kind: "slicer", stream: "downstream", attrs: toxiproxy.Attributes{"average_size": 16, "size_variation": 8, "delay": 100}},
}

// faultRow is what one phase measured.
type faultRow struct {
	toxic                     string
	ops, errs, savable, other int
	retried                   int
	mismatched, replayed      int
	avoided                   string
	othersP99, baseP99        time.Duration
	examples                  []string
}

// TestFaultMatrix puts Toxiproxy between roundhouse and each of three
// backends, runs a steady mixed load (GET, POST with bodies, streams,
// WebSockets) and puts one toxic at a time on the first backend. For each
// it measures the client errors (split into those a retry could have
// saved and those it could not), how long until the balancer avoided the
// faulty backend and by what, and the p99 of the requests the other
// backends answered at the first attempt; and it checks that no body was
// ever mismatched, no POST reached a backend twice, and no goroutine or fd
// of the balancer leaked. The matrix is printed with -v; docs/faults.md
// carries it.
func TestFaultMatrix(t *testing.T) {
	if testing.Short() {
		t.Skip("fault matrix skipped in -short mode")
	}
	phase := 3 * time.Second
	if longVariant("ROUNDHOUSE_FAULTS_LONG") {
		phase = 15 * time.Second
	}
	toxiBin := faultToxiproxy(t)

	apiAddr := testenv.FreeAddr(t)
	host, port, _ := strings.Cut(apiAddr, ":")
	tp := startWith(t, procOptions{name: "toxiproxy", bin: toxiBin}, "-host", host, "-port", port)
	tox := toxiproxy.NewClient(apiAddr)
	if !faultPoll(20*time.Second, func() bool { _, err := tox.Proxies(); return err == nil }) {
		t.Fatalf("toxiproxy's API did not answer within 20s:\n%s", tp.output())
	}

	var backends []*faultBackend
	var proxies []*toxiproxy.Proxy
	args := []string{"--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--trusted-proxy", "127.0.0.1/32",
		"--retries", "2", "--response-header-timeout", "1s",
		"--health-interval", "500ms", "--health-timeout", "1s", "--fall", "2", "--rise", "1",
		"--eject-after", "5", "--eject-time", "2s", "--backend-idle-timeout", "2s"}
	for i := range 3 {
		b := faultStartBackend(t, fmt.Sprintf("b%d", i))
		px, err := tox.CreateProxy(b.name, testenv.FreeAddr(t), b.addr)
		if err != nil {
			t.Fatalf("toxiproxy: creating the proxy for %s: %v", b.name, err)
		}
		backends, proxies = append(backends, b), append(proxies, px)
		args = append(args, "--backend", "http://"+px.Listen)
	}
	faulty := "http://" + proxies[0].Listen

	rh := startWith(t, procOptions{name: "roundhouse"}, args...)
	m := rh.waitForMatch(t, faultListening)
	addr, admin := m[1], m[2]
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	t.Cleanup(client.CloseIdleConnections)
	load := &faultLoad{url: "http://" + addr, addr: addr, client: client}

	// Warm up, then take the balancer's goroutines and fds at rest.
	warm, stop := context.WithTimeout(context.Background(), time.Second)
	load.phase = "warmup"
	load.run(warm)
	stop()
	load.take()
	faultAllUp(t, admin)
	client.CloseIdleConnections()
	goroutinesBefore, fdsBefore := faultRest(t, admin, rh, 0, 0)

	var rows []faultRow
	var baseP99 time.Duration
	for _, tx := range faultToxics {
		row := faultRow{toxic: tx.name}
		load.phase = strings.Fields(tx.name)[0] + "-" + tx.stream
		from := len(rh.lines(0))
		t0 := time.Now()
		if tx.kind != "" {
			if _, err := proxies[0].AddToxic("fault", tx.kind, tx.stream, 1, tx.attrs); err != nil {
				t.Fatalf("%s: adding the toxic: %v", tx.name, err)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), phase)
		load.run(ctx)
		cancel()
		if tx.kind != "" {
			if err := proxies[0].RemoveToxic("fault"); err != nil {
				t.Fatalf("%s: removing the toxic: %v", tx.name, err)
			}
		}
		results := load.take()
		// Every access log line of the phase has been written once the
		// balancer has nothing in flight; then the backends are back.
		faultAllUp(t, admin)
		access := faultAccess(rh.lines(from))
		row.avoided = faultAvoided(rh.lines(from), faulty, t0)

		posts := map[string]int{}
		for _, b := range backends {
			b.addPosts(posts)
		}
		var others []time.Duration
		for _, r := range results {
			row.ops++
			if r.kind == http.MethodPost && posts[r.id] > 1 {
				row.replayed++
				row.examples = append(row.examples, fmt.Sprintf("POST %s reached backends %d times", r.id, posts[r.id]))
			}
			a, logged := access[r.id]
			if logged && a.attempts > 1 {
				row.retried++
			}
			switch {
			case r.fail == "mismatch":
				row.mismatched++
				row.examples = append(row.examples, fmt.Sprintf("%s %s mismatched: %s", r.kind, r.id, r.err))
			case r.fail != "":
				row.errs++
				if r.savable() {
					row.savable++
				} else {
					row.other++
				}
				if len(row.examples) < 6 {
					row.examples = append(row.examples, fmt.Sprintf("%s %s %s (status %d, backend %q, %v): %.120s",
						r.kind, r.id, r.fail, r.status, a.backend, r.dur.Round(time.Millisecond), r.err))
				}
			case (r.kind == "GET" || r.kind == http.MethodPost) && logged && a.attempts <= 1 && a.backend != faulty:
				others = append(others, r.dur)
			}
		}
		row.othersP99 = percentile99(others)
		if tx.kind == "" {
			baseP99 = row.othersP99
		}
		row.baseP99 = baseP99
		rows = append(rows, row)

		if row.mismatched > 0 || row.replayed > 0 {
			t.Errorf("%s: %d bodies mismatched and %d POSTs replayed, want none: %q", tx.name, row.mismatched, row.replayed, row.examples)
		}
		if row.savable > 0 && !tx.allowSavable {
			t.Errorf("%s: %d client errors a retry could have saved: %q", tx.name, row.savable, row.examples)
		}
		if row.othersP99 >= time.Second {
			t.Errorf("%s: the other backends' p99 is %v, want below the 1s response-header timeout: the fault slowed them", tx.name, row.othersP99)
		}
		if tx.avoidBy != "" && !strings.Contains(row.avoided, tx.avoidBy) {
			t.Errorf("%s: b0 avoided after %q, want %s", tx.name, row.avoided, tx.avoidBy)
		}
		if tx.kind == "" && row.errs > 0 {
			t.Errorf("baseline: %d client errors, want none: %q", row.errs, row.examples)
		}
	}

	client.CloseIdleConnections()
	goroutinesAfter, fdsAfter := faultRest(t, admin, rh, goroutinesBefore, fdsBefore)
	faultPrint(t, rows, phase, goroutinesBefore, goroutinesAfter, fdsBefore, fdsAfter)
	rh.stop(t)
}

// faultLogged is what the balancer's access log says of one request.
type faultLogged struct {
	backend  string
	attempts int
}

var faultAccessLine = regexp.MustCompile(`request: .*backend=(\S+) status=\d+ .*request_id=(\S+)(?: attempts=(\d+))?`)

// faultAccess reads the access log lines among lines, by request ID.
func faultAccess(lines []outputLine) map[string]faultLogged {
	m := map[string]faultLogged{}
	for _, l := range lines {
		if s := faultAccessLine.FindStringSubmatch(l.text); s != nil {
			n := 1
			if s[3] != "" {
				n, _ = strconv.Atoi(s[3])
			}
			m[s[2]] = faultLogged{backend: s[1], attempts: n}
		}
	}
	return m
}

// faultAvoided says how long after t0 the balancer first took the faulty
// backend out of rotation (by ejection, passive health or probes), from its
// log; "-" when it never did.
func faultAvoided(lines []outputLine, faulty string, t0 time.Time) string {
	for _, l := range lines {
		if !strings.Contains(l.text, "backend="+faulty) {
			continue
		}
		d := l.at.Sub(t0).Round(10 * time.Millisecond)
		switch {
		case strings.Contains(l.text, "backend ejected"):
			return fmt.Sprintf("%v (ejected)", d)
		case strings.Contains(l.text, "backend down") && strings.Contains(l.text, `reason="passive`):
			return fmt.Sprintf("%v (passive)", d)
		case strings.Contains(l.text, "backend down"):
			return fmt.Sprintf("%v (probe)", d)
		}
	}
	return "-"
}

// faultStatus is the admin API's GET /status.
func faultStatus(t *testing.T, admin string) []struct {
	URL      string `json:"url"`
	State    string `json:"state"`
	InFlight int    `json:"in_flight"`
} {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/status")
	if err != nil {
		t.Fatalf("admin status: %v", err)
	}
	defer resp.Body.Close()
	var st struct {
		Backends []struct {
			URL      string `json:"url"`
			State    string `json:"state"`
			InFlight int    `json:"in_flight"`
		} `json:"backends"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatalf("admin status: %v", err)
	}
	return st.Backends
}

// faultAllUp waits up to 20s until every backend is up, in rotation and
// has nothing in flight.
func faultAllUp(t *testing.T, admin string) {
	t.Helper()
	var last any
	ok := faultPoll(20*time.Second, func() bool {
		st := faultStatus(t, admin)
		last = st
		for _, b := range st {
			if b.State != "up" || b.InFlight != 0 {
				return false
			}
		}
		return true
	})
	if !ok {
		t.Fatalf("backends not all up and idle within 20s: %+v", last)
	}
}

// faultRest waits until the balancer, idle, has no more goroutines and fds
// than before plus a margin (pooled connections closing, the GC), and
// returns the counts. With before 0 it takes the first reading after a
// moment's quiet.
func faultRest(t *testing.T, admin string, rh *proc, goroutinesBefore, fdsBefore int) (goroutines, fds int) {
	t.Helper()
	read := func() {
		goroutines = int(metric(t, "http://"+admin+"/metrics", "go_goroutines"))
		fds = rh.openFDs(t)
	}
	if goroutinesBefore == 0 {
		read()
		return goroutines, fds
	}
	// Pooled backend connections close after --backend-idle-timeout (2s).
	if !faultPoll(15*time.Second, func() bool {
		read()
		return goroutines <= goroutinesBefore+4 && fds <= fdsBefore+4
	}) {
		t.Errorf("the balancer idles with %d goroutines and %d fds, it had %d and %d before the faults: a leak",
			goroutines, fds, goroutinesBefore, fdsBefore)
	}
	return goroutines, fds
}

// faultPrint logs the matrix as a Markdown table.
func faultPrint(t *testing.T, rows []faultRow, phase time.Duration, gb, ga, fb, fa int) {
	var b strings.Builder
	fmt.Fprintf(&b, "fault matrix: %v per toxic, on b0 of three backends; %d goroutines and %d fds at rest before, %d and %d after\n\n", phase, gb, fb, ga, fa)
	w := tabwriter.NewWriter(&b, 0, 0, 1, ' ', tabwriter.Debug)
	fmt.Fprintln(w, "| toxic on b0\t ops\t retried\t errors: retry could save\t could not\t b0 avoided after\t others' p99\t mismatched\t POSTs replayed\t")
	fmt.Fprintln(w, "|---\t---\t---\t---\t---\t---\t---\t---\t---\t")
	for _, r := range rows {
		fmt.Fprintf(w, "| %s\t %d\t %d\t %d\t %d\t %s\t %v\t %d\t %d\t\n", r.toxic, r.ops, r.retried, r.savable, r.other,
			r.avoided, r.othersP99.Round(time.Millisecond), r.mismatched, r.replayed)
	}
	w.Flush()
	for _, r := range rows {
		for _, e := range r.examples {
			fmt.Fprintf(&b, "%s: %s\n", r.toxic, e)
		}
	}
	t.Log("\n" + b.String())
}
