# Helpers for tests/integration/run.sh (POSIX sh, sourced). They use the
# globals run.sh sets: REPO, B, DIR (data folder), W (captured output), BASE
# (https://localhost:PORT), CURL_CA (trust for the server's TLS certificate).

PASS=0
FAIL=0
CHECK_N=0
REQ_N=0

# check DESCRIPTION COMMAND [ARGS...]: run the command in this shell (it may
# set variables), its output captured; print "ok - ..." or "not ok - ..."
# followed by that output.
check() {
	check_desc=$1
	shift
	CHECK_N=$((CHECK_N + 1))
	check_out=$W/check-$CHECK_N.out
	if "$@" >"$check_out" 2>&1; then
		PASS=$((PASS + 1))
		echo "ok - $check_desc"
	else
		FAIL=$((FAIL + 1))
		echo "not ok - $check_desc"
		sed -e 's/^/#   /' "$check_out" | head -n 40
	fi
}

# Set-up failed: say why, print the summary and stop (the EXIT trap cleans up).
setup_fail() {
	echo "set-up failed: $*"
	FAIL=$((FAIL + 1))
	echo "$PASS passed, $FAIL failed"
	exit 1
}

# Tell the last response, for a failing check.
show_response() {
	echo "last response: HTTP $ST ($REQ_DESC)"
	tr -d '\r' < "$HDR" | sed -n '2,$p' | grep -iv '^date:' | sed -e 's/^/  < /'
	head -c 600 "$BODY" | sed -e 's/^/  | /'
	echo
}

# --- HTTP -------------------------------------------------------------------

# http PATH [CURL ARGS...]: one request to the server. Sets ST (HTTP status,
# 000 when no answer), BODY and HDR (files with the body and the headers).
http() {
	http_path=$1
	shift
	REQ_N=$((REQ_N + 1))
	BODY=$W/resp-$REQ_N.body
	HDR=$W/resp-$REQ_N.hdr
	REQ_DESC="$* $http_path"
	: >"$HDR"
	ST=$(curl -sS --max-time 30 --cacert "$CURL_CA" --resolve "localhost:$PORT:127.0.0.1" \
		-o "$BODY" -D "$HDR" -w '%{http_code}' "$@" "$BASE$http_path" 2>"$W/resp-$REQ_N.err") || :
	[ -n "$ST" ] || ST=000
	[ -f "$BODY" ] || : >"$BODY"
}

# enroll PATH CSR_FILE [CURL ARGS...]: POST a base64 CSR as EST does.
enroll() {
	enroll_path=$1 enroll_file=$2
	shift 2
	http "$enroll_path" -H 'Content-Type: application/pkcs10' --data-binary "@$enroll_file" "$@"
}

# Curl config files keep the Basic credentials off the command line.
basic() { echo "-K $DIR/secrets/curl-$1.conf"; }

status_is() {
	[ "$ST" = "$1" ] && return 0
	echo "expected HTTP $1"
	show_response
	return 1
}

# header_is NAME REGEX: the response has header NAME matching REGEX (ERE, case-insensitive).
header_is() {
	header_v=$(tr -d '\r' < "$HDR" | grep -i "^$1:" | head -n 1 | sed -e 's/^[^:]*: *//')
	if printf '%s\n' "$header_v" | grep -Eiq "$2"; then
		return 0
	fi
	echo "header $1 is '$header_v', expected /$2/"
	show_response
	return 1
}

# status_and_reason STATUS REGEX: answer STATUS with a text/plain body that
# says why (matching REGEX, case-insensitive) and carries no certificate.
status_and_reason() {
	status_is "$1" || return 1
	if ! grep -Eiq "$2" "$BODY"; then
		echo "body does not say why (expected /$2/)"
		show_response
		return 1
	fi
	header_is Content-Type '^text/plain' || return 1
	no_cert_in_body
}

no_cert_in_body() {
	if grep -q 'MII' "$BODY" || openssl base64 -d -in "$BODY" 2>/dev/null |
		openssl pkcs7 -inform DER -print_certs 2>/dev/null | grep -q 'BEGIN CERTIFICATE'; then
		echo "the body holds a certificate"
		show_response
		return 1
	fi
	return 0
}

# got_cert NAME: the answer is 200, base64 certs-only PKCS#7 holding exactly
# one certificate, saved as $W/NAME.pem.
got_cert() {
	status_is 200 || return 1
	header_is Content-Type '^application/pkcs7-mime; *smime-type=certs-only$' || return 1
	header_is Content-Transfer-Encoding '^base64$' || return 1
	if ! openssl base64 -d -in "$BODY" | openssl pkcs7 -inform DER -print_certs -out "$W/$1.pem"; then
		echo "body does not decode as base64 DER PKCS#7"
		show_response
		return 1
	fi
	got_n=$(grep -c 'BEGIN CERTIFICATE' "$W/$1.pem")
	[ "$got_n" = 1 ] || { echo "$got_n certificates in the answer, expected 1"; return 1; }
}

