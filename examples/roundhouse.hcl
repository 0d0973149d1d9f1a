# Roundhouse configuration: every setting, with its default where it has one.
#
#   roundhouse validate examples/roundhouse.hcl      check it
#   roundhouse serve --config examples/roundhouse.hcl
#
# Flags given on the command line override this file (--listen 127.0.0.1:0
# wins over listen below; --backend replaces every backend block). Durations
# use Go syntax: "500ms", "10s", "1m30s". Values are literals: no variables
# or functions. Relative file names are taken relative to this file's
# directory.

# Address clients connect to (--listen). Default "127.0.0.1:8080".
listen = "127.0.0.1:8080"

# Balancing policy (--policy). Default "round-robin". One of round-robin,
# weighted-round-robin, least-conn, p2c, random, first, ip-hash,
# header-hash:NAME (hash of request header NAME), cookie or cookie:NAME
# (sticky sessions; see the sticky block).
policy = "weighted-round-robin"

# Other backends a request may try when it failed in a way that is safe to
# retry: the connection could not be made, or an idempotent request broke
# before any response headers, and no body byte had been read (--retries).
# Default 2.
retries = 2

# Time in-flight requests get to finish on SIGINT/SIGTERM (--shutdown-grace).
# Default "15s".
shutdown_grace = "15s"

# Backends, in policy order, one block each, labelled with the URL:
# http://, https:// or h2c:// (cleartext HTTP/2 by prior knowledge, as gRPC
# services speak it), host, optional port and optional path prefix.
# --backend URL[,weight=N] on the command line replaces all of them.
#
#   weight   share of traffic for weighted-round-robin, 0 to 1000; 0 makes a
#            standby, used only while no weighted backend is up. Default 1.
#   enabled  false keeps the backend in the file but sends it no traffic.
#            Default true.
#   proxy_protocol  "v1" or "v2": every connection to the backend begins
#            with a PROXY protocol header naming the client (a backend
#            behind which nginx listens with proxy_protocol, for example).
#            Such backends get one connection per request (no keep-alive),
#            so no connection ever carries two clients. Default: none.
backend "http://127.0.0.1:8081" {
  weight = 3
}
backend "http://127.0.0.1:8082" {}
backend "http://127.0.0.1:8083" {
  enabled        = false
  proxy_protocol = "v2"
}

# Backends discovered at run time, alongside the blocks above (--discover,
# repeatable; given on the command line, it replaces this list). Read at
# start-up only: a reload does not start or stop a source. See
# docs/scale-out.md.
#   etcd://HOST:PORT[,HOST:PORT...]/PREFIX   every key under PREFIX/ is a backend:
#                                            {"url": "http://10.0.0.5:8080", "weight": 1, "enabled": true}
#   dns+srv://NAME[?scheme=h2c|https]        SRV records (Consul, Kubernetes): target addresses and ports
#   dns+a://NAME:PORT[?scheme=h2c|https]     A/AAAA records (a Kubernetes headless Service): one backend per address
# discover = ["etcd://127.0.0.1:2379/roundhouse/backends", "dns+srv://_web._tcp.service.consul"]

# The resolver the dns+srv:// and dns+a:// sources ask, host[:port] (port
# 53 by default) (--dns-server). Default: the first nameserver in
# /etc/resolv.conf. Consul's DNS interface listens on port 8600.
# dns_server = "127.0.0.1:8600"

# Active health checks. Every backend starts UP and is probed at once.
# Active health checks. Every backend starts UP and is probed at once; an
# https:// backend is probed over TLS, verified as its requests are (see
# backend_ca). A probe fails when the backend cannot be reached, answers
# with a status not in expect, or with a body that does not match body;
# the "backend down" log line and /status's last_probe_error say which,
# e.g. "status 503, want 200-399" or "body does not match ^ok$".
health {
  path     = "/health" # GET (--health-path)
  expect   = "200-399" # statuses that pass: codes and ranges, e.g. "200,204,300-399" (--health-expect)
  # body   = "^ok$"    # a regular expression the first 64 KiB of the body must match (--health-body)
  # host   = "app.example" # the probes' Host header; default: the address probed (--health-host)
  # headers = { "X-Probe-Token" = "s3cret" } # extra headers (--health-header "Name: value", repeatable)
  # port   = 9000      # probed instead of each backend's own port; 0: theirs (--health-port)
  # grpc   = true      # call grpc.health.v1.Health/Check instead of GET (h2c, or TLS for https://);
  #                     # SERVING passes; path, expect and body are then refused (--health-grpc)
  # grpc_service = "api.v1.Users" # the service asked about; default "": the whole server (--health-grpc-service)
  interval = "10s"     # between probes of one backend (--health-interval)
  timeout  = "2s"      # of one probe (--health-timeout)
  rise     = 2         # passes in a row that bring a DOWN backend UP (--rise)
  fall     = 3         # failures in a row that take an UP backend DOWN (--fall)
}

