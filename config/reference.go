package config

import (
	"fmt"
	"strings"
	"time"
)

// The reference tables of docs/configuration.md, rendered from table so
// that they cannot drift from the flags and the file schema:
// TestReferenceTablesAreCurrent compares them with the file, and
// "go test ./config -run TestReferenceTablesAreCurrent -update" rewrites
// them there.
//
// A default is never written here: the default column shows the row's
// default, and reference gives words only for a default that is the zero
// value ("none", "the system's roots").

// flagDoc is what the flags table says about one flag beyond its row.
type flagDoc struct {
	value   string // the value's name after the flag, "ADDR"; "" for a bool
	def     string // the words for a zero default; "" shows the zero value itself
	meaning string
	// keyFlag is the flag column of the config-keys table when it is more
	// than the flag's name.
	keyFlag string
}

// reference is the flags table's words, by flag name.
var reference = map[string]flagDoc{
	"config": {value: "FILE", def: "none",
		meaning: "a [configuration file](#configuration-file); flags given on the command line override it"},
	"listen": {value: "ADDR",
		meaning: "address clients connect to"},
	"backend": {value: "URL[,weight=N][,proxy-protocol=v1\\|v2]", keyFlag: "`--backend URL`", def: "(required, unless the file has backends or pools, or `--discover` is given)",
		meaning: "a backend, `http://host:port` (or `https://`, or `h2c://` for cleartext HTTP/2 by prior knowledge, as gRPC services speak it; optionally with a path prefix); repeat for each backend. `weight=N` (0 to 1000, default 1) is its share for the weighted policies; 0 makes it a standby. See [Balancing policies](balancing.md#balancing-policies). `proxy-protocol=v1` or `v2` sends it the client's address in a PROXY header on every connection (one connection per request; see [Behind another load balancer](behind-a-load-balancer.md))"},
	"discover": {value: "URL", def: "none",
		meaning: "find backends at run time, alongside the static ones: `etcd://HOST:PORT[,HOST:PORT...]/PREFIX`, `dns+srv://NAME` or `dns+a://NAME:PORT`; the DNS ones find `http://` backends, or with `?scheme=h2c` (or `https`) `h2c://` ones; repeatable. See [Running several instances](scale-out.md)"},
	"dns-server": {value: "ADDR", def: "the first `nameserver` in `/etc/resolv.conf`",
		meaning: "the resolver the `dns+srv://` and `dns+a://` sources ask, `host[:port]` (port 53 by default), e.g. Consul's `127.0.0.1:8600`"},
	"policy": {value: "NAME",
		meaning: "balancing policy: `round-robin`, `weighted-round-robin`, `least-conn`, `p2c`, `random`, `first`, `ip-hash`, `header-hash:NAME` or `cookie[:NAME]`; see [Balancing policies](balancing.md#balancing-policies)"},
	"cookie-secret-file": {value: "FILE", def: "a random key per process",
		meaning: "the key of the sticky cookie's values (at least 16 bytes; surrounding white space is ignored). Give every instance the same file to keep cookies valid across restarts and instances"},
	"health-path": {value: "PATH",
		meaning: "probed with `GET`; a status in `--health-expect` passes (redirects are not followed)"},
	"health-expect": {value: "STATUSES",
		meaning: "statuses that pass a probe: codes and ranges, comma-separated, such as `200,204,300-399`"},
	"health-body": {value: "REGEXP", def: "any body",
		meaning: "a regular expression (Go's RE2 syntax) the first 64 KiB of the probe's response body must match, e.g. `^ok$`"},
	"health-host": {value: "HOST", def: "the address probed",
		meaning: "the probe's `Host` header, e.g. `app.example`, for backends that route by name"},
	"health-header": {value: "\"Name: value\"", keyFlag: "`--health-header \"Name: value\"`", def: "none",
		meaning: "a header sent with every probe (repeatable), e.g. a token; `Host` is refused (use `--health-host`), and so is a value with a control character other than tab"},
	"health-port": {value: "N", def: "the backend's port",
		meaning: "the port probed instead of each backend's own (a separate health listener); `0`: the backend's"},
	"health-grpc": {
		meaning: "probe each backend with gRPC's `grpc.health.v1.Health/Check` instead of `GET`: over TLS for an `https://` backend (verified as its requests are), cleartext HTTP/2 (h2c) otherwise; `SERVING` passes, any other answer, an error or no answer within `--health-timeout` fails. `--health-host`, `--health-header` (sent as metadata) and `--health-port` apply; `--health-path`, `--health-expect` and `--health-body` are refused with it. See [gRPC health checks](balancing.md#grpc-health-checks)"},
	"health-grpc-service": {value: "NAME", def: "the server as a whole (`\"\"`)",
		meaning: "the service `--health-grpc` asks about, such as `api.v1.Users`; needs `--health-grpc`"},
	"health-interval": {value: "DUR",
		meaning: "time between probes of one backend"},
	"health-timeout": {value: "DUR",
		meaning: "timeout of one probe"},
	"rise": {value: "N",
		meaning: "consecutive passing probes that bring a DOWN backend UP"},
	"fall": {value: "N",
		meaning: "consecutive failed probes that take an UP backend DOWN"},
	"dial-timeout": {value: "DUR",
		meaning: "timeout to connect to a backend"},
	"response-header-timeout": {value: "DUR",
		meaning: "wait for a backend's response headers; exceeded → 504"},
	"retries": {value: "N",
		meaning: "other backends a request may try after a failure that is safe to retry"},
	"shutdown-grace": {value: "DUR",
		meaning: "time in-flight requests get to finish on SIGINT/SIGTERM"},
	"access-log": {
		meaning: "one log line per request; `--access-log=false` turns it off"},
	"log-level": {value: "LEVEL",
		meaning: "`trace`, `debug`, `info`, `warn` or `error`"},
	"log-format": {value: "FORMAT",
		meaning: "`text` or `json`"},
	"eject-after": {value: "N",
		meaning: "consecutive gateway failures (failed exchanges, and 502/503/504 the backend sent) that eject a backend; `0`: no streak ejects (and, unless `--eject-failure-rate` is given, no rate either: no ejection)"},
	"eject-time": {value: "DUR",
		meaning: "first ejection's length; each repeat lasts one more `--eject-time`, up to 300s"},
	"max-ejection-percent": {value: "N",
		meaning: "most backends, as a percentage of those UP by their health checks, ejected at once"},
	"eject-failure-rate": {value: "N",
		meaning: "percentage of gateway failures (as `--eject-after` counts them) among a backend's last `--eject-failure-window` requests that ejects it, failures interleaved with successes or not; `0`: off. Unless given (flag or file), it is off where `--eject-after` is `0`, so that `--eject-after 0` alone still turns ejection off. See [Outlier ejection](balancing.md#outlier-ejection)"},
	"eject-failure-window": {value: "N",
		meaning: "requests `--eject-failure-rate` is judged over: a backend's last N, counted only once it has served N since its last ejection or health change (the minimum volume); 1 to 10000"},
	"max-conns-per-backend": {value: "N",
		meaning: "cap on each backend's in-flight requests; `0`: no cap"},
	"queue-size": {value: "N",
		meaning: "requests that may wait, in arrival order, for a backend under its cap"},
	"queue-timeout": {value: "DUR",
		meaning: "longest wait in that queue; then 503 with `Retry-After`"},
	"slow-start": {value: "DUR",
		meaning: "a backend that comes back gets a share of traffic ramping up linearly over DUR; `0`: off"},
	"retry-buffer": {value: "BYTES",
		meaning: "bytes of an idempotent request's body kept so it can be resent to another backend"},
	"request-timeout": {value: "DUR",
		meaning: "limit on a whole request, response included; `0`: none (streams may be long)"},
	"tls-handshake-timeout": {value: "DUR",
		meaning: "TLS handshake with an `https://` backend; exceeded, it counts as a connection that could not be made (the request moves to another backend, this one is marked DOWN)"},
	"backend-ca": {value: "FILE", def: "the system's roots",
		meaning: "a PEM bundle of the authorities that `https://` backends are verified against, for requests and health probes alike"},
	"pid-file": {value: "FILE", def: "none",
		meaning: "the process ID is written here once the balancer serves; after an [upgrade](operations.md#upgrading-without-dropping-a-connection) the new process rewrites it, and a process that stops removes it if it still names it"},
	"backend-idle-timeout": {value: "DUR",
		meaning: "how long an idle pooled backend connection is kept"},
	"backend-h2-ping": {value: "DUR",
		meaning: "an HTTP/2 backend connection (`h2c://`, or `https://` that chose h2) silent this long is sent a PING; unanswered as long again, the connection is closed and its requests fail (as a broken exchange), so a black-holed backend is found within twice this"},
	"client-header-timeout": {value: "DUR",
		meaning: "time a client has to send its request headers, and to finish a TLS handshake (slowloris)"},
	"client-idle-timeout": {value: "DUR",
		meaning: "how long an idle client keep-alive connection is kept"},
	"client-body-timeout": {value: "DUR",
		meaning: "longest wait for the next bytes of a request body; then 408 and the connection closes; `0`: none"},
	"tls-cert": {value: "FILE", def: "(none: cleartext)",
		meaning: "PEM certificate (chain) to terminate TLS with, with `--tls-key`: TLS 1.2+, HTTP/2 and HTTP/1.1 by ALPN; reloaded on `SIGHUP`; its expiry is in `/status` and `roundhouse_certificate_expiry_timestamp_seconds`"},
	"tls-key": {value: "FILE", def: "(none)",
		meaning: "the PEM private key of `--tls-cert`; reloaded with it on `SIGHUP`"},
	"http3": {
		meaning: "also serve HTTP/3 over QUIC on the same port (UDP), with the same certificate (needs `--tls-cert` or `--acme-domain`), and advertise it to HTTP/1.1 and HTTP/2 clients with `Alt-Svc`. See [Protocols](requests.md#protocols)"},
	"http-listen": {value: "ADDR", def: "`:80` with `--acme-domain`; none otherwise",
		meaning: "a plain-HTTP listener that answers ACME's HTTP-01 challenges and redirects every other request to `https://` (308, same host and path); needs `--tls-cert` or `--acme-domain`. See [Automatic HTTPS](acme.md)"},
	"acme-domain": {value: "NAME", def: "(none: ACME off)",
		meaning: "obtain and renew a certificate for this DNS name from an ACME CA (HTTP-01 on `--http-listen`, TLS-ALPN-01 on `--listen`), served by SNI; repeatable. Not for a name `--tls-cert` covers. See [Automatic HTTPS](acme.md)"},
	"acme-email": {value: "ADDR", def: "(none)",
		meaning: "the ACME account's contact address, for the CA's expiry and policy mail"},
	"acme-ca": {value: "URL",
		meaning: "the ACME CA's directory URL; Let's Encrypt's staging CA is `https://acme-staging-v02.api.letsencrypt.org/directory`"},
	"acme-ca-root": {value: "FILE", def: "the system's roots",
		meaning: "PEM root of a private ACME CA (step-ca, pebble), trusted for talking to it"},
	"acme-storage": {value: "DIR", def: "`$XDG_DATA_HOME/roundhouse/acme`, else `~/.local/share/roundhouse/acme`",
		meaning: "where ACME accounts, keys, certificates and locks are kept; a restart reuses them, and instances sharing the directory obtain each certificate once (file locks)"},
	"h2c": {
		meaning: "also accept cleartext HTTP/2 by prior knowledge (for a trusted proxy in front); not with `--tls-cert`"},
	"trusted-proxy": {value: "CIDR", def: "(none)",
		meaning: "a proxy in front (`10.0.0.0/8`, or one address) whose `X-Forwarded-*` and `Forwarded` headers are kept and appended to; repeatable"},
	"proxy-protocol": {
		meaning: "require a PROXY protocol header (v1 or v2) on every client connection, only from a `--trusted-proxy` (required with it); its address becomes the client's. See [Behind another load balancer](behind-a-load-balancer.md)"},
	"request-id-header": {value: "NAME",
		meaning: "the header that carries each request's ID to the backend and back to the client (kept from a `--trusted-proxy`, made otherwise); `\"\"` turns request IDs off"},
	"max-body": {value: "SIZE", def: "`0` (no limit)",
		meaning: "largest request body, e.g. `10MiB` or `10MB`; beyond it 413"},
	"max-conns": {value: "N",
		meaning: "concurrent client connections; at the limit a new client takes the place of the keep-alive connection idle the longest between requests (counted in `roundhouse_idle_connections_reclaimed_total`), and waits in the accept queue only while none is idle (`0`: no limit)"},
	"rate-limit": {value: "RATE", def: "(off)",
		meaning: "requests per client, `10/s` or `600/m`; beyond it 429 with `Retry-After`"},
	"rate-burst": {value: "N", def: "one second's worth of `--rate-limit`",
		meaning: "requests a client may make at once"},
	"admin": {value: "ADDR", def: "(off)",
		meaning: "serve the [admin API](operations.md#admin-api), [metrics](operations.md#metrics) and [dashboard](operations.md#dashboard) on their own listener, typically `127.0.0.1:9090`"},
	"admin-token-file": {value: "FILE", def: "(none)",
		meaning: "a file holding the admin API's bearer token (at least 16 bytes, surrounding white space trimmed); required when `--admin` is not a loopback address"},
}

