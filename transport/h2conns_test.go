package transport

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/sourcegraph/conc"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/roundhouse/roundhouse/actors"
	"github.com/roundhouse/roundhouse/internal/testcert"
)

// startTLSRefuser is startRefuser's refuser (grpc_test.go) behind TLS: an
// https:// backend that chooses h2 by ALPN and then refuses every stream,
// with REFUSED_STREAM or, goAway, with a GOAWAY below it. Its certificate
// is ca's, for localhost.
func startTLSRefuser(t *testing.T, ca *testcert.Authority, goAway bool) (string, *refuser) {
	t.Helper()
	cfg := &tls.Config{Certificates: []tls.Certificate{ca.Issue("refuser", "localhost").Cert}, NextProtos: []string{"h2"}}
	// serve's first read does the handshake.
	addr, r := serveRefuser(t, goAway, func(c net.Conn) net.Conn { return tls.Server(c, cfg) })
	_, port, _ := net.SplitHostPort(addr)
	return "https://localhost:" + port, r
}

// send sends method path with body (none if "") and header k: v (none if
// k is ""), and returns the status and body, within 20 s.
func (b *balancer) send(t *testing.T, method, path, body, k, v string) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	var h http.Header
	if k != "" {
		h = http.Header{}
		h.Set(k, v)
	}
	status, _, data := b.doWith(t, method, path, rd, h)
	return status, data
}

func refusalName(goAway bool) string {
	if goAway {
		return "GOAWAY below every stream"
	}
	return "REFUSED_STREAM on every stream"
}

// TestAnHTTPSBackendOnHTTP2ThatRefusesEveryStreamIsLeft: net/http resends a
// refused request itself, when it has no body or can get it again
// (GetBody, which https attempts have): on a fresh connection after a
// GOAWAY, for ever against a backend that sends one on every connection;
// on the same connection after REFUSED_STREAM, at once and then with a
// backoff of 1, 2, ... 32 s. The transport lets an attempt try two
// connections, or one once, then the request goes to the other backend at
// once, whatever its method, when its body is whole. A POST whose body went out with the refused stream and was not
// kept (not idempotent) cannot: it gets a 502, at once.
func TestAnHTTPSBackendOnHTTP2ThatRefusesEveryStreamIsLeft(t *testing.T) {
	for _, goAway := range []bool{true, false} {
		t.Run(refusalName(goAway), func(t *testing.T) {
			ca := testcert.NewAuthority(t, "backend CA")
			bad, ref := startTLSRefuser(t, ca, goAway)
			good, _ := tlsBackend(t, ca, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				_, _ = io.WriteString(w, "good "+string(body))
			}))
			b := newBalancer(t, balancerOptions{retries: 1, policy: actors.First{}, monitor: noProbes(),
				backendCAs: ca.Pool(), retryBuffer: 64 << 10}, bad, good)
			// Neither waits for net/http's backoffs (1, 2, 4 ... s) but,
			// rarely, the first: when its second try came from a spare
			// connection already in its pool, inside its own resend loop
			// (seen under -race, about once in 150 runs).
			const limit = 2 * time.Second
			for _, tc := range []struct{ method, body, k, v, want string }{
				{http.MethodGet, "", "", "", "good "},
				{http.MethodDelete, "", "", "", "good "},
				{http.MethodPut, "put", "", "", "good put"},
				{http.MethodPost, "post", "Idempotency-Key", "1", "good post"},
			} {
				start := time.Now()
				code, body := b.send(t, tc.method, "/", tc.body, tc.k, tc.v)
				if code != http.StatusOK || body != tc.want {
					t.Errorf("%s: got %d %q, want 200 %q from the other backend\n%s", tc.method, code, body, tc.want, b.log.String())
				}
				if d := time.Since(start); d > limit {
					t.Errorf("%s took %v", tc.method, d)
				}
			}
			// A plain POST keeps nothing of its body: it goes to the other
			// backend if the refusal came before its body was read, and
			// gets a 502 otherwise (the refuser's timing decides).
			start := time.Now()
			if code, body := b.send(t, http.MethodPost, "/", "post", "", ""); code != http.StatusBadGateway && (code != http.StatusOK || body != "good post") {
				t.Errorf("POST without a kept body: got %d %q, want 502 or 200 from the other backend", code, body)
			}
			if d := time.Since(start); d > limit {
				t.Errorf("POST took %v", d)
			}
			b.log.waitFor(t, 4, "retrying on another backend", "backend="+bad, "never processed")
			// GOAWAY: the first stream of each connection, at most two per
			// request; REFUSED_STREAM: every stream, on one connection, one
			// per request (never resent there).
			if n := len(ref.streams); n < 5 || n > 10 || !goAway && n != 5 {
				t.Errorf("the refusing backend saw %d streams for 5 requests", n)
			}
			if len(ref.late) != 0 {
				t.Errorf("%d streams were opened on a connection after its GOAWAY", len(ref.late))
			}
		})
	}
}

