#!/usr/bin/env bash
# bench/run.sh [quick|full]: Roundhouse side by side with nginx, HAProxy,
# Caddy, a plain tuned httputil.ReverseProxy and direct-to-backend, in one
# run; and Roundhouse again behind 100 routes (roundhouse-100routes), for
# the routing cost. After the table, the goals of issue 18 as PASS/FAIL.
#
#   quick  1 round,  3 s per measurement (under 3 minutes)
#   full   5 rounds, 4 s per measurement (under 15 minutes); medians across rounds
#
# What it does:
#   - installs wrk, nginx and haproxy with apt-get when they are missing;
#   - builds roundhouse and bench/baseline into a mktemp directory, and
#     Caddy there too with `go install
#     github.com/caddyserver/caddy/v2/cmd/caddy@v2.11.9` (seconds with a
#     warm module and build cache, a few minutes without; it needs the
#     module proxy the first time). When Caddy cannot be built (no
#     network, a Go too old), the bench logs why and goes on without it;
#   - starts 3 demo backends (roundhouse backend) and the six proxies, each
#     balancing round-robin over the 3 backends with keep-alive upstream
#     connections, all on 127.0.0.1 ports 18080-18089. roundhouse-100routes
#     is Roundhouse with a configuration of one pool behind 100 routes in a
#     realistic mix, of which wrk's requests match only the last (as
#     BenchmarkProxy's -100routes); against roundhouse, it shows what
#     routing costs a request. caddy is Caddy configured as a user would
#     for this job (reverse_proxy, lb_policy round_robin, a large idle pool
#     per backend, no access log, no admin endpoint, no automatic HTTPS);
#   - pins every proxy to core 0 and wrk and the backends to core 1, so the
#     proxy under test has a core to itself (the Go proxies' GOMAXPROCS
#     follows: 1);
#   - for each round, each configuration, each target (the order of the
#     targets rotates every round): waits until the machine is quiet (other
#     work on it skews everything), a warm-up, then wrk --latency, reading
#     the target's CPU time (utime+stime of its processes in /proc) before
#     and after and its VmRSS at the end, and how busy core 0 was with
#     anything but the target (the "other" column: should be near 0);
#   - prints a markdown table (medians across rounds; ratios to nginx and
#     to the plain proxy are taken within each round, then the median) and
#     the goals of issue 18, each PASS, FAIL or "not measured", to stdout
#     and writes them to bench/results/latest.md. Progress goes to stderr.
#     A measurement during which another program took more than 30% of
#     core 0 is noisy: when a cell has clean rounds, its median uses only
#     those ("rounds" says how many were clean).
#
# Every process it starts is stopped by PID on exit; its files live in a
# mktemp directory that is removed on exit. Traffic goes only to 127.0.0.1.
set -euo pipefail

