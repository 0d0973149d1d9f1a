package config

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/zclconf/go-cty/cty"

	"github.com/roundhouse/roundhouse/actors"
	"github.com/roundhouse/roundhouse/internal/defaults"
	"github.com/roundhouse/roundhouse/internal/parse"
)

// table is every setting, one row each. A row names the setting's field in
// Settings, its default, its flag (with the flag's help) and its path in the
// file ("retries" at the top level, "health.interval" in block health; a new
// block name makes a new block). Register, the file parser, the precedence
// rules, the checks and the reference tables of docs/configuration.md
// (reference.go) all work from this table.
//
// Each default is written once: here, or, for the settings that actors or
// transport also fall back to when left zero, in internal/defaults.
var table = []setting{
	field[string]{flag: "config", usage: "`file` of settings in HCL (see README); flags given on the command line override it",
		ptr: func(s *Settings) *string { return &s.File }},

	field[string]{path: "listen", flag: "listen", def: "127.0.0.1:8080", usage: "`address` to accept client connections on",
		ptr: func(s *Settings) *string { return &s.Listen }, check: hostPort},
	backends{},
	discovers{},
	field[string]{path: "dns_server", flag: "dns-server",
		usage: "`address` (host[:port], port 53 by default) of the resolver --discover dns+srv:// and dns+a:// ask (default: the first nameserver in /etc/resolv.conf)",
		ptr:   func(s *Settings) *string { return &s.DNSServer }, parse: parseDNSServer},
	field[string]{path: "policy", flag: "policy", def: "round-robin",
		usage: "balancing `policy`: " + strings.Join(actors.PolicyNames, ", "),
		ptr:   func(s *Settings) *string { return &s.Policy }, parse: parsePolicy},
	field[int]{path: "retries", flag: "retries", def: 2, usage: "other backends tried when a request fails in a way that is safe to retry",
		ptr: func(s *Settings) *int { return &s.Retries }, check: atLeast(0)},
	field[time.Duration]{path: "shutdown_grace", flag: "shutdown-grace", def: 15 * time.Second, usage: "time in-flight requests get to finish on shutdown",
		ptr: func(s *Settings) *time.Duration { return &s.ShutdownGrace }, check: positive},

	field[string]{path: "health.path", flag: "health-path", def: defaults.HealthPath, usage: "`path` probed with GET; a status in --health-expect passes",
		ptr: func(s *Settings) *string { return &s.Health.Path }, check: absPath},
	field[string]{path: "health.expect", flag: "health-expect", def: actors.DefaultExpect.String(),
		usage: "`statuses` that pass a probe: codes and ranges such as 200,204,300-399",
		ptr:   func(s *Settings) *string { return &s.Health.Expect }, parse: parseExpect},
	field[string]{path: "health.body", flag: "health-body",
		usage: "`regexp` the first 64 KiB of a probe's response body must match (default: any body)",
		ptr:   func(s *Settings) *string { return &s.Health.Body }, parse: parseRegexp},
	field[string]{path: "health.host", flag: "health-host", usage: "`host` sent as the probe's Host header (default: the address probed)",
		ptr: func(s *Settings) *string { return &s.Health.Host }, check: optional(hostHeader)},
	healthHeaders{},
	field[int]{path: "health.port", flag: "health-port", usage: "`port` probed instead of each backend's own; 0: the backend's",
		ptr: func(s *Settings) *int { return &s.Health.Port }, check: between(0, 65535)},
	field[bool]{path: "health.grpc", flag: "health-grpc",
		usage: "probe with gRPC's grpc.health.v1.Health/Check (h2c, or TLS for https backends) instead of HTTP GET; SERVING passes",
		ptr:   func(s *Settings) *bool { return &s.Health.GRPC }},
	field[string]{path: "health.grpc_service", flag: "health-grpc-service",
		usage: "`service` name --health-grpc asks about (default: the server as a whole)",
		ptr:   func(s *Settings) *string { return &s.Health.GRPCService }},
	field[time.Duration]{path: "health.interval", flag: "health-interval", def: defaults.HealthInterval, usage: "time between health probes",
		ptr: func(s *Settings) *time.Duration { return &s.Health.Interval }, check: positive},
	field[time.Duration]{path: "health.timeout", flag: "health-timeout", def: defaults.HealthTimeout, usage: "timeout of one health probe",
		ptr: func(s *Settings) *time.Duration { return &s.Health.Timeout }, check: positive},
	field[int]{path: "health.rise", flag: "rise", def: defaults.Rise, usage: "consecutive passing probes that mark a DOWN backend UP",
		ptr: func(s *Settings) *int { return &s.Health.Rise }, check: atLeast(1)},
	field[int]{path: "health.fall", flag: "fall", def: defaults.Fall, usage: "consecutive failed probes that mark an UP backend DOWN",
		ptr: func(s *Settings) *int { return &s.Health.Fall }, check: atLeast(1)},

	field[time.Duration]{path: "timeouts.dial", flag: "dial-timeout", def: defaults.DialTimeout, usage: "timeout to connect to a backend",
		ptr: func(s *Settings) *time.Duration { return &s.Timeouts.Dial }, check: positive},
	field[time.Duration]{path: "timeouts.response_header", flag: "response-header-timeout", def: defaults.ResponseHeaderTimeout,
		usage: "wait for a backend's response headers (exceeded: 504)",
		ptr:   func(s *Settings) *time.Duration { return &s.Timeouts.ResponseHeader }, check: positive},

	field[time.Duration]{path: "timeouts.tls_handshake", flag: "tls-handshake-timeout", def: defaults.TLSHandshakeTimeout,
		usage: "TLS handshake with an https backend",
		ptr:   func(s *Settings) *time.Duration { return &s.Timeouts.TLSHandshake }, check: positive},
	field[time.Duration]{path: "timeouts.backend_idle", flag: "backend-idle-timeout", def: defaults.BackendIdleTimeout,
		usage: "how long an idle pooled backend connection is kept",
		ptr:   func(s *Settings) *time.Duration { return &s.Timeouts.BackendIdle }, check: positive},
	field[time.Duration]{path: "timeouts.backend_h2_ping", flag: "backend-h2-ping", def: defaults.BackendH2Ping,
		usage: "ping an HTTP/2 backend connection silent this long; unanswered as long again, it is closed",
		ptr:   func(s *Settings) *time.Duration { return &s.Timeouts.BackendH2Ping }, check: positive},
	field[time.Duration]{path: "timeouts.client_header", flag: "client-header-timeout", def: defaults.ClientHeaderTimeout,
		usage: "time a client has to send its request headers",
		ptr:   func(s *Settings) *time.Duration { return &s.Timeouts.ClientHeader }, check: positive},
	field[time.Duration]{path: "timeouts.client_idle", flag: "client-idle-timeout", def: defaults.ClientIdleTimeout,
		usage: "how long an idle client keep-alive connection is kept",
		ptr:   func(s *Settings) *time.Duration { return &s.Timeouts.ClientIdle }, check: positive},
	field[time.Duration]{path: "timeouts.client_body", flag: "client-body-timeout", def: 60 * time.Second,
		usage: "wait for the next bytes of a request body (exceeded: 408); 0: none",
		ptr:   func(s *Settings) *time.Duration { return &s.Timeouts.ClientBody }, check: notNegative},
	field[time.Duration]{path: "timeouts.request", flag: "request-timeout",
		usage: "limit on a whole request, response included; 0: none (streams may be long)",
		ptr:   func(s *Settings) *time.Duration { return &s.Timeouts.Request }, check: notNegative},

	field[int]{path: "limits.max_conns_per_backend", flag: "max-conns-per-backend",
		usage: "cap on each backend's in-flight requests; 0: no cap",
		ptr:   func(s *Settings) *int { return &s.Limits.MaxConnsPerBackend }, check: atLeast(0)},
	field[int]{path: "limits.queue_size", flag: "queue-size", def: 100,
		usage: "requests that may wait for a backend under its cap",
		ptr:   func(s *Settings) *int { return &s.Limits.QueueSize }, check: atLeast(0)},
	field[time.Duration]{path: "limits.queue_timeout", flag: "queue-timeout", def: defaults.QueueTimeout,
		usage: "longest wait in that queue before a 503",
		ptr:   func(s *Settings) *time.Duration { return &s.Limits.QueueTimeout }, check: positive},

	field[int]{path: "ejection.after", flag: "eject-after", def: 5,
		usage: "consecutive gateway failures (failed exchanges, 502/503/504) that eject a backend; 0 never ejects",
		ptr:   func(s *Settings) *int { return &s.Ejection.After }, check: atLeast(0)},
	field[time.Duration]{path: "ejection.time", flag: "eject-time", def: defaults.EjectTime,
		usage: "first ejection's length; each repeat adds as much, up to 300s",
		ptr:   func(s *Settings) *time.Duration { return &s.Ejection.Time }, check: positive},
	field[int]{path: "ejection.max_percent", flag: "max-ejection-percent", def: defaults.MaxEjectionPercent,
		usage: "most backends, as a percentage of those UP, that may be ejected at once",
		ptr:   func(s *Settings) *int { return &s.Ejection.MaxPercent }, check: between(1, 100)},
	field[int]{path: "ejection.failure_rate", flag: "eject-failure-rate", def: defaultFailureRate,
		usage: "percentage of gateway failures among a backend's last --eject-failure-window requests that ejects it; 0: off (and, unless given, off where --eject-after is 0)",
		ptr:   func(s *Settings) *int { return &s.Ejection.FailureRate }, check: between(0, 100)},
	field[int]{path: "ejection.failure_window", flag: "eject-failure-window", def: defaults.FailureWindow,
		usage: "requests --eject-failure-rate is judged over: the last this many, once a backend has served this many since its last ejection or health change",
		ptr:   func(s *Settings) *int { return &s.Ejection.FailureWindow }, check: between(1, maxFailureWindow)},

	field[time.Duration]{path: "slow_start", flag: "slow-start",
		usage: "ramp a returning backend's share of traffic up over this long; 0: off",
		ptr:   func(s *Settings) *time.Duration { return &s.SlowStart }, check: notNegative},
	field[int]{path: "retry_buffer", flag: "retry-buffer", def: 64 << 10,
		usage: "`bytes` of an idempotent request's body kept so it can be resent to another backend",
		ptr:   func(s *Settings) *int { return &s.RetryBuffer }, check: atLeast(0)},

	field[string]{path: "log.level", flag: "log-level", def: "info", usage: "`level`: trace|debug|info|warn|error",
		ptr: func(s *Settings) *string { return &s.Log.Level }, parse: parseLevel},
	field[string]{path: "log.format", flag: "log-format", def: "text", usage: "`format`: text|json",
		ptr: func(s *Settings) *string { return &s.Log.Format }, parse: parseFormat},
	field[bool]{path: "log.access", flag: "access-log", def: true, usage: "log one line per request",
		ptr: func(s *Settings) *bool { return &s.Log.Access }},

	field[string]{path: "admin.listen", flag: "admin", usage: "`address` of the admin API listener (default: no admin API)",
		ptr: func(s *Settings) *string { return &s.Admin.Listen }, check: optional(hostPort)},
	field[string]{path: "admin.token_file", flag: "admin-token-file", usage: "`file` holding the bearer token the admin API requires",
		ptr: func(s *Settings) *string { return &s.Admin.TokenFile }, isPath: true},
	field[string]{path: "pid_file", flag: "pid-file",
		usage: "`file` the process ID is written to once serving; the new process of an upgrade rewrites it",
		ptr:   func(s *Settings) *string { return &s.PIDFile }, isPath: true},

	field[string]{path: "sticky.secret_file", flag: "cookie-secret-file",
		usage: "`file` whose contents key the sticky cookie (default: a random key per process)",
		ptr:   func(s *Settings) *string { return &s.Sticky.SecretFile }, isPath: true},

	stringList{path: "edge.trusted_proxies", flag: "trusted-proxy",
		usage: "`CIDR` or address of a proxy in front whose X-Forwarded-*/Forwarded headers are kept (repeatable)",
		ptr:   func(s *Settings) *[]string { return &s.Edge.TrustedProxies }, check: checkTrustedProxy},
	field[int64]{path: "edge.max_body", flag: "max-body",
		usage: "largest request body, e.g. 10MiB; larger gets 413 (default 0: no limit)",
		ptr:   func(s *Settings) *int64 { return &s.Edge.MaxBody }, parse: parse.Size},
	field[int]{path: "edge.max_conns", flag: "max-conns", def: 10000,
		usage: "concurrent client connections; more wait to be accepted (0: no limit)",
		ptr:   func(s *Settings) *int { return &s.Edge.MaxConns }, check: atLeast(0)},
	field[bool]{path: "edge.h2c", flag: "h2c",
		usage: "accept cleartext HTTP/2 (prior knowledge) on a cleartext listener",
		ptr:   func(s *Settings) *bool { return &s.Edge.H2C }},
	field[float64]{path: "edge.rate_limit", flag: "rate-limit",
		usage: "requests each client may make, e.g. 10/s or 600/m; more get 429 (default: no limit)",
		ptr:   func(s *Settings) *float64 { return &s.Edge.RateLimit }, parse: parse.Rate},
	field[int]{path: "edge.rate_burst", flag: "rate-burst",
		usage: "requests a client may make at once under --rate-limit (default: one second's worth)",
		ptr:   func(s *Settings) *int { return &s.Edge.RateBurst }, check: atLeast(0)},
	field[bool]{path: "edge.proxy_protocol", flag: "proxy-protocol",
		usage: "require a PROXY protocol header (v1 or v2) on every client connection, from --trusted-proxy peers only",
		ptr:   func(s *Settings) *bool { return &s.Edge.ProxyProtocol }},
	field[string]{path: "edge.request_id_header", flag: "request-id-header", def: "X-Request-ID",
		usage: "`header` carrying each request's ID to the backend and back; \"\" turns request IDs off",
		ptr:   func(s *Settings) *string { return &s.Edge.RequestIDHeader }, check: optional(headerName)},
	field[string]{path: "tls.cert", flag: "tls-cert",
		usage: "PEM certificate `file` (chain) to terminate TLS with; reloaded on SIGHUP",
		ptr:   func(s *Settings) *string { return &s.TLS.Cert }, isPath: true},
	field[string]{path: "tls.key", flag: "tls-key", usage: "PEM private key `file` for --tls-cert",
		ptr: func(s *Settings) *string { return &s.TLS.Key }, isPath: true},
	field[bool]{path: "tls.http3", flag: "http3",
		usage: "also serve HTTP/3 over QUIC on the listener's port (UDP), with the same certificate, and advertise it by Alt-Svc",
		ptr:   func(s *Settings) *bool { return &s.TLS.HTTP3 }},
	field[string]{path: "tls.http_listen", flag: "http-listen",
		usage: "`address` of a plain-HTTP listener that answers ACME's HTTP-01 challenges and redirects everything else to https (default :80 with --acme-domain, none otherwise)",
		ptr:   func(s *Settings) *string { return &s.TLS.HTTPListen }, check: optional(hostPort)},
	stringList{path: "tls.acme.domains", flag: "acme-domain",
		usage: "DNS `name` to obtain and renew a certificate for by ACME, served by SNI (repeatable)",
		ptr:   func(s *Settings) *[]string { return &s.TLS.ACME.Domains }, check: acmeDomain},
	field[string]{path: "tls.acme.email", flag: "acme-email",
		usage: "contact `address` of the ACME account (the CA's expiry and policy mail)",
		ptr:   func(s *Settings) *string { return &s.TLS.ACME.Email }},
	field[string]{path: "tls.acme.ca", flag: "acme-ca", def: LetsEncrypt,
		usage: "`URL` of the ACME CA's directory; Let's Encrypt's staging is " + LetsEncryptStaging,
		ptr:   func(s *Settings) *string { return &s.TLS.ACME.CA }, check: acmeCA},
	field[string]{path: "tls.acme.ca_root", flag: "acme-ca-root",
		usage: "PEM `file` of a private ACME CA's root, trusted for talking to it (default: the system's roots)",
		ptr:   func(s *Settings) *string { return &s.TLS.ACME.CARoot }, isPath: true},
	field[string]{path: "tls.acme.storage", flag: "acme-storage",
		usage: "`directory` of ACME accounts, keys and certificates, shared by instances that should share them (default $XDG_DATA_HOME/roundhouse/acme or ~/.local/share/roundhouse/acme)",
		ptr:   func(s *Settings) *string { return &s.TLS.ACME.Storage }, isPath: true},
	field[string]{path: "tls.backend_ca", flag: "backend-ca",
		usage: "PEM `file` of the authorities that https:// backends are verified against (default: the system's)",
		ptr:   func(s *Settings) *string { return &s.TLS.BackendCA }, isPath: true},
}

