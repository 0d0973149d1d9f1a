// Package e2e holds Roundhouse's end-to-end tests: each runs the roundhouse
// command as a real process, in front of real backends on 127.0.0.1, and
// checks what a user would see: exit statuses, output lines, HTTP answers,
// signals handled, sd_notify messages. The package has no code of its own
// outside its tests; this file only documents it.
//
// TestMain builds the command once, with the race detector, from the
// module's root package. Every test file is named by topic:
//
//	cli_test.go          bad command lines (exit 2), version, help, validate, status
//	demo_test.go         roundhouse demo, and its message trace
//	balancing_test.go    policies and sticky cookies from the command line
//	health_test.go       health check flags and the up/down log lines
//	logging_test.go      the access log's format and level
//	limits_test.go       body size and rate limits
//	timeouts_test.go     the backend-side timeouts
//	resilience_test.go   outlier ejection, slow start, connection caps
//	tls_test.go          TLS flags, HTTP/2, certificate reload
//	certexpiry_test.go   a --tls-cert (or tls.cert) certificate's expiry in
//	                     /status and the metrics, per name, across SIGHUP
//	http3_test.go        --http3: HTTP/3 under load with a backend killed,
//	                     shutdown and upgrade with HTTP/3 clients
//	acme_test.go         automatic certificates from pebble (Let's Encrypt's
//	                     test CA, run as a process): issuance, SNI, restart,
//	                     the CA down at start and at renewal, shared storage
//	reload_test.go       SIGHUP and POST /reload, under load
//	discovery_test.go    --discover with DNS and etcd
//	shutdown_test.go     graceful shutdown
//	websocket_test.go    WebSockets across shutdown, upgrade and reload
//	upgrade_test.go      zero-downtime upgrades under load
//	systemd_test.go      sd_notify, socket activation, the example units
//	memory_test.go       backpressure: the balancer's RSS with a slow client
//	chaos_test.go        backends killed and restarted under load
//	pools_test.go        pools and routes: matching, round-robin per pool,
//	                     a DOWN pool, admin and status per pool, discovery
//	pools_reload_test.go reloads that move routes and add and remove pools
//	faults_*_test.go     the fault matrix: Toxiproxy between the balancer and
//	                     its backends, one toxic at a time, under mixed load
//	exhaust_*_test.go    running out of file descriptors, 10,000 idle clients,
//	                     a low GOMEMLIMIT, a full disk under the access log
//	grpc_*_test.go       gRPC through h2c:// backends: gRPC's own interop
//	                     cases (h2c and TLS), kill -9, SIGSTOP and GOAWAY
//	                     under load, gRPC health, the balancer's errors as
//	                     gRPC codes; the backends are grpc-go interop
//	                     servers run as processes (internal/grpcbackend)
//
// The helpers live once: helpers_test.go has TestMain and the small ones
// (config and token files, requests, demo backends); process_test.go runs
// the binary: start returns a proc, which the test waits on (waitFor a
// line such as listening, wait for the exit status) and stops (SIGTERM,
// expecting exit 0); startWith does the same for the binary built without
// the race detector, or another program, with extra environment, stderr
// to a file or a lower ulimit -n; startFamily runs a balancer together
// with the processes its upgrades start. measure_test.go reads a running
// process's memory, CPU and file descriptors, and its metrics.
//
// Run them with
//
//	go test -race ./e2e/
//
// TestChaos, TestReloadUnderLoadLosesNothing, TestUpgradeUnderLoadLosesNothing,
// TestSlowClientDoesNotMakeTheBalancerBuffer, TestFaultMatrix,
// TestGRPCBackendKilledUnderLoad and
// TestAReloadUnderLoadMovesARouteRemovesAPoolAndAddsOneWithoutAClientError
// are skipped with -short. -long runs the long variants of the fault matrix
// and the exhaustion tests (docs/faults.md, docs/exhaustion.md). The gRPC
// tests alone:
//
//	go test -race -run 'GRPC' ./e2e/
package e2e
