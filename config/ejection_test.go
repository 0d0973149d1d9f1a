package config

import (
	"strings"
	"testing"
)

func TestFailureRateFollowsEjectAfterUnlessGiven(t *testing.T) {
	// The top level's and the api pool's failure rate, for a file (with
	// the api pool's block) and flags.
	tests := []struct {
		name           string
		top, pool      string
		args           []string
		wantTop, wantP int
	}{
		{"by default rates are judged at 50%", "", "", nil, 50, 50},
		{"--eject-after 0 alone turns ejection off, rate included", "", "", []string{"--eject-after", "0"}, 0, 0},
		{"after = 0 in the file alone turns ejection off, rate included", "ejection { after = 0 }", "", nil, 0, 0},
		{"a rate given with --eject-after 0 ejects for the rate alone", "", "",
			[]string{"--eject-after", "0", "--eject-failure-rate", "30"}, 30, 30},
		{"a rate given in the file with after = 0 stands", "ejection {\n  after = 0\n  failure_rate = 30\n}", "", nil, 30, 30},
		{"--eject-failure-rate 0 turns the rate off, the streak stays", "", "", []string{"--eject-failure-rate", "0"}, 0, 0},
		{"a pool that sets after = 0 alone has no ejection", "", "ejection { after = 0 }", nil, 50, 0},
		{"a pool that sets after again under a top level of 0 judges rates again", "", "ejection { after = 3 }",
			[]string{"--eject-after", "0"}, 0, 50},
		{"a pool under a top-level rate keeps it with after = 0", "", "ejection { after = 0 }",
			[]string{"--eject-failure-rate", "20"}, 20, 20},
		{"a pool's own rate stands", "", "ejection {\n  after = 0\n  failure_rate = 70\n}", nil, 50, 70},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := load(t, twoPools(tt.top, tt.pool), tt.args...)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if got := s.Ejection.FailureRate; got != tt.wantTop {
				t.Errorf("top level: failure rate %d, want %d", got, tt.wantTop)
			}
			if got := apiPool(t, s).Ejection.FailureRate; got != tt.wantP {
				t.Errorf("pool api: failure rate %d, want %d", got, tt.wantP)
			}
		})
	}
}

func TestFailureRateSettingsAreChecked(t *testing.T) {
	bad := []struct {
		name, src string
		args      []string
		want      string
	}{
		{"a rate over 100%", "", []string{"--eject-failure-rate", "101"}, "--eject-failure-rate: want 0 to 100, got 101"},
		{"a negative rate", "ejection {\n  failure_rate = -1\n}", nil, "roundhouse.hcl:2:18: ejection.failure_rate: want 0 to 100, got -1"},
		{"an empty window", "", []string{"--eject-failure-window", "0"}, "--eject-failure-window: want 1 to 10000, got 0"},
		{"a window too long", "ejection {\n  failure_window = 10001\n}", nil,
			"roundhouse.hcl:2:20: ejection.failure_window: want 1 to 10000, got 10001"},
		{"a pool's bad rate", twoPools("", "ejection {\n  failure_rate = 200\n}"), nil,
			`pool "api": ejection.failure_rate: want 0 to 100, got 200`},
	}
	for _, tt := range bad {
		t.Run(tt.name+" is refused", func(t *testing.T) {
			src := tt.src
			if !strings.Contains(src, "backend") {
				src += oneBackend
			}
			_, err := load(t, src, tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Load = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}
