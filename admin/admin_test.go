package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sourcegraph/conc"
	"go.uber.org/goleak"

	"github.com/roundhouse/roundhouse/actors"
)

// TestMain fails the package's tests if any goroutine outlives them: every
// selector, server and browser must be stopped and waited for.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestStatusListsEveryBackendInOrderWithItsCounters(t *testing.T) {
	f := newFixture(t, fixtureOptions{}, "a", "b")
	for range 4 {
		if code, _ := f.get(t, "/"); code != http.StatusOK {
			t.Fatalf("proxy answered %d", code)
		}
	}
	var st []actors.BackendStatus
	eventually(t, func() string { return fmt.Sprintf("4 requests and a probe each in %+v", st) }, func() bool {
		st = f.status(t)
		return len(st) == 2 && st[0].Requests+st[1].Requests == 4 && st[0].Probes > 0 && st[1].Probes > 0
	})
	for i, b := range st {
		if b.Name != f.originURL(i) {
			t.Errorf("backend %d is %s, want %s (configuration order)", i, b.Name, f.originURL(i))
		}
		if b.ID == "" || b.State != "up" || !b.Up || b.Weight != 1 || b.InFlight != 0 || b.Requests != 2 || b.Failures != 0 {
			t.Errorf("backend %d: %+v, want id set, up, weight 1, 2 requests, nothing in flight", i, b)
		}
		if b.LastProbe.IsZero() || b.LastProbeError != "" {
			t.Errorf("backend %d: last probe %v error %q, want a passing probe", i, b.LastProbe, b.LastProbeError)
		}
	}
	a := f.call(t, request{method: "GET", path: "/status"})
	var raw map[string]any
	a.json(t, &raw)
	if _, ok := raw["time"]; !ok {
		t.Errorf("no time in %s", a.body)
	}
	for _, key := range []string{"url", "id", "state", "weight", "in_flight", "requests", "failures", "last_probe"} {
		if _, ok := raw["backends"].([]any)[0].(map[string]any)[key]; !ok {
			t.Errorf("no %q in a backend's status: %s", key, a.body)
		}
	}
	if got := a.header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control %q, want no-store", got)
	}
}

func TestAddingABackendPutsItToWork(t *testing.T) {
	f := newFixture(t, fixtureOptions{}, "a")
	extra := newOrigin(t, "extra")
	a := f.call(t, request{method: "POST", path: "/backends", body: `{"url": "` + extra.srv.URL + `/", "weight": 2}`})
	if a.code != http.StatusCreated {
		t.Fatalf("POST /backends: %d %s", a.code, a.body)
	}
	var added actors.BackendStatus
	a.json(t, &added)
	if added.Name != extra.srv.URL || added.ID == "" || added.Weight != 2 || added.State != "up" {
		t.Errorf("added %+v, want %s, an id, weight 2, up", added, extra.srv.URL)
	}
	if b := byURL(t, f.status(t), extra.srv.URL); b.ID != added.ID {
		t.Errorf("status has id %s, the answer said %s", b.ID, added.ID)
	}
	seen := map[string]int{}
	for range 4 {
		_, name := f.get(t, "/")
		seen[name]++
	}
	if seen["a"] != 2 || seen["extra"] != 2 {
		t.Errorf("round-robin over a and the added backend gave %v, want 2 each", seen)
	}
	if !strings.Contains(f.log.String(), "backend added: backend="+extra.srv.URL) {
		t.Errorf("the change was not logged:\n%s", f.log)
	}
}

func TestAddingADisabledBackendKeepsItOutOfRotation(t *testing.T) {
	f := newFixture(t, fixtureOptions{}, "a")
	extra := newOrigin(t, "extra")
	a := f.call(t, request{method: "POST", path: "/backends", body: `{"url": "` + extra.srv.URL + `", "enabled": false}`})
	var added actors.BackendStatus
	a.json(t, &added)
	if a.code != http.StatusCreated || added.State != "disabled" || added.Weight != 1 {
		t.Fatalf("POST /backends: %d %+v, want 201, disabled, weight 1", a.code, added)
	}
	for range 3 {
		if _, name := f.get(t, "/"); name != "a" {
			t.Errorf("a request went to %q, want a only", name)
		}
	}
}

