package accesslog

import (
	"testing"
	"time"
)

// BenchmarkAppend formats one line (Logger.Append) without writing it.
func BenchmarkAppend(b *testing.B) {
	r := records()[1]
	buf := make([]byte, 0, 512)
	at := time.Now()
	for _, json := range []bool{false, true} {
		name := "text"
		if json {
			name = "json"
		}
		l := New(Options{Name: "roundhouse.access", JSON: json})
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				buf = l.Append(buf[:0], at, &r)
			}
		})
	}
}