usage() { echo "usage: bench/run.sh quick|full" >&2; exit 2; }
mode=${1:-quick}
case $mode in
# budget: seconds from the start after which the loop stops waiting for
# a quiet machine; 7 targets x 4 configurations take about (warm-up +
# measurement + 1) s each per round.
quick) rounds=1 duration=3 warmup=1 patience=5 budget=165 ;;
full) rounds=5 duration=4 warmup=1 patience=10 budget=870 ;;
*) usage ;;
esac
[[ $# -le 1 ]] || usage
# For trying the script itself: BENCH_ROUNDS=1 BENCH_SECONDS=1 bench/run.sh quick
# BENCH_TARGETS and BENCH_CONFIGS (names, space-separated) measure only some
# targets and configurations, and start only those targets, e.g. the
# routing cost alone:
#   BENCH_TARGETS="roundhouse roundhouse-100routes" BENCH_CONFIGS=c64 bench/run.sh quick
# BENCH_CADDY_VERSION builds another Caddy than v2.11.9 (the issue's); one
# that cannot be built shows the skip, offline:
#   GOPROXY=off BENCH_CADDY_VERSION=v2.0.0-unbuildable bench/run.sh quick
caddy_version=${BENCH_CADDY_VERSION:-v2.11.9}
rounds=${BENCH_ROUNDS:-$rounds}
duration=${BENCH_SECONDS:-$duration}

# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."
repo=$(pwd)
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

# Configurations: name, connections, path.
configs=("c16 16 /" "c64 64 /" "c256 256 /" "c64-64KiB 64 /bytes?n=65536")
# Targets and their ports; direct is one backend, the limit of this setup.
targets=(roundhouse roundhouse-100routes nginx haproxy caddy baseline direct)
declare -A port=([roundhouse]=18080 [roundhouse-100routes]=18087 [nginx]=18084 [haproxy]=18085 [caddy]=18088 [baseline]=18086 [direct]=18081 [baseline-nopool]=18089 [floor]=18090)
# baseline-nopool, measured only when BENCH_TARGETS names it, is the plain
# proxy as this bench had it until session 4: without a buffer pool, so
# that ReverseProxy allocates 32 KiB for every response. It shows why the
# old bench put Roundhouse ahead of a plain proxy (bench/PROFILE.md).
# floor, measured only when named too, is bench/yardstick's Floor: the
# least any proxy on net/http's server and Transport can do per request
# (not a correct proxy). Its ratio to baseline bounds goal 1 from below:
# no proxy built on them, Roundhouse included, can go under it.
backend_ports=(18081 18082 18083)

if [[ -n ${BENCH_TARGETS:-} ]]; then
	read -r -a targets <<<"$BENCH_TARGETS"
	for t in "${targets[@]}"; do [[ -n ${port[$t]:-} ]] || die "BENCH_TARGETS: no target $t"; done
fi
if [[ -n ${BENCH_CONFIGS:-} ]]; then
	chosen=()
	for name in $BENCH_CONFIGS; do
		found=
		for cfg in "${configs[@]}"; do [[ ${cfg%% *} != "$name" ]] || found=$cfg; done
		[[ -n $found ]] || die "BENCH_CONFIGS: no configuration $name"
		chosen+=("$found")
	done
	configs=("${chosen[@]}")
fi
# measured NAME: whether NAME is one of the targets.
measured() { [[ " ${targets[*]} " == *" $1 "* ]]; }

# ---------------------------------------------------------------- install

command -v go >/dev/null || die "go is required (https://go.dev/dl/)"
need=()
command -v wrk >/dev/null || need+=(wrk)
! measured nginx || command -v nginx >/dev/null || need+=(nginx)
! measured haproxy || command -v haproxy >/dev/null || need+=(haproxy)
command -v taskset >/dev/null || need+=(util-linux)
command -v getconf >/dev/null || need+=(libc-bin)
install_missing "${need[@]}"
check_machine

# ---------------------------------------------------------------- processes

bench_begin roundhouse-bench

check_ports bench/run.sh 18080-18089 18080 "${backend_ports[@]}" 18084 18085 18086 18087 18088 18089

log "building roundhouse and the baseline"
go build -o "$tmp/roundhouse" .
go build -o "$tmp/baseline" ./bench/baseline

# caddy: "" (not measured), "built", or "skipped" (it could not be built).
caddy=
if measured caddy; then
	log "building caddy $caddy_version (go install; a few minutes when its modules are not cached)"
	if GOBIN=$tmp timeout 900 go install "github.com/caddyserver/caddy/v2/cmd/caddy@$caddy_version" >"$tmp/caddy-build.log" 2>&1; then
		caddy=built
	else
		caddy=skipped
		log "caddy $caddy_version cannot be built here (no network? Go too old?); measuring without it. go install said:"
		sed 's/^/    /' "$tmp/caddy-build.log" | tail -n 5 >&2
		kept=()
		for t in "${targets[@]}"; do [[ $t == caddy ]] || kept+=("$t"); done
		targets=("${kept[@]}")
	fi
fi

backend_args=()
for p in "${backend_ports[@]}"; do
	start "backend$p" 1 "$tmp/roundhouse" backend --listen "127.0.0.1:$p"
	backend_args+=(--backend "http://127.0.0.1:$p")
done

# routes_config FILE: one pool of the 3 backends behind 100 routes, in the
# mix of BenchmarkProxy's benchRoutes: an exact host with a prefix, a
# wildcard host with a method, a prefix alone. wrk's requests (GET, Host
# 127.0.0.1:18087, path / or /bytes) match none of them but the last.
routes_config() {
	local i p
	{
		echo 'pool "site" {'
		for p in "${backend_ports[@]}"; do echo "  backend \"http://127.0.0.1:$p\" {}"; done
		echo '}'
		for ((i = 0; i < 99; i++)); do
			echo "route \"r$i\" {"
			case $((i % 3)) in
			0) echo "  hosts       = [\"svc$i.example.com\", \"svc$i.example.net\"]"$'\n'"  path_prefix = \"/v2\"" ;;
			1) echo "  hosts       = [\"*.wild$i.example.com\"]"$'\n'"  path_prefix = \"/v1\""$'\n'"  methods     = [\"DELETE\"]" ;;
			2) echo "  path_prefix = \"/p$i/\"" ;;
			esac
			echo '  pool        = "site"'
			echo '}'
		done
		echo 'route "last" {'
		echo '  hosts   = ["localhost", "127.0.0.1"]'
		echo '  methods = ["GET", "HEAD"]'
		echo '  pool    = "site"'
		echo '}'
	} >"$1"
}