func TestAddingRefusesBadInputWithAClearError(t *testing.T) {
	f := newFixture(t, fixtureOptions{}, "a")
	tests := []struct {
		name   string
		req    request
		status int
		want   string
	}{
		{"a body that is not JSON is refused", request{body: `url=http://x`}, 400, "body:"},
		{"an empty body is refused", request{header: map[string]string{"Content-Type": "application/json"}}, 400, "empty"},
		{"a form content type is refused", request{header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}}, 415, "application/json"},
		{"no content type is refused", request{}, 415, "application/json"},
		{"an unknown field is named", request{body: `{"url": "http://127.0.0.1:1", "wieght": 2}`}, 400, `"wieght"`},
		{"a missing url is named", request{body: `{"weight": 1}`}, 400, "url: required"},
		{"a URL without a scheme is refused", request{body: `{"url": "127.0.0.1:1"}`}, 400, "http://127.0.0.1:1"},
		{"another scheme is refused", request{body: `{"url": "ftp://127.0.0.1:21"}`}, 400, `scheme "ftp"`},
		{"a query is refused", request{body: `{"url": "http://127.0.0.1:1/?x=1"}`}, 400, "query"},
		{"a negative weight is refused", request{body: `{"url": "http://127.0.0.1:1", "weight": -1}`}, 400, "weight"},
		{"a weight over the maximum is refused", request{body: `{"url": "http://127.0.0.1:1", "weight": 1001}`}, 400, "weight"},
		{"a fractional weight is refused", request{body: `{"url": "http://127.0.0.1:1", "weight": 1.5}`}, 400, "weight"},
		{"two JSON values are refused", request{body: `{"url": "http://127.0.0.1:1"} {}`}, 400, "more than one"},
		{"a body over 64 KiB is refused", request{body: `{"url": "http://127.0.0.1:1", "x": "` + strings.Repeat("x", 70<<10) + `"}`}, 413, "larger than"},
		{"a backend already there is a conflict", request{body: `{"url": "` + f.originURL(0) + `/"}`}, 409, "already configured"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.req.method, tt.req.path = "POST", "/backends"
			a := f.call(t, tt.req)
			if a.code != tt.status {
				t.Errorf("status %d, want %d; body %s", a.code, tt.status, a.body)
			}
			if msg := a.errorText(t); !strings.Contains(msg, tt.want) {
				t.Errorf("error %q does not mention %q", msg, tt.want)
			}
		})
	}
	if st := f.status(t); len(st) != 1 {
		t.Errorf("refused additions changed the set: %+v", st)
	}
}

func TestRequestTextIsNeverEchoedUnescaped(t *testing.T) {
	f := newFixture(t, fixtureOptions{}, "a")
	for _, r := range []request{
		{method: "POST", path: "/backends", body: `{"url": "<script>alert(1)</script>"}`},
		{method: "POST", path: "/backends", body: `{"<img src=x>": 1}`},
		{method: "POST", path: "/backends/<b>x</b>/drain"},
		{method: "GET", path: "/<script>"},
	} {
		a := f.call(t, r)
		if a.code < 400 || strings.ContainsAny(string(a.body), "<>") {
			t.Errorf("%s %s: %d %s, want an error with < and > escaped", r.method, r.path, a.code, a.body)
		}
	}
}

func TestOperationsOnAnUnknownBackendAre404(t *testing.T) {
	f := newFixture(t, fixtureOptions{}, "a")
	for _, r := range []request{
		{method: "DELETE", path: "/backends/0123456789ab"},
		{method: "POST", path: "/backends/0123456789ab/drain"},
		{method: "POST", path: "/backends/0123456789ab/enable"},
		{method: "POST", path: "/backends/0123456789ab/disable"},
	} {
		a := f.call(t, r)
		if a.code != http.StatusNotFound || !strings.Contains(a.errorText(t), "no such backend") {
			t.Errorf("%s %s: %d %s, want 404 no such backend", r.method, r.path, a.code, a.body)
		}
	}
}