func checkTrustedProxy(s string) error {
	_, err := parse.TrustedProxy(s)
	return err
}

// stringList is a list of strings: a repeatable flag, a list in the file.
// Given on the command line, the flag's values replace the file's.
type stringList struct {
	path, flag, usage string
	ptr               func(*Settings) *[]string
	check             func(string) error // judges each value
}

func (l stringList) names() (string, string) { return l.path, l.flag }
func (l stringList) setDefault(s *Settings)  { *l.ptr(s) = nil }
func (l stringList) copy(dst, src *Settings) { *l.ptr(dst) = *l.ptr(src) }

func (l stringList) defaultValue() (any, bool) { return nil, true }
func (l stringList) fileType() string          { return "list of strings" }

func (l stringList) validate(s *Settings) error {
	for _, v := range *l.ptr(s) {
		if err := l.check(v); err != nil {
			return fmt.Errorf("%q: %w", v, err)
		}
	}
	return nil
}

func (l stringList) register(fs *flag.FlagSet, s *Settings) {
	p := l.ptr(s)
	fs.Func(l.flag, l.usage, func(v string) error {
		if err := l.check(v); err != nil {
			return err
		}
		*p = append(*p, v)
		return nil
	})
}

func (l stringList) decode(v cty.Value, s *Settings, _ string) error {
	t := v.Type()
	if v.IsNull() || !v.IsKnown() || !(t.IsTupleType() || t.IsListType()) {
		return fmt.Errorf("want a list of strings, got %s", typeName(v))
	}
	var out []string
	for it := v.ElementIterator(); it.Next(); {
		_, e := it.Element()
		str, err := asString(e)
		if err != nil {
			return err
		}
		out = append(out, str)
	}
	*l.ptr(s) = out
	return nil
}

