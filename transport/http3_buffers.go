package transport

import (
	"net"
	"os"
	"syscall"

	"github.com/hashicorp/go-hclog"
)

// quicBufferSize is the UDP receive and send buffer quic-go asks for (7
// MiB): a smaller one drops datagrams under load, which QUIC takes for
// congestion.
const quicBufferSize = 7 << 20

// quicBufferWarningVar is quic-go's switch for its own warning about small
// UDP buffers, which it prints once with the standard library's log
// package, outside our log format.
const quicBufferWarningVar = "QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING"

// checkUDPBuffers raises conn's buffers to what quic-go wants, as far as
// the kernel allows (net.core.rmem_max and wmem_max; CAP_NET_ADMIN may
// exceed them), and says in our log, once per socket, when they stay
// smaller. It turns quic-go's own warning off: this one replaces it. A
// conn that is not a *net.UDPConn is left as it is.
func checkUDPBuffers(conn net.PacketConn, log hclog.Logger) {
	udp, ok := conn.(*net.UDPConn)
	if !ok {
		return
	}
	_ = os.Setenv(quicBufferWarningVar, "true")
	raw, err := udp.SyscallConn()
	if err != nil {
		return
	}
	_ = udp.SetReadBuffer(quicBufferSize)
	_ = udp.SetWriteBuffer(quicBufferSize)
	read, write := socketBuffer(raw, syscall.SO_RCVBUF), socketBuffer(raw, syscall.SO_SNDBUF)
	if read < quicBufferSize {
		read = forceBufferSize(raw, syscall.SO_RCVBUF)
	}
	if write < quicBufferSize {
		write = forceBufferSize(raw, syscall.SO_SNDBUF)
	}
	if read < quicBufferSize || write < quicBufferSize {
		log.Warn("UDP buffers smaller than QUIC wants; raise net.core.rmem_max and net.core.wmem_max (docs/operations.md)",
			"receive_kib", read>>10, "send_kib", write>>10, "want_kib", quicBufferSize>>10)
	}
}

// socketBuffer is the socket's buffer size for opt (SO_RCVBUF or SO_SNDBUF)
// as the kernel reports it (Linux: twice what was set); 0 if unknown.
func socketBuffer(raw syscall.RawConn, opt int) int {
	size := 0
	_ = raw.Control(func(fd uintptr) {
		size, _ = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, opt)
	})
	return size
}
