package e2e

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks for leaked goroutines and removes the binaries the fault
// tests built. The lead replaces it at merge with the e2e package's shared
// TestMain, which must call faultCleanup too.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		faultCleanup()
		os.Exit(code)
	}))
}
