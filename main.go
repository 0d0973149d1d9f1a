// Command roundhouse is an HTTP load balancer built in the actor style: one
// selector goroutine owns all balancing state and every other goroutine
// talks to it by message. See README.md to start, docs/configuration.md for
// every command and flag, and actors/doc.go for the model.
//
// This file reads the command line and runs a command. Package config
// turns the serve command's flags and file into Settings, which are data;
// build.go builds the running parts from them; serve.go is the balancer's
// lifetime as named steps (sockets, transport, selector, discovery, admin,
// frontend, run, drain, stop), with a table of every long-lived goroutine,
// its owner and its end; reload.go is SIGHUP. edge.go holds the
// client-facing actors; demo.go, validate.go, status.go and upgradecmd.go
// the other commands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/hashicorp/go-hclog"
	"github.com/sourcegraph/conc"

	"github.com/roundhouse/roundhouse/config"
	"github.com/roundhouse/roundhouse/internal/accesslog"
	"github.com/roundhouse/roundhouse/internal/logbatch"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3";
// otherwise the module version from the build info is used.
var version = ""

const usage = `usage:
  roundhouse serve [flags]        run the load balancer (the default when the first argument is a flag)
  roundhouse backend --listen ADDR [--name NAME]
                                  run a demo backend
  roundhouse demo [flags]         run 3 demo backends and the balancer in one process
  roundhouse validate FILE        check a configuration file (see serve --config)
  roundhouse upgrade --pid-file FILE | --pid PID
                                  hand a running balancer's sockets to a new copy of its binary
  roundhouse status [--admin ADDR] [--admin-token-file FILE]
                                  print the backends' state from a balancer's admin API
  roundhouse version              print the version

Run "roundhouse serve -h" for the balancer's flags.
`

// Exit statuses (the command-line contract in docs/configuration.md).
const (
	exitOK      = 0
	exitRuntime = 1
	exitUsage   = 2
)

// usageError marks an error as the user's: exit status 2.
type usageError struct{ error }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// run executes one command line and returns the exit status. ctx ends the
// long-running commands gracefully.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	} else if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	var err error
	switch cmd {
	case "serve":
		err = runServe(ctx, args, stderr, false, stdout)
	case "demo":
		err = runServe(ctx, args, stderr, true, stdout)
	case "backend":
		err = runBackend(ctx, args, stderr)
	case "validate":
		return runValidate(args, stdout, stderr)
	case "status":
		err = runStatus(ctx, args, stdout, stderr)
	case "upgrade":
		err = runUpgrade(ctx, args, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "roundhouse", buildVersion())
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		err = usageError{fmt.Errorf("unknown command %q", cmd)}
		fmt.Fprint(stderr, usage)
	}
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	for line := range strings.Lines(err.Error()) { // config.Problems: one per line
		fmt.Fprint(stderr, "roundhouse: ", strings.TrimSuffix(line, "\n"), "\n")
	}
	if errors.As(err, new(usageError)) {
		return exitUsage
	}
	return exitRuntime
}

func buildVersion() string {
	v := version
	if info, ok := debug.ReadBuildInfo(); ok && v == "" {
		v = info.Main.Version
	}
	if v == "" {
		v = "(devel)"
	}
	return v + " " + strings.TrimPrefix(runtimeVersion(), "go")
}

func runtimeVersion() string {
	if info, ok := debug.ReadBuildInfo(); ok {
		return info.GoVersion
	}
	return "unknown"
}

func newLogger(s *config.Settings, out io.Writer) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name: "roundhouse", Level: s.LogLevel(), JSONFormat: s.Log.Format == "json", Output: out,
	})
}

// newAccessLog returns the access log: the lines log.Named("access") would
// write at info, made without hclog (see internal/accesslog), to out, the
// writer log writes to. nil when the access log is off or the log level
// hides info.
func newAccessLog(s *config.Settings, log hclog.Logger, out io.Writer) *accesslog.Logger {
	if !s.Log.Access || log.GetLevel() > hclog.Info {
		return nil
	}
	return accesslog.New(accesslog.Options{
		Name: log.Named("access").Name(), JSON: s.Log.Format == "json", Output: out,
	})
}

// runServe runs the balancer ("serve") or the balancer with its own three
// demo backends ("demo") until ctx ends. Package config reads the flags and
// the --config file and checks them.
func runServe(ctx context.Context, args []string, stderr io.Writer, withDemo bool, stdout io.Writer) error {
	name := "serve"
	if withDemo {
		name = "demo"
	}
	s, err := config.Load(args, config.Options{Name: "roundhouse " + name, Output: stderr, OwnBackends: withDemo})
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	// Log lines go out through a batching writer, an actor of its own, so
	// that the access log costs one write(2) per batch, not per request.
	// It stops last, once everything that logs has.
	out := logbatch.New(stderr, 0)
	logCtx, stopLog := context.WithCancel(context.WithoutCancel(ctx))
	var logging conc.WaitGroup
	logging.Go(func() { _ = out.Run(logCtx) })
	defer logging.Wait()
	defer stopLog()
	log := newLogger(s, out)
	access := newAccessLog(s, log, out)
	if withDemo {
		return runDemo(ctx, s, log, access, stdout)
	}
	var reload func() (*config.Settings, error)
	if s.File != "" {
		// A reload reads the file again under the same command line.
		reload = func() (*config.Settings, error) {
			return config.Load(args, config.Options{Name: "roundhouse " + name})
		}
	}
	return serve(ctx, s, log, serveOptions{reload: reload, access: access, logDropped: out.Dropped})
}

// parseCommand parses a command's flags: an unknown flag, a bad value or a
// stray argument is a usage error; -h is flag.ErrHelp.
func parseCommand(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	return nil
}
