#!/usr/bin/env bash
# bench/grpc.sh [quick|full]: unary gRPC calls per second and proxy CPU per
# call through Roundhouse, side by side, in one run, with the same gRPC
# backends called directly and through HAProxy (proto h2) and, when it is
# installed, nginx (grpc_pass).
#
#   quick  1 round,  3 s per measurement (about a minute)
#   full   3 rounds, 4 s per measurement (about 3 minutes); medians across rounds
#
# What it does:
#   - installs haproxy with apt-get when it is missing (nginx is measured
#     only if it is already installed: BENCH_NGINX=1 installs it too);
#   - builds roundhouse, internal/grpcbackend (grpc-go's interop
#     TestService, the server of the e2e tests) and bench/grpcload (a
#     grpc-go load generator) into a mktemp directory;
#   - starts 3 gRPC backends and the proxies, each balancing round-robin
#     over the 3 backends over cleartext HTTP/2 (h2c) with reused
#     connections, clients speaking h2c to them: roundhouse (--h2c,
#     h2c:// backends, gRPC health checks, no access log), haproxy (one
#     thread, "proto h2" on both sides), nginx (one worker, http2 and
#     grpc_pass); all on 127.0.0.1 ports 18180-18185;
#   - pins every proxy to core 0, and grpcload and the backends to core 1;
#   - for each round, each configuration, each target (rotated every
#     round): waits until the machine is quiet, 1 s of warm-up, then
#     grpcload for the measurement, reading the target's CPU time
#     (utime+stime in /proc) before and after, and how busy core 0 was with
#     anything but the target ("other"; should be near 0);
#   - prints a markdown table (medians across rounds; ratios to direct and
#     to HAProxy taken within each round, then the median) to stdout and
#     writes it to bench/results/grpc-latest.md. Progress goes to stderr.
#
# A call is TestService/UnaryCall with 64 bytes each way. "direct" is
# grpcload calling one backend itself: the limit of this setup; its CPU
# column is the backend's own (on core 1).
#
# Every process it starts is stopped by PID on exit; its files live in a
# mktemp directory that is removed on exit. Traffic goes only to 127.0.0.1.
set -euo pipefail

usage() { echo "usage: bench/grpc.sh quick|full" >&2; exit 2; }
mode=${1:-quick}
case $mode in
quick) rounds=1 duration=3 warmup=1 patience=5 ;;
full) rounds=3 duration=4 warmup=1 patience=10 ;;
*) usage ;;
esac
[[ $# -le 1 ]] || usage
# For trying the script itself: BENCH_ROUNDS=1 BENCH_SECONDS=1 bench/grpc.sh quick
rounds=${BENCH_ROUNDS:-$rounds}
duration=${BENCH_SECONDS:-$duration}

# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."
repo=$(pwd)
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

# Configurations: name, connections, concurrent calls.
configs=("c16 1 16" "c64 4 64")
targets=(roundhouse haproxy direct)
declare -A port=([roundhouse]=18180 [haproxy]=18185 [nginx]=18184 [direct]=18181)
backend_ports=(18181 18182 18183)

# ---------------------------------------------------------------- install

command -v go >/dev/null || die "go is required (https://go.dev/dl/)"
need=()
command -v haproxy >/dev/null || need+=(haproxy)
[[ ${BENCH_NGINX:-0} != 1 ]] || command -v nginx >/dev/null || need+=(nginx)
command -v taskset >/dev/null || need+=(util-linux)
command -v getconf >/dev/null || need+=(libc-bin)
install_missing "${need[@]}"
if command -v nginx >/dev/null; then targets=(roundhouse haproxy nginx direct); fi
check_machine

# ---------------------------------------------------------------- processes

bench_begin roundhouse-grpcbench

# load PORT CONNS CONCURRENCY SECONDS WARMUP: grpcload's one line.
load() {
	taskset -c 1 "$tmp/grpcload" --addr "127.0.0.1:$1" --conns "$2" --concurrency "$3" \
		--duration "${4}s" --warmup "${5}s" 2>>"$tmp/grpcload.log"
}

# wait_ready NAME PORT: until a call through PORT succeeds.
wait_ready() {
	local name=$1 p=$2
	for _ in {1..100}; do
		kill -0 "${pid[$name]}" 2>/dev/null || die "$name exited; its log:$(printf '\n%s' "$(cat "$tmp/$name.log")")"
		if load "$p" 1 1 0.2 0 2>/dev/null | grep -q 'errors=0'; then return 0; fi
		sleep 0.1
	done
	die "$name: no successful call on 127.0.0.1:$p after 10s; its log:$(printf '\n%s' "$(cat "$tmp/$name.log")")"
}

check_ports bench/grpc.sh 18180-18185 18180 "${backend_ports[@]}" 18184 18185

log "building roundhouse, grpcbackend and grpcload"
go build -o "$tmp/roundhouse" .
go build -o "$tmp/grpcbackend" ./internal/grpcbackend
go build -o "$tmp/grpcload" ./bench/grpcload

backend_args=()
for p in "${backend_ports[@]}"; do
	start "backend$p" 1 "$tmp/grpcbackend" --listen "127.0.0.1:$p"
	backend_args+=(--backend "h2c://127.0.0.1:$p")
done

start roundhouse 0 "$tmp/roundhouse" serve --listen 127.0.0.1:18180 --h2c --access-log=false \
	--health-grpc "${backend_args[@]}"

start_haproxy "$(
	cat <<EOF
frontend fe
    bind 127.0.0.1:18185 proto h2
    default_backend be
backend be
    balance roundrobin
    server b1 127.0.0.1:18181 proto h2
    server b2 127.0.0.1:18182 proto h2
    server b3 127.0.0.1:18183 proto h2
EOF
)"

if [[ " ${targets[*]} " == *" nginx "* ]]; then
	start_nginx "$(
		cat <<EOF
    upstream backends {
        server 127.0.0.1:18181;
        server 127.0.0.1:18182;
        server 127.0.0.1:18183;
        keepalive 64;
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:18184 http2 backlog=4096;
        http2_max_requests 1000000;
        keepalive_requests 1000000;
        location / {
            grpc_pass grpc://backends;
        }
    }
EOF
	)"
