// Command grpcbackend is the gRPC backend of the end-to-end tests (package
// e2e) and of bench/grpc.sh: a real grpc-go server over cleartext HTTP/2
// (h2c, prior knowledge) serving gRPC's own interop test service
// (grpc.testing.TestService, from google.golang.org/grpc/interop) and the
// standard health service (grpc.health.v1.Health). It is a test tool, not
// part of Roundhouse, and runs as its own process so that a test can kill
// it with SIGKILL or stop it with SIGSTOP.
//
//	grpcbackend --listen 127.0.0.1:0 --name b1 [--max-connection-age 200ms] [--tls-cert F --tls-key F]
//
// Once serving it prints one line to stdout,
//
//	listening: addr=127.0.0.1:PORT pid=PID name=NAME
//
// and then:
//   - every call's response headers carry "backend: NAME", so that a client
//     knows which backend served it;
//   - SIGUSR1 sets the health status of every service ("" included) to
//     NOT_SERVING and prints "health: NOT_SERVING"; SIGUSR2 sets SERVING and
//     prints "health: SERVING";
//   - SIGTERM or SIGINT stops it gracefully (GOAWAY, then waits for the
//     calls in flight) and it exits 0;
//   - with --max-connection-age, the server sends GOAWAY on each connection
//     once it is that old (and closes it 1 s later at the latest), as a
//     backend that drains its connections does;
//   - with --tls-cert and --tls-key, it serves TLS (HTTP/2 by ALPN, as
//     grpc-go always does) instead of h2c, for https:// backends.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/interop"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to serve on")
	name := flag.String("name", "", "name sent in every response's \"backend\" header (default: the address)")
	maxAge := flag.Duration("max-connection-age", 0, "send GOAWAY on connections this old; 0: never")
	certFile := flag.String("tls-cert", "", "PEM certificate to serve TLS with (default: h2c)")
	keyFile := flag.String("tls-key", "", "PEM key of --tls-cert")
	flag.Parse()
	var opts []grpc.ServerOption
	if *certFile != "" {
		creds, err := credentials.NewServerTLSFromFile(*certFile, *keyFile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "grpcbackend:", err)
			os.Exit(2)
		}
		opts = append(opts, grpc.Creds(creds))
	}
	if err := run(*listen, *name, *maxAge, opts); err != nil {
		fmt.Fprintln(os.Stderr, "grpcbackend:", err)
		os.Exit(1)
	}
}

// run serves until SIGTERM or SIGINT. The signal goroutine it starts ends
// when run returns (its channel is unregistered and the loop sees done).
func run(listen, name string, maxAge time.Duration, opts []grpc.ServerOption) error {
	lis, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	if name == "" {
		name = lis.Addr().String()
	}
	header := metadata.Pairs("backend", name)
	opts = append(opts,
		grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			_ = grpc.SetHeader(ctx, header)
			return h(ctx, req)
		}),
		grpc.StreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			_ = ss.SetHeader(header)
			return h(srv, ss)
		}),
	)
	if maxAge > 0 {
		opts = append(opts, grpc.KeepaliveParams(keepalive.ServerParameters{
			MaxConnectionAge:      maxAge,
			MaxConnectionAgeGrace: time.Second,
		}))
	}
	srv := grpc.NewServer(opts...)
	testgrpc.RegisterTestServiceServer(srv, interop.NewTestServer())
	hs := health.NewServer() // "" SERVING
	hs.SetServingStatus(testgrpc.TestService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(srv, hs)

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGUSR1, syscall.SIGUSR2)
	defer signal.Stop(sigs)
	done := make(chan struct{})
	defer close(done)
	go func() { // ends at the first SIGTERM/SIGINT, or when run returns
		for {
			select {
			case <-done:
				return
			case s := <-sigs:
				switch s {
				case syscall.SIGUSR1:
					hs.Shutdown() // every service NOT_SERVING
					fmt.Println("health: NOT_SERVING")
				case syscall.SIGUSR2:
					hs.Resume() // every service SERVING
					fmt.Println("health: SERVING")
				default:
					srv.GracefulStop()
					return
				}
			}
		}
	}()
	fmt.Printf("listening: addr=%s pid=%d name=%s\n", lis.Addr(), os.Getpid(), name)
	if err := srv.Serve(lis); err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}
