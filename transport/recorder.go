package transport

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
)

// recorder is the http.ResponseWriter the proxy writes through: it remembers
// the status and counts body bytes for the access log and for deciding
// whether an error can still be answered. It passes Flush and Hijack
// straight through (streaming and protocol upgrades) and Unwrap for
// http.ResponseController.
type recorder struct {
	http.ResponseWriter
	status   int   // final status written; 0 while nothing has been
	bytes    int64 // body bytes written
	hijacked bool
	// closeConn makes the final response carry "Connection: close" unless
	// it is 101 Switching Protocols: net/http then closes the client
	// connection after it. Set only for HTTP/1.x (see admit).
	closeConn bool
	tunnels   *Tunnels // counts a hijacked connection; nil: not counted
	// grpc says the request is a gRPC call: the balancer's own errors are
	// then gRPC responses (see grpc.go).
	grpc bool
	// preset is what the client's header held before the proxy wrote to
	// it (AdvertiseHTTP3's Alt-Svc), and the request ID begin adds: a 1xx
	// passed to the client clears the header map after it (ReverseProxy
	// and relayInformational both do), so the final WriteHeader puts back
	// what is missing. hinted says a 1xx went.
	preset  [2]presetHeader
	npreset int
	hinted  bool
	http10  bool // the client speaks HTTP/1.0: no 1xx for it
}

type presetHeader struct {
	name   string
	values []string
}

// keep remembers a header the client's final response must carry even
// after a 1xx (see preset); beyond two, it forgets.
func (w *recorder) keep(name string, values []string) {
	if w.npreset < len(w.preset) {
		w.preset[w.npreset] = presetHeader{name, values}
		w.npreset++
	}
}

func (w *recorder) WriteHeader(code int) {
	if code < 200 && code != http.StatusSwitchingProtocols {
		w.hinted = true // the caller clears the header next (see preset)
		if w.http10 {
			return // RFC 9110 §15.2: an HTTP/1.0 client would take it for the response
		}
	}
	if code == http.StatusContinue {
		// The backend's go-ahead: net/http's server sends the client its
		// own 100 Continue when the body is first read, which the
		// transport does only after this go-ahead. Relaying this one too
		// could send the client two, in either order.
		return
	}
	if w.status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		w.status = code
		if w.hinted {
			h := w.Header()
			for _, p := range w.preset[:w.npreset] {
				if _, ok := h[p.name]; !ok {
					h[p.name] = p.values
				}
			}
		}
		if w.closeConn && code != http.StatusSwitchingProtocols {
			w.Header().Set("Connection", "close")
		}
	}
	w.ResponseWriter.WriteHeader(code) // 1xx informational responses pass through
}

func (w *recorder) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	return n, err
}

func (w *recorder) Flush() {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// Hijack hands the client connection over for a protocol switch. The
// tunnel is counted from just before the hijack until endTunnel.
func (w *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.tunnels != nil {
		w.tunnels.Enter()
	}
	conn, rw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		if w.tunnels != nil {
			w.tunnels.Leave()
		}
		return nil, nil, fmt.Errorf("hijack: %w", err)
	}
	w.hijacked = true
	if w.status == 0 {
		w.status = http.StatusSwitchingProtocols
	}
	return withBuffered(conn, rw.Reader), rw, nil
}

// endTunnel ends the count of a hijacked connection once the handler,
// which relays the tunnel until it closes, is done.
func (w *recorder) endTunnel() {
	if w.hijacked && w.tunnels != nil {
		w.tunnels.Leave()
	}
}

func (w *recorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// written reports whether the client has been sent anything final.
func (w *recorder) written() bool { return w.status != 0 || w.hijacked }