// TestAProbeOfAnHTTP2BackendThatRefusesEveryStreamFailsAtOnce: a health
// probe gets the same bound as a request: it fails after two connections
// (or one try on one that refuses streams), well within its timeout, instead of opening
// connections until the timeout ends it, and says why.
func TestAProbeOfAnHTTP2BackendThatRefusesEveryStreamFailsAtOnce(t *testing.T) {
	ca := testcert.NewAuthority(t, "backend CA")
	for _, goAway := range []bool{true, false} {
		for _, scheme := range []string{"h2c", "https"} {
			t.Run(scheme+" "+refusalName(goAway), func(t *testing.T) {
				var bad string
				var ref *refuser
				if scheme == "h2c" {
					bad, ref = startRefuser(t, goAway)
				} else {
					bad, ref = startTLSRefuser(t, ca, goAway)
				}
				tr := New(Options{DialTimeout: time.Second, BackendCAs: ca.Pool()})
				t.Cleanup(tr.CloseIdleConnections)
				u, err := url.Parse(bad)
				if err != nil {
					t.Fatal(err)
				}
				b := &actors.Backend{URL: u, Name: bad}
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				start := time.Now()
				err = actors.HTTPProbe(tr, actors.HTTPCheck{Path: "/health"})(ctx, b)
				if err == nil || !strings.Contains(err.Error(), "never processed") {
					t.Errorf("probe: %v, want the refusal", err)
				}
				if d := time.Since(start); d > 2*time.Second { // see TestAnHTTPSBackendOnHTTP2ThatRefusesEveryStreamIsLeft
					t.Errorf("probe took %v", d)
				}
				// GOAWAY: the first stream of each connection; REFUSED_STREAM:
				// every stream.
				if n := len(ref.streams); n == 0 || n > 2 || !goAway && n != 1 {
					t.Errorf("the backend saw %d streams", n)
				}
			})
		}
	}
}

// TestABodylessRequestLeavesAnH2CBackendThatRefusesEveryStream: net/http
// resends a request without a body after REFUSED_STREAM on the same
// connection, at once and then after 1, 2, ... 32 s; the transport stops
// it at the resend, and the request goes to the other backend at once, as
// one with a body does (grpc_test.go), after the backend saw one stream.
func TestABodylessRequestLeavesAnH2CBackendThatRefusesEveryStream(t *testing.T) {
	bad, ref := startRefuser(t, false)
	good := startH2C(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "good") }))
	b := newBalancer(t, balancerOptions{retries: 1, policy: actors.First{}, monitor: noProbes()}, bad, good)
	for i, method := range []string{http.MethodGet, http.MethodDelete} {
		start := time.Now()
		code, _, body := b.do(t, method, "/", nil)
		if code != http.StatusOK || body != "good" {
			t.Errorf("%s: got %d %q, want 200 from the other backend", method, code, body)
		}
		if d := time.Since(start); d > 900*time.Millisecond { // one connection: no spare one
			t.Errorf("%s took %v", method, d)
		}
		if n := len(ref.streams); n != i+1 {
			t.Errorf("after %s the refusing backend saw %d streams, want %d", method, n, i+1)
		}
	}
	b.log.waitFor(t, 2, "retrying on another backend", "backend="+bad, "never processed")
}

// noProbes is a monitor whose probes pass without a word to the backend,
// so that a backend sees the test's requests alone.
func noProbes() actors.MonitorConfig {
	return actors.MonitorConfig{Interval: time.Hour, Probe: func(context.Context, *actors.Backend) error { return nil }}
}