// rowByFlag and rowByPath index table by flag name and by file path;
// blocks lists the file's block names (besides backend), in table order.
var (
	rowByFlag = map[string]int{}
	rowByPath = map[string]int{}
	blocks    []string
	// nestedBlocks are the blocks inside a block, "tls.acme".
	nestedBlocks []string
)

func init() {
	for i, row := range table {
		path, fl := row.names()
		if fl != "" {
			rowByFlag[fl] = i
		}
		if path == "" {
			continue
		}
		rowByPath[path] = i
		if block, _, ok := strings.Cut(path, "."); ok && !slices.Contains(blocks, block) {
			blocks = append(blocks, block)
		}
		if i := strings.LastIndex(path, "."); i > strings.Index(path, ".") && !slices.Contains(nestedBlocks, path[:i]) {
			nestedBlocks = append(nestedBlocks, path[:i])
		}
	}
}

// A setting is one row of the table.
type setting interface {
	// names returns the setting's path in the file and its flag; either
	// may be "".
	names() (path, flag string)
	setDefault(s *Settings)
	// register adds the setting's flag to fs, writing into s.
	register(fs *flag.FlagSet, s *Settings)
	// decode stores the file's value v in s. dir is the file's directory,
	// against which relative file names are resolved.
	decode(v cty.Value, s *Settings, dir string) error
	// copy copies the setting from src to dst.
	copy(dst, src *Settings)
	// validate reports what is wrong with the setting's final value.
	validate(s *Settings) error
	// defaultValue returns the default, for the reference tables, and
	// whether it is the zero value; nil for a list.
	defaultValue() (v any, zero bool)
	// fileType names the value's type in the file: "string", "number"...
	fileType() string
}

