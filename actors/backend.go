package actors

import (
	"crypto/sha256"
	"encoding/hex"
	"net/url"
	"time"
)

// Backend is one upstream server. It is immutable once the selector has
// created it, so the selector hands out *Backend values freely and any
// goroutine may read them; only the selector keeps state about a backend.
type Backend struct {
	// URL is where requests go: scheme://host:port with an optional path
	// prefix. Never nil.
	URL *url.URL
	// Name is URL as a string, the key used in logs and in /status.
	Name string
	// ID is a short stable identifier derived from Name alone, so it is the
	// same on every start and every instance.
	ID string
}

// backendFor returns the Backend for u.
func backendFor(u *url.URL) *Backend {
	name := u.String()
	sum := sha256.Sum256([]byte(name))
	return &Backend{URL: u, Name: name, ID: hex.EncodeToString(sum[:6])}
}

// BackendConfig is one backend as configured.
type BackendConfig struct {
	URL *url.URL // required: scheme://host:port with an optional path prefix
	// Weight is the backend's share of traffic for the weighted policies.
	// 0 makes it a standby, used only while no backend with a weight is
	// eligible.
	Weight int
}

// String returns the backend's URL.
func (b *Backend) String() string { return b.Name }

// Health is a monitor's message to the selector: Backend has changed state.
// Monitors send transitions only (UP→DOWN, DOWN→UP), never every probe.
type Health struct {
	Backend *Backend
	Up      bool
	// Reason says why, for the log line and /status: the last probe error
	// for a DOWN, the passing streak for an UP.
	Reason string
}

// Outcome is what happened to one forwarded attempt, as the handler saw it.
type Outcome int

// The outcomes a handler reports. The zero value is Success.
const (
	// Success: the backend answered with response headers (any status).
	Success Outcome = iota
	// ConnectFailed: no connection could be made (refused, dial timeout).
	// The request never reached the backend. The selector marks the backend
	// DOWN at once (passive health) and its monitor must see it pass again.
	ConnectFailed
	// Failed: the exchange broke after the request was sent (reset, EOF,
	// response header timeout).
	Failed
	// ClientGone: the client went away first. Not the backend's fault.
	ClientGone
)

var outcomeNames = [...]string{"success", "connect-failed", "failed", "client-gone"}

// String names the outcome for logs.
func (o Outcome) String() string {
	if int(o) < len(outcomeNames) {
		return outcomeNames[o]
	}
	return "unknown"
}

// Report is a handler's message to the selector after each attempt: it ends
// the in-flight count the pick started and feeds statistics and passive health.
type Report struct {
	Backend  *Backend
	Outcome  Outcome
	Status   int           // response status, 0 when there was none
	Duration time.Duration // from pick to response headers or failure
	Err      error         // the transport's error, nil on Success
}

// BackendStatus is a snapshot of one backend as the selector sees it.
type BackendStatus struct {
	Name     string `json:"url"`
	ID       string `json:"id"`
	Up       bool   `json:"up"`
	Weight   int    `json:"weight"`
	Reason   string `json:"reason,omitempty"` // why it last changed state
	InFlight int    `json:"in_flight"`
	Requests uint64 `json:"requests"` // attempts completed, any outcome
	Failures uint64 `json:"failures"` // ConnectFailed and Failed outcomes
}
