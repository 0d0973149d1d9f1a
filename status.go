package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/roundhouse/roundhouse/admin"
	"github.com/roundhouse/roundhouse/internal/parse"
)

// runStatus is the "status" command: it asks a running balancer's admin API
// for GET /status and prints the backends as a table, with a POOL column
// when the balancer has pools other than "default" (see admin.WriteTable).
func runStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("roundhouse status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("admin", parse.DefaultAdminAddr, "`address` of the balancer's admin API")
	tokenFile := fs.String("admin-token-file", "", "`file` holding the admin API's bearer token")
	timeout := fs.Duration("timeout", 5*time.Second, "how long to wait for the answer")
	if err := parseCommand(fs, args); err != nil {
		return err
	}
	if _, _, err := net.SplitHostPort(*addr); err != nil {
		return usageError{fmt.Errorf("--admin %s: want host:port, e.g. %s", *addr, parse.DefaultAdminAddr)}
	}
	if *timeout <= 0 {
		return usageError{fmt.Errorf("--timeout: must be positive, got %v", *timeout)}
	}
	var token []byte
	if *tokenFile != "" {
		t, err := parse.TokenFile(*tokenFile)
		if err != nil {
			return usageError{fmt.Errorf("--admin-token-file: %w", err)}
		}
		token = t
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	st, err := admin.FetchStatus(ctx, nil, *addr, token)
	var apiErr *admin.APIError
	switch {
	case errors.As(err, &apiErr):
		return fmt.Errorf("admin API at %s: %w", *addr, err)
	case err != nil:
		return fmt.Errorf("admin API at %s unreachable: %w (is the balancer running with --admin %s?)", *addr, err, *addr)
	}
	return admin.WriteTable(stdout, st)
}
