package config

import (
	"os/exec"
	"strings"
	"testing"
)

// TestConfigImportsNothingThatRuns holds package config to being data: it
// may not import, directly or through another package, the packages that
// run the balancer. The command builds those from Settings.
func TestConfigImportsNothingThatRuns(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	const mod = "github.com/roundhouse/roundhouse/"
	forbidden := []string{"transport", "admin", "discovery", "upgrade"}
	for dep := range strings.Lines(string(out)) {
		dep = strings.TrimSpace(dep)
		for _, f := range forbidden {
			if dep == mod+f {
				t.Errorf("package config depends on %s: config is data; build the running parts in the command", dep)
			}
		}
	}
}
