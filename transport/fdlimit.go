package transport

import (
	"bytes"
	"errors"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
)

// fdListener is the innermost listener of a Frontend: it handles running
// out of file descriptors (EMFILE, ENFILE) at accept.
//
// net/http's Serve loop answers such an error by sleeping (5 ms, doubling
// to 1 s) and logging "http: Accept error: ... too many open files;
// retrying" each time, while the connections waiting in the kernel's
// backlog wait, and time out, for as long as the condition lasts. Instead,
// fdListener keeps one spare descriptor (/dev/null, opened at the first
// Accept): when accept fails for want of descriptors it closes the spare,
// accepts the waiting connection with the freed one, answers it 503 (on
// plain HTTP, if its request has arrived; see shed) and closes it, and
// reopens the spare. The clients it cannot serve are told at once, and the
// ones it is serving keep their connections. If the spare cannot be
// reopened (another part of the process took the freed descriptor first),
// Accept backs off, 5 ms doubling to 100 ms, and tries again.
//
// It logs the condition once when it begins ("out of file descriptors")
// and once when accept works again after a second without the error, with
// how many connections it shed; net/http never sees the error.
//
// Accept is called by one goroutine (http.Server's Serve loop, or a TLS
// listener's accept loop), which owns every field but closed; Close may
// run on any goroutine. The spare is closed by Accept once the listener
// has closed.
type fdListener struct {
	net.Listener
	plain   bool          // the clients speak plain HTTP/1.x: a shed one gets a 503
	log     hclog.Logger  // the condition's two lines
	closed  chan struct{} // closed by Close: stops a back-off
	closing chan struct{} // holds the one right to close closed

	spare   *os.File  // nil before the first Accept, or while it cannot be reopened
	opened  bool      // the first Accept has tried to open spare
	since   time.Time // when the current episode began; zero: none
	failed  time.Time // when accept last failed for want of descriptors
	shed    int       // connections shed in the current episode
	backoff time.Duration
}

func newFDListener(ln net.Listener, plain bool, log hclog.Logger) *fdListener {
	l := &fdListener{Listener: ln, plain: plain, log: log, closed: make(chan struct{}), closing: make(chan struct{}, 1)}
	l.closing <- struct{}{}
	return l
}

// shedResponse is what a shed plain-HTTP client reads.
const shedResponse = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n" +
	"Connection: close\r\nRetry-After: 1\r\nContent-Length: 45\r\n\r\n" +
	"503 Service Unavailable: balancer overloaded\n"

func (l *fdListener) Accept() (net.Conn, error) {
	if !l.opened {
		l.opened = true
		l.spare, _ = os.Open(os.DevNull) // no spare: Accept backs off instead
	}
	for {
		c, err := l.Listener.Accept()
		if err == nil {
			l.recovered()
			return c, nil
		}
		if !outOfDescriptors(err) {
			if errors.Is(err, net.ErrClosed) && l.spare != nil {
				_ = l.spare.Close()
				l.spare = nil
			}
			return nil, err
		}
		l.failed = time.Now()
		if l.since.IsZero() {
			l.since, l.backoff = l.failed, 0
			l.log.Warn("out of file descriptors: shedding new connections", "error", err)
		}
		if l.shedOne() {
			continue
		}
		l.backoff = min(max(2*l.backoff, 5*time.Millisecond), 100*time.Millisecond)
		select {
		case <-time.After(l.backoff):
		case <-l.closed:
			return nil, net.ErrClosed
		}
	}
}

// shedOne gives the spare descriptor to the next waiting connection,
// answers and closes it, and takes the spare back. It reports whether it
// had a spare to give.
func (l *fdListener) shedOne() bool {
	if l.spare == nil {
		l.spare, _ = os.Open(os.DevNull)
		if l.spare == nil {
			return false
		}
	}
	_ = l.spare.Close()
	l.spare = nil
	c, err := l.Listener.Accept()
	if err == nil {
		l.shed++
		l.backoff = 0
		if l.plain {
			shed(c)
		}
		_ = c.Close()
	}
	l.spare, _ = os.Open(os.DevNull)
	return true
}

// shed answers a plain-HTTP connection 503 if its request has arrived;
// it waits for it no more than a moment, since Accept waits meanwhile. A
// request read whole means the close is a clean FIN, not a reset that
// could wipe the answer out before the client reads it; a client that
// has sent nothing yet, or too much to read at once, just sees its
// connection close.
func shed(c net.Conn) {
	var buf [4096]byte
	_ = c.SetDeadline(time.Now().Add(2 * time.Millisecond))
	n, err := c.Read(buf[:])
	if err != nil || n == len(buf) || !bytes.Contains(buf[:n], []byte("\r\n\r\n")) {
		return
	}
	_, _ = c.Write([]byte(shedResponse))
}

// recovered ends an episode, if one is under way and accept has not
// failed for a second (so that a load hovering at the limit does not log
// a pair of lines each time it crosses), with its line.
func (l *fdListener) recovered() {
	if l.since.IsZero() || time.Since(l.failed) < time.Second {
		return
	}
	l.log.Info("file descriptors available again: accepting", "shed", l.shed, "after", time.Since(l.since).Round(time.Millisecond))
	l.since, l.shed = time.Time{}, 0
}

// Close stops Accept, including one backing off.
func (l *fdListener) Close() error {
	select {
	case <-l.closing:
		close(l.closed)
	default:
	}
	return l.Listener.Close()
}

// outOfDescriptors reports whether err means the process (EMFILE) or the
// system (ENFILE) has no file descriptor to spare.
func outOfDescriptors(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)
}
