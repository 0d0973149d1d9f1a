package transport

import (
	"errors"
	"io"
)

// replayableBody wraps a client's request body for the whole exchange, across
// attempts. http.Transport closes a request body when an attempt fails; the
// wrapper ignores that Close (net/http's server closes the real body after
// the handler returns), so a body that no attempt has read is still intact
// for the next backend.
//
// It is read by the transport's write goroutine during an attempt and by the
// handler goroutine after it: http.Transport's RoundTrip returns an error
// only after its writer has finished with the body, which orders the two.
//
// A positive limit caps the body: the read that would pass it returns the
// bytes up to the limit and errBodyTooLarge. The body is counted as it
// streams, never buffered.
type replayableBody struct {
	io.ReadCloser
	limit int64 // bytes allowed; 0: no limit
	read  int64 // bytes handed to any attempt
	err   error // the first read error other than io.EOF: the client's fault
}

func (b *replayableBody) Read(p []byte) (int, error) {
	if b.limit > 0 && int64(len(p)) > b.limit-b.read+1 {
		p = p[:b.limit-b.read+1] // one byte past the limit shows it is passed
	}
	n, err := b.ReadCloser.Read(p)
	if b.limit > 0 && b.read+int64(n) > b.limit {
		n, err = int(b.limit-b.read), errBodyTooLarge
	}
	b.read += int64(n)
	if err != nil && err != io.EOF && b.err == nil {
		b.err = err
	}
	return n, err
}

// Close does nothing: the body must survive a failed attempt. The handler
// closes the real body when the whole exchange ends.
func (b *replayableBody) Close() error { return nil }

// untouched reports whether no byte has been read, so a new attempt sends
// the body whole. A nil body is always untouched.
func (b *replayableBody) untouched() bool { return b == nil || b.read == 0 }

var errBodyConsumed = errors.New("request body already sent in part; cannot resend it")

// rewind is the outbound request's GetBody: the body again, if untouched.
func (b *replayableBody) rewind() (io.ReadCloser, error) {
	if !b.untouched() {
		return nil, errBodyConsumed
	}
	return b, nil
}
