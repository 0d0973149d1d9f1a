package e2e

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks for leaked goroutines and removes the binary exBinary
// built. (The e2e package's shared TestMain replaces this one at merge.)
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		if exDir != "" {
			os.RemoveAll(exDir)
		}
		os.Exit(code)
	}))
}
