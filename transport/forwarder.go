package transport

import (
	"context"
	"io"
	"net/http"
	"net/http/httputil"
	"net/textproto"
	"net/url"
	"strings"
)

// The forwarder: one attempt's outbound request, its trip through the
// pool's transport, and the response's way back to the client.
//
// Most requests have no body and ask for no protocol switch (every GET a
// browser or a load generator sends). Those take the fast path below,
// written for what the balancer needs: the outbound request and its URL
// live in the exchange (the first attempt's, without an allocation); the
// response's header values move to the client's header map instead of
// being copied value by value; the decision to flush is made without
// parsing the Content-Type; and rewrite, recordError and modifyResponse
// get the exchange as an argument, so the request carries no context
// value for them. It does what httputil.ReverseProxy did for these
// requests, step for step (forwarder_test.go checks each): hop-by-hop and
// Connection-listed headers dropped both ways, "TE: trailers" kept, the
// client's forwarding headers dropped before rewrite sets ours, malformed
// query parameters re-encoded, no Go User-Agent added, 1xx responses
// relayed, response trailers announced and passed on, streams and
// responses of unknown length flushed as they arrive, and a body cut short
// aborting the response.
//
// A request with a body, or one asking to switch protocols (a WebSocket),
// goes through httputil.ReverseProxy instead (Proxy.rp), with the same
// hooks. Its body wrapper is what the fast path could not do within our
// rules: ReverseProxy closes it when the attempt ends, so that a transport
// goroutine still reading the body for a failed attempt gets an error
// rather than racing the next attempt's reader, and that flag is an
// atomic. Its tunnel for a switched protocol is its own too.

// send makes one attempt at ex.backend: the fast path for a lean exchange
// (see above), ReverseProxy for the others. Either way, rewrite prepares
// the outbound request, and then modifyResponse sees the response before
// it goes to the client, or recordError sees why there is none.
func (p *Proxy) send(ex *exchange, r *http.Request) {
	if !ex.lean() {
		p.rp.ServeHTTP(&ex.rec, r) // its hooks find ex in r's context
		return
	}
	out := p.outbound(ex, r)
	ex.relay <- struct{}{} // cannot block: see relayInformational
	res, err := ex.pool.Transport.RoundTrip(out)
	ex.endRelay()
	if err != nil {
		ex.recordError(out, err)
		return
	}
	// A 101 was not asked for on this path: modifyResponse refuses it.
	if res.StatusCode != http.StatusSwitchingProtocols {
		removeHopByHop(res.Header)
	}
	if err := p.modifyResponse(ex, res); err != nil {
		_ = res.Body.Close()
		ex.recordError(out, err)
		return
	}
	p.respond(ex, res)
}

// outbound builds the attempt's request to the backend from the client's
// r, as ReverseProxy builds its copy before Rewrite, then calls rewrite.
// The first attempt's request and URL are the exchange's own; a later
// attempt gets new ones, since the transport may still be reading the
// earlier one (a writer that outlives a failed attempt). Every attempt
// sends r's header map itself, which the first made into the outbound
// header (prepareHeader) and no one writes to after that.
func (p *Proxy) outbound(ex *exchange, r *http.Request) *http.Request {
	out, u := &ex.outReq, &ex.outURL
	if len(ex.tried) > 1 {
		out, u = new(http.Request), new(url.URL)
	} else {
		p.prepareHeader(ex, r)
	}
	*out, *u = *r, *r.URL // r's context carries the exchange's trace
	out.URL = u
	out.Body, out.GetBody, out.Close = nil, nil, false
	u.RawQuery = cleanQuery(u.RawQuery)
	pr := httputil.ProxyRequest{In: r, Out: out}
	p.rewrite(ex, &pr)
	return pr.Out
}

