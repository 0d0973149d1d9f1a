package accesslog

import (
	"math/rand/v2"
	"testing"
	"time"
)

// zones are the zones the timestamp test formats in: UTC, the machine's,
// fixed offsets of every shape (negative, with seconds, under a minute,
// past 99 hours), and real zones with history (LMT offsets in seconds,
// half and quarter hours, summer time), when the machine has them.
func zones(t *testing.T) []*time.Location {
	locs := []*time.Location{time.UTC, time.Local}
	for _, off := range []int{1, -1, 30, -30, 59, -59, 60, -60, 3600 + 30, -(5*3600 + 30*60 + 15),
		5*3600 + 45*60, -12 * 3600, 14 * 3600, 99*3600 + 59*60 + 59, -(99*3600 + 59*60), 100 * 3600, -150 * 3600} {
		locs = append(locs, time.FixedZone("", off))
	}
	for _, name := range []string{"America/New_York", "Asia/Kolkata", "Australia/Lord_Howe", "Europe/Dublin", "Africa/Monrovia", "Pacific/Chatham"} {
		loc, err := time.LoadLocation(name)
		if err != nil {
			t.Logf("no zone %s: %v", name, err)
			continue
		}
		locs = append(locs, loc)
	}
	return locs
}

func TestTimestampsAreAppendFormats(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const minSec, maxSec = -62_200_000_000, 253_500_000_000 // about the years -1 to 10003
	instants := []time.Time{
		time.Now(), time.Unix(0, 0), time.Unix(-1, 999_999_999), time.Unix(951_782_400, 0), // 2000-02-29
		time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(-1, 12, 31, 23, 59, 59, 999_999_999, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999_999_999, time.UTC), time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(1900, 2, 28, 23, 59, 59, 0, time.UTC), time.Date(2100, 3, 1, 0, 0, 0, 1, time.UTC),
	}
	for range 20000 {
		instants = append(instants, time.Unix(minSec+rng.Int64N(maxSec-minSec), rng.Int64N(1e9)))
	}
	for _, loc := range zones(t) {
		for _, at := range instants {
			at = at.In(loc)
			if got, want := appendTextTime(nil, at), at.AppendFormat(nil, textTime); string(got) != string(want) {
				t.Fatalf("text %v in %v: %q, want %q", at, loc, got, want)
			}
			if got, want := appendJSONTime([]byte("x"), at), at.AppendFormat([]byte("x"), jsonTime); string(got) != string(want) {
				t.Fatalf("JSON %v in %v: %q, want %q", at, loc, got, want)
			}
		}
	}
}

// BenchmarkTimestamp compares the hand-made timestamp with AppendFormat.
func BenchmarkTimestamp(b *testing.B) {
	buf := make([]byte, 0, 64)
	at := time.Now()
	b.Run("AppendFormat", func(b *testing.B) {
		for b.Loop() {
			buf = at.AppendFormat(buf[:0], textTime)
		}
	})
	b.Run("appendTextTime", func(b *testing.B) {
		for b.Loop() {
			buf = appendTextTime(buf[:0], at)
		}
	})
}
