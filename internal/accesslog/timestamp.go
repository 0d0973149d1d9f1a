package accesslog

import "time"

// Timestamps are formatted by hand: time.Time.AppendFormat parses its
// layout on every call and was about a third of a line's formatting. The
// functions below write the same bytes for the two layouts hclog uses
// (textTime and jsonTime; the test compares them with AppendFormat over
// thousands of instants and zones) from the instant's seconds, split into
// a date and a time of day once.

// appendTextTime appends t as t.AppendFormat(buf, textTime) does:
// 2006-01-02T15:04:05.000Z0700.
func appendTextTime(buf []byte, t time.Time) []byte {
	buf, off, ok := appendDateTime(buf, t, 1000)
	if !ok {
		return t.AppendFormat(buf, textTime)
	}
	return appendZone(buf, off, false)
}

// appendJSONTime appends t as t.AppendFormat(buf, jsonTime) does:
// 2006-01-02T15:04:05.000000Z07:00.
func appendJSONTime(buf []byte, t time.Time) []byte {
	buf, off, ok := appendDateTime(buf, t, 1000000)
	if !ok {
		return t.AppendFormat(buf, jsonTime)
	}
	return appendZone(buf, off, true)
}

// appendDateTime appends t's date and time of day in t's zone, as
// "2006-01-02T15:04:05" and a fraction of a second in units of 1/frac
// (truncated, as AppendFormat does), and returns t's zone offset in
// seconds. It appends nothing and returns false for a year outside
// 0..9999 or an offset of 100 hours or more, which AppendFormat writes
// with more digits.
func appendDateTime(buf []byte, t time.Time, frac int) ([]byte, int, bool) {
	_, off := t.Zone()
	if off <= -100*3600 || off >= 100*3600 { // AppendFormat writes three digits of hours
		return buf, 0, false
	}
	secs := t.Unix() + int64(off)
	days, sod := secs/86400, secs%86400
	if sod < 0 {
		days, sod = days-1, sod+86400
	}
	year, month, day := civil(days)
	if year < 0 || year > 9999 {
		return buf, 0, false
	}
	buf = append(buf, digits2[2*(year/100):2*(year/100)+2]...)
	buf = append2(buf, int(year%100), '-')
	buf = append2(buf, month, '-')
	buf = append2(buf, day, 'T')
	buf = append2(buf, int(sod/3600), ':')
	buf = append2(buf, int(sod/60%60), ':')
	buf = append2(buf, int(sod%60), '.')
	f := t.Nanosecond() / (1000000000 / frac)
	for d := frac / 10; d > 0; d /= 10 {
		buf = append(buf, byte('0'+f/d%10))
	}
	return buf, off, true
}

// appendZone appends a zone offset in seconds as AppendFormat's Z0700
// (colon false) or Z07:00 (colon true) does: "Z" for UTC, otherwise a
// sign, the hours and the minutes, with seconds left out.
func appendZone(buf []byte, off int, colon bool) []byte {
	if off == 0 {
		return append(buf, 'Z')
	}
	zone := off / 60 // minutes, rounded toward zero as AppendFormat does
	if zone < 0 {
		buf, zone = append(buf, '-'), -zone
	} else {
		buf = append(buf, '+')
	}
	buf = append(buf, digits2[2*(zone/60):2*(zone/60)+2]...)
	if colon {
		buf = append(buf, ':')
	}
	return append(buf, digits2[2*(zone%60):2*(zone%60)+2]...)
}

// civil returns the proleptic Gregorian date of a day counted from
// 1970-01-01 (Howard Hinnant's civil_from_days).
func civil(days int64) (year int64, month, day int) {
	z := days + 719468
	era := z / 146097
	if z < 0 {
		era = (z - 146096) / 146097
	}
	doe := uint32(z - era*146097)                          // day of era, 0..146096
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365 // year of era, 0..399
	doy := doe - (365*yoe + yoe/4 - yoe/100)               // day of year from March 1, 0..365
	mp := (5*doy + 2) / 153                                // month from March, 0..11
	day = int(doy - (153*mp+2)/5 + 1)
	month = int(mp + 3)
	if month > 12 {
		month -= 12
	}
	year = int64(yoe) + era*400
	if month <= 2 {
		year++
	}
	return year, month, day
}

// append2 appends n (0..99) as two digits, then sep.
func append2(buf []byte, n int, sep byte) []byte {
	return append(buf, digits2[2*n], digits2[2*n+1], sep)
}

const digits2 = "00010203040506070809" +
	"10111213141516171819" +
	"20212223242526272829" +
	"30313233343536373839" +
	"40414243444546474849" +
	"50515253545556575859" +
	"60616263646566676869" +
	"70717273747576777879" +
	"80818283848586878889" +
	"90919293949596979899"