! measured roundhouse || start roundhouse 0 "$tmp/roundhouse" serve --listen 127.0.0.1:18080 --access-log=false "${backend_args[@]}"
if measured roundhouse-100routes; then
	routes_config "$tmp/routes.hcl"
	out=$("$tmp/roundhouse" validate "$tmp/routes.hcl" 2>&1) || die "the 100-route configuration does not validate: $out"
	start roundhouse-100routes 0 "$tmp/roundhouse" serve --config "$tmp/routes.hcl" --listen 127.0.0.1:18087 --access-log=false
fi
! measured baseline || start baseline 0 "$tmp/baseline" --listen 127.0.0.1:18086 "${backend_args[@]}"
! measured floor || start floor 0 "$tmp/baseline" --listen 127.0.0.1:18090 --floor "${backend_args[@]}"
! measured baseline-nopool || start baseline-nopool 0 "$tmp/baseline" --listen 127.0.0.1:18089 --buffer-pool=false "${backend_args[@]}"

if measured nginx; then
	start_nginx "$(
		cat <<EOF
    keepalive_requests 1000000;
    upstream backends {
        server 127.0.0.1:18081;
        server 127.0.0.1:18082;
        server 127.0.0.1:18083;
        keepalive 512;
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:18084 backlog=4096;
        location / {
            proxy_pass http://backends;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$http_host;
            proxy_set_header X-Forwarded-For \$remote_addr;
            proxy_set_header X-Forwarded-Host \$http_host;
            proxy_set_header X-Forwarded-Proto \$scheme;
            proxy_max_temp_file_size 0;
        }
    }
EOF
	)"
fi

if measured haproxy; then
	start_haproxy "$(
		cat <<EOF
frontend fe
    bind 127.0.0.1:18085
    option forwardfor
    http-request set-header X-Forwarded-Host %[req.hdr(host)]
    http-request set-header X-Forwarded-Proto http
    default_backend be
backend be
    balance roundrobin
    server b1 127.0.0.1:18081
    server b2 127.0.0.1:18082
    server b3 127.0.0.1:18083
EOF
	)"
fi

if [[ $caddy == built ]]; then
	# As a user would write it for this job. The client's Host goes to the
	# backend and X-Forwarded-For/-Proto/-Host are set by default; no log
	# directive: no access log. Its config and data directories (it would
	# write under $HOME) live in $tmp.
	cat >"$tmp/Caddyfile" <<EOF
{
	admin off
	auto_https off
	persist_config off
}

