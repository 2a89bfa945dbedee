# Helpers for tests/bench/ocsp.sh and tests/bench/est_load.sh (POSIX sh,
# sourced). They use REPO and B (absolute build folder) and set T (the
# benchmark's temporary folder, 0700), DIR (embedded data folder in it), W
# (work files) and NGX (the throwaway nginx's folder). Everything started
# here is stopped, and both folders are removed, on exit, also on failure.

BENCH_PIDS=        # processes to TERM on exit (mintcad, openssl ocsp, loadgen, ...)
MINTCAD_PID=
T=
NGX=
DIR=
USED_PORTS=

die() {
	echo "$BENCH_NAME: $*" >&2
	exit 1
}

# bench_prepare NAME TOOL...: the tools, the binaries, the folders, the trap.
bench_prepare() {
	BENCH_NAME=$1
	shift
	for tool in "$@"; do
		command -v "$tool" >/dev/null 2>&1 || die "$tool is not installed (make deps)"
	done
	for bin in mintcad mintctl loadgen; do
		[ -x "$B/$bin" ] || die "$B/$bin missing: run 'make bench'"
	done
	trap bench_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	T=$(mktemp -d "${TMPDIR:-/tmp}/mintca-$BENCH_NAME.XXXXXX") || die "mktemp failed"
	chmod 700 "$T"
	DIR=$T/data
	W=$T/work
	mkdir "$W"
}

# Stop a process (and, for openssl ocsp -multi, its children): TERM, up to
# 10 s, then KILL.
stop_pid() {
	# Only a child of this shell: a PID that ended and came back is left alone.
	[ "$(ps -o ppid= -p "$1" 2>/dev/null | tr -d ' ')" = "$$" ] || return 0
	sp_kids=$(pgrep -P "$1" 2>/dev/null || :)
	kill -TERM "$1" 2>/dev/null || return 0
	sp_i=0
	while kill -0 "$1" 2>/dev/null && [ $sp_i -lt 50 ]; do
		sleep 0.2
		sp_i=$((sp_i + 1))
	done
	kill -KILL "$1" 2>/dev/null || :
	wait "$1" 2>/dev/null || :
	for sp_k in $sp_kids; do
		kill -KILL "$sp_k" 2>/dev/null || :
	done
}

bench_cleanup() {
	trap - EXIT INT TERM
	for p in $BENCH_PIDS; do
		stop_pid "$p"
	done
	nginx_stop
	if [ -n "$T" ]; then
		# Stops the cluster wherever embedded.sh put it, and removes it.
		[ -f "$DIR/env" ] && sh "$REPO/deploy/embedded.sh" destroy "$DIR" >/dev/null 2>&1
		rm -rf "$T"
	fi
	[ -z "$NGX" ] || rm -rf "$NGX"
}

# A free TCP port on 127.0.0.1 (random, below the ephemeral range 32768+ where
# outgoing connections take theirs, used by no socket, not handed out before).
free_port() {
	fp_i=0
	while [ $fp_i -lt 100 ]; do
		fp_p=$((20000 + $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 12000))
		case " $USED_PORTS " in *" $fp_p "*) fp_i=$((fp_i + 1)); continue ;; esac
		if [ -z "$(ss -Htan "sport = :$fp_p")" ]; then
			USED_PORTS="$USED_PORTS $fp_p"
			echo "$fp_p"
			return 0
		fi
		fp_i=$((fp_i + 1))
	done
	die "no free port found"
}

# wait_port PORT SECONDS: until something listens on PORT.
wait_port() {
	wp_i=0
	while [ $wp_i -lt $(($2 * 10)) ]; do
		[ -n "$(ss -Hltn "sport = :$1")" ] && return 0
		sleep 0.1
		wp_i=$((wp_i + 1))
	done
	return 1
}

