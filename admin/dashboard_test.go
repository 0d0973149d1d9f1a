package admin

import (
	"context"
	"flag"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/sourcegraph/conc"

	"github.com/roundhouse/roundhouse/actors"
)

var screenshot = flag.String("dashboard.screenshot", os.Getenv("ROUNDHOUSE_DASHBOARD_SCREENSHOT"),
	"save a PNG screenshot of the dashboard test's page to this `path` (default $ROUNDHOUSE_DASHBOARD_SCREENSHOT)")

// chromium returns the path of a Chromium or Chrome binary, or skips the
// test when there is none. It is the only reason these tests skip.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("no Chromium on PATH (looked for chromium, chromium-browser, google-chrome): " +
		"install Debian's chromium package (apt-get install chromium) to run the dashboard tests")
	return ""
}

// newBrowser starts a headless Chromium with a fresh profile and returns
// the context of its first tab. The browser starts at once, bound to no
// deadline; each step bounds itself (see step). Cleanup closes the browser
// and waits until its process and chromedp's goroutines have ended, so
// goleak sees none of them.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	exe := chromium(t)
	allocCtx, stopAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(exe),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-breakpad", true),
		chromedp.Flag("disable-dev-shm-usage", true), // /dev/shm is small in containers
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1366, 600),
	)
	ctx, closeTab := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		if err := chromedp.Cancel(ctx); err != nil {
			t.Logf("closing the browser: %v", err)
		}
		closeTab()
		stopAlloc() // waits for the browser process to exit
	})
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting %s: %v", exe, err)
	}
	return ctx
}

// step runs browser actions with a deadline, failing the test with what
// it was doing if they do not finish in time.
func step(t *testing.T, ctx context.Context, what string, timeout time.Duration, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := chromedp.Do(sctx, actions...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// value runs one browser action that returns a value, with a deadline.
func value[T any](t *testing.T, ctx context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(sctx, a)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return v
}

func row(id string) string { return `tr[data-id="` + id + `"]` }

func rowIn(id, state string) chromedp.CSS {
	return chromedp.CSS(row(id) + `[data-state="` + state + `"]`)
}

// traffic sends requests through the proxy, one every 10 ms, until the
// test ends, so the dashboard has rates to show. Its goroutine is owned by
// the test's cleanup, which stops it and waits.
func traffic(t *testing.T, f *fixture) {
	stop := make(chan struct{})
	var wg conc.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for range 6000 { // at most a minute
			select {
			case <-stop:
				return
			case <-tick.C:
				_, _, _ = f.send("GET", "/") // the dashboard test checks the page, not these
			}
		}
	})
	t.Cleanup(func() { close(stop); wg.Wait() })
}