// field is a setting held in one field of type T: string, int, bool or
// time.Duration. In the file a duration is a string in Go syntax ("10s").
type field[T any] struct {
	path  string // in the file; "" when the file cannot set it
	flag  string // without dashes; "" when there is no flag
	usage string // the flag's help; a `word` in backquotes names its value
	def   T
	ptr   func(*Settings) *T
	// parse, if not nil, checks and normalises a value as it is read, from
	// the flag or the file. Such a flag is registered with flag.Func, which
	// prints no default: register adds a non-zero one to the usage.
	parse func(string) (T, error)
	// check, if not nil, judges the final value, whoever gave it.
	check func(T) error
	// isPath marks a file name: given in the config file, a relative name
	// is taken relative to the config file's directory.
	isPath bool
}

func (f field[T]) names() (string, string) { return f.path, f.flag }
func (f field[T]) setDefault(s *Settings)  { *f.ptr(s) = f.def }
func (f field[T]) copy(dst, src *Settings) { *f.ptr(dst) = *f.ptr(src) }

func (f field[T]) defaultValue() (any, bool) {
	var zero T
	return f.def, any(f.def) == any(zero)
}

func (f field[T]) fileType() string {
	if f.parse != nil {
		return "string" // parsed from one
	}
	switch any(f.def).(type) {
	case int:
		return "number"
	case bool:
		return "bool"
	case time.Duration:
		return "duration"
	}
	return "string"
}

