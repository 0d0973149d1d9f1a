package config

import (
	"fmt"
)

// httpOnlyHealth are the health settings only the HTTP probe reads: with
// health.grpc on, giving one is refused rather than silently unused.
var httpOnlyHealth = []string{"health.path", "health.expect", "health.body"}

// checkGRPCHealth reports the gRPC health check's conflicts in h, the
// health settings of one scope: the top level (file and flags), or one
// pool after inheritance. from says which rows the scope itself set;
// report records a problem against one of them (problemFrom). A conflict
// made only of inherited values is the top level's, reported there.
//
//   - grpc_service without grpc = true is refused, against grpc_service
//     when the scope set it, or else against the scope's grpc = false.
//   - With grpc = true, path, expect and body set in the same scope are
//     refused. Values inherited from the top level into a pool whose
//     block turns grpc on are ignored (its probes do not read them).
func checkGRPCHealth(h Health, from []origin, report func(i int, msg string)) {
	set := func(i int) bool { return from[i].rng != nil || from[i].flag != "" }
	svc, on := rowByPath["health.grpc_service"], rowByPath["health.grpc"]
	switch {
	case h.GRPCService == "" || h.GRPC:
	case set(svc):
		report(svc, "needs grpc = true in the health block (--health-grpc): only the gRPC health check asks about a service")
	case set(on):
		report(on, fmt.Sprintf("grpc_service %q is inherited, and only the gRPC health check asks about a service: set grpc_service = \"\" here too", h.GRPCService))
	}
	if !h.GRPC {
		return
	}
	for _, path := range httpOnlyHealth {
		if i := rowByPath[path]; set(i) {
			report(i, "an HTTP probe's setting, unused with grpc = true (--health-grpc), which calls grpc.health.v1.Health/Check: remove it, or turn grpc off")
		}
	}
}