# --- certificates and CSRs --------------------------------------------------

# mkcsr NAME KEY SUBJECT [SAN]: key $W/NAME.key, CSR $W/NAME.der (DER) and
# $W/NAME.b64 (base64, the EST body). KEY: p256 p384 secp256k1 rsa2048 rsa1024 ed25519.
mkcsr() {
	case $2 in
	p256) mk_key="-newkey ec -pkeyopt ec_paramgen_curve:P-256" ;;
	p384) mk_key="-newkey ec -pkeyopt ec_paramgen_curve:P-384" ;;
	secp256k1) mk_key="-newkey ec -pkeyopt ec_paramgen_curve:secp256k1" ;;
	rsa2048) mk_key="-newkey rsa:2048" ;;
	rsa1024) mk_key="-newkey rsa:1024" ;;
	ed25519) mk_key="-newkey ed25519" ;;
	*) echo "mkcsr: unknown key $2"; return 1 ;;
	esac
	# shellcheck disable=SC2086
	if [ -n "${4:-}" ]; then
		openssl req -new $mk_key -nodes -keyout "$W/$1.key" -subj "$3" \
			-addext "subjectAltName=$4" -outform DER -out "$W/$1.der" 2>"$W/$1.req.err"
	else
		openssl req -new $mk_key -nodes -keyout "$W/$1.key" -subj "$3" \
			-outform DER -out "$W/$1.der" 2>"$W/$1.req.err"
	fi || { cat "$W/$1.req.err"; return 1; }
	openssl base64 -in "$W/$1.der" -out "$W/$1.b64"
}

# Subject (RFC 2253) and subjectAltName line of a CSR (DER) or certificate (PEM).
csr_subject() { openssl req -in "$1" -inform DER -noout -subject -nameopt RFC2253 | sed -e 's/^subject=//'; }
cert_subject() { openssl x509 -in "$1" -noout -subject -nameopt RFC2253 | sed -e 's/^subject=//'; }
san_line() { awk '/X509v3 Subject Alternative Name/ { getline; gsub(/^ +| +$/, ""); print }'; }
csr_san() { openssl req -in "$1" -inform DER -noout -text | san_line; }
cert_san() { openssl x509 -in "$1" -noout -text | san_line; }
serial_of() { openssl x509 -in "$1" -noout -serial | sed -e 's/^serial=//' | tr 'A-F' 'a-f'; }
der_hex() { openssl x509 -in "$1" -outform DER | od -An -v -tx1 | tr -d ' \n'; }
not_after() { openssl x509 -in "$1" -noout -enddate | sed -e 's/^notAfter=//'; }
not_before() { openssl x509 -in "$1" -noout -startdate | sed -e 's/^notBefore=//'; }
epoch() { date -u -d "$1" +%s; }

verifies() {
	openssl verify -CAfile "$W/root.pem" -untrusted "$W/issuing.pem" "$W/$1.pem"
}

# names_match CERT CSR: same subject and subjectAltNames.
names_match() {
	nm_cs=$(cert_subject "$W/$1.pem") nm_rs=$(csr_subject "$W/$2.der")
	nm_ca=$(cert_san "$W/$1.pem") nm_ra=$(csr_san "$W/$2.der")
	[ "$nm_cs" = "$nm_rs" ] && [ "$nm_ca" = "$nm_ra" ] && [ -n "$nm_cs" ] && return 0
	echo "certificate: subject '$nm_cs' SAN '$nm_ca'"
	echo "request:     subject '$nm_rs' SAN '$nm_ra'"
	return 1
}

# --- database ---------------------------------------------------------------

pg() { sh "$REPO/deploy/embedded.sh" psql "$DIR" -XAtq "$@"; }
# Issued certificates (serials reserved ahead are in serial_blocks: ca-core/serial_pool.c).
rows() { pg -c "select count(*) from certificates where status = 'issued'"; }

rows_are() {
	rows_now=$(rows)
	[ "$rows_now" = "$1" ] && return 0
	echo "certificates has $rows_now rows, expected $1"
	pg -c 'select serial, status, profile, requester from certificates order by reserved_at desc limit 3'
	return 1
}

