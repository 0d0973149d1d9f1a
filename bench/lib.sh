# bench/lib.sh: the shell machinery bench/run.sh and bench/grpc.sh share:
# logging, installing what is missing, starting pinned processes and
# stopping them on exit, and reading CPU time, memory and how quiet the
# machine is from /proc. Sourced (after `set -euo pipefail`), not run.
#
# Globals it defines: pid (name -> PID of each process started), started
# (names, in start order), tmp (once bench_begin has run), clk_tck (once
# check_machine has run).
#
# It sets globals for the scripts that source it and reads theirs (targets,
# repo), which shellcheck cannot see when it checks this file alone:
# shellcheck shell=bash disable=SC2034,SC2154

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# install_missing PKG...: installs the Debian packages PKG with apt-get
# (through sudo unless root); nothing when none is given.
install_missing() {
	(($#)) || return 0
	sudo=()
	[[ $(id -u) -eq 0 ]] || sudo=(sudo)
	log "installing $*"
	# Debian starts a freshly installed nginx as a service on port 80; a
	# policy-rc.d that says "no" keeps it from starting (as Docker images do).
	policy=/usr/sbin/policy-rc.d
	if [[ ! -e $policy ]]; then
		printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
		"${sudo[@]}" chmod 755 "$policy"
		trap '"${sudo[@]}" rm -f "$policy"' EXIT # ours: removed however apt-get ends
	fi
	"${sudo[@]}" apt-get update -qq
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
	if [[ -n $(trap -p EXIT) ]]; then
		"${sudo[@]}" rm -f "$policy"
		trap - EXIT
	fi
}

# check_machine: dies with fewer than 2 cores; sets clk_tck and raises the
# open-file limit to its hard limit.
check_machine() {
	(($(nproc) >= 2)) || die "needs at least 2 cores (proxy on core 0, load on core 1); have $(nproc)"
	clk_tck=$(getconf CLK_TCK)
	ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
}

# ---------------------------------------------------------------- processes

declare -A pid=() # name -> PID of each process started
started=()        # names, in start order

# bench_begin PREFIX: makes $tmp, a mktemp directory named after PREFIX,
# and has cleanup run on exit (and on INT and TERM).
bench_begin() {
	tmp=$(mktemp -d -t "$1.XXXXXX")
	chmod 755 "$tmp" # nginx's worker may run as nobody
	trap cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
}

# cleanup: stops every process started, by PID, newest first (TERM, then
# KILL after 5 s), removes $tmp and exits with the status it was called in.
cleanup() {
	local status=$? i name p
	for ((i = ${#started[@]} - 1; i >= 0; i--)); do
		name=${started[i]}
		p=${pid[$name]}
		kill -TERM "$p" 2>/dev/null || continue
	done
	for ((i = ${#started[@]} - 1; i >= 0; i--)); do
		name=${started[i]}
		p=${pid[$name]}
		for _ in {1..50}; do
			kill -0 "$p" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	rm -rf "$tmp"
	exit "$status"
}

# start NAME CORE CMD...: runs CMD pinned to CORE, output to $tmp/NAME.log.
start() {
	local name=$1 core=$2
	shift 2
	taskset -c "$core" "$@" >"$tmp/$name.log" 2>&1 &
	pid[$name]=$!
	started+=("$name")
}

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

# in_use PORT: whether something accepts connections on 127.0.0.1:PORT.
in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# check_ports SCRIPT RANGE PORT...: dies if any PORT on 127.0.0.1 is in use.
check_ports() {
	local script=$1 range=$2 p
	shift 2
	for p in "$@"; do
		! in_use "$p" || die "port $p on 127.0.0.1 is in use; $script needs $range"
	done
}

# start_nginx BODY: writes $tmp/nginx.conf, one nginx worker in the
# foreground with its files under $tmp/nginx and no access log, BODY (its
# upstreams and servers) inside its http block, and starts it as nginx on
# core 0.
start_nginx() {
	mkdir -p "$tmp/nginx"
	cat >"$tmp/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $tmp/nginx.pid;
error_log $tmp/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $tmp/nginx/body;
    proxy_temp_path $tmp/nginx/proxy;
    fastcgi_temp_path $tmp/nginx/fastcgi;
    uwsgi_temp_path $tmp/nginx/uwsgi;
    scgi_temp_path $tmp/nginx/scgi;
$1
}
EOF
	start nginx 0 nginx -e "$tmp/nginx/error.log" -p "$tmp/nginx" -c "$tmp/nginx.conf"
}

# start_haproxy BODY: writes $tmp/haproxy.cfg, one HAProxy thread in HTTP
# mode reusing its backend connections, followed by BODY (its frontend and
# backend), and starts it as haproxy on core 0.
start_haproxy() {
	cat >"$tmp/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn 4096
defaults
    mode http
    timeout connect 3s
    timeout client 30s
    timeout server 30s
    http-reuse always
$1
EOF
	start haproxy 0 haproxy -db -f "$tmp/haproxy.cfg"
}

# ---------------------------------------------------------------- measure

# tree PID: PID and all its descendants (nginx's master and worker).
tree() {
	local c
	echo "$1"
	# shellcheck disable=SC2013 # children is a space-separated list of PIDs
	for c in $(cat /proc/"$1"/task/*/children 2>/dev/null); do tree "$c"; done
}

# cpu_ticks NAME: utime+stime of NAME's processes, in clock ticks.
cpu_ticks() {
	local p total=0 t
	for p in $(tree "${pid[$1]}"); do
		# Fields after "(comm) ": state is $1, so utime (14) is $12, stime (15) $13.
		t=$(awk '{ sub(/.*\) /, ""); print $12 + $13 }' /proc/"$p"/stat 2>/dev/null) || continue
		total=$((total + t))
	done
	echo "$total"
}

# rss_kb NAME: VmRSS of NAME's processes, summed, in KiB.
rss_kb() {
	local p total=0 r
	for p in $(tree "${pid[$1]}"); do
		r=$(awk '/^VmRSS:/ { print $2 }' /proc/"$p"/status 2>/dev/null) || continue
		total=$((total + ${r:-0}))
	done
	echo "$total"
}

# cpu_busy CORE: "busy total" clock ticks of CORE since boot (/proc/stat).
cpu_busy() {
	awk -v c="cpu$1" '$1 == c { total = 0; for (i = 2; i <= NF; i++) total += $i; print total - $5 - $6, total }' /proc/stat
}

# wait_quiet MAX: waits, up to MAX seconds, until both cores are at least
# 90% idle over half a second; another program's load distorts the numbers.
wait_quiet() {
	local i b0 t0 b1 t1
	for ((i = 0; i < 2 * $1; i++)); do
		read -r b0 t0 <<<"$(awk '$1 == "cpu" { t = 0; for (i = 2; i <= NF; i++) t += $i; print t - $5 - $6, t }' /proc/stat)"
		sleep 0.5
		read -r b1 t1 <<<"$(awk '$1 == "cpu" { t = 0; for (i = 2; i <= NF; i++) t += $i; print t - $5 - $6, t }' /proc/stat)"
		if (((b1 - b0) * 10 <= t1 - t0)); then return 0; fi
		((i > 0)) || log "waiting for the machine to be quiet (other processes are using the CPU)"
	done
	log "warning: the machine is still busy; measuring anyway (see the other column)"
}

# rotate ROUND: sets order to targets rotated by ROUND-1, so that no target
# always runs first.
rotate() {
	local i
	order=()
	for ((i = 0; i < ${#targets[@]}; i++)); do
		order+=("${targets[(i + $1 - 1) % ${#targets[@]}]}")
	done
}

# other_pct BUSY0 TOTAL0 BUSY1 TOTAL1 TICKS: how busy (%) core 0 was between
# the two cpu_busy readings with anything but the target's TICKS: other
# programs, and the kernel's softirq work for loopback packets.
other_pct() {
	awk -v b="$(($3 - $1 - $5))" -v t="$(($4 - $2))" 'BEGIN { printf "%.0f", t ? 100 * b / t : 0 }'
}

# ---------------------------------------------------------------- report

# report_facts: sets cpu_model and commit (short, "(modified)" when the
# work tree differs from HEAD) for the report.
report_facts() {
	cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
	commit=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)
	if ! git -C "$repo" diff --quiet HEAD 2>/dev/null; then commit="$commit (modified)"; fi
}
