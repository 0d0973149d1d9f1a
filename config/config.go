// Package config owns the balancer's settings: their defaults, the serve
// command's flags, the HCL configuration file, and the checks they must
// pass. main asks it for a *Settings (Load) and builds the balancer from
// that; a reload is the same call again.
//
// Settings are data: values, parsed URLs and the contents of the files
// they name, read once by Load. This package builds nothing that runs; it
// imports none of transport, admin, discovery or upgrade (imports_test.go
// holds it to that), and checks values with the parsers in
// internal/parse, which those packages share.
//
// Every setting is one row of the table in settings.go, which gives its
// field in Settings, its default, its flag and its place in the file.
// Adding a setting is a field here and a row there: the flag, the file
// schema, precedence and the error positions follow from the row.
//
// Precedence: defaults, then the file named by --config, then the flags given
// on the command line. A flag that was given wins even when it repeats the
// default; --backend given on the command line replaces the file's backends
// as a whole.
package config

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/roundhouse/roundhouse/internal/parse"
	"github.com/roundhouse/roundhouse/routing"
)

// Settings is everything the serve command is told: one value per flag or
// file attribute. Load returns it complete and checked; Defaults returns the
// values used when neither the file nor a flag gives one. The comments say
// what a zero value means; the defaults themselves are written once, in
// the settings table (settings.go), and listed in docs/configuration.md.
type Settings struct {
	// File is the configuration file that was read (--config), "" for none.
	File string

	Listen   string    // address clients connect to
	Backends []Backend // in policy order; none by default, and serve needs one (or Discover)
	// Discover lists the discovery sources (--discover), each as
	// parse.Discovery.String writes it; none by default.
	Discover []string
	// DNSServer is the resolver the DNS sources ask, host:port; "" (the
	// default): the first nameserver in /etc/resolv.conf.
	DNSServer     string
	Policy        string        // a name actors.NewPolicy accepts
	Retries       int           // other backends a failed request may try
	ShutdownGrace time.Duration // time in-flight requests get on shutdown

	// SlowStart ramps a returning backend's share of traffic up over this
	// long; 0 (the default): off.
	SlowStart time.Duration
	// PIDFile, if not "", receives the process ID once the balancer
	// serves; after a seamless upgrade the new process rewrites it.
	PIDFile string

	// RetryBuffer is how many bytes of an idempotent request's body are
	// kept so it can be resent to another backend.
	RetryBuffer int

	Health   Health
	Timeouts Timeouts
	Limits   Limits
	Ejection Ejection
	Edge     Edge
	TLS      TLS
	Log      Log
	Admin    Admin
	Sticky   Sticky

	// Pools is every pool, each with its balancing settings resolved:
	// first the pool named DefaultPool when there is one (made of Backends
	// and Discover above, or declared by a pool "default" block), then the
	// file's pool blocks in file order. The fields above (Backends,
	// Discover, Policy, Retries, SlowStart, Health, Limits, Ejection and
	// Timeouts) are the top level: the defaults every pool inherits, and
	// the default pool's own settings unless a pool "default" block gives
	// them (then Backends and Discover are empty). Empty only when there
	// is no pool at all, which Load refuses, except with
	// Options.OwnBackends, where it holds the default pool without
	// backends.
	Pools []Pool
	// Routes are the file's route blocks in file order: tried in this
	// order, the first match wins, and a request no route matches gets
	// 404. Nil (no route blocks): every request goes to the default pool.
	// Every Pool names a pool of Pools; Name is the block's label.
	Routes []routing.Route
}

// Backend is one configured backend.
type Backend struct {
	URL    *url.URL // scheme://host[:port][/path]; never nil in Settings from Load
	Weight int      // share of traffic for the weighted policies, 0 to 1000; 0 is a standby
	// Disabled is true for a backend the file lists with enabled = false: it
	// is known but gets no traffic. The zero value is an enabled backend.
	Disabled bool
	// ProxyProtocol is the PROXY protocol version, 1 or 2, the backend is
	// sent on each connection (proxy-protocol=v1|v2); 0 (the default): none.
	ProxyProtocol int
	// Source says where the backend was configured, for messages:
	// "roundhouse.hcl:7:9" or "--backend".
	Source string
}

