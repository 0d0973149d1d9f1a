package transport

import (
	"context"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/quic-go/quic-go"
)

// quicLimitListener caps the number of open QUIC connections, as
// limitListener caps TCP's: its slots channel is a counting semaphore,
// Accept puts a value in before it takes a connection, and the
// connection's end (its context) takes one out. At the cap, Accept waits;
// handshaken connections wait in quic-go's accept queue meanwhile, and
// once that is full quic-go refuses new ones (CONNECTION_REFUSED), so
// clients fall back to TCP.
//
// Accept is called by one goroutine (http3.Server's serve loop), which
// owns warned. A slot is given back by a context.AfterFunc callback, on
// a goroutine of the runtime's that ends with it.
type quicLimitListener struct {
	*quic.Listener
	slots  chan struct{} // one value per open connection
	log    hclog.Logger
	warned time.Time // when Accept last logged that the cap was reached
}

func newQUICLimitListener(ln *quic.Listener, n int, log hclog.Logger) *quicLimitListener {
	return &quicLimitListener{Listener: ln, slots: make(chan struct{}, n), log: log}
}

// Accept waits for a free slot and then for a connection; ctx ending (the
// server's graceful shutdown) ends both waits.
func (l *quicLimitListener) Accept(ctx context.Context) (*quic.Conn, error) {
	select {
	case l.slots <- struct{}{}:
	default:
		if time.Since(l.warned) > time.Minute {
			l.warned = time.Now()
			l.log.Warn("QUIC connection limit reached; new connections wait", "max_conns", cap(l.slots))
		}
		select {
		case l.slots <- struct{}{}:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	c, err := l.Listener.Accept(ctx)
	if err != nil {
		<-l.slots
		return nil, err
	}
	context.AfterFunc(c.Context(), func() { <-l.slots })
	return c, nil
}
