package transport

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/sourcegraph/conc"
)

// TLS termination.
//
// The serving certificate belongs to a CertStore goroutine: every handshake
// asks it for the current certificate over a channel, and Reload (on
// SIGHUP) loads the files on the caller's goroutine and hands the store the
// new certificate by message, so a reload never pauses handshakes and a bad
// file never replaces a good certificate.
//
// Handshakes happen in the listener, not in http.Server, because the
// framing guard must sit on top of TLS for HTTP/1.1 and net/http speaks
// HTTP/2 only on a connection that is a *tls.Conn. So the listener
// completes each handshake (on a goroutine of its own, bounded by a
// timeout, so slow handshakes never hold up Accept) and hands net/http a
// *tls.Conn when ALPN chose h2, or the guarded connection for HTTP/1.1.

// ServerTLSConfig returns modern server settings (Mozilla's "intermediate"
// profile): TLS 1.2 and 1.3 only; for TLS 1.2 only forward-secret AEAD
// cipher suites; HTTP/2 and HTTP/1.1 offered by ALPN. getCertificate
// supplies the certificate for each handshake.
func ServerTLSConfig(getCertificate func(*tls.ClientHelloInfo) (*tls.Certificate, error)) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		CipherSuites: []uint16{ // TLS 1.2; TLS 1.3's suites are all fine and not configurable
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
			tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		},
		NextProtos:     []string{"h2", "http/1.1"},
		GetCertificate: getCertificate,
	}
}

// CertStore is the goroutine that owns the serving certificate. Create it
// with NewCertStore, start exactly one Run, and stop it by cancelling Run's
// context. GetCertificate and Reload are safe from any goroutine.
type CertStore struct {
	certFile, keyFile string
	gets              chan chan *tls.Certificate // answered on the reply channel, capacity 1
	swaps             chan *tls.Certificate
	stopped           chan struct{} // closed by Run on its way out

	cert *tls.Certificate // owned by Run once it starts
}

// errCertStoreStopped is the answer of a store that no longer runs.
var errCertStoreStopped = errors.New("certificate store stopped")

// NewCertStore loads certFile and keyFile (PEM) and returns a store
// serving them.
func NewCertStore(certFile, keyFile string) (*CertStore, error) {
	cert, err := loadKeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	return NewCertStoreWith(cert, certFile, keyFile), nil
}

// NewCertStoreWith returns a store serving cert, which the caller has
// loaded from certFile and keyFile (as package config does); Reload reads
// those files again.
func NewCertStoreWith(cert *tls.Certificate, certFile, keyFile string) *CertStore {
	return &CertStore{
		certFile: certFile, keyFile: keyFile, cert: cert,
		gets: make(chan chan *tls.Certificate), swaps: make(chan *tls.Certificate),
		stopped: make(chan struct{}),
	}
}

// Leaf is the certificate the store was made with, for a startup log line.
// Call it before Run.
func (s *CertStore) Leaf() *x509.Certificate { return s.cert.Leaf }

func loadKeyPair(certFile, keyFile string) (*tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	return &cert, nil // LoadX509KeyPair fills in Leaf
}

// Run serves the current certificate and takes new ones until ctx is done,
// then returns nil.
func (s *CertStore) Run(ctx context.Context) error {
	defer close(s.stopped)
	for {
		select {
		case reply := <-s.gets:
			reply <- s.cert // capacity 1: never blocks
		case c := <-s.swaps:
			s.cert = c
		case <-ctx.Done():
			return nil
		}
	}
}

// GetCertificate is the tls.Config hook: the certificate now in force.
func (s *CertStore) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	ctx := hello.Context()
	if ctx == nil { // a ClientHelloInfo made outside a handshake
		ctx = context.Background()
	}
	return s.current(ctx)
}

// Current is the leaf of the certificate now in force, the one the next
// handshake gets: after a Reload that succeeded, the new one. It is for
// reporting (the admin API's certificate expiry); it waits for Run, or
// until ctx is done, and fails once Run has returned.
func (s *CertStore) Current(ctx context.Context) (*x509.Certificate, error) {
	cert, err := s.current(ctx)
	if err != nil {
		return nil, err
	}
	return leafOf(cert)
}

// leafOf is cert's leaf: Leaf, which tls.LoadX509KeyPair fills in, or
// else its first certificate parsed.
func leafOf(cert *tls.Certificate) (*x509.Certificate, error) {
	if cert.Leaf != nil {
		return cert.Leaf, nil
	}
	if len(cert.Certificate) == 0 {
		return nil, errors.New("certificate store: an empty certificate chain")
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("certificate store: %w", err)
	}
	return leaf, nil
}

// current asks Run for the certificate in force.
func (s *CertStore) current(ctx context.Context) (*tls.Certificate, error) {
	reply := make(chan *tls.Certificate, 1)
	select {
	case s.gets <- reply:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-s.stopped:
		return nil, errCertStoreStopped
	}
	return <-reply, nil // answered in the same step that took the request
}

// Reload reads the certificate and key files again and, if they load,
// makes them the serving certificate for new handshakes; otherwise the
// current one stays and the error says why. It returns the new leaf.
func (s *CertStore) Reload(ctx context.Context) (*x509.Certificate, error) {
	cert, err := loadKeyPair(s.certFile, s.keyFile)
	if err != nil {
		return nil, err
	}
	select {
	case s.swaps <- cert:
		return cert.Leaf, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-s.stopped:
		return nil, errCertStoreStopped
	}
}