fi

for p in "${backend_ports[@]}"; do wait_ready "backend$p" "$p"; done
for t in "${targets[@]}"; do
	[[ $t == direct ]] || wait_ready "$t" "${port[$t]}"
done
log "all up: ${targets[*]}; proxies on core 0; 3 backends and grpcload on core 1"

# ---------------------------------------------------------------- measure

raw=$tmp/raw.tsv
: >"$raw"
total=$((rounds * ${#configs[@]} * ${#targets[@]}))
n=0
for ((round = 1; round <= rounds; round++)); do
	rotate "$round"
	for cfg in "${configs[@]}"; do
		read -r cname conns conc <<<"$cfg"
		for t in "${order[@]}"; do
			n=$((n + 1))
			wait_quiet "$patience"
			proc=$t
			[[ $t != direct ]] || proc=backend${backend_ports[0]}
			# grpcload warms up for $warmup s, then measures for $duration s:
			# read the CPU counters around the whole run and scale them by
			# the share of calls measured (the rate barely moves after warm-up).
			ticks0=$(cpu_ticks "$proc")
			read -r busy0 total0 <<<"$(cpu_busy 0)"
			out=$(load "${port[$t]}" "$conns" "$conc" "$duration" "$warmup")
			read -r busy1 total1 <<<"$(cpu_busy 0)"
			ticks=$(($(cpu_ticks "$proc") - ticks0))
			read -r calls errs rps p50 p99 <<<"$(awk '{ for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] } print v["calls"], v["errors"], v["rps"], v["p50_us"], v["p99_us"] }' <<<"$out")"
			# CPU per call: the ticks over warm-up and measurement, over the
			# calls of both (estimated at the measured rate).
			cpu=$(awk -v t="$ticks" -v hz="$clk_tck" -v r="$rps" -v s="$((duration + warmup))" 'BEGIN { printf "%.1f", r ? t / hz * 1e6 / (r * s) : 0 }')
			[[ $t != direct ]] || ticks=0 # not on core 0
			other=$(other_pct "$busy0" "$total0" "$busy1" "$total1" "$ticks")
			printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
				"$round" "$cname" "$t" "$rps" "$p50" "$p99" "$cpu" "$errs" "$other" >>"$raw"
			log "[$n/$total] round $round $cname $t: $rps calls/s, p50 ${p50}us p99 ${p99}us, cpu ${cpu}us/call, errors $errs, core 0 other ${other}%"
		done
	done
done

# ---------------------------------------------------------------- report

report_facts
others="HAProxy $(haproxy -v | awk 'NR == 1 { print $3 }')"
if command -v nginx >/dev/null; then others="$others, $(nginx -v 2>&1 | sed 's/^nginx version: //')"; fi

report() {
	cat <<EOF
## bench/grpc.sh $mode: $(date -u +%Y-%m-%d) UTC

Roundhouse $commit, $(go version | awk '{ print $3 }'), $others; grpc-go interop servers as backends,
grpcload (grpc-go) as the client. $(nproc) cores ($cpu_model); proxy pinned to core 0, grpcload and
3 backends to core 1; loopback, h2c on both sides. Unary TestService/UnaryCall, 64 bytes each way.
$rounds round(s) of ${duration} s per target and configuration (after ${warmup} s of warm-up).
Each cell is the median across rounds; ratios are taken within each round, then the median.
CPU is the proxy's utime+stime per call; for direct, the backend's own (on core 1).
"other" is how busy core 0 was with anything but the target: loopback softirq work, or another program.

| config | target | calls/s | ×direct | ×haproxy | p50 | p99 | CPU µs/call | CPU ×haproxy | errors | other |
|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|
EOF
	awk -F'\t' -v configs="c16 c64" -v targets="${targets[*]}" '
	function median(list,   a, n, i, j, v) {
		n = split(list, a, " ")
		for (i = 2; i <= n; i++) { v = a[i] + 0; for (j = i - 1; j >= 1 && a[j] + 0 > v; j--) a[j + 1] = a[j]; a[j + 1] = v }
		if (n == 0) return ""
		return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
	}
	function add(k, v) { vals[k] = (k in vals) ? vals[k] " " v : v }
	function lat(u) { return u >= 1000 ? sprintf("%.2f ms", u / 1000) : sprintf("%.0f µs", u) }
	{ rps[$1, $2, $3] = $4; cpu[$1, $2, $3] = $7; rows[NR] = $0 }
	END {
		for (r = 1; r <= NR; r++) {
			split(rows[r], f, "\t")
			k = f[2] SUBSEP f[3]
			add(k SUBSEP "rps", f[4]); add(k SUBSEP "p50", f[5]); add(k SUBSEP "p99", f[6])
			add(k SUBSEP "cpu", f[7]); add(k SUBSEP "err", f[8]); add(k SUBSEP "oth", f[9])
			d = rps[f[1], f[2], "direct"]; h = rps[f[1], f[2], "haproxy"]; hc = cpu[f[1], f[2], "haproxy"]
			if (d > 0) add(k SUBSEP "xd", f[4] / d)
			if (h > 0) add(k SUBSEP "xh", f[4] / h)
			if (hc > 0 && f[3] != "direct") add(k SUBSEP "cx", f[7] / hc)
		}
		nc = split(configs, C, " "); nt = split(targets, T, " ")
		for (i = 1; i <= nc; i++) for (j = 1; j <= nt; j++) {
			k = C[i] SUBSEP T[j]
			if (!((k SUBSEP "rps") in vals)) continue
			name = T[j] == "roundhouse" ? "**roundhouse**" : T[j]
			cx = (k SUBSEP "cx") in vals ? sprintf("%.2f", median(vals[k SUBSEP "cx"])) : "—"
			printf "| %s | %s | %.0f | %.2f | %.2f | %s | %s | %.1f | %s | %d | %.0f%% |\n", C[i], name,
				median(vals[k SUBSEP "rps"]), median(vals[k SUBSEP "xd"]), median(vals[k SUBSEP "xh"]),
				lat(median(vals[k SUBSEP "p50"])), lat(median(vals[k SUBSEP "p99"])),
				median(vals[k SUBSEP "cpu"]), cx, median(vals[k SUBSEP "err"]), median(vals[k SUBSEP "oth"])
		}
	}' "$raw"
	echo
	echo "<details><summary>every measurement (round, config, target, calls/s, p50 µs, p99 µs, CPU µs/call, errors, other %)</summary>"
	echo
	echo '```'
	cat "$raw"
	echo '```'
	echo
	echo "</details>"
}

mkdir -p "$repo/bench/results"
report | tee "$repo/bench/results/grpc-latest.md"
log "written to bench/results/grpc-latest.md"