# setup_embedded HTTPS_PORT HTTP_PORT: a throwaway PostgreSQL cluster,
# SoftHSM token and config in DIR (deploy/embedded.sh), its env sourced.
setup_embedded() {
	MINTCTL=$B/mintctl MINTCA_PORT=$1 MINTCA_HTTP_PORT=$2 sh "$REPO/deploy/embedded.sh" setup "$DIR" \
		>"$W/setup.log" 2>&1 || die "deploy/embedded.sh setup failed: $(tail -n 5 "$W/setup.log")"
	. "$DIR/env"
}

pg() { "$MINTCA_PG_BIN/psql" -X -h "$MINTCA_PG_CLUSTER/run" -U mintca -d mintca -v ON_ERROR_STOP=1 -Atq "$@"; }

# start_mintcad CONFIG LOG: mintcad in the background, up when it logs server.ready.
start_mintcad() {
	"$B/mintcad" -c "$1" 2>"$2" &
	MINTCAD_PID=$!
	BENCH_PIDS="$BENCH_PIDS $MINTCAD_PID"
	sm_i=0
	while [ $sm_i -lt 150 ]; do
		grep -q '"event":"server.ready"' "$2" && return 0
		kill -0 "$MINTCAD_PID" 2>/dev/null || break
		sleep 0.2
		sm_i=$((sm_i + 1))
	done
	tail -n 20 "$2" >&2
	die "mintcad did not log server.ready within 30 s"
}

# rss_kb PID [FIELD]: VmRSS (or VmHWM: the peak) of a process, in kB.
rss_kb() {
	awk -v f="${2:-VmRSS}:" '$1 == f { print $2 }' "/proc/$1/status" 2>/dev/null || :
}

# --- nginx --------------------------------------------------------------------

# nginx_start PORT MODE BODY_FILE CONTENT_TYPE [CERT KEY]: a throwaway nginx
# (own prefix under a temporary folder, 2 worker processes, no access log)
# answering every request, GET or POST, on 127.0.0.1:PORT with BODY_FILE.
# MODE: http or https (then CERT and KEY, PEM). Keep-alive as the client asks;
# TLS sessions are neither cached nor ticketed (each connection a full handshake).
# With NGINX_CLIENT_CAS (a PEM file) set, it asks for an optional client
# certificate from those CAs.
nginx_start() {
	NGX=$(mktemp -d "${TMPDIR:-/tmp}/mintca-nginx.XXXXXX") || die "mktemp failed"
	# The workers (nobody, when started as root) read the file: 0755 folder.
	chmod 755 "$NGX"
	mkdir "$NGX/www" "$NGX/tmp"
	cp "$3" "$NGX/www/answer"
	chmod 644 "$NGX/www/answer"
	ng_user=
	[ "$(id -u)" -ne 0 ] || ng_user='user nobody nogroup;'
	ng_tls=
	ng_listen="listen 127.0.0.1:$1;"
	if [ "$2" = https ]; then
		(umask 077 && cp "$5" "$NGX/cert.pem" && cp "$6" "$NGX/key.pem")
		ng_listen="listen 127.0.0.1:$1 ssl;"
		ng_tls="ssl_certificate $NGX/cert.pem; ssl_certificate_key $NGX/key.pem;
		ssl_protocols TLSv1.2 TLSv1.3; ssl_session_cache off; ssl_session_tickets off;"
		if [ -n "${NGINX_CLIENT_CAS:-}" ]; then
			cp "$NGINX_CLIENT_CAS" "$NGX/client-cas.pem"
			ng_tls="$ng_tls ssl_client_certificate $NGX/client-cas.pem; ssl_verify_client optional;"
		fi
	fi
	cat >"$NGX/nginx.conf" <<EOF
$ng_user
worker_processes 2;
pid $NGX/nginx.pid;
error_log $NGX/error.log warn;
events { worker_connections 4096; }
http {
	access_log off;
	client_body_temp_path $NGX/tmp/body;
	proxy_temp_path $NGX/tmp/proxy;
	fastcgi_temp_path $NGX/tmp/fastcgi;
	uwsgi_temp_path $NGX/tmp/uwsgi;
	scgi_temp_path $NGX/tmp/scgi;
	keepalive_requests 100000000;
	keepalive_timeout 120s;
	types { }
	default_type $4;
	server {
		$ng_listen
		$ng_tls
		root $NGX/www;
		# Every path is the one file; a POST to a static file is 405 in
		# nginx, turned into the same 200 answer.
		location / {
			try_files /answer =404;
			error_page 405 =200 /answer;
		}
	}
}
EOF
	nginx -p "$NGX/" -e "$NGX/error.log" -c "$NGX/nginx.conf" 2>"$NGX/start.err" ||
		die "nginx did not start: $(cat "$NGX/start.err" "$NGX/error.log" 2>/dev/null | tail -n 5)"
	wait_port "$1" 10 || die "nginx does not listen on $1"
}

