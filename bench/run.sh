#!/usr/bin/env bash
# bench/run.sh [quick|full]: Roundhouse side by side with nginx, HAProxy, a
# plain tuned httputil.ReverseProxy and direct-to-backend, in one run; and
# Roundhouse again behind 100 routes (roundhouse-100routes), for the
# routing cost.
#
#   quick  1 round,  3 s per measurement (under 2.5 minutes)
#   full   5 rounds, 4 s per measurement (under 12 minutes); medians across rounds
#
# What it does:
#   - installs wrk, nginx and haproxy with apt-get when they are missing;
#   - builds roundhouse and bench/baseline into a mktemp directory;
#   - starts 3 demo backends (roundhouse backend) and the five proxies, each
#     balancing round-robin over the 3 backends with keep-alive upstream
#     connections, all on 127.0.0.1 ports 18080-18087. roundhouse-100routes
#     is Roundhouse with a configuration of one pool behind 100 routes in a
#     realistic mix, of which wrk's requests match only the last (as
#     BenchmarkProxy's -100routes); against roundhouse, it shows what
#     routing costs a request;
#   - pins every proxy to core 0 and wrk and the backends to core 1, so the
#     proxy under test has a core to itself;
#   - for each round, each configuration, each target (the order of the
#     targets rotates every round): waits until the machine is quiet (other
#     work on it skews everything), a warm-up, then wrk --latency, reading
#     the target's CPU time (utime+stime of its processes in /proc) before
#     and after and its VmRSS at the end, and how busy core 0 was with
#     anything but the target (the "other" column: should be near 0);
#   - prints a markdown table (medians across rounds; ratios to nginx are
#     taken within each round, then the median) to stdout and writes it to
#     bench/results/latest.md. Progress goes to stderr. A measurement during
#     which another program took more than 30% of core 0 is noisy: when a
#     cell has clean rounds, its median uses only those ("rounds" says how
#     many were clean).
#
# Every process it starts is stopped by PID on exit; its files live in a
# mktemp directory that is removed on exit. Traffic goes only to 127.0.0.1.
set -euo pipefail