func TestDrainedBackendGetsNoNewRequestsUntilEnabled(t *testing.T) {
	f := newFixture(t, fixtureOptions{}, "a", "b")
	idA := f.status(t)[0].ID
	a := f.call(t, request{method: "POST", path: "/backends/" + idA + "/drain"})
	var st actors.BackendStatus
	a.json(t, &st)
	if a.code != http.StatusOK || st.State != "draining" || st.ID != idA {
		t.Fatalf("drain: %d %+v, want 200 and a draining", a.code, st)
	}
	for range 6 {
		if code, name := f.get(t, "/"); code != http.StatusOK || name != "b" {
			t.Fatalf("while a drains a request got %d from %q, want 200 from b", code, name)
		}
	}
	if !strings.Contains(f.log.String(), "backend drained: backend="+f.originURL(0)+" id="+idA+" client=127.0.0.1:") {
		t.Errorf("the drain was not logged with the backend, id and client:\n%s", f.log)
	}

	a = f.call(t, request{method: "POST", path: "/backends/" + idA + "/enable"})
	a.json(t, &st)
	if a.code != http.StatusOK || st.State != "up" {
		t.Fatalf("enable: %d %+v, want 200 and a up", a.code, st)
	}
	seen := map[string]int{}
	for range 4 {
		_, name := f.get(t, "/")
		seen[name]++
	}
	if seen["a"] != 2 || seen["b"] != 2 {
		t.Errorf("after enable, requests went %v, want 2 each", seen)
	}
}

func TestDisabledBackendIsStillListedAndComesBackWhenEnabled(t *testing.T) {
	f := newFixture(t, fixtureOptions{}, "a", "b")
	idB := f.status(t)[1].ID
	a := f.call(t, request{method: "POST", path: "/backends/" + idB + "/disable"})
	var st actors.BackendStatus
	a.json(t, &st)
	if a.code != http.StatusOK || st.State != "disabled" {
		t.Fatalf("disable: %d %+v, want 200 and disabled", a.code, st)
	}
	for range 4 {
		if _, name := f.get(t, "/"); name != "a" {
			t.Fatalf("a request went to %q while b is disabled", name)
		}
	}
	// Disabling twice is not an error: the state is what was asked for.
	if a := f.call(t, request{method: "POST", path: "/backends/" + idB + "/disable"}); a.code != http.StatusOK {
		t.Errorf("second disable: %d %s", a.code, a.body)
	}
	if a := f.call(t, request{method: "POST", path: "/backends/" + idB + "/enable"}); a.code != http.StatusOK {
		t.Fatalf("enable: %d %s", a.code, a.body)
	}
	if b := byURL(t, f.status(t), f.originURL(1)); b.State != "up" {
		t.Errorf("after enable b is %s, want up", b.State)
	}
}

func TestDeletedBackendIsForgotten(t *testing.T) {
	f := newFixture(t, fixtureOptions{}, "a", "b")
	idA := f.status(t)[0].ID
	a := f.call(t, request{method: "DELETE", path: "/backends/" + idA})
	var gone Removed
	a.json(t, &gone)
	if a.code != http.StatusOK || gone.ID != idA || gone.State != "removed" {
		t.Fatalf("DELETE: %d %s, want 200 and removed", a.code, a.body)
	}
	if !strings.Contains(f.log.String(), "admin: backend removing: backend="+f.originURL(0)+" id="+idA+" client=127.0.0.1:") {
		t.Errorf("the removal was not logged with the backend, id and client:\n%s", f.log)
	}
	if st := f.status(t); len(st) != 1 || st[0].Name != f.originURL(1) {
		t.Errorf("after DELETE status lists %+v, want b alone", st)
	}
	for range 3 {
		if _, name := f.get(t, "/"); name != "b" {
			t.Errorf("a request went to %q after a was removed", name)
		}
	}
	if a := f.call(t, request{method: "DELETE", path: "/backends/" + idA}); a.code != http.StatusNotFound {
		t.Errorf("second DELETE: %d %s, want 404", a.code, a.body)
	}
	// Removed backends can come back.
	if a := f.call(t, request{method: "POST", path: "/backends", body: `{"url": "` + f.originURL(0) + `"}`}); a.code != http.StatusCreated {
		t.Errorf("adding a removed backend again: %d %s", a.code, a.body)
	}
}

