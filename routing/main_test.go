package routing

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine outlives them. This
// package starts none; the check keeps it that way.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
