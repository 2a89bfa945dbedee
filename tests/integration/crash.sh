#!/bin/sh
# Crash safety: 10,000 EST enrollments from 8 parallel clients while mintcad
# is killed with SIGKILL at random moments (at least 3 times) and restarted;
# the clients retry what a kill cut off. Afterwards every certificate a
# client received is in PostgreSQL, byte for byte; no serial appears twice;
# serials reserved but never signed stay in their blocks (serial_blocks),
# are never counted as issued, and `mintctl certs reserved` lists them.
#
#   MINTCA_BUILD=build|build-asan sh tests/integration/crash.sh   (make integration)
#   CRASH_TOTAL (10000), CRASH_CLIENTS (8), CRASH_KILLS (4): for a quick run.
# Prints "ok - ..." / "not ok - ..." per check, then "N passed, M failed".
set -u

REPO=$(cd "$(dirname "$0")/../.." && pwd -P)
B=${MINTCA_BUILD:-build}
case $B in /*) ;; *) B=$REPO/$B ;; esac
. "$REPO/tests/integration/lib.sh"

TOTAL=${CRASH_TOTAL:-10000}
CLIENTS=${CRASH_CLIENTS:-8}
KILLS=${CRASH_KILLS:-4}
POOL=200      # keys and CSRs, reused: serials are per certificate
BATCH=50      # enrollments per curl process, on one kept-alive connection
LOAD_LIMIT=600 # seconds: the load is stopped (and fails) after this

it_prepare curl openssl ss softhsm2-util pkcs11-tool base64 od
# Under the sanitizer build: ASan and UBSan stay on, but with the fast
# unwinder and no leak check. it_prepare's slow unwinder (for one libp11 leak
# suppression) costs about a second per enrollment here, and leaks on these
# paths are run.sh's business; a killed process reports no leaks anyway.
export ASAN_OPTIONS=abort_on_error=0:detect_leaks=0:fast_unwind_on_malloc=1
# The clients go with the script, however it ends.
CLIENT_PIDS=
crash_cleanup() {
	[ -z "${W:-}" ] || touch "$W/stop" 2>/dev/null
	for p in $CLIENT_PIDS; do kill -TERM "$p" 2>/dev/null; done
	it_cleanup
}
trap crash_cleanup EXIT

# --- set-up: the embedded default (PostgreSQL, SoftHSM token, config) --------

it_embedded_setup

i=0
while [ $i -lt $POOL ]; do
	mkcsr "csr-$i" p256 "/O=Example Devices/CN=crash-$i" "DNS:crash-$i.example" >>"$W/setup.log" 2>&1 ||
		setup_fail "cannot make CSR $i: $(tail -n 3 "$W/setup.log")"
	i=$((i + 1))
done

# --- the clients ---------------------------------------------------------------

# client K COUNT: enroll until COUNT certificates were received, BATCH per
# curl process (a curl config file with "next" between transfers, so that
# the password stays off the command line). A transfer that fails (no
# connection, cut off by a kill) is simply done again in the next batch.
# Every answer goes to $W/client-K.out: the body, then a line
# "@@ HTTP_CODE CURL_EXIT TIME_TOTAL".
client() {
	cl_k=$1 cl_target=$2 cl_done=0 cl_seq=0
	cl_cfg=$DIR/secrets/batch-$cl_k.conf
	: >"$W/client-$cl_k.out"
	echo 0 >"$W/done-$cl_k"
	while [ "$cl_done" -lt "$cl_target" ] && [ -d "$W" ] && [ ! -e "$W/stop" ]; do
		cl_n=$((cl_target - cl_done))
		[ $cl_n -le $BATCH ] || cl_n=$BATCH
		cl_i=0
		(umask 077
		while [ $cl_i -lt $cl_n ]; do
			[ $cl_i -eq 0 ] || echo next
			cat <<EOF
url = "$BASE/.well-known/est/simpleenroll"
cacert = "$CURL_CA"
resolve = "localhost:$PORT:127.0.0.1"
user = "factory:$PASSWORD"
header = "Content-Type: application/pkcs10"
data-binary = "@$W/csr-$(((cl_k * 37 + cl_seq + cl_i) % POOL)).b64"
connect-timeout = 5
max-time = 30
write-out = "\\n@@ %{http_code} %{exitcode} %{time_total}\\n"
EOF
			cl_i=$((cl_i + 1))
		done >"$cl_cfg")
		cl_seq=$((cl_seq + cl_n))
		curl -sS -K "$cl_cfg" >"$W/batch-$cl_k.out" 2>>"$W/client-$cl_k.err"
		cl_ok=$(grep -c '^@@ 200 0 ' "$W/batch-$cl_k.out")
		cat "$W/batch-$cl_k.out" >>"$W/client-$cl_k.out"
		cl_done=$((cl_done + cl_ok))
		echo "$cl_done" >"$W/done-$cl_k"
		# Fewer than asked: the server is down or restarting.
		[ "$cl_ok" -eq "$cl_n" ] || sleep 0.2
	done
}

progress() { cat "$W"/done-* 2>/dev/null | awk '{ n += $1 } END { print n + 0 }'; }
rand() { echo $(($(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % $1)); }

# --- run: load, kills, restarts ------------------------------------------------

RUN=0
start_server "$DIR/mintcad-$RUN.log" >"$W/start.out" 2>&1 || setup_fail "$(cat "$W/start.out")"
echo "# data folder $DIR, port $PORT, build $B; $TOTAL enrollments, $CLIENTS clients, $KILLS kills"

LOAD_START=$(date +%s)
per=$((TOTAL / CLIENTS))
k=1
while [ $k -le "$CLIENTS" ]; do
	n=$per
	[ $k -ne "$CLIENTS" ] || n=$((TOTAL - per * (CLIENTS - 1)))
	client $k $n &
	CLIENT_PIDS="$CLIENT_PIDS $!"
	k=$((k + 1))
done

# Kill j (1..KILLS) happens once progress passed a random point of the j-th
# of KILLS+1 equal slices of the work, then after a random 0-250 ms.
KILLED=0
RESTART_FAILED=0
: >"$W/kills.txt"
while [ $KILLED -lt "$KILLS" ]; do
	slice=$((TOTAL / (KILLS + 1)))
	at=$((slice * (KILLED + 1) - slice / 2 + $(rand $((slice > 0 ? slice : 1)))))
	while [ "$(progress)" -lt "$at" ]; do
		[ $(($(date +%s) - LOAD_START)) -lt $LOAD_LIMIT ] || break 2
		sleep 0.1
	done
	sleep "0.$(printf %03d "$(rand 250)")"
	kill -KILL "$PID"
	wait "$PID" 2>/dev/null
	KILLED=$((KILLED + 1))
	echo "kill $KILLED at $(progress) received, $(($(date +%s) - LOAD_START)) s" >>"$W/kills.txt"
	RUN=$((RUN + 1))
	if ! start_server "$DIR/mintcad-$RUN.log" >"$W/start-$RUN.out" 2>&1; then
		RESTART_FAILED=1
		break
	fi
done
# The clients finish (or are stopped after LOAD_LIMIT).
clients_running() {
	for p in $CLIENT_PIDS; do kill -0 "$p" 2>/dev/null && return 0; done
	return 1
}
while clients_running && [ "$(progress)" -lt "$TOTAL" ]; do
	if [ $(($(date +%s) - LOAD_START)) -ge $LOAD_LIMIT ] || [ $RESTART_FAILED = 1 ]; then
		touch "$W/stop"
		break
	fi
	sleep 0.2
done
for p in $CLIENT_PIDS; do wait "$p"; done
LOAD_S=$(($(date +%s) - LOAD_START))
echo "# load: $(progress) certificates received in $LOAD_S s"
sed -e 's/^/# /' "$W/kills.txt"

check "$KILLED SIGKILLs (at least 3), mintcad restarted after each" \
	eval '[ "$KILLED" -ge 3 ] && [ $RESTART_FAILED = 0 ] || { cat "$W/kills.txt" "$W"/start-*.out; false; }'
check "$TOTAL enrollments received by $CLIENTS clients within $LOAD_LIMIT s" \
	eval '[ "$(progress)" -ge "$TOTAL" ] || { echo "$(progress) received"; tail -n 3 "$W"/client-*.err; false; }'

stop_server
check "after the load: SIGTERM, mintcad exits 0 within 10 s" \
	eval '[ "$STOP_RC" = 0 ] || { echo "exit: $STOP_RC"; tail -n 5 "$DIR/mintcad-$RUN.log"; false; }'
check "no sanitizer report in any mintcad log" no_sanitizer_report "$DIR"/mintcad-*.log

# --- what the clients received ---------------------------------------------------

# Every answer: 200 with curl exit 0 (received), no answer (000: refused or
# cut off), or anything else. The bodies of the received ones, base64,
# concatenated into ok.b64.
awk -v ok="$W/ok.b64" -v other="$W/other.txt" '
	/^@@ / {
		if ($2 == "200" && $3 == "0") { printf "%s", body > ok; n_ok++ }
		else if ($2 == "000") n_conn++
		else if ($2 == "200") n_cut++
		else { n_other++; print $2, $3, $4 > other }
		body = ""
		next
	}
	$0 != "" { body = body $0 "\n" }
	END { printf "%d %d %d %d\n", n_ok, n_conn, n_cut, n_other }
' "$W"/client-*.out >"$W/answers.txt"
read -r N_OK N_CONN N_CUT N_OTHER <"$W/answers.txt"
echo "# answers: $N_OK received, $N_CONN without connection, $N_CUT cut off after the status line, $N_OTHER other"
check "every answer was a certificate or a failed connection (no HTTP error)" \
	eval '[ "$N_OTHER" = 0 ] || { sort "$W/other.txt" | uniq -c | head; false; }'

# Decode every received body at once: base64 (coreutils) into concatenated
# DER PKCS#7 structures, which openssl asn1parse walks in one go; each
# certs-only answer holds its certificates at depth 4 under the [0] at depth
# 3. Out: "OFFSET LENGTH SERIAL" per certificate.
decode_received() {
	base64 -d "$W/ok.b64" >"$W/ok.der" || return 1
	openssl asn1parse -inform DER -in "$W/ok.der" >"$W/ok.asn1" || return 1
	awk -v bad="$W/bad-answers.txt" '
		function num(re, skip) { match($0, re); return substr($0, RSTART + skip, RLENGTH - skip) + 0 }
		{
			off = num("^ *[0-9]+", 0); d = num("d=[0-9]+", 2)
			hl = num("hl=[0-9]+", 3); l = num(" l= *[0-9]+", 3)
		}
		d == 0 {
			if (resp > 0 && certs != 1) print "answer " resp ": " certs " certificates" > bad
			resp++; certs = 0; in_certs = 0; want_serial = 0
		}
		d == 3 { in_certs = /cont \[ 0 \]/ }
		d == 4 && in_certs { certs++; start = off; len = hl + l; want_serial = 1 }
		d == 6 && want_serial && /prim: INTEGER/ {
			s = $0; sub(/.*:/, "", s)
			print start, len, tolower(s)
			want_serial = 0
		}
		END { if (resp > 0 && certs != 1) print "answer " resp ": " certs " certificates" > bad }
	' "$W/ok.asn1" >"$W/ok.certs" || return 1
	[ ! -s "$W/bad-answers.txt" ] || { head -n 5 "$W/bad-answers.txt"; return 1; }
	got=$(wc -l <"$W/ok.certs")
	[ "$got" -eq "$N_OK" ] || { echo "$got certificates in $N_OK answers"; return 1; }
	# The DER of each, as hex, one per line.
	od -An -v -tx1 "$W/ok.der" | tr -d ' \n' >"$W/ok.hex"
	awk -v hexfile="$W/ok.hex" 'BEGIN { getline hex < hexfile } { print substr(hex, 2 * $1 + 1, 2 * $2) }' \
		"$W/ok.certs" | sort >"$W/got.hex"
}
check "each of the $N_OK answers decodes (base64, PKCS#7) into exactly one certificate" decode_received

check "no certificate was received twice" \
	eval '[ -z "$(uniq -d "$W/got.hex" | head -n 1)" ] || { uniq -d "$W/got.hex" | wc -l; false; }'
check "no serial appears twice among the received certificates" \
	eval 'awk "{ print \$3 }" "$W/ok.certs" | sort | uniq -d >"$W/dup-serials.txt"; [ ! -s "$W/dup-serials.txt" ] || { head "$W/dup-serials.txt"; false; }'

# --- what PostgreSQL holds ---------------------------------------------------------

pg -c "select encode(der, 'hex') from certificates where status = 'issued'" | sort >"$W/db.hex"
in_db() {
	comm -23 "$W/got.hex" "$W/db.hex" >"$W/missing.hex"
	[ ! -s "$W/missing.hex" ] && return 0
	echo "$(wc -l <"$W/missing.hex") received certificates are not in certificates.der (status issued)"
	return 1
}
check "every received certificate is in PostgreSQL, byte-identical (certificates.der, status issued)" in_db
check "no serial appears twice in certificates" \
	eval '[ "$(pg -c "select count(*) from (select lower(serial) from certificates group by 1 having count(*) > 1) d")" = 0 ]'
N_ISSUED=$(pg -c "select count(*) from certificates where status = 'issued'")
N_RESERVED=$(pg -c "select count(*) from reserved_serials")
echo "# certificates: $N_ISSUED issued ($((N_ISSUED - N_OK)) of them committed but cut off before the client had them), $N_RESERVED reserved and never issued"
check "every issued row is complete (DER, validity, issued_at) and has exactly one audit row" \
	eval '[ "$(pg -c "select count(*) from certificates c where status = '"'issued'"' and (der is null or not_before is null or issued_at is null or (select count(*) from audit a where a.serial = c.serial and a.action = '"'issue'"') <> 1)")" = 0 ]'
check "certificates holds whole issued certificates only (a row is inserted once, at commit)" \
	eval '[ "$(pg -c "select count(*) from certificates where status <> '"'issued'"'")" = 0 ]'
check "reserved serials have no audit row" \
	eval '[ "$(pg -c "select count(*) from reserved_serials r where exists (select 1 from audit a where a.serial = r.serial)")" = 0 ]'
check "reserved serials are never counted as issued (issued rows = audit issue rows)" \
	eval '[ "$N_ISSUED" = "$(pg -c "select count(*) from audit where action = '"'issue'"'")" ]'

# --- mintctl certs reserved --------------------------------------------------------

ctl_reserved() { "$B/mintctl" certs reserved -c "$DIR/test.json" "$@"; }
lists_reserved() {
	ctl_reserved >"$W/ctl-reserved.txt" 2>"$W/ctl-reserved.err" || { cat "$W/ctl-reserved.err"; return 1; }
	cut -f1 "$W/ctl-reserved.txt" | sort >"$W/ctl-serials.txt"
	pg -c "select serial from reserved_serials" | sort >"$W/db-reserved.txt"
	cmp "$W/ctl-serials.txt" "$W/db-reserved.txt" || { diff "$W/ctl-serials.txt" "$W/db-reserved.txt" | head; return 1; }
	# SERIAL CA SITE RESERVED_AT
	awk -F '\t' 'NF != 4 || $2 != "dev" || $3 != "main" || $4 !~ /^20[0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9:]+Z$/ { bad = 1; print } END { exit bad }' \
		"$W/ctl-reserved.txt"
}
check "mintctl certs reserved lists exactly the $N_RESERVED reserved serials (serial, CA, site, time)" lists_reserved
check "mintctl certs reserved --older-than 1h: none (every reservation is minutes old)" \
	eval 'ctl_reserved --older-than 1h >"$W/ctl-old.txt" && [ ! -s "$W/ctl-old.txt" ]'
# An older reservation (as a crash days ago leaves it) and a newer one.
OLD=f00d0000000000000000000000000001
pg -c "insert into serial_blocks (ca, reserved_at, serials) values
	('dev', now() - interval '3 days', array['$OLD']),
	('dev', now() - interval '36 hours', array['f00d0000000000000000000000000002'])" >/dev/null
check "mintctl certs reserved --older-than 2d: only the 3-day-old reservation" \
	eval 'ctl_reserved --older-than 2d >"$W/ctl-2d.txt" && [ "$(cut -f1 "$W/ctl-2d.txt")" = "$OLD" ]'
limit_one() {
	ctl_reserved --older-than 1d --limit 1 >"$W/ctl-limit.txt" 2>"$W/ctl-limit.err" || return 1
	[ "$(cut -f1 "$W/ctl-limit.txt")" = "$OLD" ] && grep -q 'more than 1' "$W/ctl-limit.err" && return 0
	cat "$W/ctl-limit.txt" "$W/ctl-limit.err"
	return 1
}
check "mintctl certs reserved --limit 1: the oldest, and a note that more were left out" limit_one
check "mintctl certs reserved --older-than junk: refused with exit 2" \
	eval 'ctl_reserved --older-than 3weeks 2>"$W/ctl-bad.err"; [ $? = 2 ] && grep -q older-than "$W/ctl-bad.err"'
helps() { "$@" >"$W/help.out" && grep -q usage "$W/help.out"; }
check "mintctl certs reserved --help: exit 0 and usage" helps "$B/mintctl" certs reserved --help
check "mintctl runs: no sanitizer report" no_sanitizer_report "$W/ctl-reserved.err" "$W/ctl-limit.err" "$W/ctl-bad.err"

echo "# $(($(date +%s) - START)) s in all"
echo "$PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
