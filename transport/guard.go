package transport

import (
	"bytes"
	"crypto/tls"
	"errors"
	"net"
	"strings"

	"github.com/hashicorp/go-hclog"
)

// The framing guard: request smuggling defence for HTTP/1.x.
//
// Smuggling works when two parties on a request's path disagree about where
// one request ends and the next begins. net/http's server is strict about
// much (differing duplicate Content-Lengths, invalid lengths, unknown
// transfer codings, bare CR, NUL), but it accepts some messages RFC 9112
// calls faulty and keeps the connection open afterwards, and it hides from
// handlers the evidence needed to refuse them:
//
//   - Content-Length together with Transfer-Encoding (it drops the length);
//   - Transfer-Encoding in an HTTP/1.0 request (it ignores the coding);
//   - repeated identical Content-Length fields (it merges them);
//   - obs-fold continuation lines (it unfolds them) and bare LF line ends;
//   - an absolute-form target naming a host other than the Host header (it
//     uses the target's host), and targets in no valid form at all.
//
// The guard sits between the socket and net/http. It watches the bytes
// net/http reads and understands just enough HTTP/1.1 to find each request
// head and to skip each body (Content-Length or chunked, by the same rules
// as net/http). It passes bytes on as they arrive, so net/http's own
// timeouts and limits work as always, except the last LF of each request
// head: that byte is released only once the whole head has been checked.
// net/http cannot finish reading a head without it, so no unchecked head is
// ever parsed. A faulty head makes Read fail instead; net/http answers such
// a read error with "400 Bad Request" and closes the connection, and the
// guard logs the reason. Nothing ambiguous reaches a handler, so nothing
// ambiguous is forwarded: the proxy always re-frames what it sends.
//
// After a request with an Upgrade header the guard stops inspecting: the
// bytes that follow belong to the new protocol if the backend agrees to
// switch, and the proxy closes the connection if it does not (see
// recorder.closeConn, set by admit). The HTTP/2 connection preface likewise
// turns the guard into a pass-through; HTTP/2 frames carry no such
// ambiguity and net/http's HTTP/2 server checks lengths itself.
//
// Ownership: a connection's guard state is touched only by Read, and
// net/http never reads one connection from two goroutines at once (its
// background reader and its request reader hand over under its own lock),
// so the state needs no lock, as for any other io.Reader.

// guardConn is a client connection whose reads pass through a guard.
type guardConn struct {
	net.Conn
	g guard
}

// tlsGuardConn is a guarded TLS connection. net/http does not see a
// *tls.Conn, so it takes the TLS state from ConnectionState to fill in
// Request.TLS.
type tlsGuardConn struct {
	guardConn
	tls *tls.Conn
}

func (c *tlsGuardConn) ConnectionState() tls.ConnectionState { return c.tls.ConnectionState() }

// guardConfig is what every guard of one listener shares. It is not
// written after the listener is made, so any goroutine may read it.
type guardConfig struct {
	// limit bounds a request head in bytes.
	limit int
	// h2c says whether the server accepts the HTTP/2 preface (otherwise
	// net/http would hand it to the handler as a "PRI" request whose body
	// is the rest of the connection).
	h2c bool
	// log gets one line per rejected head.
	log hclog.Logger
	// accepted is a test hook, called with each head that passed; nil in
	// production.
	accepted func(method, target string)
}

// newGuardConn wraps c in a guard configured by cfg.
func newGuardConn(c net.Conn, cfg *guardConfig) net.Conn {
	g := guardConn{Conn: c, g: guard{cfg: cfg}}
	if tc, ok := c.(*tls.Conn); ok {
		return &tlsGuardConn{guardConn: g, tls: tc}
	}
	return &g
}

func (c *guardConn) Read(p []byte) (int, error) {
	if c.g.err != nil {
		return 0, c.g.err
	}
	n, err := c.Conn.Read(p)
	k, gerr := c.g.scan(p[:n])
	if gerr != nil {
		c.g.cfg.log.Info("rejected request", "client", c.RemoteAddr().String(), "reason", gerr.Error())
		c.g.err = errBadRequest
		if k > 0 {
			// The bytes before the fault go first, the error with the next
			// Read: net/http cancels a connection's requests on any read
			// error, and the request these bytes complete is not at fault.
			return k, nil
		}
		return 0, errBadRequest
	}
	return k, err
}

// CloseWrite half-closes the connection when the underlying one can: an
// upgraded connection (WebSocket) relays a half-close.
func (c *guardConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.New("close write: not supported")
}

