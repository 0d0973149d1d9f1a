package config

import (
	"strings"
	"testing"
)

func TestTheGRPCHealthCheckSettings(t *testing.T) {
	t.Run("the file turns the gRPC check on and names the service", func(t *testing.T) {
		s, err := load(t, "health {\n  grpc = true\n  grpc_service = \"api.v1.Users\"\n  port = 9000\n}"+oneBackend)
		if err != nil {
			t.Fatal(err)
		}
		if h := s.Health; !h.GRPC || h.GRPCService != "api.v1.Users" || h.Port != 9000 {
			t.Errorf("Health = %+v", h)
		}
	})
	t.Run("so do the flags", func(t *testing.T) {
		s, err := load(t, oneBackend, "--health-grpc", "--health-grpc-service", "api.v1.Users")
		if err != nil {
			t.Fatal(err)
		}
		if h := s.Health; !h.GRPC || h.GRPCService != "api.v1.Users" {
			t.Errorf("Health = %+v", h)
		}
	})
	t.Run("off by default, for the server as a whole", func(t *testing.T) {
		if h := Defaults().Health; h.GRPC || h.GRPCService != "" {
			t.Errorf("default Health = %+v", h)
		}
	})
	t.Run("the top level's HTTP keys do not stop a pool from turning gRPC on", func(t *testing.T) {
		s, err := load(t, twoPools("health {\n  path = \"/ready\"\n}", "health {\n  grpc = true\n}"))
		if err != nil {
			t.Fatal(err)
		}
		api := apiPool(t, s)
		if !api.Health.GRPC || api.Health.Path != "/ready" {
			t.Errorf("pool api's Health = %+v, want gRPC on, the path inherited (and unused)", api.Health)
		}
		if s.Health.GRPC {
			t.Error("the top level's check turned gRPC")
		}
	})
	t.Run("a pool inherits the gRPC check and its service", func(t *testing.T) {
		s, err := load(t, twoPools("", ""), "--health-grpc", "--health-grpc-service", "x")
		if err != nil {
			t.Fatal(err)
		}
		if h := apiPool(t, s).Health; !h.GRPC || h.GRPCService != "x" {
			t.Errorf("pool api's Health = %+v", h)
		}
	})

	bad := []struct {
		name string
		src  string
		args []string
		want []string
	}{
		{"a service without the gRPC check, in the file", "health {\n  grpc_service = \"x\"\n}" + oneBackend, nil,
			[]string{`roundhouse.hcl:2:18: health.grpc_service: needs grpc = true in the health block (--health-grpc): only the gRPC health check asks about a service`}},
		{"a service without the gRPC check, by flag", oneBackend, []string{"--health-grpc-service", "x"},
			[]string{`--health-grpc-service: needs grpc = true in the health block (--health-grpc)`}},
		{"a service with the gRPC check turned off", "health {\n  grpc = false\n  grpc_service = \"x\"\n}" + oneBackend, nil,
			[]string{`roundhouse.hcl:3:18: health.grpc_service: needs grpc = true`}},
		{"the HTTP keys with the gRPC check, in the file", "health {\n  grpc = true\n  path = \"/x\"\n  expect = \"200\"\n  body = \"ok\"\n}" + oneBackend, nil,
			[]string{
				`roundhouse.hcl:3:10: health.path: an HTTP probe's setting, unused with grpc = true (--health-grpc), which calls grpc.health.v1.Health/Check: remove it, or turn grpc off`,
				`roundhouse.hcl:4:12: health.expect: an HTTP probe's setting`,
				`roundhouse.hcl:5:10: health.body: an HTTP probe's setting`,
			}},
		{"an HTTP key with the gRPC check, by flags", oneBackend, []string{"--health-grpc", "--health-path", "/x"},
			[]string{`--health-path: an HTTP probe's setting, unused with grpc = true (--health-grpc)`}},
		{"a pool's service without the gRPC check", twoPools("", "health {\n  grpc_service = \"x\"\n}"), nil,
			[]string{`roundhouse.hcl:5:18: pool "api": health.grpc_service: needs grpc = true in the health block`}},
		{"a pool that turns gRPC off under an inherited service", twoPools("", "health {\n  grpc = false\n}"),
			[]string{"--health-grpc", "--health-grpc-service", "x"},
			[]string{`roundhouse.hcl:5:10: pool "api": health.grpc: grpc_service "x" is inherited, and only the gRPC health check asks about a service: set grpc_service = "" here too`}},
		{"a pool's HTTP key under an inherited gRPC check", twoPools("health {\n  grpc = true\n}", "health {\n  path = \"/x\"\n}"), nil,
			[]string{`roundhouse.hcl:7:10: pool "api": health.path: an HTTP probe's setting`}},
	}
	for _, tt := range bad {
		t.Run(tt.name+" is refused", func(t *testing.T) {
			_, err := load(t, tt.src, tt.args...)
			if err == nil {
				t.Fatal("Load succeeded")
			}
			got := problems(t, err)
			if len(got) != len(tt.want) {
				t.Fatalf("problems:\n%s\nwant %d like:\n%s", strings.Join(got, "\n"), len(tt.want), strings.Join(tt.want, "\n"))
			}
			for i := range got {
				if !strings.HasPrefix(got[i], tt.want[i]) {
					t.Errorf("problem %d:\n%s\nwant it to begin\n%s", i, got[i], tt.want[i])
				}
			}
		})
	}
}