// Health says how backends are probed (file block health).
type Health struct {
	Path     string        // probed with GET
	Interval time.Duration // between probes of one backend
	Timeout  time.Duration // of one probe
	Rise     int           // passes in a row that bring a DOWN backend UP
	Fall     int           // failures in a row that take an UP backend DOWN
	Expect   string        // statuses that pass, as actors.ParseStatusRanges reads them
	Body     string        // a regular expression the body must match; "" (the default): any body
	Host     string        // the probes' Host header; "" (the default): the address probed
	Headers  http.Header   // extra request headers; nil (the default): none
	Port     int           // probed instead of each backend's port; 0 (the default): the backend's
	// GRPC probes with grpc.health.v1.Health/Check instead of HTTP GET
	// (Path, Expect and Body are then unused; Host, Headers and Port
	// apply); false (the default): HTTP.
	GRPC bool
	// GRPCService is the service the gRPC check asks about; "" (the
	// default): the server as a whole. Set only with GRPC.
	GRPCService string
}

// Timeouts bound the balancer's exchanges with backends (file block timeouts).
type Timeouts struct {
	Dial           time.Duration // connecting to a backend
	TLSHandshake   time.Duration // TLS handshake with an https backend
	ResponseHeader time.Duration // waiting for a backend's response headers (then 504)
	BackendIdle    time.Duration // an idle pooled backend connection is kept
	BackendH2Ping  time.Duration // an HTTP/2 backend connection silent this long is pinged
	ClientHeader   time.Duration // a client has to send its request headers
	ClientIdle     time.Duration // an idle client keep-alive connection is kept
	ClientBody     time.Duration // wait for each read of a request body (408 beyond); 0: none
	Request        time.Duration // a whole request, response included; 0 (the default): no limit
}

// Limits protects backends from overload (file block limits).
type Limits struct {
	MaxConnsPerBackend int           // in-flight requests per backend; 0 (the default): no cap
	QueueSize          int           // requests that may wait for a backend under its cap
	QueueTimeout       time.Duration // longest wait in that queue
}

// Edge hardens the client-facing side (file block edge).
type Edge struct {
	// TrustedProxies are CIDRs or addresses of proxies in front whose
	// X-Forwarded-* and Forwarded headers are kept; none by default.
	TrustedProxies []string
	MaxBody        int64   // bytes of a request body; 0 (the default): no limit
	MaxConns       int     // concurrent client connections; 0: no limit
	H2C            bool    // accept cleartext HTTP/2 (prior knowledge); default false
	RateLimit      float64 // requests per second per client; 0 (the default): off
	RateBurst      int     // requests at once under RateLimit; 0: one second's worth
	// ProxyProtocol requires a PROXY protocol header (v1 or v2) on every
	// client connection, accepted only from TrustedProxies; default false.
	ProxyProtocol bool
	// RequestIDHeader carries each request's ID; "": request IDs off.
	RequestIDHeader string
}

// TLS terminates TLS for clients and verifies https backends (file block tls).
type TLS struct {
	Cert      string // PEM certificate chain; "" (the default): cleartext
	Key       string // PEM private key for Cert
	BackendCA string // PEM authorities for https backends; "": the system's roots
	// HTTP3 also serves HTTP/3 over QUIC on the listener's port (UDP),
	// with the same certificate; false (the default): TCP only.
	HTTP3 bool

	// HTTPListen is the plain-HTTP listener's address: it answers ACME's
	// HTTP-01 challenges and redirects everything else to https (308).
	// "" (the default): ":80" when ACME is on (see HTTPAddr), none
	// otherwise.
	HTTPListen string
	// ACME obtains and renews certificates automatically (block acme in
	// block tls); its Domains empty (the default): off.
	ACME ACME

	// Read by Load: Certificate is Cert and Key, loaded, with its Leaf
	// (nil for cleartext), and BackendCAs the authorities in BackendCA
	// (nil: the system's roots). serve hands Certificate to the
	// certificate store, which reads the files again only on SIGHUP.
	Certificate *tls.Certificate
	BackendCAs  *x509.CertPool
}