// tlsListener completes TLS handshakes off the accept path and hands
// Accept finished connections: *tls.Conn for HTTP/2, wrap(conn) (the
// framing guard) for HTTP/1.x.
//
// Its goroutines, one accept loop and one per handshake in progress,
// belong to it: they start with newTLSListener and Close ends them and
// waits for them. A handshake that outlasts the timeout is dropped.
type tlsListener struct {
	inner   net.Listener
	config  *tls.Config
	timeout time.Duration
	wrap    func(net.Conn) net.Conn
	log     hclog.Logger

	ready   chan net.Conn      // handshaken connections, to Accept
	errs    chan error         // the inner listener's errors, to Accept
	stop    chan struct{}      // closed by Close
	closing chan struct{}      // holds the one right to close stop
	ctx     context.Context    // ends with Close: aborts handshakes
	cancel  context.CancelFunc //
	wg      conc.WaitGroup     // the accept loop and the handshakes
}

func newTLSListener(inner net.Listener, config *tls.Config, timeout time.Duration,
	wrap func(net.Conn) net.Conn, log hclog.Logger) *tlsListener {
	ctx, cancel := context.WithCancel(context.Background())
	l := &tlsListener{
		inner: inner, config: config, timeout: timeout, wrap: wrap, log: log,
		ready: make(chan net.Conn), errs: make(chan error), stop: make(chan struct{}),
		closing: make(chan struct{}, 1), ctx: ctx, cancel: cancel,
	}
	l.closing <- struct{}{}
	l.wg.Go(l.acceptLoop)
	return l
}

func (l *tlsListener) acceptLoop() {
	for {
		c, err := l.inner.Accept()
		if err != nil {
			select {
			case l.errs <- err: // http.Server retries temporary errors
			case <-l.stop:
				return
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		l.wg.Go(func() { l.handshake(c) })
	}
}

func (l *tlsListener) handshake(c net.Conn) {
	tc := tls.Server(c, l.config)
	ctx, cancel := context.WithTimeout(l.ctx, l.timeout)
	err := tc.HandshakeContext(ctx)
	cancel()
	if err != nil {
		var rh tls.RecordHeaderError
		if errors.As(err, &rh) && rh.Conn != nil && looksLikeHTTP(rh.RecordHeader[:]) {
			_ = rh.Conn.SetWriteDeadline(time.Now().Add(time.Second))
			_, _ = io.WriteString(rh.Conn, "HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n")
		}
		l.log.Debug("TLS handshake failed", "client", c.RemoteAddr().String(), "error", err)
		_ = c.Close()
		return
	}
	if tc.ConnectionState().NegotiatedProtocol == "acme-tls/1" {
		_ = tc.Close() // an ACME CA's TLS-ALPN-01 validation: the handshake was all it wanted
		return
	}
	var out net.Conn = tc
	if tc.ConnectionState().NegotiatedProtocol != "h2" {
		out = l.wrap(tc)
	}
	select {
	case l.ready <- out:
	case <-l.stop:
		_ = tc.Close()
	}
}

// looksLikeHTTP reports whether the first bytes of a "TLS record" are in
// fact a plaintext HTTP request.
func looksLikeHTTP(hdr []byte) bool {
	for _, m := range []string{"GET /", "HEAD ", "POST ", "PUT /", "OPTIO", "DELET", "PATCH"} {
		if bytes.HasPrefix(hdr, []byte(m)) {
			return true
		}
	}
	return false
}

func (l *tlsListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ready:
		return c, nil
	case err := <-l.errs:
		return nil, err
	case <-l.stop:
		return nil, net.ErrClosed
	}
}

// Close stops accepting, aborts handshakes in progress and waits for the
// listener's goroutines.
func (l *tlsListener) Close() error {
	select {
	case <-l.closing:
	default:
		return nil
	}
	close(l.stop)
	l.cancel()
	err := l.inner.Close()
	l.wg.Wait()
	return err
}

func (l *tlsListener) Addr() net.Addr { return l.inner.Addr() }

// isTLSHandshakeFailure reports whether err means a backend's TLS
// handshake failed (an untrusted or mismatched certificate, a protocol
// alert, no handshake within --tls-handshake-timeout): nothing of the
// request was sent, like a refused connection. For most attempts the
// request trace already says so (exchange.noConnection); this recognises
// the errors also when the transport had a connection first (a dead pooled
// one it then redialled).
func isTLSHandshakeFailure(err error) bool {
	var verify *tls.CertificateVerificationError
	var alert tls.AlertError
	var hdr tls.RecordHeaderError
	return errors.As(err, &verify) || errors.As(err, &alert) || errors.As(err, &hdr) || isTLSHandshakeTimeout(err)
}

// tlsHandshakeTimeoutMsg is the text of the error http.Transport returns
// when a backend's TLS handshake outlasts TLSHandshakeTimeout. Its type is
// unexported, so the text is all there is to recognise it by.
const tlsHandshakeTimeoutMsg = "net/http: TLS handshake timeout"

// isTLSHandshakeTimeout reports whether err, or an error it wraps, is
// http.Transport's TLS handshake timeout. It is a timeout (net.Error), but
// unlike a response header timeout nothing was sent: the request may go
// to another backend.
func isTLSHandshakeTimeout(err error) bool {
	for ; err != nil; err = errors.Unwrap(err) {
		if err.Error() == tlsHandshakeTimeoutMsg {
			return true
		}
	}
	return false
}