// errBadRequest is what Read returns for a faulty head. It is neither
// io.EOF nor a net.Error, so net/http answers 400 and closes.
var errBadRequest = errors.New("request rejected: ambiguous or malformed HTTP/1.x framing")

// guardState says what the next byte is.
type guardState uint8

const (
	inHead      guardState = iota // a request head
	inBody                        // a Content-Length body; remaining bytes
	inChunkSize                   // a chunk-size line
	inChunkData                   // chunk data; remaining bytes
	inChunkCRLF                   // the CRLF after chunk data; crlf bytes seen
	inTrailer                     // the trailer section after the last chunk
	passThrough                   // no longer HTTP/1.x: upgraded or HTTP/2
)

// guard is the framing state of one connection. Every open connection
// holds one, idle or not, so it is kept small: what all of a listener's
// guards share is in cfg, and the small fields sit together.
type guard struct {
	cfg *guardConfig
	err error // sticky: set once a head is rejected

	remaining uint64 // inBody, inChunkData
	line      []byte // a line begun in an earlier read, without its CRLF
	size      int    // bytes of the current head or trailer section
	heads     int    // request heads seen on this connection
	state     guardState
	crlf      uint8 // inChunkCRLF: how many of "\r\n" seen
	sawCR     bool  // the previous byte was a CR ending a line
	head      headFacts
}

// headFacts is what the guard learns from a request head's lines, as
// each line comes: the rules need only a few facts about the request line
// and the first value of each framing field, and how many lines gave one,
// counted up to 2, so no line is kept (and no string made) once it has
// been read.
type headFacts struct {
	// contentLength is the first Content-Length's value when
	// lengthValid.
	contentLength uint64
	// authority is an absolute-form target's authority (the part after
	// "scheme://", up to any path, query or fragment); "" for any other
	// form of target.
	authority string
	// requestLine is the request line, kept only for guardConfig.accepted
	// (in tests); "" in production.
	requestLine string

	nContentLength, nTransferEncoding, nHost uint8
	target                                   targetForm
	started                                  bool // the request line has been read
	http10, upgrade                          bool
	asterisk                                 bool // the target is "*"
	lengthValid                              bool // the first Content-Length's value is valid
	chunked                                  bool // the first Transfer-Encoding's value is "chunked"
	hostMatches                              bool // the first Host's value is authority
}

// targetForm is what the request line says of its target; checkTarget
// judges it once the head is complete.
type targetForm uint8

const (
	targetValid     targetForm = iota // origin-form, CONNECT's, or OPTIONS *
	targetAsterisk                    // "*" outside OPTIONS
	targetMalformed                   // in no form at all
	targetAbsolute                    // absolute-form: valid if it names Host's host
)

// Limits mirrored from net/http: a chunk-size line (net/http's
// maxLineLength) and a trailer section (its bufio.Reader's size).
const (
	maxChunkLine = 4096
	maxTrailer   = 4096
)

// scan runs the guard over p, the bytes just read. It returns how many of
// them may be released: all, unless a head is faulty, in which case those
// before the LF that would have completed it, and the reason.
//
// A line wholly inside p that ends in CRLF, holds no other CR and keeps
// within its limit (nearly every line) is read where it lies, in one step.
// Any other line goes a byte, or a run of plain bytes, at a time through
// g.line, and that slower way alone finds faults, and where they are.
func (g *guard) scan(p []byte) (int, error) {
	for i := 0; i < len(p); {
		switch g.state {
		case passThrough:
			return len(p), nil
		case inBody, inChunkData:
			n := uint64(len(p) - i)
			if n > g.remaining {
				n = g.remaining
			}
			g.remaining -= n
			i += int(n)
			if g.remaining == 0 {
				if g.state == inBody {
					g.state = inHead
				} else {
					g.state, g.crlf = inChunkCRLF, 0
				}
			}
		case inChunkCRLF:
			if p[i] != "\r\n"[g.crlf] {
				return i, errors.New("chunk data not followed by CRLF")
			}
			i++
			if g.crlf++; g.crlf == 2 {
				g.state = inChunkSize
			}
		default: // line-oriented states
			if len(g.line) == 0 && !g.sawCR {
				if n := g.wholeLine(p[i:]); n > 0 {
					i += n
					if err := g.endLine(p[i-n : i-2]); err != nil {
						return i - 1, err // withhold the LF
					}
					if g.err != nil {
						return i, nil // release this head, nothing after it
					}
					continue
				}
			}
			if n := g.lineRun(p[i:]); n > 0 {
				i += n
				continue
			}
			done, err := g.lineByte(p[i])
			if err != nil {
				return i, err
			}
			i++
			if done {
				if err := g.endLine(g.line); err != nil {
					return i - 1, err // withhold the LF
				}
				if g.err != nil {
					return i, nil // release this head, nothing after it
				}
			}
		}
	}
	return len(p), nil
}

