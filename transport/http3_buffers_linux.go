package transport

import "syscall"

// forceBufferSize sets the buffer for opt (SO_RCVBUF or SO_SNDBUF) to
// quicBufferSize past the sysctl limits, which needs CAP_NET_ADMIN (as
// quic-go does), and returns the size now.
func forceBufferSize(raw syscall.RawConn, opt int) int {
	force := syscall.SO_RCVBUFFORCE
	if opt == syscall.SO_SNDBUF {
		force = syscall.SO_SNDBUFFORCE
	}
	_ = raw.Control(func(fd uintptr) {
		_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, force, quicBufferSize)
	})
	return socketBuffer(raw, opt)
}
