package accesslog

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/sourcegraph/conc"
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

// BenchmarkLogPaced logs as a balancer's handlers do, one line per
// request, each request a byte that a client sends over loopback TCP and
// a server goroutine answers, so that the goroutines park in the
// netpoller between requests, as they do under a moderate load, and the
// writer's goroutine may fall asleep between lines (BenchmarkLog floods
// the writer, which then never sleeps). off answers only; on logs each
// request's line first; format formats the line (time.Now and Append)
// but writes it nowhere. on − off is what a line costs at that rate, the
// writer's wake-ups included; on − format is the hand-off and the write.
func BenchmarkLogPaced(b *testing.B) {
	r := records()[1]
	b.Run("off", func(b *testing.B) {
		runWriter(b)
		measure(b, pingPong(b, func() {}))
	})
	b.Run("format", func(b *testing.B) {
		runWriter(b)
		l := New(Options{Name: "roundhouse.access"})
		buf := make([]byte, 0, 512)
		measure(b, pingPong(b, func() { buf = l.Append(buf[:0], time.Now(), &r) }))
	})
	b.Run("on", func(b *testing.B) {
		l := New(Options{Name: "roundhouse.access", Output: runWriter(b)})
		measure(b, pingPong(b, func() { l.Log(&r) }))
	})
}

// pingPong starts a loopback server that answers each byte with a byte
// after calling handle, and returns a request: one byte there and back.
// b's cleanup stops the server.
func pingPong(b *testing.B, handle func()) func() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	var wg conc.WaitGroup
	b.Cleanup(wg.Wait)
	wg.Go(func() { // ends when the client closes its connection
		conn, err := ln.Accept()
		ln.Close()
		if err != nil {
			return
		}
		defer conn.Close()
		buf := make([]byte, 1)
		for {
			if _, err := conn.Read(buf); err != nil {
				return
			}
			handle()
			if _, err := conn.Write(buf); err != nil {
				return
			}
		}
	})
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	buf := []byte{'x'}
	return func() {
		if _, err := conn.Write(buf); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(conn, buf); err != nil {
			b.Fatal(err)
		}
	}
}