// wholeLine returns the length, CRLF included, of the line at the start of
// p if it is a well-formed one that lineRun and lineByte would take without
// fault (it ends in CRLF within p, holds no other CR, and keeps within the
// state's limit), having counted it in g.size as they would; 0 otherwise.
func (g *guard) wholeLine(p []byte) int {
	lf := bytes.IndexByte(p, '\n')
	if lf < 1 || p[lf-1] != '\r' || (lf > 1 && bytes.IndexByte(p[:lf-1], '\r') >= 0) {
		return 0
	}
	n := lf + 1
	switch g.state {
	case inHead:
		if g.size+n > g.cfg.limit {
			return 0
		}
	case inTrailer:
		if g.size+n > maxTrailer {
			return 0
		}
	case inChunkSize:
		if lf-1 >= maxChunkLine {
			return 0
		}
	}
	g.size += n
	return n
}

// lineRun takes, in one step, the bytes at the start of p that lineByte
// would append to the line one by one: up to the first CR or LF, and no
// further than the state's size limit allows (the byte over the limit is
// left to lineByte, which refuses it). It returns how many it took: none
// after a CR, whose LF lineByte must see.
func (g *guard) lineRun(p []byte) int {
	if g.sawCR {
		return 0
	}
	n := bytes.IndexByte(p, '\n')
	if n < 0 {
		n = len(p)
	}
	if cr := bytes.IndexByte(p[:n], '\r'); cr >= 0 {
		n = cr
	}
	switch g.state {
	case inHead:
		n = min(n, max(g.cfg.limit-g.size, 0))
	case inTrailer:
		n = min(n, max(maxTrailer-g.size, 0))
	case inChunkSize:
		n = min(n, max(maxChunkLine-len(g.line), 0))
	}
	g.line = append(g.line, p[:n]...)
	g.size += n
	return n
}

// lineByte takes one byte of a line-oriented state and reports whether it
// ended a line. Lines end in CRLF; a CR or LF anywhere else is refused, as
// in chunked lines by net/http and in heads by strict servers.
func (g *guard) lineByte(c byte) (bool, error) {
	g.size++
	switch {
	case g.state == inHead && g.size > g.cfg.limit:
		return false, errors.New("request head too large")
	case g.state == inTrailer && g.size > maxTrailer:
		return false, errors.New("trailer section too large")
	case g.state == inChunkSize && len(g.line) >= maxChunkLine:
		return false, errors.New("chunk-size line too long")
	}
	if g.sawCR {
		g.sawCR = false
		if c != '\n' {
			return false, errors.New("CR not followed by LF")
		}
		return true, nil
	}
	switch c {
	case '\r':
		g.sawCR = true
	case '\n':
		return false, errors.New("line ends in a bare LF")
	default:
		g.line = append(g.line, c)
	}
	return false, nil
}

// keepLine is the largest line buffer the guard keeps from one request
// head to the next. A keep-alive connection holds its guard for as long as
// it is open, idle or not, so a buffer grown by one long line (a browser's
// Cookie header is often a few KiB) would otherwise stay with every idle
// connection; up to this size it is kept and reused without an allocation.
const keepLine = 256

// endLine acts on line, the line just completed, without its CRLF: either
// g.line or a piece of the bytes just read. Nothing keeps it afterwards.
func (g *guard) endLine(line []byte) error {
	// An empty line ends a head or a trailer section: the connection may
	// now stay idle for long, so a large buffer goes. One over 4 KiB goes
	// at the end of its own line.
	if c := cap(g.line); c > 4096 || (len(line) == 0 && c > keepLine) {
		g.line = nil
	} else {
		g.line = g.line[:0]
	}
	switch g.state {
	case inChunkSize:
		n, err := parseChunkSize(line)
		if err != nil {
			return err
		}
		if n == 0 {
			g.state, g.size = inTrailer, 0
		} else {
			g.state, g.remaining = inChunkData, n
		}
		return nil
	case inTrailer:
		if len(line) == 0 {
			g.state, g.size = inHead, 0
		}
		return nil
	}
	h := &g.head
	if !h.started {
		h.started = true
		return g.requestLine(line)
	}
	if len(line) > 0 {
		return h.headerLine(line)
	}
	return g.endHead()
}