func (f field[T]) validate(s *Settings) error {
	if f.check == nil {
		return nil
	}
	return f.check(*f.ptr(s))
}

func (f field[T]) register(fs *flag.FlagSet, s *Settings) {
	if f.flag == "" {
		return
	}
	if f.parse != nil {
		p := f.ptr(s)
		usage := f.usage
		if def, zero := f.defaultValue(); !zero {
			usage += fmt.Sprintf(" (default %v)", def)
		}
		fs.Func(f.flag, usage, func(v string) error {
			x, err := f.parse(v)
			if err == nil {
				*p = x
			}
			return err
		})
		return
	}
	switch p := any(f.ptr(s)).(type) {
	case *string:
		fs.StringVar(p, f.flag, *p, f.usage)
	case *int:
		fs.IntVar(p, f.flag, *p, f.usage)
	case *bool:
		fs.BoolVar(p, f.flag, *p, f.usage)
	case *time.Duration:
		fs.DurationVar(p, f.flag, *p, f.usage)
	default:
		panic(fmt.Sprintf("config: flag --%s: no flag type for %T", f.flag, p))
	}
}

func (f field[T]) decode(v cty.Value, s *Settings, dir string) error {
	p := f.ptr(s)
	if f.parse != nil {
		str, err := asString(v)
		if err != nil {
			return err
		}
		x, err := f.parse(str)
		if err != nil {
			return fmt.Errorf("bad value %q: %w", str, err)
		}
		*p = x
		return nil
	}
	switch p := any(p).(type) {
	case *string:
		str, err := asString(v)
		if err != nil {
			return err
		}
		if f.isPath && str != "" && !filepath.IsAbs(str) {
			str = filepath.Join(dir, str)
		}
		*p = str
	case *int:
		n, err := asInt(v)
		if err != nil {
			return err
		}
		*p = n
	case *bool:
		b, err := asBool(v)
		if err != nil {
			return err
		}
		*p = b
	case *time.Duration:
		d, err := asDuration(v)
		if err != nil {
			return err
		}
		*p = d
	default:
		panic(fmt.Sprintf("config: %s: no file type for %T", f.path, p))
	}
	return nil
}