usage() { echo "usage: bench/run.sh quick|full" >&2; exit 2; }
mode=${1:-quick}
case $mode in
quick) rounds=1 duration=3 warmup=1 patience=5 budget=140 ;;
full) rounds=5 duration=4 warmup=1 patience=10 budget=710 ;;
*) usage ;;
esac
[[ $# -le 1 ]] || usage
# For trying the script itself: BENCH_ROUNDS=1 BENCH_SECONDS=1 bench/run.sh quick
# BENCH_TARGETS and BENCH_CONFIGS (names, space-separated) measure only some
# targets and configurations, and start only those targets, e.g. the
# routing cost alone:
#   BENCH_TARGETS="roundhouse roundhouse-100routes" BENCH_CONFIGS=c64 bench/run.sh quick
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
targets=(roundhouse roundhouse-100routes nginx haproxy baseline direct)
declare -A port=([roundhouse]=18080 [roundhouse-100routes]=18087 [nginx]=18084 [haproxy]=18085 [baseline]=18086 [direct]=18081)
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

# http_get PORT PATH: the raw response to a one-shot GET.
http_get() {
	(
		exec 3<>"/dev/tcp/127.0.0.1/$1"
		printf 'GET %s HTTP/1.1\r\nHost: 127.0.0.1:%s\r\nConnection: close\r\n\r\n' "$2" "$1" >&3
		timeout 5 cat <&3
	) 2>/dev/null
}

# wait_ready NAME PORT: until GET / through PORT answers 200 from a backend.
wait_ready() {
	local name=$1 p=$2 resp
	for _ in {1..100}; do
		kill -0 "${pid[$name]}" 2>/dev/null || die "$name exited; its log:$(printf '\n%s' "$(cat "$tmp/$name.log")")"
		resp=$(http_get "$p" / || true)
		if [[ $resp == "HTTP/1.1 200"* && $resp == *"Hello from"* ]]; then return 0; fi
		sleep 0.1
	done
	die "$name: no 200 on 127.0.0.1:$p after 10s; its log:$(printf '\n%s' "$(cat "$tmp/$name.log")")"
}

check_ports bench/run.sh 18080-18087 18080 "${backend_ports[@]}" 18084 18085 18086 18087

log "building roundhouse and the baseline"
go build -o "$tmp/roundhouse" .
go build -o "$tmp/baseline" ./bench/baseline

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
	cat <<EOF
## bench/run.sh $mode: $(date -u +%Y-%m-%d) UTC

Roundhouse $commit, $(go version | awk '{ print $3 }'), $( (command -v nginx >/dev/null && nginx -v 2>&1 || echo "no nginx") | sed 's/^nginx version: //'),
HAProxy $( (command -v haproxy >/dev/null && haproxy -v || echo "- - none") | awk 'NR == 1 { print $3 }'), $(wrk -v 2>&1 | awk 'NR == 1 { print "wrk " $2 }').
Targets: ${targets[*]}. roundhouse-100routes is Roundhouse with one pool behind 100 routes, the request matching only
the last (the routing cost, against roundhouse).
$(nproc) cores ($cpu_model); proxy pinned to core 0, wrk (1 thread) and 3 demo backends to core 1; loopback.
$rounds round(s) of ${duration} s per target and configuration (after ${warmup} s of warm-up), targets interleaved.
Each cell is the median across rounds; "×nginx" is the ratio to nginx in the same round (then the median).
CPU is the proxy's utime+stime per request (nginx: master and worker); RSS is VmRSS after the run.
For direct, CPU and RSS are the demo backend's own (on core 1): a plain Go net/http server answering by
itself, the floor for the server half of any proxy built on net/http.
"other" is how busy core 0 was with anything but the target: loopback softirq work, or another program.
"rounds" counts the clean rounds (other ≤ 30%); a cell with any uses only those, for its ratios only rounds where nginx was clean too.
Small responses are \`GET /\` (~130 bytes with headers); 64 KiB is \`GET /bytes?n=65536\`.

| config | target | req/s | ×nginx | p50 | p99 | CPU µs/req | ×nginx | RSS MiB | errors | other | rounds |
|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|
EOF
	awk -F'\t' -v configs="${configs[*]%% *}" -v targets="${targets[*]}" -v noisy=30 '
	function median(list,   a, n, i, j, v) {
		n = split(list, a, " ")
		for (i = 2; i <= n; i++) { v = a[i] + 0; for (j = i - 1; j >= 1 && a[j] + 0 > v; j--) a[j + 1] = a[j]; a[j + 1] = v }
		if (n == 0) return ""
		return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
	}
	# add appends v to the clean list (c = 1) or the noisy one.
	function add(k, v, c) { k = k SUBSEP (c ? "clean" : "all"); vals[k] = (k in vals) ? vals[k] " " v : v }
	# pick is the median of the clean values, or of all when none is clean.
	function pick(k) { return (k SUBSEP "clean") in vals ? median(vals[k SUBSEP "clean"]) : median(vals[k SUBSEP "all"] " " vals[k SUBSEP "clean"]) }
	function has(k) { return (k SUBSEP "clean") in vals || (k SUBSEP "all") in vals }
	function lat(u) { return u >= 1000 ? sprintf("%.2f ms", u / 1000) : sprintf("%.0f µs", u) }
	{ rps[$1, $2, $3] = $4; cpu[$1, $2, $3] = $7; clean[$1, $2, $3] = $11 <= noisy; rows[NR] = $0 }
	END {
		for (r = 1; r <= NR; r++) {
			split(rows[r], f, "\t")
			k = f[2] SUBSEP f[3]
			c = clean[f[1], f[2], f[3]]
			cn = c && clean[f[1], f[2], "nginx"] # both clean: the ratio is
			n[k]++; nclean[k] += c
			add(k SUBSEP "rps", f[4], c); add(k SUBSEP "p50", f[5], c); add(k SUBSEP "p99", f[6], c)
			add(k SUBSEP "err", f[9], c); add(k SUBSEP "oth", f[11], c)
			ng = rps[f[1], f[2], "nginx"]
			if (ng > 0) add(k SUBSEP "rpsx", f[4] / ng, cn)
			if (f[7] != "-") {
				add(k SUBSEP "cpu", f[7], c); add(k SUBSEP "rss", f[8], c)
				ngc = cpu[f[1], f[2], "nginx"]
				if (ngc > 0) add(k SUBSEP "cpux", f[7] / ngc, cn)
			}
		}
		nc = split(configs, C, " "); nt = split(targets, T, " ")
		for (i = 1; i <= nc; i++) for (j = 1; j <= nt; j++) {
			k = C[i] SUBSEP T[j]
			if (!has(k SUBSEP "rps")) continue
			cpuv = has(k SUBSEP "cpu") ? sprintf("%.1f", pick(k SUBSEP "cpu")) : "—"
			cpux = has(k SUBSEP "cpux") ? sprintf("%.2f", pick(k SUBSEP "cpux")) : "—"
			rssv = has(k SUBSEP "rss") ? sprintf("%.1f", pick(k SUBSEP "rss") / 1024) : "—"
			rpsx = has(k SUBSEP "rpsx") ? sprintf("%.2f", pick(k SUBSEP "rpsx")) : "—" # no nginx measured
			name = T[j] ~ /^roundhouse/ ? "**" T[j] "**" : T[j]
			printf "| %s | %s | %.0f | %s | %s | %s | %s | %s | %s | %d | %.0f%% | %d/%d |\n", C[i], name,
				pick(k SUBSEP "rps"), rpsx,
				lat(pick(k SUBSEP "p50")), lat(pick(k SUBSEP "p99")),
				cpuv, cpux, rssv, pick(k SUBSEP "err"), pick(k SUBSEP "oth"), nclean[k], n[k]
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