func TestWrongMethodsAre405AndUnknownPaths404(t *testing.T) {
	f := newFixture(t, fixtureOptions{}, "a")
	id := f.status(t)[0].ID
	tests := []struct {
		method, path string
		status       int
		allow        string
	}{
		{"GET", "/backends", 405, "POST"},
		{"PUT", "/status", 405, "GET, HEAD"},
		{"POST", "/metrics", 405, "GET, HEAD"},
		{"GET", "/backends/" + id, 405, "DELETE"},
		{"GET", "/backends/" + id + "/drain", 405, "POST"},
		{"GET", "/reload", 405, "POST"},
		{"POST", "/", 405, "GET, HEAD"},
		{"GET", "/nope", 404, ""},
		{"POST", "/backends/" + id + "/explode", 404, ""},
	}
	for _, tt := range tests {
		a := f.call(t, request{method: tt.method, path: tt.path})
		if a.code != tt.status || a.header.Get("Allow") != tt.allow {
			t.Errorf("%s %s: %d Allow %q, want %d Allow %q", tt.method, tt.path, a.code, a.header.Get("Allow"), tt.status, tt.allow)
		}
		a.errorText(t)
	}
}

func TestATokenIsRequiredOnEveryRequestButThePage(t *testing.T) {
	const token = "s3cret-token-0123456789"
	f := newFixture(t, fixtureOptions{token: []byte(token)}, "a")
	tests := []struct {
		name   string
		req    request
		status int
	}{
		{"no Authorization header is 401", request{method: "GET", path: "/status"}, 401},
		{"a wrong token is 401", request{method: "GET", path: "/status", token: "s3cret-token-0123456788"}, 401},
		{"a prefix of the token is 401", request{method: "GET", path: "/status", token: token[:10]}, 401},
		{"basic auth is 401", request{method: "GET", path: "/status", header: map[string]string{"Authorization": "Basic " + token}}, 401},
		{"the right token is 200", request{method: "GET", path: "/status", token: token}, 200},
		{"metrics need the token", request{method: "GET", path: "/metrics"}, 401},
		{"metrics with the token are 200", request{method: "GET", path: "/metrics", token: token}, 200},
		{"a change needs the token", request{method: "POST", path: "/backends", body: `{"url": "http://127.0.0.1:1"}`}, 401},
		{"an unknown path needs the token before it is 404", request{method: "GET", path: "/nope"}, 401},
		{"the dashboard page is served without it", request{method: "GET", path: "/"}, 200},
		{"a Bearer scheme in lower case is accepted", request{method: "GET", path: "/status", header: map[string]string{"Authorization": "bearer " + token}}, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := f.call(t, tt.req)
			if a.code != tt.status {
				t.Fatalf("%d %s, want %d", a.code, a.body, tt.status)
			}
			if a.code == 401 {
				if !strings.HasPrefix(a.header.Get("WWW-Authenticate"), "Bearer ") {
					t.Errorf("401 without a Bearer challenge: %q", a.header.Get("WWW-Authenticate"))
				}
				if msg := a.errorText(t); strings.Contains(msg, token) {
					t.Errorf("the error reveals the token: %q", msg)
				}
			}
		})
	}
	// A token-protected API answers any Host: it may listen anywhere.
	if a := f.call(t, request{method: "GET", path: "/status", token: token, header: map[string]string{"Host": "lb.example:9090"}}); a.code != 200 {
		t.Errorf("with a token, Host lb.example got %d %s", a.code, a.body)
	}
	if !strings.Contains(f.log.String(), "refused wrong token") {
		t.Errorf("the wrong token was not logged:\n%s", f.log)
	}
}

func TestWithoutATokenOnlyLoopbackHostsAreAnswered(t *testing.T) {
	f := newFixture(t, fixtureOptions{}, "a")
	for host, want := range map[string]int{
		"127.0.0.1:9090": 200, "localhost:9090": 200, "LOCALHOST": 200, "[::1]:9090": 200, "127.1.2.3": 200,
		"evil.example": 403, "evil.example:9090": 403, "192.0.2.1:9090": 403, "localhost.evil.example": 403,
	} {
		a := f.call(t, request{method: "GET", path: "/status", header: map[string]string{"Host": host}})
		if a.code != want {
			t.Errorf("Host %s: %d %s, want %d", host, a.code, a.body, want)
		}
	}
}