// prepareHeader turns the client's header into the one every attempt
// sends, in place: ReverseProxy clones it for each attempt, and the fast
// path saves that copy. What the forwarded headers say is read first,
// from the header as the client sent it (a trusted proxy's values, the
// Connection header); then the hop-by-hop headers go ("TE: trailers"
// and begin's request ID stay) and the forwarded ones are set, replacing
// the client's.
// Nothing reads the client's header after this but the attempts:
// net/http's server read what it needs from it (keep-alive, close) before
// the handler ran, and every stage before forward, and retryable's
// idempotence (exchange.idempotent), took what they need already.
func (p *Proxy) prepareHeader(ex *exchange, r *http.Request) {
	h := r.Header
	fwd := forwardedOf(r, p.trusted)
	prefix := ""
	if ex.route != "" { // routed: the prefix is what the route stripped
		prefix = forwardedPrefixOf(r, p.trusted, ex.prefix)
	}
	te := hasToken(h["Te"], "trailers")
	var id []string // begin's; nil when request IDs are off
	if p.idHeader != "" {
		id = h[p.idHeader]
	}
	removeHopByHop(h)
	if te {
		h["Te"] = teTrailers // read only, as every header the transport sends
	}
	if id != nil { // ours, even if the client's Connection named its header
		h[p.idHeader] = id
	}
	fwd.set(h)
	if ex.route != "" {
		setPrefix(h, prefix)
	}
	if _, ok := h["User-Agent"]; !ok {
		h["User-Agent"] = noUserAgent // not Go's default
	}
}

// Header values shared by every outbound request: the transport only
// reads them, and nothing of ours writes to them.
var (
	teTrailers  = []string{"trailers"}
	noUserAgent = []string{""}
)

// respond sends the client the backend's response: its header, its body
// (flushed as it arrives for a stream or a response of unknown length) and
// its trailers. A body that breaks off aborts the response (the client
// sees it cut short, as the backend's was).
func (p *Proxy) respond(ex *exchange, res *http.Response) {
	w := &ex.rec
	h := w.Header()
	moveHeader(h, res.Header)
	announced := len(res.Trailer)
	if announced > 0 {
		names := make([]string, 0, announced)
		for k := range res.Trailer {
			names = append(names, k)
		}
		h.Add("Trailer", strings.Join(names, ", "))
	}
	w.WriteHeader(res.StatusCode)
	flush := res.ContentLength == -1 || eventStream(res.Header.Get("Content-Type"))
	if flush {
		w.Flush() // the header now, before any of the body
	}
	if err := p.copyBody(ex, res.Body, flush); err != nil {
		_ = res.Body.Close()
		panic(http.ErrAbortHandler) // end recovers it, after the report and the log
	}
	_ = res.Body.Close() // fills in res.Trailer
	if len(res.Trailer) == 0 {
		return
	}
	w.Flush() // chunked, so that the trailers can follow
	if len(res.Trailer) == announced {
		moveHeader(h, res.Trailer)
		return
	}
	for k, vv := range res.Trailer { // some were not announced
		for _, v := range vv {
			h.Add(http.TrailerPrefix+k, v)
		}
	}
}

// copyBody copies the response body to the client through one of the
// pool's buffers, flushing after each write when flush is set. It returns
// the first write error, or a read error other than the body's end.
func (p *Proxy) copyBody(ex *exchange, body io.Reader, flush bool) error {
	buf := p.buffers.Get()
	defer p.buffers.Put(buf)
	w := &ex.rec
	for {
		n, rerr := body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return werr
			}
			if flush {
				w.Flush()
			}
		}
		switch rerr {
		case nil:
		case io.EOF:
			return nil
		case context.Canceled:
			return rerr
		default:
			// ReverseProxy's line, through its ErrorLog, as before the
			// fast path.
			p.log.Info("httputil: ReverseProxy read error during body copy: " + rerr.Error())
			return rerr
		}
	}
}

// relayInformational is the fast path's httptrace Got1xxResponse: it
// passes a backend's 1xx response (103 Early Hints, say) on to the client.
// It runs on a transport goroutine while the handler goroutine waits in
// RoundTrip, and may run after RoundTrip returned (an attempt cut short
// by its context while the transport was still reading). So the right to
// write the client's header moves between the two by message: send puts
// a token in ex.relay before RoundTrip, this takes it (or, finding none,
// knows the attempt is over and relays nothing) and puts it back, and
// endRelay takes it for good once RoundTrip has returned.
//
// As ReverseProxy does, it clears the client's header map after the 1xx
// went out: what is in it went with the 1xx.
func (ex *exchange) relayInformational(code int, header textproto.MIMEHeader) error {
	select {
	case <-ex.relay:
	default:
		return nil // RoundTrip has returned
	}
	h := ex.rec.Header()
	for k, vv := range header {
		h[k] = append(h[k], vv...)
	}
	ex.rec.WriteHeader(code)
	clear(h)
	ex.relay <- struct{}{} // cannot block: the token was ours
	return nil
}