// backends is the backend list: --backend URL[,weight=N], repeatable, on the
// command line; backend "URL" { ... } blocks in the file (see file.go).
type backends struct{}

func (backends) names() (string, string)   { return "backend", "backend" }
func (backends) setDefault(s *Settings)    { s.Backends = nil }
func (backends) copy(dst, src *Settings)   { dst.Backends = src.Backends }
func (backends) defaultValue() (any, bool) { return nil, true }
func (backends) fileType() string          { return "block, repeatable" }
func (backends) decode(cty.Value, *Settings, string) error {
	return errors.New(`backend is a block, one per backend: backend "http://127.0.0.1:8081" { weight = 1 }`)
}

func (backends) register(fs *flag.FlagSet, s *Settings) {
	fs.Func("backend", "backend `URL[,weight=N][,proxy-protocol=v1|v2]`: http://host:port, weight 1 by default, 0 for a standby; proxy-protocol sends the client's address in a PROXY header (repeatable)", func(v string) error {
		b, err := parseBackend(v)
		if err == nil {
			s.Backends = append(s.Backends, b)
		}
		return err
	})
}

// validate finds a backend given twice on the command line. The file's
// duplicates never reach Settings: the parser reports them where they are.
func (backends) validate(s *Settings) error {
	seen := map[string]bool{}
	var dups []string
	for _, b := range s.Backends {
		if seen[b.URL.String()] {
			dups = append(dups, b.URL.String())
		}
		seen[b.URL.String()] = true
	}
	if len(dups) > 0 {
		return fmt.Errorf("%s: given twice", strings.Join(dups, ", "))
	}
	return nil
}

// discovers is the list of discovery sources: --discover URL, repeatable,
// on the command line; discover = ["URL", ...] in the file. Each is kept
// in the canonical form parse.Discovery.String gives, which is also the
// source its backends carry.
type discovers struct{}

func (discovers) names() (string, string) { return "discover", "discover" }
func (discovers) setDefault(s *Settings)  { s.Discover = nil }
func (discovers) copy(dst, src *Settings) { dst.Discover = src.Discover }

func (discovers) defaultValue() (any, bool) { return nil, true }
func (discovers) fileType() string          { return "list of strings" }

func (discovers) register(fs *flag.FlagSet, s *Settings) {
	fs.Func("discover", "discover backends from `URL`: etcd://HOST:PORT[,HOST:PORT...]/PREFIX, dns+srv://NAME or dns+a://NAME:PORT (repeatable)", func(v string) error {
		spec, err := parse.DiscoverURL(v)
		if err == nil {
			s.Discover = append(s.Discover, spec.String())
		}
		return err
	})
}

func (discovers) decode(v cty.Value, s *Settings, _ string) error {
	t := v.Type()
	if v.IsNull() || !v.IsKnown() || !(t.IsTupleType() || t.IsListType()) {
		return fmt.Errorf(`want a list of URLs such as ["etcd://127.0.0.1:2379/roundhouse/backends"], got %s`, typeName(v))
	}
	var out []string
	for i, e := range v.AsValueSlice() {
		raw, err := asString(e)
		if err != nil {
			return fmt.Errorf("element %d: %w", i, err)
		}
		spec, err := parse.DiscoverURL(raw)
		if err != nil {
			return fmt.Errorf("%q: %w", raw, err)
		}
		out = append(out, spec.String())
	}
	s.Discover = out
	return nil
}

// validate finds a source given twice.
func (discovers) validate(s *Settings) error {
	seen := map[string]bool{}
	for _, d := range s.Discover {
		if seen[d] {
			return fmt.Errorf("%s: given twice", d)
		}
		seen[d] = true
	}
	return nil
}

// healthHeaders are the probes' extra request headers: --health-header
// "Name: value", repeatable, on the command line; health { headers = {
// "Name" = "value" } } in the file. Given on the command line, they
// replace the file's as a whole.
type healthHeaders struct{}

