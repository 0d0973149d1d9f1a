# Two pools behind one Roundhouse: /api/ goes to the "api" pool, everything
# else to the "web" pool.
#
# Start three demo backends, then Roundhouse:
#
#   roundhouse backend --listen 127.0.0.1:9001 --name api1 &
#   roundhouse backend --listen 127.0.0.1:9002 --name api2 &
#   roundhouse backend --listen 127.0.0.1:9003 --name web1 &
#   roundhouse validate examples/routes.hcl
#   roundhouse serve --config examples/routes.hcl
#
#   curl http://127.0.0.1:8080/api/     # api1, then api2, in turn
#   curl http://127.0.0.1:8080/         # web1
#
# See "Pools and routes" in docs/configuration.md.

listen = "127.0.0.1:8080"

# The top-level balancing settings are every pool's defaults: policy,
# retries, slow_start, health {}, limits {}, ejection {} and the timeouts
# dial, tls_handshake, response_header and request. A pool overrides them
# key by key.
policy  = "round-robin"
retries = 1

health {
  path     = "/health"
  interval = "5s"
}

pool "api" {
  policy = "least-conn"

  backend "http://127.0.0.1:9001" {}
  backend "http://127.0.0.1:9002" {}

  health { interval = "2s" } # path stays "/health", inherited
  limits { max_conns_per_backend = 100 }
  timeouts { response_header = "10s" }
}

pool "web" {
  backend "http://127.0.0.1:9003" {}
}

# Routes are tried in the order written; the first whose every condition
# holds wins. A request no route matches gets 404.
route "api" {
  path_prefix  = "/api/"
  methods      = ["GET", "HEAD", "POST"]
  pool         = "api"
  strip_prefix = true # the backends see /api/x as /x, with X-Forwarded-Prefix: /api
}

route "site" {
  pool = "web" # no conditions: matches everything else
}
