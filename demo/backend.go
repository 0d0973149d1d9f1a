// Package demo is the demo origin server used by "roundhouse backend" and
// "roundhouse demo". It serves a handful of small endpoints that make load
// balancer behaviour easy to see and to test: who answered, streaming request
// and response bodies, slow responses and server-sent events.
//
// Every response carries an X-Backend header naming the origin that served it.
package demo

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// Limits on query parameters. They keep a single request from tying up the
// demo origin for too long or asking it for an absurd amount of data.
const (
	maxBytes  = 1 << 30 // largest n accepted by /bytes (1 GiB)
	maxSlow   = 10 * time.Minute
	maxEvents = 100000
	maxEvery  = time.Minute
)

// /bytes repeats bytesLine, writing chunkLines lines (about 27 KiB) at a time.
const (
	bytesLine  = "abcdefghijklmnopqrstuvwxyz\n"
	chunkLines = 1024
)

// Handler returns the demo origin's handler. name appears in "Hello from NAME",
// in server-sent events and in the X-Backend header of every response.
//
// Endpoints:
//
//	GET  /                     Hello from NAME
//	GET  /health               ok
//	POST /echo                 the request body, streamed back
//	POST /sha256               the hex SHA-256 of the request body, after reading it all
//	GET  /bytes?n=N            N bytes of deterministic text
//	GET  /slow?d=DUR           waits DUR, then answers
//	GET  /sse?n=N&every=DUR    N server-sent events, one every DUR
func Handler(name string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(w, "Hello from %s\n", name)
	})
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("POST /echo", echo)
	mux.HandleFunc("POST /sha256", digest)
	mux.HandleFunc("GET /bytes", serveBytes)
	mux.HandleFunc("GET /slow", slow)
	mux.HandleFunc("GET /sse", func(w http.ResponseWriter, r *http.Request) {
		sse(w, r, name)
	})

	// Set X-Backend before the mux runs so that 404 and 405 answers carry it too.
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Backend", name)
		mux.ServeHTTP(w, r)
	})
}

// digest answers with the SHA-256 of the whole request body. Unlike echo it
// answers only once the body has arrived, so the answer is one short write.
func digest(w http.ResponseWriter, r *http.Request) {
	h := sha256.New()
	if _, err := io.Copy(h, r.Body); err != nil {
		http.Error(w, "reading body: "+err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintf(w, "%x\n", h.Sum(nil))
}

// echo streams the request body back without holding it all in memory.
func echo(w http.ResponseWriter, r *http.Request) {
	// An HTTP/1.x server normally stops reading the request once it starts
	// writing the response. Full duplex lets us read and write at the same
	// time. HTTP/2 is always full duplex and reports an error we can ignore.
	_ = http.NewResponseController(w).EnableFullDuplex()

	contentType := r.Header.Get("Content-Type")
	if contentType == "" {
		contentType = "application/octet-stream"
	}
	w.Header().Set("Content-Type", contentType)
	if r.ContentLength >= 0 {
		w.Header().Set("Content-Length", strconv.FormatInt(r.ContentLength, 10))
	}
	// An error here means the client went away; there is nobody to tell.
	_, _ = io.Copy(w, r.Body)
}

// serveBytes writes n bytes of a repeating alphabet pattern, in chunks.
func serveBytes(w http.ResponseWriter, r *http.Request) {
	n, err := intParam(r, "n", "", maxBytes)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Content-Length", strconv.FormatInt(n, 10))

	// The chunk holds whole lines, so chunk after chunk continues the pattern.
	chunk := make([]byte, 0, chunkLines*len(bytesLine))
	for range chunkLines {
		chunk = append(chunk, bytesLine...)
	}
	for n > 0 {
		k := min(n, int64(len(chunk)))
		if _, err := w.Write(chunk[:k]); err != nil {
			return // client gone
		}
		n -= k
	}
}

// slow waits for the duration d, or until the client gives up.
func slow(w http.ResponseWriter, r *http.Request) {
	d, err := durationParam(r, "d", "", maxSlow)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if !sleep(r.Context(), d) {
		return // client gone; nobody to answer
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintf(w, "slept %s\n", d)
}

// sse sends n server-sent events, one every interval, flushing each so the
// client sees it at once.
func sse(w http.ResponseWriter, r *http.Request, name string) {
	n, err := intParam(r, "n", "5", maxEvents)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	every, err := durationParam(r, "every", "1s", maxEvery)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}

	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	rc := http.NewResponseController(w)
	for i := int64(1); i <= n; i++ {
		if i > 1 && !sleep(r.Context(), every) {
			return // client gone
		}
		if _, err := fmt.Fprintf(w, "id: %d\ndata: event %d from %s\n\n", i, i, name); err != nil {
			return
		}
		if err := rc.Flush(); err != nil {
			return
		}
	}
}

// sleep waits for d or until ctx is done. It reports whether it waited the
// full d.
func sleep(ctx context.Context, d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// intParam reads the query parameter key as an integer in [0, maxValue].
// An absent or empty parameter takes the value def; def "" makes it required.
func intParam(r *http.Request, key, def string, maxValue int64) (int64, error) {
	s := r.URL.Query().Get(key)
	if s == "" {
		s = def
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 0 || v > maxValue {
		return 0, badParam(key, fmt.Sprintf("an integer between 0 and %d", maxValue))
	}
	return v, nil
}

// durationParam reads the query parameter key as a Go duration such as
// "250ms" in [0, maxValue]. Absent or empty parameters work as in intParam.
func durationParam(r *http.Request, key, def string, maxValue time.Duration) (time.Duration, error) {
	s := r.URL.Query().Get(key)
	if s == "" {
		s = def
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 || v > maxValue {
		return 0, badParam(key, fmt.Sprintf("a duration between 0s and %s", maxValue))
	}
	return v, nil
}

// badParam returns the error reported for an invalid query parameter.
func badParam(key, want string) error {
	return errors.New("bad " + key + ": must be " + want)
}
