package upgrade

import (
	"fmt"
	"net"

	"github.com/coreos/go-systemd/v22/activation"
	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/hashicorp/go-hclog"
)

// systemd speaks to the service manager in two ways.
//
// Notifications (sd_notify(3)): when NOTIFY_SOCKET is set (Type=notify
// units), the process sends READY=1 once it serves, RELOADING=1 (with
// MONOTONIC_USEC, as Type=notify-reload wants) and READY=1 around a
// reload, STOPPING=1 when it shuts down, and, when an upgrade has started
// a new process that is ready, MAINPID=<new pid> with READY=1, so that
// systemd follows the new process. The old process sends that last one
// because it is still the main process then: that works with the default
// NotifyAccess=main. Without NOTIFY_SOCKET nothing is sent.
//
// Socket activation (sd_listen_fds(3)): when LISTEN_PID is this process
// and LISTEN_FDS counts the sockets systemd passed from fd 3 on, those
// replace the addresses given by --listen, --admin and --http-listen: the
// one named "admin" (FileDescriptorName=admin in the .socket unit) serves
// the admin API, the one named "http" the plain-HTTP listener (ACME's
// HTTP-01 and the redirect to https), and the other one the proxy. The variables are removed from the
// environment once read, and an upgrade passes the sockets on as its own.

// fromSystemd takes the sockets of socket activation, if any.
func (p *Process) fromSystemd() error {
	files := activation.Files(true)
	for _, f := range files {
		ln, err := net.FileListener(f)
		f.Close()
		if err != nil {
			p.Close()
			return fmt.Errorf("socket activation: socket %s: %w", f.Name(), err)
		}
		name := "listen"
		if f.Name() == "admin" || f.Name() == "http" {
			name = f.Name()
		}
		if prev, dup := p.inherited[name]; dup {
			ln.Close()
			p.Close()
			return fmt.Errorf("socket activation: two sockets for the %s (%s and %s); want one, and FileDescriptorName=admin on the admin API's, http on the plain-HTTP listener's",
				role(name), prev.ln.Addr(), f.Name())
		}
		p.inherited[name] = inherited{passedOff: passedOff{Name: name, Activated: true}, ln: ln}
	}
	return nil
}

func role(name string) string {
	switch name {
	case "admin":
		return "admin API"
	case "http":
		return "plain-HTTP listener"
	}
	return "proxy"
}

// notifier sends sd_notify messages, when there is a NOTIFY_SOCKET.
type notifier struct{ log hclog.Logger }

func (n notifier) send(state string) {
	sent, err := daemon.SdNotify(false, state)
	switch {
	case err != nil:
		n.log.Warn("systemd notification failed", "state", state, "error", err)
	case sent:
		n.log.Debug("told systemd", "state", state)
	}
}

// monotonicUsec is the MONOTONIC_USEC line systemd wants with RELOADING=1.
func monotonicUsec() string { return daemon.SdNotifyMonotonicUsec() }