func TestDashboardShowsEveryBackendAndADownBackendWithinSeconds(t *testing.T) {
	ctx := newBrowser(t)
	f := newFixture(t, fixtureOptions{monitor: actors.MonitorConfig{Interval: 100 * time.Millisecond, Rise: 1, Fall: 1}}, "a", "b", "c")
	st := f.status(t)
	a, b, c := st[0].ID, st[1].ID, st[2].ID
	traffic(t, f)

	step(t, ctx, "opening the dashboard", 20*time.Second,
		chromedp.Navigate(f.admin+"/"),
		chromedp.WaitVisible(rowIn(a, "up")), chromedp.WaitVisible(rowIn(b, "up")), chromedp.WaitVisible(rowIn(c, "up")))
	for i, id := range []string{a, b, c} {
		if got := value(t, ctx, "reading a row's URL", chromedp.Text(chromedp.CSS(row(id)+` .url`))); got != f.originURL(i) {
			t.Errorf("row %s shows %q, want %s", id, got, f.originURL(i))
		}
	}
	if got := value(t, ctx, "reading the summary", chromedp.Text(chromedp.ID("summary"))); got != "3 backends: 3 up" {
		t.Errorf("summary %q, want 3 backends: 3 up", got)
	}

	// c's health check starts failing: its row turns DOWN within seconds.
	f.origins[2].setSick(true)
	began := time.Now()
	step(t, ctx, "waiting for c's row to show it down", 10*time.Second, chromedp.WaitVisible(rowIn(c, "down")))
	t.Logf("c's row showed DOWN %v after its health check began to fail", time.Since(began).Round(time.Millisecond))
	if got := value(t, ctx, "reading c's state", chromedp.Text(chromedp.CSS(row(c)+` .state`))); got != "DOWN" {
		t.Errorf("c's state badge says %q, want DOWN", got)
	}
	if got := value(t, ctx, "reading c's probe error", chromedp.Text(chromedp.CSS(row(c)+` td[data-col="error"]`))); !strings.Contains(got, "status 503") {
		t.Errorf("c's probe error cell says %q, want the 503", got)
	}

	// The Drain button drains a through the API.
	step(t, ctx, "draining a with its button", 10*time.Second,
		chromedp.Click(chromedp.CSS(row(a)+` button[data-action="drain"]`)),
		chromedp.WaitVisible(rowIn(a, "draining")))
	if got := byURL(t, f.status(t), f.originURL(0)).State; got != "draining" {
		t.Errorf("after the Drain button the selector has a %s, want draining", got)
	}
	if got := value(t, ctx, "reading the message", chromedp.Text(chromedp.ID("message"))); !strings.Contains(got, "now draining") {
		t.Errorf("the message says %q, want it to confirm the drain", got)
	}

	// b now takes all the traffic: its rate, computed by the page from
	// successive snapshots, rises above zero.
	rate := `parseFloat(document.querySelector('` + row(b) + ` td[data-col="rate"]').textContent) > 0`
	step(t, ctx, "waiting for b's request rate", 10*time.Second,
		chromedp.Poll[chromedp.Void](rate, chromedp.WithPollingInterval(50*time.Millisecond)))

	if *screenshot != "" {
		png := value(t, ctx, "taking a screenshot", chromedp.FullScreenshot(100))
		if err := os.WriteFile(*screenshot, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot saved to %s", *screenshot)
	}
}

func TestDashboardAsksForTheTokenAndSendsIt(t *testing.T) {
	ctx := newBrowser(t)
	const token = "dashboard-token-0123456789"
	f := newFixture(t, fixtureOptions{token: []byte(token)}, "a", "b")
	id := mustStatus(t, f, token)[1].ID

	step(t, ctx, "opening the dashboard without a token", 20*time.Second,
		chromedp.Navigate(f.admin+"/"),
		chromedp.WaitVisible(chromedp.ID("token-form")))
	if got := value(t, ctx, "reading the connection state", chromedp.Text(chromedp.ID("conn"))); got != "token needed" {
		t.Errorf("connection state %q, want token needed", got)
	}
	step(t, ctx, "entering the token", 20*time.Second,
		chromedp.SendKeys(chromedp.ID("token"), token),
		chromedp.Click(chromedp.CSS(`#token-form button[type="submit"]`)),
		chromedp.WaitVisible(rowIn(id, "up")),
		chromedp.WaitNotVisible(chromedp.ID("token-form")))
	step(t, ctx, "disabling b with its button", 10*time.Second,
		chromedp.Click(chromedp.CSS(row(id)+` button[data-action="disable"]`)),
		chromedp.WaitVisible(rowIn(id, "disabled")))

	// A token in the URL's fragment works too, and leaves the address bar.
	ctx2, closeTab := chromedp.NewContext(ctx) // a new tab: its own sessionStorage
	defer closeTab()
	if err := chromedp.Do(ctx2); err != nil { // opens the tab, bound to no deadline
		t.Fatal(err)
	}
	step(t, ctx2, "opening the dashboard with #token=", 20*time.Second,
		chromedp.Navigate(f.admin+"/#token="+token),
		chromedp.WaitVisible(rowIn(id, "disabled")))
	if loc := value(t, ctx2, "reading the location", chromedp.Evaluate[string](`location.href`)); strings.Contains(loc, token) {
		t.Errorf("the token stayed in the address bar: %s", loc)
	} else if !strings.HasPrefix(loc, f.admin) {
		t.Errorf("location %q, want the dashboard", loc)
	}
}

// mustStatus is GET /status with a token.
func mustStatus(t *testing.T, f *fixture, token string) []actors.BackendStatus {
	t.Helper()
	a := f.call(t, request{method: "GET", path: "/status", token: token})
	var st StatusResponse
	a.json(t, &st)
	if len(st.Backends) == 0 {
		t.Fatalf("no backends: %s", a.body)
	}
	return st.Backends
}

// poolRow is the CSS selector of backend id's row in pool's group.
func poolRow(pool, id string) string {
	return `tbody[data-pool="` + pool + `"] tr[data-id="` + id + `"]`
}

// With two pools the dashboard has a heading per pool, each backend's row
// under its pool, and its buttons act in that pool alone, even for a URL
// (and so an id) that both pools list.
func TestDashboardGroupsBackendsByPool(t *testing.T) {
	ctx := newBrowser(t)
	f := newPoolFixture(t, poolFixtureOptions{},
		poolSpec{name: DefaultPool, origins: []string{"a", "b"}},
		poolSpec{name: "api", origins: []string{"c"}, shared: []string{"default/0"}})
	shared := f.pool(t, DefaultPool).origins[0].srv.URL
	id := byURL(t, f.poolStatus(t, "api"), shared).ID
	idC := f.poolStatus(t, "api")[0].ID

	step(t, ctx, "opening the dashboard", 20*time.Second,
		chromedp.Navigate(f.admin+"/"),
		chromedp.WaitVisible(chromedp.CSS(poolRow("api", idC)+`[data-state="up"]`)),
		chromedp.WaitVisible(chromedp.CSS(poolRow(DefaultPool, id)+`[data-state="up"]`)))
	headings := value(t, ctx, "reading the pool headings", chromedp.Evaluate[[]string](
		`Array.from(document.querySelectorAll("tr.pool-head")).filter(e => e.offsetParent !== null).map(e => e.querySelector(".pool-name").textContent)`))
	if !slices.Equal(headings, []string{"Pool default", "Pool api"}) {
		t.Errorf("visible pool headings %q, want Pool default then Pool api", headings)
	}
	// Rows in pool order: default's two, then api's two.
	order := value(t, ctx, "reading the rows' order", chromedp.Evaluate[[]string](
		`Array.from(document.querySelectorAll("tr[data-id]")).map(e => e.dataset.pool + " " + e.querySelector(".url").textContent)`))
	want := []string{
		DefaultPool + " " + shared, DefaultPool + " " + f.pool(t, DefaultPool).origins[1].srv.URL,
		"api " + f.pool(t, "api").origins[0].srv.URL, "api " + shared,
	}
	if !slices.Equal(order, want) {
		t.Errorf("rows %q, want %q", order, want)
	}
	if got := value(t, ctx, "reading the summary", chromedp.Text(chromedp.ID("summary"))); got != "4 backends in 2 pools: 4 up" {
		t.Errorf("summary %q, want 4 backends in 2 pools: 4 up", got)
	}
	if got := value(t, ctx, "reading api's summary", chromedp.Text(chromedp.CSS(`tbody[data-pool="api"] .pool-summary`))); got != "2 backends: 2 up" {
		t.Errorf("api's heading says %q, want 2 backends: 2 up", got)
	}

	// Drain the shared URL in api with its button: default's stays up.
	step(t, ctx, "draining the shared backend in api", 10*time.Second,
		chromedp.Click(chromedp.CSS(poolRow("api", id)+` button[data-action="drain"]`)),
		chromedp.WaitVisible(chromedp.CSS(poolRow("api", id)+`[data-state="draining"]`)))
	if got := byURL(t, f.poolStatus(t, "api"), shared).State; got != "draining" {
		t.Errorf("api's shared backend is %s, want draining", got)
	}
	if got := byURL(t, f.poolStatus(t, DefaultPool), shared).State; got != "up" {
		t.Errorf("the drain in api left default's copy %s, want up", got)
	}
	if got := value(t, ctx, "reading default's row", chromedp.Evaluate[string](
		`document.querySelector('`+poolRow(DefaultPool, id)+`').dataset.state`)); got != "up" {
		t.Errorf("default's row shows %s, want up", got)
	}
	if got := value(t, ctx, "reading the message", chromedp.Text(chromedp.ID("message"))); !strings.Contains(got, "in pool api") || !strings.Contains(got, "now draining") {
		t.Errorf("the message says %q, want it to name the pool and confirm the drain", got)
	}
	if *screenshot != "" {
		path := strings.TrimSuffix(*screenshot, ".png") + "-pools.png"
		png := value(t, ctx, "taking a screenshot", chromedp.FullScreenshot(100))
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot saved to %s", path)
	}
}
