#!/bin/sh
# Database outage: under load from a few parallel EST clients, PostgreSQL is
# stopped for 30 s and started again, mintcad running all along. While it is
# down every request gets a quick, clear 503 (Retry-After, text/plain
# reason); no request takes longer than 10 s; service resumes by itself
# within seconds of PostgreSQL's return, without a restart; nothing
# half-written remains. Then PostgreSQL is frozen (SIGSTOP: it accepts
# connections and answers nothing, as a hung server or a dead network path
# does) for 12 s: requests still get a 503 within the time limit, and
# service resumes once it is thawed.
#
#   MINTCA_BUILD=build|build-asan sh tests/integration/dbdown.sh   (make integration)
#   DBDOWN_SECONDS (30): how long PostgreSQL stays down.
# Prints "ok - ..." / "not ok - ..." per check, then "N passed, M failed".
set -u

REPO=$(cd "$(dirname "$0")/../.." && pwd -P)
B=${MINTCA_BUILD:-build}
case $B in /*) ;; *) B=$REPO/$B ;; esac
. "$REPO/tests/integration/lib.sh"

DOWN_S=${DBDOWN_SECONDS:-30}
CLIENTS=4
MAX_REQUEST_S=10   # no request may take longer
RESUME_S=5         # an enrollment succeeds within this after PostgreSQL is back
FREEZE_S=12

it_prepare curl openssl ss softhsm2-util pkcs11-tool
# Under the sanitizer build: ASan and UBSan on, with the fast unwinder and no
# leak check. it_prepare's slow unwinder (needed to suppress one libp11 leak)
# costs about a second per request, which would measure the unwinder, not the
# timeouts; run.sh checks leaks, its PostgreSQL restart included.
export ASAN_OPTIONS=abort_on_error=0:detect_leaks=0:fast_unwind_on_malloc=1
# A frozen cluster is thawed whatever happens, before the cleanup stops it.
FROZEN=
pg_thaw() { [ -z "$FROZEN" ] || kill -CONT $FROZEN 2>/dev/null; FROZEN=; }
trap 'pg_thaw; it_cleanup' EXIT

# --- set-up: the embedded default, as crash.sh --------------------------------

it_embedded_setup
i=0
while [ $i -lt 20 ]; do
	mkcsr "csr-$i" p256 "/O=Example Devices/CN=dbdown-$i" "DNS:dbdown-$i.example" >>"$W/setup.log" 2>&1 ||
		setup_fail "cannot make CSR $i"
	i=$((i + 1))
done

now_ms() { date +%s%3N; }

# client K: enroll one certificate per curl until $W/stop-load exists. One
# line per request in $W/client-K.txt:
#   START_MS END_MS HTTP_CODE CURL_EXIT TIME_TOTAL RETRY_AFTER|CONTENT_TYPE|BODY
client() {
	cl_n=0
	: >"$W/client-$1.txt"
	while [ ! -e "$W/stop-load" ]; do
		cl_t=$(now_ms)
		cl_w=$(curl -sS --max-time 30 --cacert "$CURL_CA" --resolve "localhost:$PORT:127.0.0.1" \
			-K "$DIR/secrets/curl-factory.conf" -H 'Content-Type: application/pkcs10' \
			--data-binary "@$W/csr-$((($1 * 5 + cl_n) % 20)).b64" -o "$W/client-$1.body" \
			-w '%{http_code} %{exitcode} %{time_total} %header{retry-after}|%header{content-type}|' \
			"$BASE/.well-known/est/simpleenroll" 2>>"$W/client-$1.err")
		case $cl_w in 200\ *) cl_b=certificate ;; *) cl_b=$(head -c 200 "$W/client-$1.body" | tr -d '\r' | tr '\n' ' ') ;; esac
		echo "$cl_t $(now_ms) $cl_w$cl_b" >>"$W/client-$1.txt"
		cl_n=$((cl_n + 1))
		sleep 0.1
	done
}

# --- run -------------------------------------------------------------------------

start_server "$DIR/mintcad.log" >"$W/start.out" 2>&1 || setup_fail "$(cat "$W/start.out")"
SERVER_PID=$PID
echo "# data folder $DIR, port $PORT, build $B; PostgreSQL down for $DOWN_S s"
LOAD_PIDS=
k=1
while [ $k -le $CLIENTS ]; do
	client $k &
	LOAD_PIDS="$LOAD_PIDS $!"
	k=$((k + 1))
done
sleep 4
T_STOP=$(now_ms)
sh "$REPO/deploy/embedded.sh" stop "$DIR" >"$W/pg-stop.log" 2>&1
T_STOPPED=$(now_ms)
sleep "$DOWN_S"
T_START=$(now_ms)
sh "$REPO/deploy/embedded.sh" start "$DIR" >"$W/pg-start.log" 2>&1
T_STARTED=$(now_ms)
sleep $((RESUME_S + 5))
# The postmaster first (then it starts no new process), then every process
# it started, by process id.
PG_PID=$(head -n 1 "$MINTCA_PG_CLUSTER/postmaster.pid" 2>/dev/null)
if [ -n "$PG_PID" ]; then
	FROZEN=$PG_PID
	kill -STOP "$PG_PID"
	FROZEN="$PG_PID $(ps -o pid= --ppid "$PG_PID" | tr '\n' ' ')"
	kill -STOP $FROZEN
fi
# Once every process is stopped: a request started while the sessions were
# still running may rightly succeed (an enrollment takes ~10 ms).
T_FREEZE=$(now_ms)
sleep $FREEZE_S
T_THAW=$(now_ms)
pg_thaw
sleep $((RESUME_S + 5))
touch "$W/stop-load"
for p in $LOAD_PIDS; do wait "$p"; done
cat "$W"/client-*.txt | sort -n >"$W/requests.txt"
echo "# PostgreSQL stopped in $((T_STOPPED - T_STOP)) ms, down $(((T_START - T_STOPPED) / 1000)) s, started in $((T_STARTED - T_START)) ms; $(wc -l <"$W/requests.txt") requests"

pg_up() { sh "$REPO/deploy/embedded.sh" start "$DIR" >/dev/null 2>&1; }
check "PostgreSQL stopped and started again (deploy/embedded.sh stop, start)" \
	eval 'grep -q . "$W/requests.txt" && pg -c "select 1" | grep -q 1 || { cat "$W/pg-stop.log" "$W/pg-start.log"; pg_up; false; }'

# requests started in [FROM, TO) ms: their lines
during() { awk -v a="$1" -v b="$2" '$1 >= a && $1 < b' "$W/requests.txt"; }

before_ok() { during 0 "$T_STOP" | grep -q '^[0-9]* [0-9]* 200 0 '; }
check "before the outage: enrollments succeed" before_ok

# Down: started after the stop completed, done before the start began.
during "$T_STOPPED" "$T_START" | awk -v end="$T_START" '$2 < end' >"$W/down.txt"
N_DOWN=$(wc -l <"$W/down.txt")
down_503() {
	[ "$N_DOWN" -ge 20 ] || { echo "only $N_DOWN requests while PostgreSQL was down"; return 1; }
	if grep -v '^[0-9]* [0-9]* 503 0 ' "$W/down.txt" >"$W/down-not503.txt"; then
		echo "$(wc -l <"$W/down-not503.txt") of $N_DOWN requests were not 503:"
		head -n 5 "$W/down-not503.txt"
		return 1
	fi
}
check "PostgreSQL down: all $N_DOWN requests answered 503" down_503
retry_after() {
	# "START END 503 0 TIME RETRY_AFTER|CONTENT_TYPE|BODY"
	awk '{ r = $0; sub(/^[^ ]* [^ ]* [^ ]* [^ ]* [^ ]* /, "", r); split(r, f, "|")
		if (f[1] !~ /^[1-9][0-9]*$/ || f[2] !~ /^text\/plain/) print }' "$W/down.txt" | head -n 5
}
check "PostgreSQL down: every 503 has Retry-After (seconds) and a text/plain body" \
	eval '! retry_after | grep .'
reason_no_detail() {
	if grep -v 'certificate store unavailable (request id ' "$W/down.txt" | head -n 3 | grep .; then
		echo "503 bodies above do not say why, or differ"
		return 1
	fi
	if grep -Eiq 'postgres|socket|connect|/run|\.s\.PGSQL' "$W/down.txt"; then
		echo "a 503 body shows internal detail"
		return 1
	fi
}
check "PostgreSQL down: the 503 says 'certificate store unavailable' and a request id, no internal detail" reason_no_detail
DOWN_MAX=$(awk '{ if ($5 + 0 > m) m = $5 + 0 } END { printf "%.3f", m }' "$W/down.txt")
check "PostgreSQL down: the 503s are quick (slowest $DOWN_MAX s, at most 2 s)" \
	eval 'awk -v m="$DOWN_MAX" "BEGIN { exit !(m <= 2) }"'

ALL_MAX=$(awk '{ if ($5 + 0 > m) m = $5 + 0 } END { printf "%.3f", m }' "$W/requests.txt")
sort -k5 -g -r "$W/requests.txt" | head -n 3 | awk -v t0="$T_STOP" '{ printf "# slow: %+d ms from the stop: %s\n", $1 - t0, substr($0, 1, 120) }'
check "no request took longer than $MAX_REQUEST_S s (slowest $ALL_MAX s)" \
	eval 'awk -v m="$ALL_MAX" -v lim=$MAX_REQUEST_S "BEGIN { exit !(m <= lim) }"'
check "every answer, all along, was 200 or 503 (never a hang-up, a timeout or a 500)" \
	eval '! grep -v "^[0-9]* [0-9]* \\(200\\|503\\) 0 " "$W/requests.txt" | head -n 5 | grep .'

# Back: the first success after PostgreSQL's start completed, and from
# RESUME_S later on, nothing but success.
FIRST_OK=$(during "$T_STARTED" "$T_FREEZE" | awk '$3 == 200 && $4 == 0 { print $2; exit }')
RESUMED_MS=$((${FIRST_OK:-99999999999999} - T_STARTED))
check "PostgreSQL back: an enrollment succeeds $RESUMED_MS ms after its start (at most ${RESUME_S} s), no mintcad restart" \
	eval '[ -n "$FIRST_OK" ] && [ $RESUMED_MS -le $((RESUME_S * 1000)) ] && kill -0 "$SERVER_PID" && [ "$PID" = "$SERVER_PID" ] &&
		[ "$(grep -c "\"event\":\"server.ready\"" "$DIR/mintcad.log")" = 1 ]'
after_all_ok() {
	during $((T_STARTED + RESUME_S * 1000)) "$T_FREEZE" | awk -v end="$T_FREEZE" '$2 < end' >"$W/after.txt"
	[ -s "$W/after.txt" ] || { echo "no requests after the recovery"; return 1; }
	! grep -v '^[0-9]* [0-9]* 200 0 ' "$W/after.txt" | head -n 5 | grep .
}
check "PostgreSQL back: from ${RESUME_S} s after its start on, every enrollment succeeds" after_all_ok

# Frozen: requests done before the thaw.
during "$T_FREEZE" "$T_THAW" | awk -v end="$T_THAW" '$2 < end' >"$W/frozen.txt"
N_FROZEN=$(wc -l <"$W/frozen.txt")
frozen_503() {
	[ -n "$PG_PID" ] || { echo "no postmaster.pid in $MINTCA_PG_CLUSTER"; return 1; }
	[ "$N_FROZEN" -ge 5 ] || { echo "only $N_FROZEN requests answered while PostgreSQL was frozen"; return 1; }
	! grep -v '^[0-9]* [0-9]* 503 0 [0-9.]* [1-9]' "$W/frozen.txt" | head -n 5 | grep .
}
FROZEN_MAX=$(awk '{ if ($5 + 0 > m) m = $5 + 0 } END { printf "%.3f", m }' "$W/frozen.txt")
check "PostgreSQL frozen ${FREEZE_S} s: all $N_FROZEN requests answered 503 with Retry-After (slowest $FROZEN_MAX s)" frozen_503
FIRST_OK2=$(during "$T_THAW" 99999999999999 | awk '$3 == 200 && $4 == 0 { print $2; exit }')
THAWED_MS=$((${FIRST_OK2:-99999999999999} - T_THAW))
check "PostgreSQL thawed: an enrollment succeeds $THAWED_MS ms later (at most ${RESUME_S} s)" \
	eval '[ -n "$FIRST_OK2" ] && [ $THAWED_MS -le $((RESUME_S * 1000)) ]'
thaw_all_ok() {
	during $((T_THAW + RESUME_S * 1000)) 99999999999999 >"$W/after-thaw.txt"
	[ -s "$W/after-thaw.txt" ] || { echo "no requests after the thaw"; return 1; }
	! grep -v '^[0-9]* [0-9]* 200 0 ' "$W/after-thaw.txt" | head -n 5 | grep .
}
check "PostgreSQL thawed: from ${RESUME_S} s later on, every enrollment succeeds" thaw_all_ok

# --- the store ------------------------------------------------------------------

N_200=$(grep -c '^[0-9]* [0-9]* 200 0 ' "$W/requests.txt")
check "nothing half-written: every issued row has its DER, validity and one audit row" \
	eval '[ "$(pg -c "select count(*) from certificates c where status = '"'issued'"' and (der is null or not_before is null or issued_at is null or (select count(*) from audit a where a.serial = c.serial and a.action = '"'issue'"') <> 1)")" = 0 ]'
check "serials the outage cut off stay reserved: no certificate row but whole issued ones, no audit row" \
	eval '[ "$(pg -c "select count(*) from certificates where status <> '"'issued'"'")" = 0 ] && [ "$(pg -c "select count(*) from reserved_serials r where exists (select 1 from audit a where a.serial = r.serial)")" = 0 ]'
check "issued rows ($(pg -c "select count(*) from certificates where status = 'issued'")) cover the $N_200 certificates received" \
	eval '[ "$(pg -c "select count(*) from certificates where status = '"'issued'"'")" -ge "$N_200" ]'
N_RES=$(pg -c "select count(*) from reserved_serials")
check "mintctl certs reserved lists the $N_RES reserved serials" \
	eval '"$B/mintctl" certs reserved -c "$DIR/test.json" >"$W/reserved.txt" 2>"$W/reserved.err" && [ "$(wc -l <"$W/reserved.txt")" = "$N_RES" ]'

stop_server
check "SIGTERM: mintcad exits 0 within 10 s" eval '[ "$STOP_RC" = 0 ] || { echo "exit: $STOP_RC"; false; }'
check "the outage is in the log as store errors, and no sanitizer report" \
	eval 'grep -q "\"code\":\"certificate store unavailable\"" "$DIR/mintcad.log" && no_sanitizer_report "$DIR/mintcad.log" "$W/reserved.err"'

echo "# $(($(date +%s) - START)) s in all"
echo "$PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
