package acme

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// certmagic's FileStorage refreshes each lock file in a goroutine
		// that sleeps 5 s between refreshes and ends at the first one
		// after the lock is released; nothing can stop it sooner. Each
		// obtain attempt takes locks, so a test that ends within 5 s of
		// one leaves these behind for up to 5 s.
		goleak.IgnoreAnyFunction("github.com/caddyserver/certmagic.keepLockfileFresh"),
		// certmagic starts one rate limiter per CA and account, the first
		// time it orders from them, and never stops it (its own TODO).
		goleak.IgnoreAnyFunction("github.com/caddyserver/certmagic.(*RingBufferRateLimiter).loop"),
	)
}
