package parse

import "testing"

func TestSize(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want int64
		ok   bool
	}{
		{"a bare number is bytes", "1048576", 1 << 20, true},
		{"zero is zero", "0", 0, true},
		{"B is bytes", "512B", 512, true},
		{"KiB is 1024 bytes", "512KiB", 512 << 10, true},
		{"MiB is 1024 KiB", "10MiB", 10 << 20, true},
		{"GiB is 1024 MiB", "2GiB", 2 << 30, true},
		{"TiB is 1024 GiB", "1TiB", 1 << 40, true},
		{"kB is 1000 bytes", "3kB", 3000, true},
		{"KB is also 1000 bytes", "3KB", 3000, true},
		{"MB is a million bytes", "10MB", 10e6, true},
		{"units ignore letter case", "10mib", 10 << 20, true},
		{"a single-letter unit is ambiguous", "10m", 0, false},
		{"an unknown unit is refused", "10 parsecs", 0, false},
		{"a space before the unit is refused", "10 MiB", 0, false},
		{"a negative size is refused", "-1", 0, false},
		{"a fraction is refused", "1.5MiB", 0, false},
		{"a unit alone is refused", "MiB", 0, false},
		{"an empty value is refused", "", 0, false},
		{"an overflowing number is refused", "99999999999999999999", 0, false},
		{"an overflowing product is refused", "9000000TiB", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Size(tt.in)
			if (err == nil) != tt.ok || got != tt.want {
				t.Errorf("Size(%q) = %d, %v; want %d, ok=%v", tt.in, got, err, tt.want, tt.ok)
			}
		})
	}
}

func TestRate(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want float64
		ok   bool
	}{
		{"per second", "10/s", 10, true},
		{"a bare number is per second", "10", 10, true},
		{"per minute", "600/m", 10, true},
		{"a fraction", "0.5/s", 0.5, true},
		{"zero is refused", "0/s", 0, false},
		{"a negative rate is refused", "-1/s", 0, false},
		{"per hour is not a unit", "10/h", 0, false},
		{"infinity is refused", "Inf/s", 0, false},
		{"not a number is refused", "NaN", 0, false},
		{"hexadecimal is refused", "0x10/s", 0, false},
		{"an exponent is refused", "1e3/s", 0, false},
		{"a billion a second is the most", "1000000000/s", 1e9, true},
		{"more than a billion a second is refused", "1000000001/s", 0, false},
		{"an empty value is refused", "", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Rate(tt.in)
			if (err == nil) != tt.ok || got != tt.want {
				t.Errorf("Rate(%q) = %v, %v; want %v, ok=%v", tt.in, got, err, tt.want, tt.ok)
			}
		})
	}
}

// FuzzParseSize: Size never panics, and never gives a negative count.
func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"0", "1048576", "10MiB", "3kB", "1TiB", "10m", "-1", "99999999999999999999", "9000000TiB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := Size(s)
		if err == nil && n < 0 {
			t.Fatalf("Size(%q) = %d", s, n)
		}
	})
}

// FuzzParseRate: Rate never panics, and what it accepts is a positive,
// finite rate, one transport.NewRateLimiter takes (transport's
// TestNewRateLimiterTakesEveryParsedRate checks that side).
func FuzzParseRate(f *testing.F) {
	for _, s := range []string{"10/s", "600/m", "0.5", "0/s", "Inf", "1e3/s", "10/h"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := Rate(s)
		if err == nil {
			if !(r > 0) || r > maxRate {
				t.Fatalf("Rate(%q) = %v", s, r)
			}
		}
	})
}