http://127.0.0.1:18088 {
	bind 127.0.0.1
	reverse_proxy ${backend_ports[*]/#/127.0.0.1:} {
		lb_policy round_robin
		transport http {
			keepalive 90s
			keepalive_idle_conns_per_host 1024
		}
	}
}
EOF
	mkdir -p "$tmp/caddy-home"
	start caddy 0 env XDG_CONFIG_HOME="$tmp/caddy-home" XDG_DATA_HOME="$tmp/caddy-home" \
		"$tmp/caddy" run --config "$tmp/Caddyfile" --adapter caddyfile
fi

for p in "${backend_ports[@]}"; do wait_ready "backend$p" "$p"; done
for t in "${targets[@]}"; do [[ $t == direct ]] || wait_ready "$t" "${port[$t]}"; done
log "all up: ${targets[*]/direct/} on core 0; 3 backends and wrk on core 1"

# ---------------------------------------------------------------- measure

# wrk_run CONNS SECONDS URL: wrk's output (1 thread: it shares core 1).
wrk_run() { taskset -c 1 wrk -t1 -c"$1" -d"$2"s --latency "$3"; }

# parse_wrk: "requests rps p50_us p99_us errors" from wrk's output.
parse_wrk() {
	awk '
	function us(v) {
		if (v ~ /us$/) return v + 0
		if (v ~ /ms$/) return v * 1000
		if (v ~ /m$/) return v * 60e6
		if (v ~ /s$/) return v * 1e6
		return v + 0
	}
	/ requests in / { req = $1 }
	/^Requests\/sec:/ { rps = $2 }
	$1 == "50%" { p50 = us($2) }
	$1 == "99%" { p99 = us($2) }
	/Socket errors:/ { gsub(/,/, ""); err += $4 + $6 + $8 + $10 }
	/Non-2xx or 3xx responses:/ { err += $NF }
	END { printf "%d %.0f %.0f %.0f %d\n", req, rps, p50, p99, err }'
}

