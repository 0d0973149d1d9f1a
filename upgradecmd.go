package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"syscall"
	"time"

	"github.com/roundhouse/roundhouse/upgrade"
)

// runUpgrade is the "upgrade" command: it sends SIGUSR2 to a running
// balancer, which starts a new copy of itself with its sockets (see
// package upgrade). With --pid-file it waits until the file names the new
// process, which writes it once it serves.
func runUpgrade(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("roundhouse upgrade", flag.ContinueOnError)
	fs.SetOutput(stderr)
	pidFile := fs.String("pid-file", "", "`file` holding the balancer's process ID (its --pid-file); waits for the new process")
	pid := fs.Int("pid", 0, "the balancer's process `ID`; only signals it")
	timeout := fs.Duration("timeout", 90*time.Second, "with --pid-file, how long to wait for the new process")
	if err := parseCommand(fs, args); err != nil {
		return err
	}
	switch {
	case (*pidFile == "") == (*pid == 0):
		return usageError{errors.New("give --pid-file FILE or --pid PID (one of them)")}
	case *pid < 0:
		return usageError{fmt.Errorf("--pid: want a process ID, got %d", *pid)}
	case *timeout <= 0:
		return usageError{fmt.Errorf("--timeout: must be positive, got %v", *timeout)}
	}
	old := *pid
	if *pidFile != "" {
		p, err := upgrade.ReadPIDFile(*pidFile)
		if err != nil {
			return fmt.Errorf("--pid-file: %w", err)
		}
		old = p
	}
	if err := syscall.Kill(old, syscall.SIGUSR2); err != nil {
		return fmt.Errorf("signalling process %d: %w", old, err)
	}
	if *pidFile == "" {
		fmt.Fprintf(stdout, "roundhouse upgrade: sent SIGUSR2 to process %d\n", old)
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("process %d: no new process in %s after %v; see the balancer's log (the upgrade may have failed, and the old process serves on)",
				old, *pidFile, *timeout)
		case <-tick.C:
		}
		if now, err := upgrade.ReadPIDFile(*pidFile); err == nil && now != old {
			fmt.Fprintf(stdout, "roundhouse upgrade: process %d handed over to process %d\n", old, now)
			return nil
		}
	}
}
