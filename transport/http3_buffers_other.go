//go:build !linux

package transport

import "syscall"

// forceBufferSize returns the buffer size for opt: only Linux can force a
// larger one.
func forceBufferSize(raw syscall.RawConn, opt int) int { return socketBuffer(raw, opt) }