# db_row_is CERT "status|profile|protocol|requester"
db_row_is() {
	db_s=$(serial_of "$W/$1.pem")
	db_got=$(pg -c "select status, profile, protocol, requester from certificates where serial='$db_s'")
	[ "$db_got" = "$2" ] && return 0
	echo "row of serial $db_s: '$db_got', expected '$2'"
	return 1
}

db_der_matches() {
	db_s=$(serial_of "$W/$1.pem")
	db_der=$(pg -c "select encode(der, 'hex') from certificates where serial='$db_s'")
	[ -n "$db_der" ] && [ "$db_der" = "$(der_hex "$W/$1.pem")" ] && return 0
	echo "stored DER of $db_s differs from the returned certificate"
	echo "stored:   $(printf %s "$db_der" | cut -c1-80)..."
	echo "returned: $(der_hex "$W/$1.pem" | cut -c1-80)..."
	return 1
}

# audit_row_is CERT "action|actor|protocol"
audit_row_is() {
	db_s=$(serial_of "$W/$1.pem")
	db_got=$(pg -c "select action, actor, protocol from audit where serial='$db_s'")
	[ "$db_got" = "$2" ] && return 0
	echo "audit rows of serial $db_s: '$db_got', expected exactly one '$2'"
	return 1
}

# --- the server -------------------------------------------------------------

# start_server LOG: run mintcad in the background (PID), wait for server.ready.
start_server() {
	"$B/mintcad" -c "$DIR/test.json" 2>"$1" &
	PID=$!
	ss_i=0
	while [ $ss_i -lt 100 ]; do
		grep -q '"event":"server.ready"' "$1" && return 0
		kill -0 "$PID" 2>/dev/null || break
		sleep 0.2
		ss_i=$((ss_i + 1))
	done
	echo "mintcad did not log server.ready within 20 s; its log:"
	tail -n 20 "$1"
	return 1
}

# stop_server: SIGTERM, wait up to 10 s; STOP_RC is its exit status (or
# "timeout", after which it is killed).
stop_server() {
	STOP_RC=none
	[ -n "${PID:-}" ] || return 1
	kill -TERM "$PID" 2>/dev/null || :
	st_i=0
	while kill -0 "$PID" 2>/dev/null && [ $st_i -lt 50 ]; do
		sleep 0.2
		st_i=$((st_i + 1))
	done
	if kill -0 "$PID" 2>/dev/null; then
		STOP_RC=timeout
		kill -KILL "$PID" 2>/dev/null || :
	fi
	STOP_RC_W=0
	wait "$PID" || STOP_RC_W=$?
	[ "$STOP_RC" = timeout ] || STOP_RC=$STOP_RC_W
	PID=
}

# no_sanitizer_report FILE...: no ASan, UBSan or LSan report in the files.
no_sanitizer_report() {
	if grep -n -E 'ERROR: AddressSanitizer|runtime error:|ERROR: LeakSanitizer' "$@"; then
		for f in "$@"; do
			grep -q -E 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$f" &&
				sed -n '/Sanitizer\|runtime error/,$p' "$f" | head -n 60
		done
		return 1
	fi
	return 0
}

# --- the common set-up of every integration script ---------------------------

# it_prepare TOOL...: sanitizer options, cleanup on exit (mintcad, the cluster
# wherever embedded.sh put it, the data folder), the tools the script needs,
# a fresh data folder DIR with W=$DIR/work, a free PORT, BASE and CURL_CA.
# Needs REPO and B.
it_prepare() {
	# Under the sanitizer build mintcad and mintctl run under ASan/UBSan;
	# leaks in third-party libraries at exit are suppressed by tests/lsan.supp
	# only. One of libp11's leaks is allocated by libcrypto (no frame
	# pointers) on libp11's behalf: the slow unwinder is needed to see the
	# libp11 frame, and 8 frames keep it affordable.
	export ASAN_OPTIONS=abort_on_error=0:detect_leaks=1:fast_unwind_on_malloc=0:malloc_context_size=8
	export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
	export LSAN_OPTIONS=suppressions=$REPO/tests/lsan.supp:print_suppressions=0
	START=$(date +%s)
	PID=
	DIR=
	PORT=
	trap it_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	[ -x "$B/mintcad" ] && [ -x "$B/mintctl" ] || setup_fail "$B/mintcad or $B/mintctl missing: make all first"
	for tool in "$@"; do
		command -v "$tool" >/dev/null 2>&1 || setup_fail "$tool is not installed (make deps)"
	done
	DIR=$(mktemp -d) || setup_fail "mktemp -d failed"
	W=$DIR/work
	mkdir "$W" || setup_fail "cannot create $W"
	# A free TCP port: a random one below Linux's ephemeral range (32768 and
	# up, where an outgoing connection may hold it) that no socket uses.
	it_i=0
	while [ $it_i -lt 50 ]; do
		it_p=$((20000 + $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 12000))
		if [ -z "$(ss -Htan "sport = :$it_p")" ]; then
			PORT=$it_p
			break
		fi
		it_i=$((it_i + 1))
	done
	[ -n "$PORT" ] || setup_fail "no free port found"
	BASE=https://localhost:$PORT
	CURL_CA=$DIR/tls/server.crt
}