// ACME is automatic certificates from an ACME CA (file block acme inside
// block tls). See docs/acme.md.
type ACME struct {
	// Domains are the names to obtain certificates for, each served by
	// SNI; nil (the default): ACME off.
	Domains []string
	Email   string // the account's contact; "": an account without one
	CA      string // the directory URL; Let's Encrypt's production by default
	CARoot  string // PEM file of the CA's root, for a private CA; "": the system's roots
	// Storage is the directory of accounts, keys, certificates and locks;
	// "" (the default): see StorageDir. Instances that share it share
	// their certificates, and only one asks the CA at a time.
	Storage string

	// Read by Load: CARoots is CARoot's certificates (nil: the system's).
	CARoots *x509.CertPool
}

// On reports whether ACME is on.
func (a ACME) On() bool { return len(a.Domains) > 0 }

// Ejection is passive outlier detection (file block ejection).
type Ejection struct {
	After      int           // consecutive gateway failures that eject; 0: no streak ejects
	Time       time.Duration // the first ejection's length
	MaxPercent int           // most backends, in percent of those UP, ejected at once
	// FailureRate is the percentage of gateway failures among a backend's
	// last FailureWindow requests that ejects it; 0: no rate ejects. Left
	// to its default, it is 0 where After is 0 (see rateFollowsAfter).
	FailureRate   int
	FailureWindow int // requests FailureRate is judged over, and the fewest judged
}

// Log says what is logged and how (file block log).
type Log struct {
	Level  string // trace, debug, info, warn or error
	Format string // text or json
	Access bool   // one line per request
}

// Admin is the admin API's listener (file block admin).
type Admin struct {
	Listen    string // host:port; "" (the default) turns the admin API off
	TokenFile string // file holding the bearer token the API requires; "" for none
	Token     []byte // TokenFile's token, read by Load; nil without one
}

// Sticky keys the sticky-session cookie (file block sticky).
type Sticky struct {
	// SecretFile holds the key; "" (the default) means a random key made
	// once per process, so cookies survive reloads but not restarts.
	SecretFile string
	// Secret is SecretFile's contents, trimmed, read by Load; nil when
	// SecretFile is "". Use Settings.StickySecret, which fills in the
	// random key.
	Secret []byte
}

// Defaults returns the settings used when neither the file nor a flag
// gives a value.
func Defaults() *Settings {
	s := &Settings{}
	for _, row := range table {
		row.setDefault(s)
	}
	return s
}

// Register sets s to the defaults and registers on fs every flag of the
// serve command, each writing into s.
func Register(fs *flag.FlagSet, s *Settings) {
	*s = *Defaults()
	for _, row := range table {
		row.register(fs, s)
	}
}

// Options says which command Load reads and how it reports.
type Options struct {
	// Name is the command in the flag package's messages; "" means
	// "roundhouse serve".
	Name string
	// Output receives the flag package's messages (a bad flag, -h); nil
	// discards them, as a reload should.
	Output io.Writer
	// OwnBackends is for a command that starts its own backends (demo):
	// backends from the flags or the file are refused instead of required.
	OwnBackends bool
}