func TestCrossOriginBrowserWritesAreRefused(t *testing.T) {
	f := newFixture(t, fixtureOptions{}, "a")
	id := f.status(t)[0].ID
	drain := "/backends/" + id + "/drain"
	tests := []struct {
		name   string
		req    request
		status int
	}{
		{"a cross-site fetch is 403", request{method: "POST", path: drain, header: map[string]string{"Sec-Fetch-Site": "cross-site"}}, 403},
		{"an old browser's foreign Origin is 403", request{method: "POST", path: drain, header: map[string]string{"Origin": "http://evil.example"}}, 403},
		{"a cross-site read is allowed (it is not a change)", request{method: "GET", path: "/status", header: map[string]string{"Sec-Fetch-Site": "cross-site"}}, 200},
		{"the dashboard's own fetch is allowed", request{method: "POST", path: drain, header: map[string]string{"Sec-Fetch-Site": "same-origin"}}, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if a := f.call(t, tt.req); a.code != tt.status {
				t.Errorf("%d %s, want %d", a.code, a.body, tt.status)
			}
		})
	}
}

func TestReload(t *testing.T) {
	t.Run("without a reload function it is 501", func(t *testing.T) {
		f := newFixture(t, fixtureOptions{}, "a")
		a := f.call(t, request{method: "POST", path: "/reload"})
		if a.code != http.StatusNotImplemented || !strings.Contains(a.errorText(t), "--config") {
			t.Errorf("%d %s, want 501 naming --config", a.code, a.body)
		}
	})
	t.Run("a successful reload is 200 and logged", func(t *testing.T) {
		calls := make(chan struct{}, 1)
		f := newFixture(t, fixtureOptions{reload: func(context.Context) error { calls <- struct{}{}; return nil }}, "a")
		a := f.call(t, request{method: "POST", path: "/reload"})
		if a.code != http.StatusOK {
			t.Fatalf("%d %s", a.code, a.body)
		}
		select {
		case <-calls:
		default:
			t.Error("the reload function was not called")
		}
		if !strings.Contains(f.log.String(), "configuration reloaded") {
			t.Errorf("not logged:\n%s", f.log)
		}
	})
	t.Run("a failed reload is 500 with the reason", func(t *testing.T) {
		f := newFixture(t, fixtureOptions{reload: func(context.Context) error {
			return errors.New("roundhouse.hcl:3:5: unknown attribute")
		}}, "a")
		a := f.call(t, request{method: "POST", path: "/reload"})
		if a.code != http.StatusInternalServerError || !strings.Contains(a.errorText(t), "roundhouse.hcl:3:5") {
			t.Errorf("%d %s, want 500 with the reason", a.code, a.body)
		}
	})
}