nginx_stop() {
	[ -n "$NGX" ] && [ -f "$NGX/nginx.pid" ] || return 0
	ns_pid=$(cat "$NGX/nginx.pid" 2>/dev/null || :)
	[ -n "$ns_pid" ] || return 0
	# Our master only (its title names our prefix).
	tr '\0' ' ' <"/proc/$ns_pid/cmdline" 2>/dev/null | grep -qF "$NGX/" || return 0
	kill -TERM "$ns_pid" 2>/dev/null || return 0
	ns_i=0
	while kill -0 "$ns_pid" 2>/dev/null && [ $ns_i -lt 50 ]; do
		sleep 0.2
		ns_i=$((ns_i + 1))
	done
	kill -KILL "$ns_pid" 2>/dev/null || :
	rm -f "$NGX/nginx.pid"
}

# --- figures ------------------------------------------------------------------

# res FILE KEY: a field of loadgen's RESULT line.
res() {
	sed -n "s/^RESULT .* $2=\([^ ]*\).*/\1/p" "$1" | tail -n 1
}

# forget_pid PID: a process that has ended is not stopped on exit.
forget_pid() {
	fp_new=
	for fp_p in $BENCH_PIDS; do
		[ "$fp_p" = "$1" ] || fp_new="$fp_new $fp_p"
	done
	BENCH_PIDS=$fp_new
}

# loadgen_run OUTFILE ARGS...: run loadgen, keep its output, show it. In the
# background, so that a signal to this script ends it at once (the trap).
loadgen_run() {
	lr_out=$1
	shift
	"$B/loadgen" "$@" >"$lr_out" 2>&1 &
	lr_pid=$!
	BENCH_PIDS="$BENCH_PIDS $lr_pid"
	lr_rc=0
	wait "$lr_pid" || lr_rc=$?
	forget_pid "$lr_pid"
	[ "$lr_rc" = 0 ] || { cat "$lr_out" >&2; die "loadgen failed"; }
	grep -v '^RESULT ' "$lr_out" | sed -e 's/^/  /'
}

# row NAME FILE: one line of the summary table.
row() {
	printf '  %-22s %12s %9s %9s %9s %8s %8s\n' "$1" "$(res "$2" rps)" "$(res "$2" p50_ms)" \
		"$(res "$2" p99_ms)" "$(res "$2" max_ms)" "$(res "$2" errors)" "$(res "$2" stalled)"
}

row_head() {
	printf '  %-22s %12s %9s %9s %9s %8s %8s\n' "" "per second" "p50 ms" "p99 ms" "max ms" "errors" "stalled"
}

# ratio TEXT A B GOAL UNIT: "TEXT = A/B (goal >= GOAL): goal met|goal NOT met".
# UNIT x prints the ratio as a multiple, % as a percentage; GOAL none: no verdict.
ratio() {
	awk -v t="$1" -v a="$2" -v b="$3" -v g="$4" -v u="$5" 'BEGIN {
		if (a == "" || b == "" || b + 0 <= 0) { printf "%s = n/a\n", t; exit }
		r = a / b
		if (g == "none") printf "%s = %.0f%%\n", t, r * 100
		else if (u == "%") printf "%s = %.0f%% (goal >= %.0f%%): %s\n", t, r * 100, g * 100, (r >= g ? "goal met" : "goal NOT met")
		else printf "%s = %.2fx (goal >= %gx): %s\n", t, r, g, (r >= g ? "goal met" : "goal NOT met")
	}'
}
