package discovery

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/roundhouse/roundhouse/actors"
)

func TestParseValue(t *testing.T) {
	good := []struct {
		value string
		want  string // URL weight enabled
	}{
		{`{"url": "http://10.0.0.5:8080"}`, "http://10.0.0.5:8080 1 true"},
		{`{"url": "http://10.0.0.5:8080/", "weight": 0, "enabled": false}`, "http://10.0.0.5:8080 0 false"},
		{` {"url": "https://api.internal/v1", "weight": 1000, "enabled": true} ` + "\n", "https://api.internal/v1 1000 true"},
		{`{"url": "http://h:1", "weight": null}`, "http://h:1 1 true"},
	}
	for _, tc := range good {
		b, err := ParseValue([]byte(tc.value))
		if err != nil {
			t.Errorf("ParseValue(%s): %v", tc.value, err)
			continue
		}
		if got := fmt.Sprintf("%s %d %t", b.URL, b.Weight, b.Enabled); got != tc.want {
			t.Errorf("ParseValue(%s) = %s, want %s", tc.value, got, tc.want)
		}
	}
	bad := []struct{ value, want string }{
		{``, "want JSON"},
		{`[]`, "want JSON"},
		{`{"url": "http://h:1"} {}`, "trailing data"},
		{`{"weight": 2}`, "url: required"},
		{`{"url": "h:1"}`, "want a URL"},
		{`{"url": "ftp://h"}`, `scheme "ftp"`},
		{`{"url": "http://h:1", "weight": 1001}`, "weight: want 0 to 1000"},
		{`{"url": "http://h:1", "weight": -1}`, "weight: want 0 to 1000"},
		{`{"url": "http://h:1", "weight": 1.5}`, "want JSON"},
		{`{"url": "http://h:1", "wieght": 3}`, `unknown field "wieght"`},
		{`{"url": "http://h:1", "enabled": "yes"}`, "want JSON"},
	}
	for _, tc := range bad {
		if _, err := ParseValue([]byte(tc.value)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseValue(%s) = %v, want an error containing %q", tc.value, err, tc.want)
		}
	}
}

// set builds a Set from "URL weight enabled" triples, "http://h:1 2 true".
func set(t *testing.T, specs ...string) Set {
	t.Helper()
	out := Set{}
	for _, s := range specs {
		var raw string
		var b Backend
		if _, err := fmt.Sscanf(s, "%s %d %t", &raw, &b.Weight, &b.Enabled); err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		u, err := actors.ParseBackendURL(raw)
		if err != nil {
			t.Fatal(err)
		}
		b.URL = u
		out[u.String()] = b
	}
	return out
}