func TestAStoppedSelectorIs503(t *testing.T) {
	sel, err := actors.New(actors.Config{Monitor: actors.MonitorConfig{Probe: func(context.Context, *actors.Backend) error { return nil }}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg conc.WaitGroup
	wg.Go(func() { _ = sel.Run(ctx) })
	cancel()
	wg.Wait()
	h, err := New(Config{Selector: sel})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []struct{ method, path, body string }{
		{"GET", "/status", ""},
		{"POST", "/backends", `{"url": "http://127.0.0.1:1"}`},
		{"POST", "/backends/0123456789ab/drain", ""},
		{"DELETE", "/backends/0123456789ab", ""},
	} {
		rec := serve(t, h, r.method, r.path, r.body)
		if rec.code != http.StatusServiceUnavailable || !strings.Contains(rec.errorText(t), "selector stopped") {
			t.Errorf("%s %s: %d %s, want 503 selector stopped", r.method, r.path, rec.code, rec.body)
		}
	}
	if rec := serve(t, h, "GET", "/metrics", ""); rec.code != http.StatusInternalServerError || !strings.Contains(string(rec.body), "selector stopped") {
		t.Errorf("GET /metrics: %d %s, want 500 naming the stopped selector", rec.code, rec.body)
	}
}

func TestNewRefusesAnEmptyTokenAndNoSelector(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Error("New without a selector: no error")
	}
	sel, err := actors.New(actors.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{Selector: sel, Token: []byte{}}); err == nil {
		t.Error("New with an empty token: no error")
	}
}

func TestFetchStatusAndWriteTable(t *testing.T) {
	const token = "s3cret-token-0123456789"
	f := newFixture(t, fixtureOptions{token: []byte(token)}, "a", "b")
	addr := strings.TrimPrefix(f.admin, "http://")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	_, err := FetchStatus(ctx, f.client, addr, nil)
	var apiErr *APIError
	if !errors.As(err, &apiErr) || !strings.HasPrefix(apiErr.Status, "401") || !strings.Contains(apiErr.Message, "bearer token") {
		t.Errorf("without the token: %v, want an APIError 401 asking for the token", err)
	}
	st, err := FetchStatus(ctx, f.client, addr, []byte(token))
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Backends) != 2 {
		t.Fatalf("got %+v", st)
	}
	st.Backends[1].LastProbe = st.Time.Add(-3 * time.Second)
	st.Backends[1].LastProbeError = "health probe: GET /health: status 503\nsecond line"
	st.Backends[1].State = "down"
	var out strings.Builder
	if err := WriteTable(&out, st); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("want a header and 2 rows:\n%s", out.String())
	}
	header := lines[0]
	for _, col := range []string{"ID", "URL", "STATE", "WEIGHT", "IN-FLIGHT", "REQUESTS", "FAILURES", "LAST PROBE", "PROBE ERROR"} {
		if !strings.Contains(header, col) {
			t.Errorf("header lacks %s: %q", col, header)
		}
	}
	// Aligned: every row's URL starts in the header's URL column.
	col := strings.Index(header, "URL")
	for i, line := range lines[1:] {
		if strings.Index(line, "http://") != col {
			t.Errorf("row %d is not aligned with the header:\n%s", i, out.String())
		}
	}
	if !strings.Contains(lines[2], "down") || !strings.Contains(lines[2], "failed 3s ago") || !strings.Contains(lines[2], "status 503 second line") {
		t.Errorf("the down row lacks its state, probe age or one-line error: %q", lines[2])
	}
	var empty strings.Builder
	if err := WriteTable(&empty, &StatusResponse{}); err != nil || empty.String() != "no backends\n" {
		t.Errorf("an empty set printed %q, %v", empty.String(), err)
	}
}

// The handlers may run on many goroutines at once; the selector serializes
// what they ask. Hammer the API while requests flow, under the race
// detector, and check that the counts still add up.
func TestConcurrentChangesAndRequestsAddUp(t *testing.T) {
	f := newFixture(t, fixtureOptions{}, "a", "b")
	idA := f.status(t)[0].ID
	const clients, perClient = 4, 25
	var wg conc.WaitGroup
	var mu sync.Mutex // guards failures; test helpers may lock
	var failures []string
	fail := func(format string, args ...any) {
		mu.Lock()
		failures = append(failures, fmt.Sprintf(format, args...))
		mu.Unlock()
	}
	for range clients {
		wg.Go(func() {
			for range perClient {
				if code, _, err := f.send("GET", "/"); err != nil || code != http.StatusOK {
					fail("client request: %d %v", code, err)
				}
			}
		})
	}
	wg.Go(func() {
		for i := range 20 {
			op := []string{"drain", "enable", "disable", "enable"}[i%4]
			if a, err := f.tryCall(request{method: "POST", path: "/backends/" + idA + "/" + op}); err != nil || a.code != http.StatusOK {
				fail("%s: %d %s %v", op, a.code, a.body, err)
			}
			if a, err := f.tryCall(request{method: "GET", path: "/status"}); err != nil || a.code != http.StatusOK {
				fail("status: %d %s %v", a.code, a.body, err)
			}
		}
	})
	wg.Wait()
	if len(failures) > 0 {
		t.Errorf("%d failures: %v", len(failures), failures)
	}
	var st []actors.BackendStatus
	eventually(t, func() string { return fmt.Sprintf("%d requests in %+v", clients*perClient, st) }, func() bool {
		st = f.status(t)
		return st[0].Requests+st[1].Requests == clients*perClient && st[0].InFlight+st[1].InFlight == 0
	})
}