// requestLine reads "METHOD target HTTP/1.x", split as net/http splits it.
func (g *guard) requestLine(line []byte) error {
	h := &g.head
	sp1 := bytes.IndexByte(line, ' ')
	if sp1 <= 0 {
		return errors.New("malformed request line")
	}
	method, rest := line[:sp1], line[sp1+1:]
	sp2 := bytes.IndexByte(rest, ' ')
	if sp2 <= 0 {
		return errors.New("malformed request line")
	}
	target, proto := rest[:sp2], rest[sp2+1:]
	if g.cfg.accepted != nil {
		h.requestLine = string(line)
	}
	switch string(proto) { // no allocation: only compared
	case "HTTP/1.1":
	case "HTTP/1.0":
		h.http10 = true
	case "HTTP/2.0":
		if string(method) == "PRI" && string(target) == "*" && g.heads == 0 && g.cfg.h2c {
			g.state = passThrough // the HTTP/2 connection preface (h2c)
			return nil
		}
		return errors.New("HTTP/2 preface where HTTP/1.x is expected")
	default:
		return errors.New("unsupported protocol version")
	}
	h.asterisk = string(target) == "*"
	h.target = readTarget(method, target, &h.authority)
	return nil
}

// readTarget sorts a request target into the four forms of RFC 9112
// §3.2, for checkTarget: origin-form ("/path") is valid, and so is any
// target of CONNECT (which the proxy then refuses); asterisk-form is
// valid only for OPTIONS; absolute-form ("http://host/path") is valid
// only if it names the same host as the Host header, so its authority
// goes in *authority for headerLine to compare.
func readTarget(method, t []byte, authority *string) targetForm {
	switch {
	case string(method) == "CONNECT" || t[0] == '/':
		return targetValid
	case string(t) == "*":
		if string(method) != "OPTIONS" {
			return targetAsterisk
		}
		return targetValid
	}
	scheme, rest, ok := bytes.Cut(t, []byte("://"))
	if !ok || !(bytes.EqualFold(scheme, []byte("http")) || bytes.EqualFold(scheme, []byte("https"))) {
		return targetMalformed
	}
	if i := bytes.IndexAny(rest, "/?#"); i >= 0 {
		rest = rest[:i]
	}
	*authority = string(rest)
	return targetAbsolute
}

// headerLine records the framing facts of one field line.
func (h *headFacts) headerLine(line []byte) error {
	if line[0] == ' ' || line[0] == '\t' {
		return errors.New("obsolete line folding")
	}
	// The name is the token before the first colon: the token bytes run
	// up to the colon, and ':' is not one of them.
	colon := 0
	for colon < len(line) && fieldNameBytes[line[colon]] {
		colon++
	}
	if colon == 0 || colon == len(line) || line[colon] != ':' {
		return errors.New("malformed header field")
	}
	name, value := line[:colon], line[colon+1:]
	// Only four fields matter here, told apart by length first; of the
	// three whose value counts, only the first line's is looked at.
	switch len(name) {
	case len("Host"):
		if tokenIs(name, "host") {
			if h.nHost == 0 && h.target == targetAbsolute {
				h.hostMatches = bytes.EqualFold(trimOWS(value), []byte(h.authority))
			}
			h.nHost = min(h.nHost+1, 2)
		}
	case len("Upgrade"):
		if tokenIs(name, "upgrade") {
			h.upgrade = true
		}
	case len("Content-Length"):
		if tokenIs(name, "content-length") {
			if h.nContentLength == 0 {
				h.contentLength, h.lengthValid = parseContentLength(trimOWS(value))
			}
			h.nContentLength = min(h.nContentLength+1, 2)
		}
	case len("Transfer-Encoding"):
		if tokenIs(name, "transfer-encoding") {
			if h.nTransferEncoding == 0 {
				h.chunked = bytes.EqualFold(trimOWS(value), []byte("chunked"))
			}
			h.nTransferEncoding = min(h.nTransferEncoding+1, 2)
		}
	}
	return nil
}