func (healthHeaders) names() (string, string)   { return "health.headers", "health-header" }
func (healthHeaders) setDefault(s *Settings)    { s.Health.Headers = nil }
func (healthHeaders) copy(dst, src *Settings)   { dst.Health.Headers = src.Health.Headers }
func (healthHeaders) validate(*Settings) error  { return nil } // checked as read
func (healthHeaders) defaultValue() (any, bool) { return nil, true }
func (healthHeaders) fileType() string          { return "map of strings" }

func (healthHeaders) register(fs *flag.FlagSet, s *Settings) {
	fs.Func("health-header", "`\"Name: value\"` header sent with every probe (repeatable)", func(v string) error {
		name, value, ok := strings.Cut(v, ":")
		if !ok {
			return fmt.Errorf("%q: want Name: value", v)
		}
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		if err := checkHeader(name, value); err != nil {
			return err
		}
		if s.Health.Headers == nil {
			s.Health.Headers = http.Header{}
		}
		s.Health.Headers.Add(name, value)
		return nil
	})
}

func (healthHeaders) decode(v cty.Value, s *Settings, _ string) error {
	t := v.Type()
	if v.IsNull() || !v.IsKnown() || !(t.IsObjectType() || t.IsMapType()) {
		return fmt.Errorf(`want header names and values, such as { "X-Probe" = "1" }, got %s`, typeName(v))
	}
	h := http.Header{}
	for name, value := range v.AsValueMap() {
		str, err := asString(value)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if err := checkHeader(name, str); err != nil {
			return err
		}
		h.Add(name, str)
	}
	s.Health.Headers = h
	return nil
}

// checkHeader checks a probe header's name and value.
func checkHeader(name, value string) error {
	switch {
	case name == "" || strings.ContainsFunc(name, func(r rune) bool { return !isTokenChar(r) }):
		return fmt.Errorf("header name %q: want letters, digits and -", name)
	case http.CanonicalHeaderKey(name) == "Host":
		return errors.New("header Host: set the probe's Host header with --health-host (host in the file)")
	case strings.ContainsFunc(value, isControl):
		return fmt.Errorf("header %s: the value holds a control character (of those, only tab is allowed)", name)
	}
	return nil
}

// isControl reports whether r may not appear in a header value: a control
// character other than horizontal tab (RFC 9110 §5.5; net/http refuses to
// send such a value).
func isControl(r rune) bool { return r < ' ' && r != '\t' || r == 0x7f }

// parseDNSServer reads a --dns-server value: host or host:port, port 53 by
// default.
func parseDNSServer(s string) (string, error) {
	if _, _, err := net.SplitHostPort(s); err != nil {
		if strings.Contains(strings.Trim(s, "[]"), ":") && !strings.HasPrefix(s, "[") {
			s = "[" + s + "]" // a bare IPv6 address
		}
		s = strings.Trim(s, "[]")
		if s == "" {
			return "", errors.New("want host or host:port, such as 127.0.0.1:8600")
		}
		s = net.JoinHostPort(s, "53")
	}
	if _, port, _ := net.SplitHostPort(s); port == "" {
		return "", errors.New("want host or host:port, such as 127.0.0.1:8600")
	}
	return s, nil
}

// isTokenChar reports whether r may appear in a header name (RFC 9110's
// tchar).
func isTokenChar(r rune) bool {
	return r < 0x7f && (r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' ||
		strings.ContainsRune("!#$%&'*+-.^_`|~", r))
}

// parseBackend reads a --backend value, URL[,weight=N].
func parseBackend(s string) (Backend, error) {
	raw, opts, _ := strings.Cut(s, ",")
	u, err := actors.ParseBackendURL(raw)
	if err != nil {
		return Backend{}, err
	}
	b := Backend{URL: u, Weight: 1, Source: "--backend"}
	for opt := range strings.SplitSeq(opts, ",") {
		if opt == "" && opts == "" {
			break
		}
		k, v, _ := strings.Cut(opt, "=")
		switch k {
		case "weight":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 || n > actors.MaxWeight {
				return b, fmt.Errorf("weight %q: want a whole number from 0 to %d", v, actors.MaxWeight)
			}
			b.Weight = n
		case "proxy-protocol":
			v, err := parseProxyProtocolVersion(v)
			if err != nil {
				return b, fmt.Errorf("proxy-protocol: %w", err)
			}
			if u.Scheme == "h2c" {
				return b, fmt.Errorf("proxy-protocol: %w", errProxyProtocolH2C)
			}
			b.ProxyProtocol = v
		default:
			return b, fmt.Errorf("unknown option %q (known: weight=N, proxy-protocol=v1|v2)", opt)
		}
	}
	return b, nil
}