// endRelay takes the right to write the client's header back from the
// transport (see relayInformational), waiting for a 1xx being relayed.
//
// It waits for nothing else, the one receive of ours that does not also
// select on a context's end: the token comes back after at most one write
// to the client, which net/http bounds (a gone HTTP/1 client fails it, a
// reset HTTP/2 stream ends it, and so does the server's write timeout).
// Giving up on the client's context instead would let the handler end
// while that write runs, after which net/http reuses the connection's
// buffers, and would leave the token for a late 1xx to take: a crash, as
// a review test showed (TestReviewClientGoneAfterAHint).
func (ex *exchange) endRelay() {
	<-ex.relay
}

// removeHopByHop deletes the hop-by-hop headers from h: the ones its
// Connection header lists, and the fixed list of RFC 7230 §6.1 and RFC
// 2616 §13.5.1, as ReverseProxy did.
func removeHopByHop(h http.Header) {
	for _, v := range h["Connection"] {
		for name := range strings.SplitSeq(v, ",") {
			if name = textproto.TrimString(name); name != "" {
				h.Del(name)
			}
		}
	}
	for _, name := range hopByHop {
		delete(h, name)
	}
}

// hopByHop are the headers that never travel past one connection
// (canonical names).
var hopByHop = [...]string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

// moveHeader adds src's values to dst. A name dst lacks takes src's slice
// itself: src is a response header nobody reads after this.
func moveHeader(dst, src http.Header) {
	for k, vv := range src {
		if old, ok := dst[k]; ok {
			dst[k] = append(old, vv...)
		} else {
			dst[k] = vv
		}
	}
}

// hasToken reports whether one of a header's values lists token in its
// comma-separated list, as HTTP compares tokens: ASCII letters folded,
// spaces and tabs trimmed (as ReverseProxy's httpguts does). Every check
// of a Connection, TE or Upgrade list goes through it.
func hasToken(values []string, token string) bool {
	for _, v := range values {
		for t := range strings.SplitSeq(v, ",") {
			if asciiEqualFold(textproto.TrimString(t), token) {
				return true
			}
		}
	}
	return false
}

// eventStream reports whether a Content-Type is text/event-stream
// (Server-Sent Events), whatever its parameters.
func eventStream(contentType string) bool {
	base, _, _ := strings.Cut(contentType, ";")
	return asciiEqualFold(textproto.TrimString(base), "text/event-stream")
}

// asciiEqualFold is strings.EqualFold for ASCII tokens, as HTTP compares
// them: strings.EqualFold would also match "ſ" (2 bytes) with "s" and "K"
// (the Kelvin sign) with "k", which ReverseProxy's httpguts does not.
func asciiEqualFold(a, b string) bool {
	return len(a) == len(b) && strings.EqualFold(a, b)
}

// cleanQuery is the query as ReverseProxy sends it: re-encoded when it
// holds a parameter net/url would not parse (a semicolon, a bad escape),
// which then drops that parameter, or more than 10 000 parameters; as it
// is otherwise. A backend thus never reads a parameter the balancer could
// not read.
func cleanQuery(q string) string {
	if strings.Count(q, "&") >= 10000 {
		return reencode(q)
	}
	for i := 0; i < len(q); i++ {
		switch q[i] {
		case ';':
			return reencode(q)
		case '%':
			if i+2 >= len(q) || !isHex(q[i+1]) || !isHex(q[i+2]) {
				return reencode(q)
			}
			i += 2
		}
	}
	return q
}

func reencode(q string) string {
	v, _ := url.ParseQuery(q)
	return v.Encode()
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}