// Load turns a serve command line into checked settings: the defaults, then
// the file named by --config, then the flags given in args. It reads the
// file (and the files it names) every time it is called, so calling it again
// with the same args is a reload.
//
// A bad flag is returned as the flag package's error, flag.ErrHelp for -h.
// Everything else wrong is returned at once as Problems, every problem found,
// each naming its flag or its file position.
func Load(args []string, opts Options) (*Settings, error) {
	if opts.Name == "" {
		opts.Name = "roundhouse serve"
	}
	if opts.Output == nil {
		opts.Output = io.Discard
	}
	fs := flag.NewFlagSet(opts.Name, flag.ContinueOnError)
	fs.SetOutput(opts.Output)
	cmdline := &Settings{}
	Register(fs, cmdline)
	if err := fs.Parse(args); err != nil {
		return nil, err // the flag package has printed the details
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}

	l := newLoader(Defaults())
	if cmdline.File != "" {
		l.readFile(cmdline.File)
	}
	fs.Visit(func(f *flag.Flag) {
		i := rowByFlag[f.Name]
		table[i].copy(l.s, cmdline)
		l.from[i] = origin{flag: f.Name}
	})
	rateFollowsAfter(&l.s.Ejection, l.from[rowByPath["ejection.failure_rate"]] != origin{})
	l.check(opts)
	l.readFiles()
	if len(l.problems) > 0 {
		return nil, l.problems.sorted()
	}
	return l.s, nil
}

// check runs the rows' checks on the merged settings, then the checks that
// span settings. It reads nothing.
func (l *loader) check(opts Options) {
	s := l.s
	for i, row := range table {
		if err := row.validate(s); err != nil {
			l.problemFrom(i, err.Error())
		}
	}
	bi := rowByFlag["backend"]
	switch {
	case opts.OwnBackends && len(s.Backends) > 0:
		if l.from[bi].flag != "" {
			l.problemFrom(bi, "demo starts its own backends")
		} else {
			for _, r := range l.backendRanges {
				l.problems = append(l.problems, problemAt(r, "backend: demo starts its own backends; remove this block"))
			}
		}
	}
	switch {
	case (s.TLS.Cert == "") != (s.TLS.Key == ""):
		given := rowByFlag["tls-cert"] // the one that was given, where it was
		if s.TLS.Cert == "" {
			given = rowByFlag["tls-key"]
		}
		l.problemFrom(given, "--tls-cert and --tls-key: give both or neither")
	case s.Edge.H2C && s.TLS.Cert != "":
		l.problemFrom(rowByFlag["h2c"], "cleartext HTTP/2 needs a cleartext listener; with --tls-cert, HTTP/2 is negotiated by ALPN")
	}
	checkHTTP3(s, l.problemFrom)
	l.checkACME()
	checkGRPCHealth(s.Health, l.from, l.problemFrom)
	if s.Edge.ProxyProtocol && len(s.Edge.TrustedProxies) == 0 {
		l.problemFrom(rowByFlag["proxy-protocol"], "needs --trusted-proxy: the peers allowed to send PROXY headers")
	}
	if s.Edge.RateBurst > 0 && s.Edge.RateLimit == 0 {
		l.problemFrom(rowByFlag["rate-burst"], "needs --rate-limit")
	}
	// The admin API's rules, here so that validate reports what serve
	// would refuse. hostPort has checked the address itself.
	switch {
	case s.Admin.TokenFile != "" && s.Admin.Listen == "":
		l.problemFrom(rowByFlag["admin-token-file"], "needs --admin ADDR")
	case s.Admin.Listen != "" && s.Admin.TokenFile == "":
		if err := parse.AdminAddr(s.Admin.Listen, false); errors.Is(err, parse.ErrNotLoopback) {
			l.problemFrom(rowByFlag["admin"], fmt.Sprintf("%s: %v: give --admin-token-file FILE, or a loopback address such as %s",
				s.Admin.Listen, err, parse.DefaultAdminAddr))
		}
	}
	if opts.OwnBackends {
		for _, pb := range l.poolBlocks {
			l.problems = append(l.problems, problemAt(pb.label, "pool: demo starts its own backends, in one pool; remove this block"))
		}
		for _, rb := range l.routeBlocks {
			l.problems = append(l.problems, problemAt(rb.label, "route: demo starts its own backends, in one pool; remove this block"))
		}
	}
	if opts.OwnBackends {
		s.Pools = []Pool{s.defaultPool()}
	} else {
		l.resolveRoutes(l.resolvePools())
	}
	switch {
	case len(l.poolBlocks) > 0 || len(l.routeBlocks) > 0:
		// Each pool has said whether it has backends (resolvePools).
	case !opts.OwnBackends && len(s.Backends) == 0 && len(s.Discover) == 0 && !l.unread && l.rejected == 0:
		msg := "no backend: give at least one --backend http://host:port or --discover URL"
		if s.File != "" {
			l.problems = append(l.problems, Problem{File: s.File,
				Msg: `no backend: add a block such as backend "http://127.0.0.1:8081" {} or a discover list, or give --backend or --discover`})
		} else {
			l.problems = append(l.problems, Problem{Msg: msg})
		}
	}
}