// startOneStreamPerConn starts an HTTP/2 backend (h2c, or https with ca's
// certificate for localhost) that answers the first stream of every
// connection with 200 and then turns the connection away: it sends a
// GOAWAY below any later stream. A request on a pooled connection is so
// refused, as on a connection the backend had just begun to drain, and
// net/http resends it on a fresh one. answered counts the 200s.
func startOneStreamPerConn(t *testing.T, ca *testcert.Authority) (url string, answered chan struct{}) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	answered = make(chan struct{}, 64)
	var cfg *tls.Config
	if ca != nil {
		cfg = &tls.Config{Certificates: []tls.Certificate{ca.Issue("backend", "localhost").Cert}, NextProtos: []string{"h2"}}
	}
	serve := func(c net.Conn) {
		preface := make([]byte, len(http2.ClientPreface))
		if _, err := io.ReadFull(c, preface); err != nil {
			return
		}
		fr := http2.NewFramer(c, c)
		if err := fr.WriteSettings(); err != nil {
			return
		}
		var hdr bytes.Buffer
		_ = hpack.NewEncoder(&hdr).WriteField(hpack.HeaderField{Name: ":status", Value: "200"})
		first := uint32(0)
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				return
			}
			switch f := f.(type) {
			case *http2.SettingsFrame:
				if !f.IsAck() {
					_ = fr.WriteSettingsAck()
				}
			case *http2.PingFrame:
				if !f.IsAck() {
					_ = fr.WritePing(true, f.Data)
				}
			case *http2.HeadersFrame:
				if first == 0 {
					first = f.StreamID
					noteAnswer(answered) // first: the client may be told the test is over
					_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: first, BlockFragment: hdr.Bytes(), EndHeaders: true, EndStream: true})
				} else {
					_ = fr.WriteGoAway(first, http2.ErrCodeNo, nil)
				}
			}
		}
	}
	var wg conc.WaitGroup
	stop := make(chan struct{}) // closed at cleanup: every connection closes
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { // as startRefuser's
				served := make(chan struct{})
				wg.Go(func() {
					defer close(served)
					if cfg != nil {
						serve(tls.Server(c, cfg))
					} else {
						serve(c)
					}
				})
				select {
				case <-served:
				case <-stop:
				}
				_ = c.Close()
			})
		}
	})
	t.Cleanup(func() {
		_ = ln.Close()
		close(stop)
		wg.Wait()
	})
	if cfg == nil {
		return "h2c://" + ln.Addr().String(), answered
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return "https://localhost:" + port, answered
}

// noteAnswer counts an answer on ch unless ch is full: the backend never
// waits on its test.
func noteAnswer(ch chan<- struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// TestARequestOnAConnectionThatHadGoneAwayIsResentToTheSameBackend: the
// bound leaves net/http's ordinary recovery alone. A request that finds
// its pooled connection turned away (a GOAWAY below its stream) is resent
// once on a fresh connection to the same backend, which answers: the only
// backend serves every request, over https bodies included when they were
// kept (h2c attempts have no GetBody, see rewrite: one with a body goes to
// another backend instead, and there is none here).
func TestARequestOnAConnectionThatHadGoneAwayIsResentToTheSameBackend(t *testing.T) {
	for _, scheme := range []string{"h2c", "https"} {
		t.Run(scheme, func(t *testing.T) {
			var ca *testcert.Authority
			if scheme == "https" {
				ca = testcert.NewAuthority(t, "backend CA")
			}
			u, answered := startOneStreamPerConn(t, ca)
			o := balancerOptions{monitor: noProbes(), retryBuffer: 64 << 10}
			if ca != nil {
				o.backendCAs = ca.Pool()
			}
			b := newBalancer(t, o, u)
			for i := range 6 {
				method, body := http.MethodGet, ""
				if i%2 == 1 && scheme == "https" {
					method, body = http.MethodPut, "put"
				}
				if code, _ := b.send(t, method, "/", body, "", ""); code != http.StatusOK {
					t.Fatalf("request %d (%s): %d, want 200 from the only backend\n%s", i, method, code, b.log.String())
				}
			}
			if n := len(answered); n != 6 {
				t.Errorf("the backend answered %d requests, want 6", n)
			}
		})
	}
}
