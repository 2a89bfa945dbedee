#!/bin/sh
# Integration test: HSM trouble. The real mintcad signs through
# tests/pkcs11-fault (pkcs11-fault.so), a PKCS#11 module that forwards to
# SoftHSM2 and, when told through a control file, loses the token's sessions,
# answers CKR_DEVICE_ERROR or stalls. The server must re-open the token
# without a restart, answer 503 (with Retry-After, no certificate, nothing
# issued) while it cannot sign, and never leave a worker hanging on a stalled
# token. Prints "ok - ..." / "not ok - ...", then "N passed, M failed"; exits
# 1 when a check or the set-up failed.
#
#   MINTCA_BUILD=build|build-asan sh tests/integration/hsm.sh   (make integration)
set -u

REPO=$(cd "$(dirname "$0")/../.." && pwd -P)
B=${MINTCA_BUILD:-build}
case $B in /*) ;; *) B=$REPO/$B ;; esac
. "$REPO/tests/integration/lib.sh"

it_prepare curl openssl ss softhsm2-util pkcs11-tool
[ -f "$B/pkcs11-fault.so" ] || setup_fail "$B/pkcs11-fault.so missing: make $B/pkcs11-fault.so"

it_setup
curl_users factory
FACTORY=$(basic factory)

# The fault module sits between mintcad and SoftHSM; its control file starts empty.
export MINTCA_FAULT_MODULE="$MINTCA_PKCS11_MODULE"
export MINTCA_FAULT_CTL="$W/fault.ctl"
export MINTCA_FAULT_LOG="$W/fault.log"
echo none >"$MINTCA_FAULT_CTL"
: >"$MINTCA_FAULT_LOG"

cat >"$DIR/test.json" <<EOF || setup_fail "cannot write $DIR/test.json"
{
  "server": { "listen": "127.0.0.1", "port": $PORT, "threads": 2, "max_connections": 64,
              "connection_timeout_s": 30, "max_body_bytes": 65536, "public_name": "localhost" },
  "tls": { "cert_file": "$DIR/tls/server.crt", "key_file": "$DIR/tls/server.key" },
  "database": { "dsn": "$MINTCA_DSN" },
  "ca": {
    "name": "dev",
    "root_subject": "/O=mintca/CN=mintca hsm test root CA",
    "issuing_subject": "/O=mintca/CN=mintca hsm test issuing CA",
    "root_validity_days": 7300, "issuing_validity_days": 3650,
    "signer": { "type": "pkcs11", "module": "$B/pkcs11-fault.so", "token_label": "mintca",
                "pin_file": "$DIR/secrets/pkcs11.pin", "root_key_label": "mintca-root",
                "issuing_key_label": "mintca-issuing" }
  },
  "log": { "level": "info" },
  "est": { "default_profile": "device" },
  "users": [ { "name": "factory", "password_hash": "$HASH" } ],
  "client_cert_anchors": [],
  "profiles": [
    { "name": "device", "key_types": ["ec-p256"], "validity_days": 30,
      "extended_key_usage": ["clientAuth"], "auth": { "basic_users": ["factory"] } }
  ]
}
EOF

i=1
while [ $i -le 12 ]; do
	mkcsr dev$i p256 "/CN=hsm-device-$i" "DNS:hsm-device-$i.example" >>"$W/setup.log" 2>&1 ||
		setup_fail "cannot make the test CSRs: $(tail -n 5 "$W/setup.log")"
	i=$((i + 1))
done

LOG=$W/mintcad.log
start_server "$LOG" >"$W/start.out" 2>&1 || setup_fail "$(cat "$W/start.out")"

# fault COMMAND: tell the fault module what to do next (atomically).
fault() { printf '%s\n' "$1" >"$MINTCA_FAULT_CTL.tmp" && mv "$MINTCA_FAULT_CTL.tmp" "$MINTCA_FAULT_CTL"; }
fault_used_up() { [ "$(cat "$MINTCA_FAULT_CTL")" = none ] || { echo "control file: $(cat "$MINTCA_FAULT_CTL")"; return 1; }; }
injected() { grep -c "^$1 " "$MINTCA_FAULT_LOG"; }

ISSUED=0  # certificates handed out
REFUSED=0 # 503 answers: each left one serial 'reserved'

# A 503 from the signer: no certificate, no internal detail, Retry-After.
refused_503() {
	status_and_reason 503 'request id' || return 1
	if grep -Eiq 'pkcs|token|CKR|session' "$BODY"; then
		echo "the 503 body shows internal detail"
		show_response
		return 1
	fi
	header_is Retry-After '^[0-9]+$'
}

# enroll_until_ok NAME SECONDS: enroll NAME until it is 200, at most SECONDS;
# every other answer must be a clean 503. Sets N503.
enroll_until_ok() {
	euo_end=$(($(date +%s) + $2))
	N503=0
	while :; do
		enroll /.well-known/est/simpleenroll "$W/$1.b64" $FACTORY
		case $ST in
		200) got_cert "$1" || return 1; ISSUED=$((ISSUED + 1)); return 0 ;;
		503) refused_503 || return 1; N503=$((N503 + 1)); REFUSED=$((REFUSED + 1)) ;;
		*) echo "expected 200 or 503"; show_response; return 1 ;;
		esac
		[ "$(date +%s)" -lt "$euo_end" ] || { echo "still no certificate after $2 s ($N503 answers 503)"; return 1; }
		sleep 0.3
	done
}

# --- 1. a healthy token --------------------------------------------------------

enroll /.well-known/est/simpleenroll "$W/dev1.b64" $FACTORY
check "through the fault module, no fault: simpleenroll is 200" eval 'got_cert dev1 && ISSUED=$((ISSUED + 1))'
check "the fault module forwards to SoftHSM (nothing injected yet)" eval '[ "$(wc -l <"$MINTCA_FAULT_LOG")" = 0 ]'

# --- 2. lost sessions ------------------------------------------------------------

# One lost session: the signer re-opens the token and the same request succeeds.
fault "session_invalid 1"
enroll /.well-known/est/simpleenroll "$W/dev2.b64" $FACTORY
check "session_invalid once: the same simpleenroll is 200 (token re-opened, signature retried)" \
	eval 'got_cert dev2 && ISSUED=$((ISSUED + 1))'
check "session_invalid once: the fault was met and used up" eval '[ "$(injected session_invalid)" -ge 1 ] && fault_used_up'
check "session_invalid once: log has signer.session_lost and signer.reopened" \
	eval 'grep -q "\"event\":\"signer.session_lost\".*CKR_SESSION_HANDLE_INVALID" "$LOG" && grep -q "\"event\":\"signer.reopened\"" "$LOG"'
check "after the re-open: the next simpleenroll is 200" enroll_until_ok dev3 1

# The token keeps losing its sessions for a while (the re-open's login fails too).
fault "session_invalid 3"
check "session_invalid x3: 503 with Retry-After while the token is down, then 200 without a restart" \
	eval 'enroll_until_ok dev4 15 && [ "$N503" -ge 1 ]'
check "session_invalid x3: the fault was used up; the re-open's login failed (signer.reopen_failed)" \
	eval 'fault_used_up && grep -q "\"event\":\"signer.reopen_failed\"" "$LOG"'

# --- 3. device errors --------------------------------------------------------------

fault "device_error 3"
check "device_error x3: 503 with Retry-After, then 200 without a restart" \
	eval 'enroll_until_ok dev5 15 && [ "$N503" -ge 1 ]'
check "device_error x3: the fault was used up" fault_used_up
check "after device errors: simpleenroll is 200" enroll_until_ok dev6 1

# --- 4. a stalled token --------------------------------------------------------------

# The next token call sleeps 14 s: longer than the signing deadline (10 s).
fault "stall 1 14"
curl -sS --max-time 60 --cacert "$CURL_CA" --resolve "localhost:$PORT:127.0.0.1" $FACTORY \
	-H 'Content-Type: application/pkcs10' --data-binary "@$W/dev7.b64" \
	-o "$W/stall.body" -D "$W/stall.hdr" -w '%{http_code}' \
	"$BASE/.well-known/est/simpleenroll" >"$W/stall.status" 2>"$W/stall.err" &
STALL_PID=$!
# When the signature reached the token (under the sanitizers the request
# takes a while to get there: Basic authentication is PBKDF2).
stall_taken() { # stall_taken N: the Nth stall was met
	st_end=$(($(date +%s) + 30))
	until [ "$(injected stall)" = "$1" ]; do
		[ "$(date +%s)" -lt "$st_end" ] || { echo "the stall was not taken within 30 s"; return 1; }
		sleep 0.2
	done
	T_STALL=$(date +%s)
}
T_STALL=$(date +%s)
check "a signature is stalled in the token" stall_taken 1
sleep 1
http /.well-known/est/cacerts
check "while one signature is stalled: cacerts is still answered (200)" status_is 200
check "while one signature is stalled: another simpleenroll is 200 (another signer thread)" enroll_until_ok dev8 1
wait "$STALL_PID"
t1=$(date +%s)
ST=$(cat "$W/stall.status")
BODY=$W/stall.body HDR=$W/stall.hdr REQ_DESC="stalled simpleenroll"
check "stalled token: the request waits out the deadline and gets 503 with Retry-After" \
	eval 'refused_503 && REFUSED=$((REFUSED + 1))'
check "stalled token: answered about 10 s after the stall, before the token wakes up (took $((t1 - T_STALL)) s)" \
	eval '[ $((t1 - T_STALL)) -ge 8 ] && [ $((t1 - T_STALL)) -le 13 ]'
check "stalled token: log has signer.timeout" grep -q '"event":"signer.timeout"' "$LOG"
check "after the stall: simpleenroll is 200" enroll_until_ok dev9 1
# The stalled call returns 14 s after it started; its signature is discarded.
log_within() { # log_within SECONDS REGEX
	lw_end=$(($(date +%s) + $1))
	until grep -q "$2" "$LOG"; do
		[ "$(date +%s)" -lt "$lw_end" ] || { echo "no /$2/ in the log after $1 s"; return 1; }
		sleep 0.5
	done
}
check "the stalled signature came back late and was discarded (signer.late_answer)" \
	log_within 10 '"event":"signer.late_answer".*discarded'
check "after the late answer: simpleenroll is 200" enroll_until_ok dev10 1

# --- 4b. OCSP while the token stalls -------------------------------------------------

# A response not in the cache is signed by the responder key on the same
# token: on a pool thread, with the same deadline. The HTTP threads keep
# answering meanwhile, and the relying party gets tryLater, not a hang.
curl -sS --max-time 30 --cacert "$CURL_CA" --resolve "localhost:$PORT:127.0.0.1" \
	-o "$W/issuing.der" "$BASE/ca/dev.crt" 2>"$W/ocsp.err"
openssl x509 -inform DER -in "$W/issuing.der" -out "$W/issuing-ocsp.pem" 2>>"$W/ocsp.err"
openssl ocsp -issuer "$W/issuing-ocsp.pem" -cert "$W/dev1.pem" -no_nonce -reqout "$W/ocsp.req" \
	>/dev/null 2>>"$W/ocsp.err"
check "an OCSP request for dev1 is made (issuer from /ca/dev.crt)" eval '[ -s "$W/ocsp.req" ] || { cat "$W/ocsp.err"; false; }'
fault "stall 1 14"
T_STALL=$(date +%s)
curl -sS --max-time 60 --cacert "$CURL_CA" --resolve "localhost:$PORT:127.0.0.1" \
	-H 'Content-Type: application/ocsp-request' --data-binary "@$W/ocsp.req" \
	-o "$W/ocsp.resp" -w '%{http_code}' "$BASE/ocsp" >"$W/ocsp.status" 2>>"$W/ocsp.err" &
OCSP_PID=$!
check "the OCSP signature is stalled in the token" stall_taken 2
http /health
check "while the OCSP signature is stalled: /health over HTTPS is 200" status_is 200
wait "$OCSP_PID"
t1=$(date +%s)
ocsp_trylater() {
	[ "$(cat "$W/ocsp.status")" = 200 ] || { echo "HTTP $(cat "$W/ocsp.status")"; return 1; }
	openssl ocsp -respin "$W/ocsp.resp" -resp_text -noverify 2>&1 | grep -q 'Responder Error: trylater' ||
		{ openssl ocsp -respin "$W/ocsp.resp" -resp_text -noverify 2>&1 | head -n 3; return 1; }
}
check "stalled token: OCSP answers tryLater (RFC 6960 §2.3) after the deadline (took $((t1 - T_STALL)) s)" \
	eval 'ocsp_trylater && [ $((t1 - T_STALL)) -le 13 ]'
check "after the OCSP stall's late answer: simpleenroll is 200" \
	eval 'log_within 10 "\"event\":\"signer.late_answer\".*\"mintca-issuing-ocsp\"" && enroll_until_ok dev11 1'

# --- 5. the store -------------------------------------------------------------------------

# Each 503 came after its serial was reserved (the signature is step 8): it
# stays 'reserved' (checked after the stop, which gives back the serials
# reserved ahead and never used). Every 'issued' row is a certificate a
# client holds.
issued_rows_match() {
	got_issued=$(pg -c "select count(*) from certificates where status = 'issued' and ca = 'dev' and profile = 'device'")
	[ "$got_issued" = "$ISSUED" ] || { echo "$got_issued rows issued, $ISSUED certificates handed out"; return 1; }
	for f in "$W"/dev*.pem; do
		s=$(serial_of "$f")
		[ "$(pg -c "select status from certificates where serial = '$s'")" = issued ] ||
			{ echo "serial $s of $f is not 'issued'"; return 1; }
	done
}
check "store: one 'issued' row per certificate handed out" issued_rows_match

# --- 6. stop --------------------------------------------------------------------------------

stop_server
check "SIGTERM: mintcad exits 0 (exit status $STOP_RC)" eval '[ "$STOP_RC" = 0 ]'
reserved_rows_match() {
	got_reserved=$(pg -c "select count(*) from reserved_serials")
	[ "$got_reserved" = "$REFUSED" ] || { echo "$got_reserved rows reserved, $REFUSED requests refused with 503"; return 1; }
}
check "after the stop: exactly the refused requests' serials stay 'reserved' (unused ones given back)" reserved_rows_match
check "no sanitizer report in the server log" no_sanitizer_report "$LOG"

echo "$PASS passed, $FAIL failed ($(($(date +%s) - START)) s)"
[ "$FAIL" -eq 0 ]