// endHead checks a complete head and sets up for its body.
func (g *guard) endHead() error {
	h := g.head
	g.head = headFacts{}
	g.heads++
	g.size = 0
	if err := h.check(); err != nil {
		return err
	}
	if g.cfg.accepted != nil {
		method, rest, _ := strings.Cut(h.requestLine, " ")
		target, _, _ := strings.Cut(rest, " ")
		g.cfg.accepted(method, target)
	}
	switch {
	case h.upgrade && !h.asterisk:
		// The bytes after an upgrade request are the new protocol's when
		// the backend switches; otherwise the proxy closes the connection.
		g.state = passThrough
	case h.nTransferEncoding == 1:
		if !h.chunked {
			// net/http answers 501 Not Implemented and closes; whatever
			// follows is unframed, so nothing more gets through.
			g.err = errBadRequest
			g.state = passThrough
			return nil
		}
		g.state = inChunkSize
	case h.nContentLength == 1:
		if n := h.contentLength; n > 0 { // valid: checked
			g.state, g.remaining = inBody, n
		}
	}
	return nil
}

// check applies the framing rules to a complete head.
func (h *headFacts) check() error {
	switch {
	case h.nContentLength > 0 && h.nTransferEncoding > 0:
		return errors.New("both Content-Length and Transfer-Encoding")
	case h.nContentLength > 1:
		return errors.New("more than one Content-Length")
	case h.nTransferEncoding > 1:
		return errors.New("more than one Transfer-Encoding")
	case h.nTransferEncoding > 0 && h.http10:
		return errors.New("Transfer-Encoding in an HTTP/1.0 request")
	case h.nContentLength == 1 && !h.lengthValid:
		return errors.New("invalid Content-Length")
	}
	return h.checkTarget()
}

// checkTarget accepts the four request-target forms of RFC 9112 §3.2 where
// they belong (see readTarget). A request that names another host in its
// target than in Host is a forward proxy request, and which of the two a
// backend would believe is anyone's guess. An absolute-form target naming
// the Host header's host is the same request as its origin form, so it
// passes (servers must accept it).
func (h *headFacts) checkTarget() error {
	switch h.target {
	case targetAsterisk:
		return errors.New("asterisk-form target outside OPTIONS")
	case targetMalformed:
		return errors.New("malformed request target")
	case targetAbsolute:
		if h.nHost != 1 || !h.hostMatches {
			return errors.New("absolute-form target names another host than the Host header")
		}
	}
	return nil
}

// parseContentLength parses a Content-Length value of 1 to 18 decimal
// digits (what net/http parses as a non-negative int63, less its largest
// values); ok is false for any other value.
func parseContentLength(s []byte) (n uint64, ok bool) {
	if len(s) == 0 || len(s) > 18 {
		return 0, false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, true
}

// trimOWS trims the spaces and tabs around a field value.
func trimOWS(v []byte) []byte {
	for len(v) > 0 && (v[0] == ' ' || v[0] == '\t') {
		v = v[1:]
	}
	for len(v) > 0 && (v[len(v)-1] == ' ' || v[len(v)-1] == '\t') {
		v = v[:len(v)-1]
	}
	return v
}

// fieldNameBytes says which bytes may appear in a field name: those of a
// token (isTokenByte), looked up in one step. ':' is not one.
var fieldNameBytes = func() (t [256]bool) {
	for c := range t {
		t[c] = isTokenByte(byte(c))
	}
	return t
}()

// tokenIs reports whether the token t is lower, a lower-case name, in
// any case: for a token, as bytes.EqualFold would, but in a few
// instructions a byte (of the bytes of a token, only upper-case letters
// become others under |0x20).
func tokenIs(t []byte, lower string) bool {
	if len(t) != len(lower) {
		return false
	}
	for i := range len(lower) {
		if t[i]|0x20 != lower[i] {
			return false
		}
	}
	return true
}

// parseChunkSize parses a chunk-size line exactly as net/http does: it
// trims trailing whitespace, drops a ";extension", and wants 1 to 16 hex
// digits in what is left.
func parseChunkSize(line []byte) (uint64, error) {
	line = bytes.TrimRight(line, " \t")
	line, _, _ = bytes.Cut(line, []byte(";"))
	if len(line) == 0 || len(line) > 16 {
		return 0, errors.New("invalid chunk size")
	}
	var n uint64
	for _, c := range line {
		var d byte
		switch {
		case '0' <= c && c <= '9':
			d = c - '0'
		case 'a' <= c && c <= 'f':
			d = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, errors.New("invalid chunk size")
		}
		n = n<<4 | uint64(d)
	}
	return n, nil
}
