package transport

import "io"

// A stream the backend drops while its client is still sending, or idle
// on its half (a bidirectional gRPC stream waiting for the server), must
// end at once, not when the client next sends or gives up. net/http's
// HTTP/2 transport does not get there by itself: the stream's writer
// goroutine is blocked reading the client's body, and the response body
// breaks only when that writer ends (clientStream.cleanupWriteRequest).
// When the connection dies (a backend killed, a ping unanswered) or the
// stream is reset, the transport does close the request body to stop the
// writer, but ReverseProxy hands it a body whose Close does nothing (so
// that a failed attempt cannot close the client's body under a retry),
// so the writer stays blocked and the client sees nothing until its own
// deadline.
//
// streamBody, between ReverseProxy's wrapper and the transport (under
// attemptBody, for an h2c backend), passes that Close on to the client's
// body, once the attempt's response has begun (modifyResponse closed responded): nothing can be retried then,
// and the close ends the writer's read, so the response body breaks and
// the client gets its end (for gRPC, UNAVAILABLE trailers: grpcEndBroken).
// Before the response began, a Close is still ReverseProxy's no-op, and a
// refused attempt can go to another backend. It is used only when the
// client speaks HTTP/2, whose request body's Close never waits for a Read
// in progress (an HTTP/1 body's waits for it).
//
// Close may run on any goroutine (the HTTP/2 transport closes the body
// from one of its own); it reads src, set before the attempt began, and
// responded, a channel.
type streamBody struct {
	io.ReadCloser               // ReverseProxy's wrapper of the exchange's body
	src           io.Closer     // the client's own request body
	responded     chan struct{} // closed once the attempt's response began
}

func (b *streamBody) Close() error {
	select {
	case <-b.responded:
		_ = b.src.Close()
	default: // no response yet: the attempt may still be retried
	}
	return b.ReadCloser.Close()
}
