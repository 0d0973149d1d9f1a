package parse

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Size parses a byte count such as "10MiB": a non-negative integer and
// an optional unit, B, kB (or KB), MB, GB, TB (powers of 1000) or KiB,
// MiB, GiB, TiB (powers of 1024), in any letter case. A bare number is
// bytes. Single-letter units ("10m") are refused as ambiguous.
func Size(s string) (int64, error) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, fmt.Errorf("%q: want a size such as 1048576, 512KiB, 10MiB or 10MB", s)
	}
	n, err := strconv.ParseInt(s[:i], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q: too large", s)
	}
	unit, ok := sizeUnits[strings.ToLower(s[i:])]
	if !ok {
		return 0, fmt.Errorf("%q: unknown unit %q (want B, KB, MB, GB, TB, KiB, MiB, GiB or TiB)", s, s[i:])
	}
	if n > math.MaxInt64/unit {
		return 0, fmt.Errorf("%q: too large", s)
	}
	return n * unit, nil
}

var sizeUnits = map[string]int64{
	"": 1, "b": 1,
	"kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12,
	"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
}

// Rate parses a --rate-limit value: requests per second ("10/s", or just
// "10") or per minute ("600/m"); fractions are allowed ("0.5/s"). It
// returns requests per second.
// maxRate is the largest rate Rate accepts: a billion requests a second
// per client limits nothing.
const maxRate = 1e9

func Rate(s string) (float64, error) {
	num, unit, _ := strings.Cut(s, "/")
	per := 1.0
	switch unit {
	case "", "s":
	case "m":
		per = 60
	default:
		return 0, fmt.Errorf("%q: want a rate such as 10/s or 600/m", s)
	}
	n, err := strconv.ParseFloat(num, 64)
	if err != nil || !(n > 0) || math.IsInf(n, 0) || strings.ContainsAny(num, "xXpPeEnN_") {
		return 0, fmt.Errorf("%q: want a positive rate such as 10/s or 600/m", s)
	}
	if n > maxRate {
		return 0, fmt.Errorf("%q: more than %g requests a second is no limit; leave --rate-limit off", s, float64(maxRate))
	}
	return n / per, nil
}