timeouts {
  dial            = "3s"   # connecting to a backend (--dial-timeout)
  tls_handshake   = "5s"   # TLS handshake with an https backend (--tls-handshake-timeout)
  response_header = "30s"  # waiting for response headers; then 504 (--response-header-timeout)
  backend_idle    = "90s"  # an idle pooled backend connection is kept (--backend-idle-timeout)
  backend_h2_ping = "5s"   # ping an HTTP/2 backend connection silent this long; closed if unanswered as long again (--backend-h2-ping)
  client_header   = "10s"  # a client has to send its request headers (--client-header-timeout)
  client_idle     = "120s" # an idle client keep-alive connection is kept (--client-idle-timeout)
  client_body     = "60s"  # wait for the next bytes of a request body; then 408; 0: none (--client-body-timeout)
  request         = "0s"   # a whole request, response included; 0: no limit (--request-timeout)
}

# Overload protection: at most max_conns_per_backend requests in flight per
# backend (0: no cap); more wait, oldest first, in a queue of queue_size for
# up to queue_timeout, then get a 503.
limits {
  max_conns_per_backend = 0    # --max-conns-per-backend
  queue_size            = 100  # --queue-size
  queue_timeout         = "5s" # --queue-timeout
}

# Passive outlier detection: a backend that fails `after` requests in a row
# (broken exchanges, or 502/503/504 it sent) is ejected for `time`, longer on
# each repeat (up to 300s), never more than max_percent of the UP backends.
# A backend whose gateway failures are interleaved with successes is ejected
# the same way once failure_rate percent of its last failure_window requests
# failed (judged only once it has served that many).
ejection {
  after          = 5     # 0: no streak ejects (--eject-after)
  time           = "30s" # --eject-time
  max_percent    = 50    # --max-ejection-percent
  failure_rate   = 50    # 0: off; unset, off where after is 0 (--eject-failure-rate)
  failure_window = 50    # --eject-failure-window
}

# A file the process ID is written to once the balancer serves; the new
# process of a seamless upgrade (SIGUSR2, roundhouse upgrade) rewrites it
# (--pid-file). Default: none.
# pid_file = "/run/roundhouse/roundhouse.pid"

slow_start   = "0s"  # ramp a returning backend's share up over this long; 0: off (--slow-start)
retry_buffer = 65536 # bytes of an idempotent request's body kept for a resend (--retry-buffer)

log {
  level  = "info" # trace, debug, info, warn or error (--log-level)
  format = "text" # text or json (--log-format)
  access = true   # one line per request (--access-log)
}

# The admin API (--admin, --admin-token-file): off unless listen is set. A
# non-loopback address needs a token file; requests then carry
# "Authorization: Bearer <token>".
admin {
  listen = "127.0.0.1:9090"
  # token_file = "/etc/roundhouse/admin.token"
}

# The key of the sticky-session cookie (policy "cookie"), at least 16 bytes
# (--cookie-secret-file). Without it each process makes a random key, kept
# across reloads but not restarts; give every instance behind the same
# clients the same file.
sticky {
  # secret_file = "/etc/roundhouse/cookie.secret"
}

# The client-facing side.
edge {
  trusted_proxies = []       # CIDRs or addresses whose X-Forwarded-*/Forwarded headers are kept (--trusted-proxy)
  # max_body      = "10MiB"  # largest request body; none by default (--max-body)
  max_conns       = 10000    # concurrent client connections; 0: no limit (--max-conns)
  h2c             = false    # cleartext HTTP/2 by prior knowledge (--h2c)
  # rate_limit    = "10/s"   # requests per client; off by default (--rate-limit)
  rate_burst      = 0        # requests at once under rate_limit; 0: one second's worth (--rate-burst)
  proxy_protocol  = false    # require a PROXY protocol v1/v2 header from trusted_proxies on every connection (--proxy-protocol)
  request_id_header = "X-Request-ID" # each request's ID, kept from trusted_proxies, else made; "": off (--request-id-header)
}

# TLS for clients (cert and key together; reloaded on SIGHUP) and the
# authorities https:// backends are verified against.
tls {
  # cert       = "/etc/roundhouse/tls.crt"  # --tls-cert
  # key        = "/etc/roundhouse/tls.key"  # --tls-key
  # http3      = true   # also HTTP/3 over QUIC, UDP on the same port (--http3)
  # backend_ca = "/etc/roundhouse/ca.pem"   # --backend-ca

  # Automatic HTTPS (docs/acme.md): certificates for these names from an
  # ACME CA, obtained at start-up, renewed before expiry, served by SNI. The
  # plain-HTTP listener answers the CA's HTTP-01 challenges and redirects
  # everything else to https.
  # http_listen = ":80"                    # --http-listen (":80" with acme)
  # acme {
  #   domains  = ["example.com", "www.example.com"]  # --acme-domain, repeatable
  #   email    = "ops@example.com"                    # --acme-email
  #   ca       = "https://acme-staging-v02.api.letsencrypt.org/directory"  # --acme-ca (default: Let's Encrypt production)
  #   ca_root  = "/etc/roundhouse/private-ca.pem"     # --acme-ca-root
  #   storage  = "/var/lib/roundhouse/acme"           # --acme-storage
  # }
}