func TestDiff(t *testing.T) {
	have := set(t, "http://a:1 1 true", "http://b:1 1 true", "http://c:1 1 true", "http://d:1 2 true")
	want := set(t, "http://e:1 1 true", "http://a:1 1 true", "http://c:1 3 true", "http://d:1 2 false", "http://0:1 1 true")
	var got []string
	for _, c := range diff(have, want) {
		got = append(got, fmt.Sprintf("%s %s %d %t", c.kind, c.b.URL, c.b.Weight, c.b.Enabled))
	}
	wantChanges := []string{
		"add http://0:1 1 true", // adds first, in URL order
		"add http://e:1 1 true",
		"update http://c:1 3 true", // then updates
		"update http://d:1 2 false",
		"remove http://b:1 1 true", // removes last: a replaced backend never leaves the set empty
	}
	if !slices.Equal(got, wantChanges) {
		t.Errorf("diff =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(wantChanges, "\n"))
	}
	if c := diff(want, want); len(c) != 0 {
		t.Errorf("diff of a set with itself = %v, want nothing", c)
	}
}

// fakeSink records the commands a provider sends and answers with the
// errors the test arranges.
type fakeSink struct {
	calls []string
	errs  map[string]error // by "op URL-or-id"
}

func (f *fakeSink) answer(call string) error {
	f.calls = append(f.calls, call)
	return f.errs[call]
}

func (f *fakeSink) Add(_ context.Context, bc actors.BackendConfig) (string, error) {
	err := f.answer(fmt.Sprintf("add %s %d %t", bc.URL, bc.Weight, !bc.Disabled))
	return "id-" + bc.URL.Host, err
}
func (f *fakeSink) Remove(_ context.Context, id string) error { return f.answer("remove " + id) }
func (f *fakeSink) SetEnabled(_ context.Context, id string, on bool) error {
	return f.answer(fmt.Sprintf("enable %s %t", id, on))
}
func (f *fakeSink) SetWeight(_ context.Context, id string, w int) error {
	return f.answer(fmt.Sprintf("weight %s %d", id, w))
}

func TestApplier(t *testing.T) {
	t.Run("changes become the admin commands, with the IDs the selector gave", func(t *testing.T) {
		sink := &fakeSink{}
		a := newApplier(sink, hclog.NewNullLogger())
		must(t, a.apply(t.Context(), set(t, "http://a:1 1 true", "http://b:1 2 false")))
		must(t, a.apply(t.Context(), set(t, "http://a:1 5 false", "http://c:1 1 true")))
		want := []string{
			"add http://a:1 1 true", "add http://b:1 2 false",
			"add http://c:1 1 true", "weight id-a:1 5", "enable id-a:1 false", "remove id-b:1",
		}
		if !slices.Equal(sink.calls, want) {
			t.Errorf("calls =\n%s\nwant\n%s", strings.Join(sink.calls, "\n"), strings.Join(want, "\n"))
		}
	})

	t.Run("a backend another source has is left to it and tried again on every apply", func(t *testing.T) {
		sink := &fakeSink{errs: map[string]error{"add http://a:1 1 true": actors.ErrDuplicateBackend}}
		a := newApplier(sink, hclog.NewNullLogger())
		want := set(t, "http://a:1 1 true")
		must(t, a.apply(t.Context(), want))
		if !a.waiting() || a.size() != 0 {
			t.Errorf("waiting %t size %d, want waiting and nothing applied", a.waiting(), a.size())
		}
		delete(sink.errs, "add http://a:1 1 true") // the other source let go
		must(t, a.apply(t.Context(), want))
		if a.waiting() || a.size() != 1 {
			t.Errorf("waiting %t size %d, want it taken over", a.waiting(), a.size())
		}
		// Gone from the source: forgotten without a command.
		sink.errs["add http://b:1 1 true"] = actors.ErrDuplicateBackend
		must(t, a.apply(t.Context(), set(t, "http://a:1 1 true", "http://b:1 1 true")))
		must(t, a.apply(t.Context(), set(t, "http://a:1 1 true")))
		if a.waiting() {
			t.Errorf("still waiting for a backend the source dropped")
		}
	})

	t.Run("an update of a backend an operator removed adds it again; one the static configuration took is left", func(t *testing.T) {
		sink := &fakeSink{}
		a := newApplier(sink, hclog.NewNullLogger())
		must(t, a.apply(t.Context(), set(t, "http://a:1 1 true", "http://b:1 1 true")))
		sink.errs = map[string]error{
			"weight id-a:1 2":       fmt.Errorf("x: %w", actors.ErrUnknownBackend),
			"weight id-b:1 2":       fmt.Errorf("x: %w", actors.ErrNotOwner),
			"add http://b:1 2 true": actors.ErrDuplicateBackend,
		}
		sink.calls = nil
		must(t, a.apply(t.Context(), set(t, "http://a:1 2 true", "http://b:1 2 true")))
		want := []string{"weight id-a:1 2", "add http://a:1 2 true", "weight id-b:1 2", "add http://b:1 2 true"}
		if !slices.Equal(sink.calls, want) {
			t.Errorf("calls = %v, want %v", sink.calls, want)
		}
		if a.size() != 1 || !a.waiting() {
			t.Errorf("size %d waiting %t, want a applied and b left to the static configuration", a.size(), a.waiting())
		}
		// Removing what is no longer ours sends nothing for b.
		sink.calls = nil
		must(t, a.apply(t.Context(), Set{}))
		if want := []string{"remove id-a:1"}; !slices.Equal(sink.calls, want) {
			t.Errorf("calls = %v, want %v", sink.calls, want)
		}
	})

	t.Run("a stopped selector ends the provider; a refused change does not", func(t *testing.T) {
		sink := &fakeSink{errs: map[string]error{
			"add http://a:1 1 true": errors.New("backend a: missing host"),
			"add http://b:1 1 true": actors.ErrStopped,
		}}
		a := newApplier(sink, hclog.NewNullLogger())
		err := a.apply(t.Context(), set(t, "http://a:1 1 true", "http://b:1 1 true"))
		if !errors.Is(err, actors.ErrStopped) {
			t.Errorf("apply = %v, want %v", err, actors.ErrStopped)
		}
	})
}

func TestSRVWeight(t *testing.T) {
	for _, tc := range []struct{ w, max, want int }{
		{0, 0, 1}, {0, 10, 1}, {1, 1, 1}, {7, 10, 7}, {1000, 1000, 1000},
		{65535, 65535, 1000}, {32768, 65535, 500}, {1, 65535, 1}, {0, 65535, 1},
	} {
		if got := srvWeight(tc.w, tc.max); got != tc.want {
			t.Errorf("srvWeight(%d, max %d) = %d, want %d", tc.w, tc.max, got, tc.want)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