// readFiles reads the files the settings name.
func (l *loader) readFiles() {
	s := l.s
	if f := s.Sticky.SecretFile; f != "" {
		secret, err := readSecret(f)
		if err != nil {
			l.problemFrom(rowByPath["sticky.secret_file"], err.Error())
		}
		s.Sticky.Secret = secret
	}
	if f := s.Admin.TokenFile; f != "" && s.Admin.Listen != "" {
		token, err := parse.TokenFile(f)
		if err != nil {
			l.problemFrom(rowByFlag["admin-token-file"], err.Error())
		}
		s.Admin.Token = token
	}
	if s.TLS.Cert != "" && s.TLS.Key != "" {
		cert, err := loadKeyPair(s.TLS.Cert, s.TLS.Key)
		if err != nil {
			l.problemFrom(rowByFlag["tls-cert"], err.Error())
		}
		s.TLS.Certificate = cert
	}
	l.readACME()
	if f := s.TLS.BackendCA; f != "" {
		pool, err := loadCAs(f)
		if err != nil {
			l.problemFrom(rowByFlag["backend-ca"], err.Error())
		}
		s.TLS.BackendCAs = pool
	}
}

// loadKeyPair reads a PEM certificate chain and its key; the certificate's
// Leaf is filled in.
func loadKeyPair(certFile, keyFile string) (*tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	return &cert, nil
}

// loadCAs reads PEM certificates from file into a pool, for verifying
// https:// backends.
func loadCAs(file string) (*x509.CertPool, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("%s: no PEM certificate found", file)
	}
	return pool, nil
}

// readSecret reads the sticky cookie's key from file.
func readSecret(file string) ([]byte, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	b = []byte(strings.TrimSpace(string(b)))
	if len(b) < 16 {
		return nil, fmt.Errorf("%s: want at least 16 bytes of secret, got %d", file, len(b))
	}
	return b, nil
}

// processSecret is the sticky cookie's key when no file gives one: random,
// made when the process starts and kept for its life, so a reload does not
// break every client's stickiness. Nothing writes it after initialisation.
var processSecret = []byte(rand.Text())

// Problem is one thing wrong with the settings, with where it is.
type Problem struct {
	// File is the configuration file at fault, "" when the problem is on
	// the command line.
	File string
	// Line and Column (1-based, columns in characters) locate the problem
	// in File; 0 when it concerns the whole file.
	Line, Column int
	// Flag is the flag at fault, without dashes, when File is "".
	Flag string
	Msg  string
}

// String formats p as "file:line:column: msg", "file: msg" or "--flag: msg".
func (p Problem) String() string {
	switch {
	case p.File != "" && p.Line > 0:
		return fmt.Sprintf("%s:%d:%d: %s", p.File, p.Line, p.Column, p.Msg)
	case p.File != "":
		return p.File + ": " + p.Msg
	case p.Flag != "":
		return "--" + p.Flag + ": " + p.Msg
	}
	return p.Msg
}

// Problems is every problem Load found: the file's in file order, then the
// command line's in the order of the settings table. It is the error Load returns for anything but a bad flag;
// use errors.As to list them.
type Problems []Problem

// Error returns the problems one per line.
func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// sorted orders the problems in the file by position and puts them first;
// the rest keep the order they were found in.
func (ps Problems) sorted() Problems {
	sort.SliceStable(ps, func(i, j int) bool {
		a, b := ps[i], ps[j]
		if (a.File != "") != (b.File != "") {
			return a.File != ""
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Column < b.Column
	})
	return ps
}
