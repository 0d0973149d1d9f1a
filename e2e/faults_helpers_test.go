package e2e

import (
	"testing"
	"time"
)

// toxiproxyServer is Toxiproxy's server, built once by faultToxiproxy.
var toxiproxyServer built

// faultToxiproxy returns Toxiproxy's server, built once from the module
// cache (go.mod names it as a tool, so go mod download fetches it). The
// test is skipped, saying why, only when it cannot be built; .ci/run
// builds it first so that CI never skips.
func faultToxiproxy(t *testing.T) string {
	t.Helper()
	path, err := toxiproxyServer.build("toxiproxy-server", "github.com/Shopify/toxiproxy/v2/cmd/server")
	if err != nil {
		t.Skipf("skipped: Toxiproxy's server cannot be built (go mod download fetches it; .ci/run builds it): %v", err)
	}
	return path
}

// faultListening matches roundhouse's listening line: its address and the
// admin API's.
const faultListening = `listening: addr=(127\.0\.0\.1:\d+) .*admin=(127\.0\.0\.1:\d+)`

// faultPoll polls cond every 20ms until it holds or d passes, and reports
// whether it held.
func faultPoll(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		<-tick.C
	}
	return true
}
