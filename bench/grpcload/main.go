// Command grpcload is the unary gRPC load generator of bench/grpc.sh: a
// real grpc-go client that makes TestService/UnaryCall calls (gRPC's
// interop service, as internal/grpcbackend serves it) back to back from
// a number of concurrent workers, over a number of connections (h2c), for
// a while, and prints one line:
//
//	calls=N errors=E seconds=S rps=R p50_us=P p99_us=Q
//
// It is a yardstick, not part of Roundhouse, and does not follow
// Roundhouse's rules.
//
//	grpcload --addr 127.0.0.1:18180 --conns 4 --concurrency 64 --duration 3s --warmup 1s
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/sourcegraph/conc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:18180", "host:port to call (h2c)")
	conns := flag.Int("conns", 1, "client connections; workers share them round-robin")
	concurrency := flag.Int("concurrency", 16, "workers, each with one call in flight")
	duration := flag.Duration("duration", 3*time.Second, "how long to measure")
	warmup := flag.Duration("warmup", time.Second, "calls made before measuring, not counted")
	size := flag.Int("size", 64, "request and response payload bytes")
	flag.Parse()
	if err := run(*addr, *conns, *concurrency, *duration, *warmup, *size); err != nil {
		fmt.Fprintln(os.Stderr, "grpcload:", err)
		os.Exit(1)
	}
}

func run(addr string, conns, concurrency int, duration, warmup time.Duration, size int) error {
	var clients []testgrpc.TestServiceClient
	for range conns {
		// Each ClientConn has its own connection.
		cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return err
		}
		defer cc.Close()
		clients = append(clients, testgrpc.NewTestServiceClient(cc))
	}
	req := &testgrpc.SimpleRequest{
		ResponseType: testgrpc.PayloadType_COMPRESSABLE,
		ResponseSize: int32(size),
		Payload:      &testgrpc.Payload{Body: make([]byte, size)},
	}
	call := func(tc testgrpc.TestServiceClient) error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := tc.UnaryCall(ctx, req)
		return err
	}
	// Every connection up before the clock starts.
	for _, tc := range clients {
		if err := call(tc); err != nil {
			return fmt.Errorf("first call: %w", err)
		}
	}
	start := time.Now()
	measureFrom, end := start.Add(warmup), start.Add(warmup+duration)
	type result struct {
		lat    []time.Duration
		errors int
		first  error
	}
	results := make([]result, concurrency)
	var wg conc.WaitGroup // each worker owns its results[w]; Wait hands them to main
	for w := range concurrency {
		tc := clients[w%len(clients)]
		wg.Go(func() {
			r := &results[w]
			for {
				t0 := time.Now()
				if !t0.Before(end) {
					return
				}
				err := call(tc)
				if t0.Before(measureFrom) {
					continue
				}
				if err != nil {
					r.errors++
					if r.first == nil {
						r.first = err
					}
					continue
				}
				r.lat = append(r.lat, time.Since(t0))
			}
		})
	}
	wg.Wait()
	var all []time.Duration
	errors := 0
	var first error
	for _, r := range results {
		all = append(all, r.lat...)
		errors += r.errors
		if first == nil {
			first = r.first
		}
	}
	slices.Sort(all)
	pct := func(p float64) float64 {
		if len(all) == 0 {
			return 0
		}
		return float64(all[int(p*float64(len(all)-1))].Microseconds())
	}
	secs := duration.Seconds()
	fmt.Printf("calls=%d errors=%d seconds=%.1f rps=%.0f p50_us=%.0f p99_us=%.0f\n",
		len(all)+errors, errors, secs, float64(len(all))/secs, pct(0.5), pct(0.99))
	if first != nil {
		fmt.Fprintln(os.Stderr, "grpcload: first error:", first)
	}
	return nil
}
