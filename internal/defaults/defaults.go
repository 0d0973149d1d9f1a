// Package defaults holds the defaults of the settings that a running
// package also falls back to when its options leave them zero: package
// config's settings table uses them as the flags' and keys' defaults, and
// actors and transport as their zero-value fallbacks, so each is written
// once. The other settings' defaults are written in config's table alone.
//
// It imports nothing: any package may use it.
package defaults

import "time"

// Health probes (actors.MonitorConfig, actors.HTTPCheck; --health-*).
const (
	HealthPath     = "/health"        // --health-path
	HealthInterval = 10 * time.Second // --health-interval
	HealthTimeout  = 2 * time.Second  // --health-timeout
	Rise           = 2                // --rise
	Fall           = 3                // --fall
)

// Backend connections (transport.Options).
const (
	DialTimeout           = 3 * time.Second  // --dial-timeout
	TLSHandshakeTimeout   = 5 * time.Second  // --tls-handshake-timeout
	ResponseHeaderTimeout = 30 * time.Second // --response-header-timeout
	BackendIdleTimeout    = 90 * time.Second // --backend-idle-timeout
	BackendH2Ping         = 5 * time.Second  // --backend-h2-ping
)

// Client connections (transport.FrontendOptions).
const (
	ClientHeaderTimeout = 10 * time.Second  // --client-header-timeout
	ClientIdleTimeout   = 120 * time.Second // --client-idle-timeout
)

// Limits and ejection (actors.Limits, actors.Ejection).
const (
	QueueTimeout       = 5 * time.Second  // --queue-timeout
	EjectTime          = 30 * time.Second // --eject-time
	MaxEjectionPercent = 50               // --max-ejection-percent
	FailureWindow      = 50               // --eject-failure-window
)
