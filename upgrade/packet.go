package upgrade

import (
	"errors"
	"fmt"
	"net"
	"os"
)

// ListenPacket returns the UDP socket called name (HTTP/3's "quic"): the
// one inherited under that name if it was asked for the same address,
// otherwise a new one bound to addr. As with Listen, the socket belongs
// to the caller, who closes it, and Upgrade passes it on, so the port
// stays bound across an upgrade: datagrams queue in its buffer while the
// new process starts. (systemd's socket activation gives TCP sockets
// only here: a UDP socket is always the process's own or its parent's.)
func (p *Process) ListenPacket(name, addr string) (net.PacketConn, error) {
	if in, ok := p.inherited[name]; ok && in.pc != nil {
		delete(p.inherited, name)
		if in.Addr == addr {
			p.log.Debug("inherited socket", "name", name, "addr", in.pc.LocalAddr().String(), "from", p.parent)
			return p.keepPacket(in.passedOff, in.pc), nil
		}
		p.log.Info("inherited socket not wanted: the address changed", "name", name, "was", in.Addr, "now", addr)
		in.close()
	}
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return nil, err
	}
	return p.keepPacket(passedOff{Name: name, Addr: addr, Packet: true}, pc), nil
}

func (p *Process) keepPacket(l passedOff, pc net.PacketConn) net.PacketConn {
	p.listeners = append(p.listeners, l)
	p.sockets = append(p.sockets, pc)
	return pc
}

// filePacketConn makes a UDP socket of an inherited descriptor; the
// socket has a descriptor of its own, closed on exec, and fd is closed.
func filePacketConn(fd int, name string) (net.PacketConn, error) {
	f := os.NewFile(uintptr(fd), name)
	if f == nil {
		return nil, errors.New("not an open file")
	}
	defer f.Close()
	pc, err := net.FilePacketConn(f)
	if err != nil {
		return nil, fmt.Errorf("not a UDP socket: %w", err)
	}
	return pc, nil
}
