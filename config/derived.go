package config

import (
	"fmt"

	"github.com/hashicorp/go-hclog"
)

// Values derived from Settings that are still data. What runs is built
// from Settings by the command (see build.go at the module's root).

// StickySecret returns the sticky cookie's key: the contents of
// Sticky.SecretFile, or a random key made once per process when there is no
// such file.
func (s *Settings) StickySecret() []byte {
	if s.Sticky.Secret != nil {
		return s.Sticky.Secret
	}
	return processSecret
}

// LogLevel returns Log.Level as an hclog level.
func (s *Settings) LogLevel() hclog.Level { return hclog.LevelFromString(s.Log.Level) }

// Summary describes the settings in one line: "3 backends (1 disabled),
// policy weighted-round-robin, listen 127.0.0.1:8080".
func (s *Settings) Summary() string {
	disabled := 0
	for _, b := range s.Backends {
		if b.Disabled {
			disabled++
		}
	}
	out := fmt.Sprintf("%d backend", len(s.Backends))
	if len(s.Backends) != 1 {
		out += "s"
	}
	if disabled > 0 {
		out += fmt.Sprintf(" (%d disabled)", disabled)
	}
	if n := len(s.Discover); n > 0 {
		out += fmt.Sprintf(", %d discovery source", n)
		if n != 1 {
			out += "s"
		}
	}
	out += ", policy " + s.Policy + ", listen " + s.Listen
	if s.Admin.Listen != "" {
		out += ", admin " + s.Admin.Listen
	}
	return out
}