// errProxyProtocolH2C refuses PROXY protocol for an h2c backend: the
// header belongs to a connection, and HTTP/2 carries many clients'
// requests on each (see transport/proxyproto_out.go).
var errProxyProtocolH2C = errors.New("not for an h2c:// backend, whose connections carry many clients' requests")

// parseProxyProtocolVersion reads a backend's PROXY protocol version: "v1"
// or "v2".
func parseProxyProtocolVersion(s string) (int, error) {
	switch s {
	case "v1":
		return 1, nil
	case "v2":
		return 2, nil
	}
	return 0, fmt.Errorf("%q: want v1 or v2", s)
}

// The checks rows use.

func positive(d time.Duration) error {
	if d <= 0 {
		return fmt.Errorf("must be positive, got %v", d)
	}
	return nil
}

func notNegative(d time.Duration) error {
	if d < 0 {
		return fmt.Errorf("must not be negative, got %v", d)
	}
	return nil
}

func between(lo, hi int) func(int) error {
	return func(n int) error {
		if n < lo || n > hi {
			return fmt.Errorf("want %d to %d, got %d", lo, hi, n)
		}
		return nil
	}
}

func atLeast(min int) func(int) error {
	return func(n int) error {
		switch {
		case n >= min:
			return nil
		case min == 0:
			return fmt.Errorf("must not be negative, got %d", n)
		}
		return fmt.Errorf("must be at least %d, got %d", min, n)
	}
}

func absPath(p string) error {
	if !strings.HasPrefix(p, "/") {
		return fmt.Errorf("must start with /, got %q", p)
	}
	return nil
}

// headerName checks an HTTP header name (an RFC 9110 token).
func headerName(s string) error {
	for _, c := range s {
		if c > 0x7e || c <= ' ' || strings.ContainsRune("\"(),/:;<=>?@[\\]{}", c) {
			return fmt.Errorf("want a header name such as X-Request-ID, got %q", s)
		}
	}
	return nil
}

// hostHeader accepts a Host header: a host name or address, with an
// optional port.
func hostHeader(h string) error {
	if strings.ContainsFunc(h, func(r rune) bool { return r <= ' ' || r >= 0x7f || strings.ContainsRune("/?#@\\", r) }) {
		return fmt.Errorf("want a host such as app.example or app.example:8080, got %q", h)
	}
	return nil
}

func hostPort(addr string) error {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return fmt.Errorf("want host:port, such as 127.0.0.1:8080, got %q", addr)
	}
	return nil
}

// optional lets "" through check.
func optional(check func(string) error) func(string) error {
	return func(s string) error {
		if s == "" {
			return nil
		}
		return check(s)
	}
}

// The parsers of the rows whose values are words.

func parsePolicy(s string) (string, error) {
	if _, err := actors.NewPolicy(s, []byte("only-checking-the-name"), 0); err != nil {
		return "", err
	}
	return s, nil
}

// parseExpect reads --health-expect and returns it in its usual form.
func parseExpect(s string) (string, error) {
	r, err := actors.ParseStatusRanges(s)
	if err != nil {
		return "", err
	}
	return r.String(), nil
}

// parseRegexp checks a regular expression (Go's RE2 syntax).
func parseRegexp(s string) (string, error) {
	if _, err := regexp.Compile(s); err != nil {
		return "", err
	}
	return s, nil
}

func parseLevel(s string) (string, error) {
	l := hclog.LevelFromString(s)
	if l == hclog.NoLevel || l == hclog.Off {
		return "", errors.New("want trace, debug, info, warn or error")
	}
	return l.String(), nil
}

func parseFormat(s string) (string, error) {
	if s != "text" && s != "json" {
		return "", errors.New("want text or json")
	}
	return s, nil
}

// maxFailureWindow bounds ejection.failure_window: each backend keeps one
// bit per request of its window.
const maxFailureWindow = 10000

// defaultFailureRate is ejection.failure_rate's default where
// ejection.after is not 0 (see rateFollowsAfter).
const defaultFailureRate = 50

// rateFollowsAfter applies the one default that depends on another
// setting: ejection.failure_rate, unless given (by a flag, the file's top
// level or, for a pool, its block), is off where ejection.after is 0, so
// that --eject-after 0 alone turns ejection off as it did before rates
// were judged, and its default (50) where ejection.after is not 0.
func rateFollowsAfter(e *Ejection, given bool) {
	switch {
	case given:
	case e.After == 0:
		e.FailureRate = 0
	default:
		e.FailureRate = defaultFailureRate
	}
}
