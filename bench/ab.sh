#!/usr/bin/env bash
# bench/ab.sh [CONNS [PATH [ROUNDS]]]: Roundhouse, the plain proxy and the
# floor (bench/yardstick), measured at the same time, for ratios that this
# machine's drift cannot move.
#
# bench/run.sh measures one target after another, pinned alone to core 0;
# on a VM whose speed drifts by a third within seconds, a ratio between two
# targets measured a few seconds apart moves as much as the difference it
# is meant to show. Here every target runs on core 0 at once, each loaded
# by its own wrk (1 thread, CONNS connections, GET PATH) on core 1 beside
# the 3 demo backends, so a slower moment slows them all alike. Absolute
# figures are higher than run.sh's (the targets share the core and its
# caches); only the ratios, taken within each round, mean anything.
#
#   CONNS   connections per wrk (default 64)
#   PATH    what to GET (default /; /bytes?n=65536 for 64 KiB)
#   ROUNDS  rounds of AB_SECONDS (default 5) s each (default 6)
#
#   AB_OTHER=FILE  another roundhouse binary measured beside this tree's:
#                  an A/B of a change, e.g. against main's last commit:
#                    git worktree add /tmp/rh-main main
#                    (cd /tmp/rh-main && go build -o /tmp/rh-main.bin .)
#                    AB_OTHER=/tmp/rh-main.bin bench/ab.sh
#                  (its A/A: AB_OTHER set to this tree's build shows the spread)
#   AB_ARGS="..."  extra flags for this tree's roundhouse serve
#   AB_OTHER_ARGS="..."  and for AB_OTHER's
#
# Prints, per round, CPU µs per request of each target and its ratio to the
# plain proxy, then the medians of the ratios. Traffic goes only to
# 127.0.0.1; every process is stopped on exit.
set -euo pipefail

conns=${1:-64} path=${2:-/} rounds=${3:-6} duration=${AB_SECONDS:-5}
[[ $conns =~ ^[0-9]+$ && $rounds =~ ^[0-9]+$ && $path == /* ]] || {
	echo "usage: bench/ab.sh [CONNS [PATH [ROUNDS]]]" >&2
	exit 2
}

# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

need=()
command -v wrk >/dev/null || need+=(wrk)
command -v taskset >/dev/null || need+=(util-linux)
install_missing "${need[@]}"
check_machine
backend_ports=(18081 18082 18083)
declare -A port=([roundhouse]=18080 [plain]=18086 [floor]=18090 [other]=18091)
targets=(roundhouse plain floor)
[[ -z ${AB_OTHER:-} ]] || targets+=(other)
check_ports bench/ab.sh "127.0.0.1:18080-18091" "${backend_ports[@]}" 18080 18086 18090 18091

bench_begin roundhouse-ab
log "building roundhouse and the yardsticks"
go build -o "$tmp/roundhouse" .
go build -o "$tmp/baseline" ./bench/baseline
backend_args=()
for p in "${backend_ports[@]}"; do
	start "backend$p" 1 "$tmp/roundhouse" backend --listen "127.0.0.1:$p"
	backend_args+=(--backend "http://127.0.0.1:$p")
done
# shellcheck disable=SC2086 # AB_ARGS is a list of flags
start roundhouse 0 "$tmp/roundhouse" serve --listen 127.0.0.1:18080 --access-log=false ${AB_ARGS:-} "${backend_args[@]}"
start plain 0 "$tmp/baseline" --listen 127.0.0.1:18086 "${backend_args[@]}"
start floor 0 "$tmp/baseline" --floor --listen 127.0.0.1:18090 "${backend_args[@]}"
# shellcheck disable=SC2086 # AB_OTHER_ARGS too
[[ -z ${AB_OTHER:-} ]] || start other 0 "$AB_OTHER" serve --listen 127.0.0.1:18091 --access-log=false ${AB_OTHER_ARGS:-} "${backend_args[@]}"
for p in "${backend_ports[@]}"; do wait_ready "backend$p" "$p"; done
for t in "${targets[@]}"; do wait_ready "$t" "${port[$t]}"; done

# load SECONDS: one wrk per target, all at once; each one's output in $tmp/wrk-NAME.
load() {
	local t w=()
	for t in "${targets[@]}"; do
		taskset -c 1 wrk -t1 -c"$conns" -d"$1"s "http://127.0.0.1:${port[$t]}$path" >"$tmp/wrk-$t" 2>&1 &
		w+=($!)
	done
	wait "${w[@]}"
}

log "c$conns GET $path, $rounds rounds of ${duration} s, targets ${targets[*]} at once"
printf '%s\n' "round ${targets[*]} (CPU µs/req), then each ×plain"
declare -A t0 us
ratios=()
for ((r = 1; r <= rounds; r++)); do
	load 1
	for t in "${targets[@]}"; do t0[$t]=$(cpu_ticks "$t"); done
	load "$duration"
	line="$r"
	for t in "${targets[@]}"; do
		req=$(awk '/requests in/ { print $1 }' "$tmp/wrk-$t")
		[[ -n $req && $req -gt 0 ]] || die "$t: wrk made no requests: $(cat "$tmp/wrk-$t")"
		us[$t]=$(awk -v d=$(($(cpu_ticks "$t") - t0[$t])) -v q="$req" -v hz="$clk_tck" 'BEGIN { printf "%.1f", d * 1e6 / hz / q }')
		line="$line ${us[$t]}"
	done
	for t in "${targets[@]}"; do
		line="$line $(awk -v a="${us[$t]}" -v b="${us[plain]}" 'BEGIN { printf "%.3f", a / b }')"
	done
	echo "$line"
	ratios+=("$line")
done
printf '%s\n' "${ratios[@]}" | awk -v names="${targets[*]}" '
	function median(list,   a, n, i, j, v) {
		n = split(list, a, " ")
		for (i = 2; i <= n; i++) { v = a[i] + 0; for (j = i - 1; j >= 1 && a[j] + 0 > v; j--) a[j + 1] = a[j]; a[j + 1] = v }
		return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
	}
	{ k = split(names, T, " "); for (i = 1; i <= k; i++) col[i] = col[i] " " $(1 + k + i) }
	END { printf "median ×plain:"; for (i = 1; i <= k; i++) printf " %s %.2f", T[i], median(col[i]); print "" }'
