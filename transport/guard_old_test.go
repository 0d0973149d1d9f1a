package transport

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
)

// The framing guard before issue 18's second round, for
// TestGuardAgreesWithTheOldOne while the new one is written.

// oldGuard is the framing state of one connection. Every open connection
// holds one, idle or not, so it is kept small: what all of a listener's
// guards share is in cfg, and the small fields sit together.
type oldGuard struct {
	cfg *guardConfig
	err error // sticky: set once a head is rejected

	remaining uint64 // inBody, inChunkData
	line      []byte // the current line, without its CRLF
	size      int    // bytes of the current head or trailer section
	heads     int    // request heads seen on this connection
	state     guardState
	crlf      uint8 // inChunkCRLF: how many of "\r\n" seen
	sawCR     bool  // the previous byte was a CR ending a line
	head      oldHeadFacts
}

// oldHeadFacts is what the oldGuard learns from a request head's lines. Of
// each framing field it keeps the first value and how many lines gave
// one, counted up to 2: more than one is all the rules need to know.
type oldHeadFacts struct {
	lines                                    int
	method, target                           string
	contentLength, transferEncoding, host    string
	nContentLength, nTransferEncoding, nHost uint8
	http10, upgrade                          bool
}

// scan runs the oldGuard over p, the bytes just read. It returns how many of
// them may be released: all, unless a head is faulty, in which case those
// before the LF that would have completed it, and the reason.
func (g *oldGuard) scan(p []byte) (int, error) {
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
				if err := g.endLine(); err != nil {
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

// lineRun takes, in one step, the bytes at the start of p that lineByte
// would append to the line one by one: up to the first CR or LF, and no
// further than the state's size limit allows (the byte over the limit is
// left to lineByte, which refuses it). It returns how many it took: none
// after a CR, whose LF lineByte must see.
func (g *oldGuard) lineRun(p []byte) int {
	if g.sawCR {
		return 0
	}
	n := bytes.IndexAny(p, "\r\n")
	if n < 0 {
		n = len(p)
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
func (g *oldGuard) lineByte(c byte) (bool, error) {
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

// endLine acts on the line just completed.
func (g *oldGuard) endLine() error {
	line := g.line
	g.line = g.line[:0]
	// An empty line ends a head or a trailer section: the connection may
	// now stay idle for long, so a large buffer goes. One over 4 KiB goes
	// at the end of its own line.
	if cap(line) > 4096 || (len(line) == 0 && cap(line) > keepLine) {
		g.line = nil
	}
	switch g.state {
	case inChunkSize:
		n, err := oldParseChunkSize(line)
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
	h.lines++
	if h.lines == 1 {
		return g.requestLine(string(line))
	}
	if len(line) > 0 {
		return h.headerLine(line)
	}
	return g.endHead()
}

// requestLine reads "METHOD target HTTP/1.x", split as net/http splits it.
func (g *oldGuard) requestLine(line string) error {
	h := &g.head
	method, rest, ok1 := strings.Cut(line, " ")
	target, proto, ok2 := strings.Cut(rest, " ")
	if !ok1 || !ok2 || method == "" || target == "" {
		return errors.New("malformed request line")
	}
	h.method, h.target = method, target
	switch proto {
	case "HTTP/1.1":
	case "HTTP/1.0":
		h.http10 = true
	case "HTTP/2.0":
		if method == "PRI" && target == "*" && g.heads == 0 && g.cfg.h2c {
			g.state = passThrough // the HTTP/2 connection preface (h2c)
			return nil
		}
		return errors.New("HTTP/2 preface where HTTP/1.x is expected")
	default:
		return errors.New("unsupported protocol version")
	}
	return nil
}

// headerLine records the framing facts of one field line.
func (h *oldHeadFacts) headerLine(line []byte) error {
	if line[0] == ' ' || line[0] == '\t' {
		return errors.New("obsolete line folding")
	}
	name, value, ok := bytes.Cut(line, []byte(":"))
	if !ok || !isToken(name) {
		return errors.New("malformed header field")
	}
	// Only four fields matter here; the value becomes a string (an
	// allocation) only for the first line of the three whose value counts.
	var first *string
	var n *uint8
	switch {
	case bytes.EqualFold(name, []byte("Content-Length")):
		first, n = &h.contentLength, &h.nContentLength
	case bytes.EqualFold(name, []byte("Transfer-Encoding")):
		first, n = &h.transferEncoding, &h.nTransferEncoding
	case bytes.EqualFold(name, []byte("Host")):
		first, n = &h.host, &h.nHost
	case bytes.EqualFold(name, []byte("Upgrade")):
		h.upgrade = true
	}
	if n != nil {
		if *n == 0 {
			*first = string(bytes.Trim(value, " \t"))
		}
		*n = min(*n+1, 2)
	}
	return nil
}

// endHead checks a complete head and sets up for its body.
func (g *oldGuard) endHead() error {
	h := g.head
	g.head = oldHeadFacts{}
	g.heads++
	g.size = 0
	if err := h.check(); err != nil {
		return err
	}
	if g.cfg.accepted != nil {
		g.cfg.accepted(h.method, h.target)
	}
	switch {
	case h.upgrade && h.target != "*":
		// The bytes after an upgrade request are the new protocol's when
		// the backend switches; otherwise the proxy closes the connection.
		g.state = passThrough
	case h.nTransferEncoding == 1:
		if !strings.EqualFold(h.transferEncoding, "chunked") {
			// net/http answers 501 Not Implemented and closes; whatever
			// follows is unframed, so nothing more gets through.
			g.err = errBadRequest
			g.state = passThrough
			return nil
		}
		g.state = inChunkSize
	case h.nContentLength == 1:
		n, _ := strconv.ParseUint(h.contentLength, 10, 63) // checked
		if n > 0 {
			g.state, g.remaining = inBody, n
		}
	}
	return nil
}

// check applies the framing rules to a complete head.
func (h *oldHeadFacts) check() error {
	switch {
	case h.nContentLength > 0 && h.nTransferEncoding > 0:
		return errors.New("both Content-Length and Transfer-Encoding")
	case h.nContentLength > 1:
		return errors.New("more than one Content-Length")
	case h.nTransferEncoding > 1:
		return errors.New("more than one Transfer-Encoding")
	case h.nTransferEncoding > 0 && h.http10:
		return errors.New("Transfer-Encoding in an HTTP/1.0 request")
	case h.nContentLength == 1 && !oldValidContentLength(h.contentLength):
		return errors.New("invalid Content-Length")
	}
	return h.checkTarget()
}

// checkTarget accepts the four request-target forms of RFC 9112 §3.2 where
// they belong: origin-form ("/path"), asterisk-form only for OPTIONS,
// authority-form only for CONNECT (which the proxy then refuses), and
// absolute-form only when it names the same host as the Host header. A
// request that names another host in its target than in Host is a forward
// proxy request, and which of the two a backend would believe is anyone's
// guess. An absolute-form target naming the Host header's host is the same
// request as its origin form, so it passes (servers must accept it).
func (h *oldHeadFacts) checkTarget() error {
	t := h.target
	switch {
	case h.method == "CONNECT" || strings.HasPrefix(t, "/"):
		return nil
	case t == "*":
		if h.method != "OPTIONS" {
			return errors.New("asterisk-form target outside OPTIONS")
		}
		return nil
	}
	scheme, rest, ok := strings.Cut(t, "://")
	if !ok || !(strings.EqualFold(scheme, "http") || strings.EqualFold(scheme, "https")) {
		return errors.New("malformed request target")
	}
	authority := rest
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		authority = rest[:i]
	}
	if h.nHost != 1 || !strings.EqualFold(authority, h.host) {
		return errors.New("absolute-form target names another host than the Host header")
	}
	return nil
}

// oldValidContentLength accepts 1 to 18 decimal digits (what net/http parses
// as a non-negative int63, less its largest values).
func oldValidContentLength(s string) bool {
	if s == "" || len(s) > 18 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// oldParseChunkSize parses a chunk-size line exactly as net/http does: it
// trims trailing whitespace, drops a ";extension", and wants 1 to 16 hex
// digits in what is left.
func oldParseChunkSize(line []byte) (uint64, error) {
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
