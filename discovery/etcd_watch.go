package discovery

import (
	"context"

	"github.com/sourcegraph/conc"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// etcdWatch is an etcd provider's watch on its prefix. It belongs to the
// provider's Run goroutine, which alone calls its methods and receives
// from ch and starting; a nil ch or starting disables Run's case for it.
//
// Creating a watch blocks until etcd answers, and Run must keep answering
// its context and its check ticker meanwhile, so start hands the creation
// to a short-lived starter goroutine, owned by starters, which sends the
// watch's channel on starting (capacity 1: it never blocks) and ends.
// Cancelling the watch's context (stop) ends the watch and, if it is still
// being created, its starter too. close stops the watch and waits for the
// starters: Run calls it on its way out, before it closes the client.
type etcdWatch struct {
	cli      *clientv3.Client
	prefix   string
	starters conc.WaitGroup
	ch       clientv3.WatchChan      // the running watch; nil when none
	starting chan clientv3.WatchChan // the watch being created; nil when none
	cancel   context.CancelFunc      // stops the last watch started; nil before the first
}

// idle reports whether there is no watch, neither running nor being
// created.
func (w *etcdWatch) idle() bool { return w.ch == nil && w.starting == nil }

// start begins creating a watch of the prefix from revision from, under
// ctx; the watch fails when etcd has no leader. Run takes the new watch's
// channel from starting and hands it to started.
func (w *etcdWatch) start(ctx context.Context, from int64) {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	w.cancel = cancel
	started := make(chan clientv3.WatchChan, 1)
	w.starting = started
	w.starters.Go(func() {
		started <- w.cli.Watch(wctx, w.prefix, clientv3.WithPrefix(), clientv3.WithRev(from))
	})
}

// started makes ch, received from starting, the running watch.
func (w *etcdWatch) started(ch clientv3.WatchChan) { w.ch, w.starting = ch, nil }

// stop ends the watch, running or being created, and leaves w idle.
func (w *etcdWatch) stop() {
	if w.cancel != nil {
		w.cancel()
	}
	w.ch, w.starting = nil, nil
}

// close stops the watch and waits for every starter to return.
func (w *etcdWatch) close() {
	w.stop()
	w.starters.Wait()
}
