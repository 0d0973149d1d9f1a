package routing

import "testing"

func TestShadowed(t *testing.T) {
	tests := []struct {
		name           string
		earlier, later Route
		shadowed       bool
	}{
		{"a route with no conditions shadows any later route", Route{}, Route{Hosts: []string{"a.com"}, PathPrefix: "/x"}, true},
		{"a route with no conditions shadows another with none", Route{}, Route{}, true},
		{"a route with conditions never shadows one with none", Route{Methods: []string{"GET"}}, Route{}, false},
		{"the same hosts shadow", Route{Hosts: []string{"a.com", "b.com"}}, Route{Hosts: []string{"B.com"}}, true},
		{"fewer hosts do not shadow", Route{Hosts: []string{"a.com"}}, Route{Hosts: []string{"a.com", "b.com"}}, false},
		{"a wildcard shadows a name under it", Route{Hosts: []string{"*.a.com"}}, Route{Hosts: []string{"x.y.a.com"}}, true},
		{"a wildcard does not shadow its bare suffix", Route{Hosts: []string{"*.a.com"}}, Route{Hosts: []string{"a.com"}}, false},
		{"a wildcard shadows a deeper wildcard", Route{Hosts: []string{"*.a.com"}}, Route{Hosts: []string{"*.b.a.com"}}, true},
		{"a wildcard shadows the same wildcard", Route{Hosts: []string{"*.a.com"}}, Route{Hosts: []string{"*.A.com"}}, true},
		{"a deeper wildcard does not shadow a shallower one", Route{Hosts: []string{"*.b.a.com"}}, Route{Hosts: []string{"*.a.com"}}, false},
		{"an exact name does not shadow a wildcard", Route{Hosts: []string{"x.a.com"}}, Route{Hosts: []string{"*.a.com"}}, false},
		{"a wildcard does not shadow a name that only ends in its text", Route{Hosts: []string{"*.a.com"}}, Route{Hosts: []string{"ba.com"}}, false},
		{"an IPv6 address shadows itself written another way", Route{Hosts: []string{"::1"}}, Route{Hosts: []string{"[0::1]"}}, true},
		{"a host condition does not shadow a route with none", Route{Hosts: []string{"a.com"}}, Route{PathPrefix: "/x"}, false},
		{"a segment prefix shadows a longer one", Route{PathPrefix: "/api"}, Route{PathPrefix: "/api/v1"}, true},
		{"a segment prefix shadows itself with a slash", Route{PathPrefix: "/api"}, Route{PathPrefix: "/api/"}, true},
		{"a segment prefix does not shadow a longer segment", Route{PathPrefix: "/api"}, Route{PathPrefix: "/apix"}, false},
		{"a byte prefix shadows a longer byte prefix", Route{PathPrefix: "/api/"}, Route{PathPrefix: "/api/v1/"}, true},
		{"a byte prefix shadows a longer segment prefix", Route{PathPrefix: "/api/"}, Route{PathPrefix: "/api/v1"}, true},
		{"a byte prefix does not shadow itself without the slash", Route{PathPrefix: "/api/"}, Route{PathPrefix: "/api"}, false},
		{"a root prefix shadows like no prefix", Route{PathPrefix: "/"}, Route{PathPrefix: "/x"}, true},
		{"a prefix shadows one that is the same once normalized", Route{PathPrefix: "/%7Eu"}, Route{PathPrefix: "/~u/x"}, true},
		{"a prefix does not shadow a route with none", Route{PathPrefix: "/api"}, Route{Hosts: []string{"a.com"}}, false},
		{"more methods shadow fewer", Route{Methods: []string{"GET", "HEAD"}}, Route{Methods: []string{"HEAD"}}, true},
		{"fewer methods do not shadow more", Route{Methods: []string{"GET"}}, Route{Methods: []string{"GET", "HEAD"}}, false},
		{"methods do not shadow a route with none", Route{Methods: []string{"GET"}}, Route{}, false},
		{"fewer headers shadow more", Route{Headers: map[string]string{"x-a": "1"}}, Route{Headers: map[string]string{"X-A": "1", "X-B": "2"}}, true},
		{"more headers do not shadow fewer", Route{Headers: map[string]string{"X-A": "1", "X-B": "2"}}, Route{Headers: map[string]string{"X-A": "1"}}, false},
		{"another header value does not shadow", Route{Headers: map[string]string{"X-A": "1"}}, Route{Headers: map[string]string{"X-A": "2"}}, false},
		{"a superset on every condition shadows", Route{Hosts: []string{"*.example.com"}, PathPrefix: "/v1", Methods: []string{"GET", "POST"}},
			Route{Hosts: []string{"api.example.com", "*.eu.example.com"}, PathPrefix: "/v1/users", Methods: []string{"GET"}, Headers: map[string]string{"X-A": "1"}}, true},
		{"a superset on all but one condition does not shadow", Route{Hosts: []string{"*.example.com"}, PathPrefix: "/v1", Methods: []string{"GET", "POST"}},
			Route{Hosts: []string{"api.example.com", "*.eu.example.com"}, PathPrefix: "/v2", Methods: []string{"GET"}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.earlier.Name, tt.later.Name = "a", "b"
			got := Shadowed([]Route{tt.earlier, tt.later})
			if !tt.shadowed {
				if len(got) != 0 {
					t.Errorf("Shadowed = %v, want none", got)
				}
				return
			}
			want := Shadow{Later: 1, Earlier: 0, LaterName: "b", EarlierName: "a"}
			if len(got) != 1 || got[0] != want {
				t.Fatalf("Shadowed = %+v, want [%+v]", got, want)
			}
			if msg := got[0].String(); msg != `route "b" can never match: route "a" (earlier) matches every request it would` {
				t.Errorf("message %q", msg)
			}
		})
	}
}

func TestShadowedNamesTheFirstEarlierRouteAndSkipsBadOnes(t *testing.T) {
	routes := []Route{
		{Name: "bad", Hosts: []string{"*."}},
		{Name: "api", PathPrefix: "/api"},
		{Name: "all"},
		{Name: "v1", PathPrefix: "/api/v1"},
		{Name: "other", Hosts: []string{"x.com"}},
		{Name: "bad-later", PathPrefix: "nope"},
	}
	got := Shadowed(routes)
	want := []Shadow{{Later: 3, Earlier: 1, LaterName: "v1", EarlierName: "api"}, {Later: 4, Earlier: 2, LaterName: "other", EarlierName: "all"}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("Shadowed = %+v, want %+v", got, want)
	}
}