it_cleanup() {
	trap - EXIT INT TERM
	if [ -n "$PID" ]; then
		kill -TERM "$PID" 2>/dev/null || :
		sleep 1
		kill -KILL "$PID" 2>/dev/null || :
	fi
	[ -n "$DIR" ] || return 0
	# Stops the cluster and removes it (also when it lives in /var/tmp) and DIR.
	sh "$REPO/deploy/embedded.sh" destroy "$DIR" >/dev/null 2>&1 || :
	rm -rf "$DIR"
}

# no_secret_in NAME VALUE FILE|DIR...: VALUE (a password or PIN) is in none of
# the files (folders searched whole), as run.sh checks its own logs.
no_secret_in() {
	ns_name=$1 ns_value=$2
	shift 2
	[ -n "$ns_value" ] || { echo "the $ns_name is empty: nothing to look for"; return 1; }
	if grep -rlF -- "$ns_value" "$@"; then
		echo "the $ns_name appears in the files above"
		return 1
	fi
	return 0
}

# it_setup [VAR=VALUE...]: deploy/embedded.sh's set-up in DIR (PostgreSQL,
# SoftHSM token, secrets, its config as $DIR/mintcad.json), VAR=VALUE added
# to its environment. Sources $DIR/env; sets HASH (factory's password hash
# in mintcad.json), PASSWORD (factory's), PIN and SO_PIN (the token's).
it_setup() {
	env MINTCTL="$B/mintctl" MINTCA_PORT="$PORT" "$@" sh "$REPO/deploy/embedded.sh" setup "$DIR" \
		>"$W/setup.log" 2>&1 || setup_fail "deploy/embedded.sh setup: $(tail -n 5 "$W/setup.log")"
	. "$DIR/env"
	HASH=$(sed -n 's/.*"password_hash": *"\([^"]*\)".*/\1/p' "$DIR/mintcad.json")
	PASSWORD=$(cat "$DIR/secrets/est-factory.password")
	PIN=$(cat "$DIR/secrets/pkcs11.pin")
	SO_PIN=$(cat "$DIR/secrets/pkcs11.so-pin")
	[ -n "$HASH" ] && [ -n "$PASSWORD" ] && [ -n "$PIN" ] && [ -n "$SO_PIN" ] ||
		setup_fail "password hash or secrets missing in $DIR"
}

# curl_users USER...: for each, $DIR/secrets/curl-USER.conf (0600: a password
# is never on a command line) with USER and factory's password; "wrongpw"
# is user factory with a wrong password. Use them with $(basic USER).
curl_users() {
	(
		umask 077
		for cu in "$@"; do
			case $cu in
			wrongpw) cu_line="factory:not-the-password-$PORT" ;;
			*) cu_line="$cu:$PASSWORD" ;;
			esac
			printf 'user = "%s"\n' "$cu_line" >"$DIR/secrets/curl-$cu.conf" || exit 1
		done
	) || setup_fail "cannot write curl config files"
}

# cheap_hash: HASH becomes factory's password hashed with the fewest PBKDF2
# iterations mintctl allows (10,000): mintcad checks it on every request, and
# at the default 50,000 (about 25 ms of CPU here, a second under the
# sanitizers) the hashing alone caps a load test at about 40 enrollments per
# second and core.
cheap_hash() {
	HASH=$("$B/mintctl" passwd --iterations 10000 <"$DIR/secrets/est-factory.password" 2>"$W/passwd.err")
	case $HASH in pbkdf2-sha256\$10000\$*) ;; *) setup_fail "mintctl passwd printed no hash: $(cat "$W/passwd.err")" ;; esac
}

# it_embedded_setup: it_setup, curl-factory.conf, and deploy/embedded.sh's
# config as $DIR/test.json with factory's password hashed by cheap_hash.
it_embedded_setup() {
	it_setup
	curl_users factory
	cheap_hash
	sed -e "s|\"password_hash\": *\"[^\"]*\"|\"password_hash\": \"$HASH\"|" \
		"$DIR/mintcad.json" >"$DIR/test.json" &&
		grep -qF "$HASH" "$DIR/test.json" || setup_fail "cannot write $DIR/test.json"
}