// FlagsTable renders the reference table of the serve command's flags, in
// the order of the settings table: flag, default, meaning.
func FlagsTable() (string, error) {
	var b strings.Builder
	b.WriteString("| flag | default | meaning |\n|---|---|---|\n")
	for _, row := range table {
		_, fl := row.names()
		if fl == "" {
			continue
		}
		doc, ok := reference[fl]
		if !ok {
			return "", fmt.Errorf("--%s: no words in reference", fl)
		}
		def, err := defaultText(row, doc)
		if err != nil {
			return "", fmt.Errorf("--%s: %w", fl, err)
		}
		name := "--" + fl
		if doc.value != "" {
			name += " " + doc.value
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", name, def, doc.meaning)
	}
	for fl := range reference {
		if _, ok := rowByFlag[fl]; !ok {
			return "", fmt.Errorf("reference has words for --%s, which is not a flag", fl)
		}
	}
	return b.String(), nil
}

// defaultText is the default column for row: its default, or doc's words
// when that is the zero value.
func defaultText(row setting, doc flagDoc) (string, error) {
	v, zero := row.defaultValue()
	switch {
	case !zero && doc.def != "":
		return "", fmt.Errorf("the default is %v: reference must not restate it", v)
	case zero && doc.def != "":
		return doc.def, nil
	case v == nil:
		return "", fmt.Errorf("no default to show: give reference words for it")
	}
	switch v := v.(type) {
	case time.Duration:
		if v == 0 {
			return "`0`", nil
		}
		if v%time.Second == 0 {
			return fmt.Sprintf("`%ds`", v/time.Second), nil
		}
		return "`" + v.String() + "`", nil
	case string:
		if v == "" {
			return "", fmt.Errorf("an empty default: give reference words for it")
		}
	}
	return fmt.Sprintf("`%v`", v), nil
}

// ConfigKeysTable renders the reference table of the file's keys, in the
// order of the settings table: block, key, value type, flag.
func ConfigKeysTable() string {
	var b strings.Builder
	b.WriteString("| block | key | value | flag |\n|---|---|---|---|\n")
	for _, row := range table {
		path, fl := row.names()
		if path == "" {
			continue
		}
		block, key := "", path
		if i := strings.LastIndex(path, "."); i >= 0 { // tls.acme.domains: block tls.acme
			block, key = path[:i], path[i+1:]
		}
		if block != "" {
			block = "`" + block + "`"
		}
		if path == "backend" {
			key = `backend "URL" { ... }`
		}
		flagCol := "`--" + fl + "`"
		if k := reference[fl].keyFlag; k != "" {
			flagCol = k
		}
		fmt.Fprintf(&b, "| %s | `%s` | %s | %s |\n", block, key, row.fileType(), flagCol)
		if path == "backend" {
			for _, a := range backendAttributes {
				fmt.Fprintf(&b, "| `backend` | `%s` | %s | %s |\n", a.name, a.fileType, a.flag)
			}
		}
	}
	return b.String()
}