raw=$tmp/raw.tsv
: >"$raw"
total=$((rounds * ${#configs[@]} * ${#targets[@]}))
n=0
for ((round = 1; round <= rounds; round++)); do
	# Rotate the targets' order every round, so none always runs first.
	rotate "$round"
	for cfg in "${configs[@]}"; do
		read -r cname conns path <<<"$cfg"
		for t in "${order[@]}"; do
			n=$((n + 1))
			url="http://127.0.0.1:${port[$t]}$path"
			# Wait for quiet only as long as the mode's time budget allows.
			slack=$((budget - SECONDS - (total - n + 1) * (warmup + duration + 1)))
			wait_quiet $((slack < patience ? slack : patience))
			wrk_run "$conns" "$warmup" "$url" >/dev/null
			# direct: the CPU is the backend's own, a plain net/http
			# server answering by itself (on core 1, with wrk).
			proc=$t
			[[ $t != direct ]] || proc=backend${backend_ports[0]}
			ticks0=$(cpu_ticks "$proc")
			read -r busy0 total0 <<<"$(cpu_busy 0)"
			out=$(wrk_run "$conns" "$duration" "$url")
			read -r busy1 total1 <<<"$(cpu_busy 0)"
			read -r req rps p50 p99 errs <<<"$(parse_wrk <<<"$out")"
			ticks=$(($(cpu_ticks "$proc") - ticks0))
			cpu=$(awk -v t="$ticks" -v hz="$clk_tck" -v r="$req" 'BEGIN { printf "%.1f", r ? t / hz * 1e6 / r : 0 }')
			rss=$(rss_kb "$proc")
			# No request answered (wrk timed out on all): no CPU per
			# request or latency to report, only 0 req/s.
			((req > 0)) || cpu=- p50=- p99=-
			[[ $t != direct ]] || ticks=0 # not on core 0
			# Core 0's busy time not spent in the target: other programs,
			# and the kernel's softirq work for loopback packets.
			other=$(other_pct "$busy0" "$total0" "$busy1" "$total1" "$ticks")
			printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
				"$round" "$cname" "$t" "$rps" "$p50" "$p99" "$cpu" "$rss" "$errs" "$req" "$other" >>"$raw"
			log "[$n/$total] round $round $cname $t: $rps req/s, p50 ${p50}us p99 ${p99}us, cpu ${cpu}us/req, rss ${rss}KiB, errors $errs, core 0 other ${other}%"
		done
	done
done

# ---------------------------------------------------------------- report

report_facts

report() {
	local caddy_line
	case $caddy in
	built) caddy_line="Caddy $caddy_version (go install)" ;;
	skipped) caddy_line="no Caddy (go install of $caddy_version failed)" ;;
	*) caddy_line="Caddy not measured" ;;
	esac
	cat <<EOF
## bench/run.sh $mode: $(date -u +%Y-%m-%d) UTC

Roundhouse $commit, $(go version | awk '{ print $3 }'), $( (command -v nginx >/dev/null && nginx -v 2>&1 || echo "no nginx") | sed 's/^nginx version: //'),
HAProxy $( (command -v haproxy >/dev/null && haproxy -v || echo "- - none") | awk 'NR == 1 { print $3 }'), $caddy_line, $(wrk -v 2>&1 | awk 'NR == 1 { print "wrk " $2 }').
Targets: ${targets[*]}. roundhouse-100routes is Roundhouse with one pool behind 100 routes, the request matching only
the last (the routing cost, against roundhouse); baseline is the plain proxy: httputil.ReverseProxy with a tuned Transport
and a 32 KiB buffer pool (bench/baseline).
$(nproc) cores ($cpu_model); proxy pinned to core 0, wrk (1 thread) and 3 demo backends to core 1; loopback.
$rounds round(s) of ${duration} s per target and configuration (after ${warmup} s of warm-up), targets interleaved.
Each cell is the median across rounds; "×nginx" and "×plain" are the ratios to nginx and to baseline in the same round
(then the median).
CPU is the proxy's utime+stime per request (nginx: master and worker); RSS is VmRSS after the run.
For direct, CPU and RSS are the demo backend's own (on core 1): a plain Go net/http server answering by
itself, the floor for the server half of any proxy built on net/http.
"other" is how busy core 0 was with anything but the target: loopback softirq work, or another program.
"rounds" counts the clean rounds (other ≤ 30%); a cell with any uses only those, for its ratios only rounds where the
other target was clean too.
Small responses are \`GET /\` (~130 bytes with headers); 64 KiB is \`GET /bytes?n=65536\`.

| config | target | req/s | ×nginx | p50 | p99 | CPU µs/req | ×nginx | ×plain | RSS MiB | errors | other | rounds |
|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|
EOF
	awk -F'\t' -v configs="${configs[*]%% *}" -v targets="${targets[*]}" -v noisy=30 -v caddy="$caddy" -v mode="$mode" '
	function median(list,   a, n, i, j, v) {
		n = split(list, a, " ")
		for (i = 2; i <= n; i++) { v = a[i] + 0; for (j = i - 1; j >= 1 && a[j] + 0 > v; j--) a[j + 1] = a[j]; a[j + 1] = v }
		if (n == 0) return ""
		return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
	}
	# add appends v to the clean list (c = 1) or the noisy one.
	function add(k, v, c) { k = k SUBSEP (c ? "clean" : "all"); vals[k] = (k in vals) ? vals[k] " " v : v }
	# pick is the median of the clean values, or of all when none is clean
	# (it reads only lists that exist: reading vals[x] would create x).
	function pick(k) { return (k SUBSEP "clean") in vals ? median(vals[k SUBSEP "clean"]) : median(vals[k SUBSEP "all"]) }
	function has(k) { return (k SUBSEP "clean") in vals || (k SUBSEP "all") in vals }
	function lat(u) { return u == "" ? "—" : u >= 1000 ? sprintf("%.2f ms", u / 1000) : sprintf("%.0f µs", u) }
	# stat(col, cfg, t): the median across rounds of column col of target t
	# in configuration cfg ("" when never measured).
	function stat(col, cfg, t,   k, r) {
		k = "s" SUBSEP col SUBSEP cfg SUBSEP t
		if (!(k in done)) {
			done[k] = 1
			for (r = 1; r <= maxr; r++)
				if ((r, cfg, t) in seen && val[r, cfg, t, col] != "-") add(k, val[r, cfg, t, col], clean[r, cfg, t])
		}
		return has(k) ? pick(k) : ""
	}
	# ratio(col, cfg, t, ref): the median across rounds of t over ref in
	# column col, each taken within one round (rounds where both were clean
	# when there are any); "" when they were never measured together.
	function ratio(col, cfg, t, ref,   k, r, a, b) {
		k = "x" SUBSEP col SUBSEP cfg SUBSEP t SUBSEP ref
		if (!(k in done)) {
			done[k] = 1
			for (r = 1; r <= maxr; r++) {
				if (!((r, cfg, t) in seen) || !((r, cfg, ref) in seen)) continue
				a = val[r, cfg, t, col]; b = val[r, cfg, ref, col]
				if (a == "-" || b == "-" || b + 0 <= 0) continue
				add(k, a / b, clean[r, cfg, t] && clean[r, cfg, ref])
			}
		}
		return has(k) ? pick(k) : ""
	}
	function num(v, f) { return v == "" ? "—" : sprintf(f, v) }
	# figure(col, v): v, a value of column col, for the goals table.
	function figure(col, v) {
		if (v == "") return "—"
		if (col == 4) return sprintf("%.0f req/s", v)
		if (col == 6) return lat(v)
		return sprintf("%.1f µs", v)
	}
	# check(g, what, cfg, col, ref, op, limit): one row of the goals table,
	# Roundhouse against ref in column col; tallies goal g.
	function check(g, what, cfg, col, ref, op, limit,   x, res, shown) {
		x = ratio(col, cfg, "roundhouse", ref)
		if (ref == "caddy" && caddy == "skipped") res = "skipped: Caddy could not be built"
		else if (x == "") res = "not measured"
		else res = (op == "<=" ? x <= limit : x >= limit) ? "PASS" : "FAIL"
		shown = res == "FAIL" ? "**FAIL**" : res
		printf "| %s | %s | %s | %s | %s | %s | %s %.2f | %s |\n", g, what, cfg,
			figure(col, stat(col, cfg, "roundhouse")), figure(col, stat(col, cfg, ref)),
			num(x, "%.3f"), op == "<=" ? "≤" : "≥", limit, shown
		checks[g]++
		if (res == "PASS") passed[g]++
		else if (res == "FAIL") { failed[g]++; fails[g] = fails[g] (fails[g] == "" ? "" : ", ") what " at " cfg }
	}
	{
		if ($1 > maxr) maxr = $1
		seen[$1, $2, $3] = 1
		clean[$1, $2, $3] = $11 <= noisy
		for (i = 4; i <= 11; i++) val[$1, $2, $3, i] = $i
		n[$2, $3]++; nclean[$2, $3] += $11 <= noisy
	}
	END {
		nc = split(configs, C, " "); nt = split(targets, T, " ")
		for (i = 1; i <= nc; i++) for (j = 1; j <= nt; j++) {
			c = C[i]; t = T[j]
			if (!((c, t) in n)) continue
			rss = stat(8, c, t)
			name = t ~ /^roundhouse/ ? "**" t "**" : t
			printf "| %s | %s | %.0f | %s | %s | %s | %s | %s | %s | %s | %d | %.0f%% | %d/%d |\n", c, name,
				stat(4, c, t), num(ratio(4, c, t, "nginx"), "%.2f"),
				lat(stat(5, c, t)), lat(stat(6, c, t)),
				num(stat(7, c, t), "%.1f"), num(ratio(7, c, t, "nginx"), "%.2f"), num(ratio(7, c, t, "baseline"), "%.2f"),
				num(rss == "" ? "" : rss / 1024, "%.1f"), stat(9, c, t), stat(11, c, t), nclean[c, t], n[c, t]
		}

		print ""
		print "### Goals (issue 18)"
		print ""
		print "Roundhouse against the plain proxy (baseline), nginx and Caddy. \"ratio\" is Roundhouse over the other target"
		print "taken within each round, then the median across rounds (rounds where both were clean, when there are any), as"
		print "×nginx and ×plain above; for p99 too, so that a round slowed by the machine weighs on both sides alike. The two"
		print "figures beside it are each target'\''s own median, so their quotient can differ a little from the ratio."
		if (mode != "full" || maxr < 3) print "This run has " maxr " round(s): indicative only; the goals are judged on `bench/run.sh full`."
		print ""
		print "| goal | what | config | Roundhouse | other | ratio | limit | result |"
		print "|--:|---|---|--:|--:|--:|--:|---|"
		split("c16 c64 c256 c64-64KiB", every, " ")
		for (i = 1; i <= 3; i++) check(1, "CPU/req vs plain", every[i], 7, "baseline", "<=", 0.85)
		check(1, "CPU/req vs plain", "c64-64KiB", 7, "baseline", "<=", 1.0)
		for (i = 1; i <= 4; i++) check(1, "req/s vs plain", every[i], 4, "baseline", ">=", 1.0)
		check(2, "CPU/req vs nginx", "c64", 7, "nginx", "<=", 2.0)
		check(2, "CPU/req vs nginx", "c64-64KiB", 7, "nginx", "<=", 2.0)
		check(2, "CPU/req vs nginx", "c256", 7, "nginx", "<=", 2.5)
		check(3, "p99 vs nginx", "c16", 6, "nginx", "<=", 1.5)
		check(3, "p99 vs nginx", "c64", 6, "nginx", "<=", 1.5)
		for (i = 1; i <= 4; i++) check(4, "CPU/req vs Caddy", every[i], 7, "caddy", "<=", 0.6)
		print ""
		if (index(" " targets " ", " floor ")) {
			line = ""
			for (i = 1; i <= 4; i++) if ((every[i], "floor") in n)
				line = line (line == "" ? "" : ", ") every[i] " " num(ratio(7, every[i], "floor", "baseline"), "%.2f") "×"
			print "The floor (bench/yardstick Floor: net/http'\''s server and Transport with nothing else) costs, against the"
			print "plain proxy: " line ". Goal 1 asks Roundhouse to go below that."
			print ""
		}
		split("no worse than a plain proxy|within 2× of nginx|tail latency|Caddy stays far behind", title, "|")
		for (g = 1; g <= 4; g++) {
			if (failed[g]) res = "**FAIL** (" fails[g] ")"
			else if (g == 4 && caddy == "skipped") res = "skipped: Caddy could not be built"
			else if (!passed[g]) res = "not measured"
			else if (passed[g] < checks[g]) res = "PASS where measured (" passed[g] " of " checks[g] " checks)"
			else res = "PASS"
			printf "- Goal %d, %s: %s\n", g, title[g], res
		}
	}' "$raw"
	echo
	echo "<details><summary>every measurement (round, config, target, req/s, p50 µs, p99 µs, CPU µs/req, RSS KiB, errors, requests, other %)</summary>"
	echo
	echo '```'
	cat "$raw"
	echo '```'
	echo
	echo "</details>"
}

mkdir -p "$repo/bench/results"
report | tee "$repo/bench/results/latest.md"
log "written to bench/results/latest.md"
