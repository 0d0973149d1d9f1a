package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/roundhouse/roundhouse/config"
)

// runValidate is the "validate" command: it loads FILE as serve --config
// FILE would and prints a summary (exit 0) or every problem, one per line
// (exit 1).
func runValidate(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("roundhouse validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintln(stderr, "usage: roundhouse validate FILE") }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return exitUsage
	}
	file := fs.Arg(0)
	s, err := config.Load([]string{"--config", file}, config.Options{Name: "roundhouse validate"})
	var problems config.Problems
	switch {
	case errors.As(err, &problems):
		for _, p := range problems {
			fmt.Fprintln(stderr, p)
		}
		return exitRuntime
	case err != nil:
		fmt.Fprintln(stderr, "roundhouse:", err)
		return exitRuntime
	}
	fmt.Fprintf(stdout, "%s: ok: %s\n", file, s.Summary())
	return exitOK
}
