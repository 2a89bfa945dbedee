#!/bin/sh
# OCSP load benchmark (run by tests/bench/run.sh, i.e. `make bench`).
#
# Sets up its own throwaway PostgreSQL cluster, SoftHSM token and config
# (deploy/embedded.sh in a temporary folder), starts mintcad with its
# plain-HTTP listener, loads BENCH_OCSP_ROWS (1,000,000) issued certificates
# of the server's issuing CA with COPY (bench_ocspgen makes them; 1% of them
# revoked), and then measures, with loadgen over BENCH_OCSP_CONNS (16)
# keep-alive connections, BENCH_OCSP_SECONDS (10) after a warm-up of
# BENCH_OCSP_WARMUP (3) s each, the same BENCH_OCSP_SAMPLE (2000) DER
# requests (one SHA-1 CertID, no nonce: RFC 5019) POSTed to
#   1. mintcad's /ocsp (skipped, and said so, while the server has no OCSP route);
#   2. `openssl ocsp -index -multi 2 -nmin 60` over the same 1,000,000
#      certificates (index.txt written from the same rows), signing with a
#      delegated responder certificate issued by the same issuing CA
#      (`mintctl issue`; its key in a file), so its answers verify like
#      mintcad's; it answers HTTP/1.0 and closes each connection, so loadgen
#      reconnects for every request there;
#   3. nginx (2 workers) answering every request with a static file of the
#      size of mintcad's response (of openssl's while mintcad has none).
# Prints responses/s, p50/p99/max latency, errors and stalled requests
# (slower than 1 s) of each, and the ratios: mintcad / openssl ocsp (goal
# >= 2x), mintcad / nginx (goal >= 50%), no request stalled.
# BENCH_OCSP_GET=1 sends GET /<base64> (RFC 5019 §A.1) instead of POST.
# Nothing is asserted on timing; the exit status is 0 unless the set-up fails.
set -eu

REPO=$(cd "$(dirname "$0")/../.." && pwd -P)
B=${MINTCA_BUILD:-build}
case $B in /*) ;; *) B=$REPO/$B ;; esac
. "$REPO/tests/bench/lib.sh"

ROWS=${BENCH_OCSP_ROWS:-1000000}
SAMPLE=${BENCH_OCSP_SAMPLE:-2000}
CONNS=${BENCH_OCSP_CONNS:-16}
SECS=${BENCH_OCSP_SECONDS:-10}
WARM=${BENCH_OCSP_WARMUP:-3}
LG_THREADS=${BENCH_OCSP_LOADGEN_THREADS:-1}
STALL_MS=1000

bench_prepare ocsp openssl nginx curl ss pgrep
[ -x "$B/bench_ocspgen" ] || die "$B/bench_ocspgen missing: run 'make bench'"

PORT=$(free_port)
HPORT=$(free_port)
OPORT=$(free_port)
NPORT=$(free_port)
HBASE=http://127.0.0.1:$HPORT

echo "== OCSP: setting up PostgreSQL, SoftHSM and mintcad in $T"
setup_embedded "$PORT" "$HPORT"
HASH=$(sed -n 's/.*"password_hash": *"\([^"]*\)".*/\1/p' "$DIR/mintcad.json")
# The embedded config, plus an operator-only profile for the delegated
# responder certificate `openssl ocsp` signs with (RFC 6960 §4.2.2.2:
# id-kp-OCSPSigning, id-pkix-ocsp-nocheck).
cat >"$DIR/bench.json" <<EOF
{
  "server": { "listen": "127.0.0.1", "port": $PORT, "http_port": $HPORT, "threads": 2,
              "max_connections": 512, "connection_timeout_s": 30, "max_body_bytes": 65536,
              "public_name": "localhost", "public_base_url": "$HBASE" },
  "tls": { "cert_file": "$DIR/tls/server.crt", "key_file": "$DIR/tls/server.key" },
  "database": { "dsn": "$MINTCA_DSN" },
  "ca": {
    "name": "dev",
    "root_subject": "/O=mintca/CN=mintca bench root CA",
    "issuing_subject": "/O=mintca/CN=mintca bench issuing CA",
    "signer": { "type": "pkcs11", "module": "$MINTCA_PKCS11_MODULE", "token_label": "mintca",
                "pin_file": "$DIR/secrets/pkcs11.pin", "root_key_label": "mintca-root",
                "issuing_key_label": "mintca-issuing" }
  },
  "log": { "level": "info" },
  "revocation": { "crl_period": "1h", "crl_next_update": "1d", "crl_retention": "90d",
                  "ocsp_validity": "1h", "ocsp_responder_validity": "7d" },
  "est": { "default_profile": "device" },
  "users": [ { "name": "factory", "password_hash": "$HASH" } ],
  "client_cert_anchors": [],
  "profiles": [
    { "name": "device", "key_types": ["ec-p256"], "validity_days": 365,
      "extended_key_usage": ["clientAuth"], "auth": { "basic_users": ["factory"] } },
    { "name": "bench-ocsp-signer", "key_types": ["ec-p256"], "validity_days": 7,
      "extended_key_usage": ["OCSPSigning"], "key_usage": ["digitalSignature"],
      "custom_extensions": [ { "oid": "1.3.6.1.5.5.7.48.1.5", "critical": false, "der_hex": "0500" } ],
      "auth": { "operator": true } }
  ]
}
EOF
LOG=$W/mintcad.log
start_mintcad "$DIR/bench.json" "$LOG"

# The issuing CA and the root, from the store.
pg -c "select encode(cert_der, 'base64') from cas where name = 'dev'" | openssl base64 -d |
	openssl x509 -inform DER -out "$W/issuing.pem" || die "no issuing CA 'dev' in the store"
pg -c "select encode(cert_der, 'base64') from cas where name = 'dev-root'" | openssl base64 -d |
	openssl x509 -inform DER -out "$W/root.pem" || die "no root CA 'dev-root' in the store"

echo "== OCSP: $ROWS certificate rows with COPY (1% revoked), $SAMPLE requests"
t0=$(date +%s.%N)
"$B/bench_ocspgen" --issuer "$W/issuing.pem" --ca dev -n "$ROWS" --sample "$SAMPLE" \
	--index "$W/index.txt" --revocations "$W/revocations.copy" --requests "$W/requests.bin" \
	--expect "$W/expect.txt" 2>"$W/gen.log" |
	pg -c "COPY certificates (serial, ca, status, der, not_before, not_after, profile, issued_at) FROM STDIN" ||
	die "loading the certificates failed: $(cat "$W/gen.log")"
pg -c "COPY revocations (serial, ca, revoked_at, reason, crl_shard, not_after) FROM STDIN" \
	<"$W/revocations.copy" || die "loading the revocations failed"
pg -c "ANALYZE certificates; ANALYZE revocations"
t1=$(date +%s.%N)
sed -e 's/^bench_ocspgen: /  /' "$W/gen.log"
n_db=$(pg -c "select count(*) from certificates where profile = 'bench-ocsp'")
n_rev=$(pg -c "select count(*) from revocations")
awk -v n="$n_db" -v r="$n_rev" -v a="$t0" -v b="$t1" \
	'BEGIN { printf "  in the store: %d certificates, %d revoked; generated and loaded in %.1f s (%.0f rows/s)\n", n, r, b - a, n / (b - a) }'
[ "$n_db" = "$ROWS" ] || die "expected $ROWS rows in the store"
# `openssl ocsp` indexes subjects only when they must be unique; they need not.
echo "unique_subject = no" >"$W/index.txt.attr"

# The delegated responder certificate for `openssl ocsp`, from the same CA.
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$W/resp.key" \
	-subj "/O=mintca/CN=bench openssl ocsp responder" -out "$W/resp.csr" 2>/dev/null ||
	die "cannot make the responder key"
"$B/mintctl" issue -c "$DIR/bench.json" --profile bench-ocsp-signer --csr "$W/resp.csr" \
	--out "$W/resp.pem" 2>"$W/issue.log" || die "mintctl issue: $(cat "$W/issue.log")"

echo "== OCSP: starting openssl ocsp (-multi 2) on the same $ROWS certificates"
t0=$(date +%s.%N)
(cd "$W" && exec openssl ocsp -index index.txt -port "$OPORT" -rsigner resp.pem -rkey resp.key \
	-CA issuing.pem -multi 2 -nmin 60 >"$W/openssl-ocsp.log" 2>&1) &
OPID=$!
BENCH_PIDS="$BENCH_PIDS $OPID"
wait_port "$OPORT" 300 || die "openssl ocsp does not listen: $(tail -n 5 "$W/openssl-ocsp.log")"
t1=$(date +%s.%N)
awk -v a="$t0" -v b="$t1" 'BEGIN { printf "  listening after %.1f s (index loaded)\n", b - a }'

# One good and one revoked serial of the sample, asked of each responder
# with curl and checked with `openssl ocsp -respin` (signature verified
# against the root, status as loaded).
good=$(awk '$2 == "good" { print $1; exit }' "$W/expect.txt")
revoked=$(awk '$2 == "revoked" { print $1; exit }' "$W/expect.txt")
probe() { # probe NAME URL SERIAL WANT: 0 when the answer verifies and says WANT
	openssl ocsp -issuer "$W/issuing.pem" -serial "0x$3" -no_nonce -reqout "$W/probe-$1.req" >/dev/null 2>&1 ||
		return 1
	p_st=$(curl -sS -o "$W/probe-$1.resp" -w '%{http_code}' -H 'Content-Type: application/ocsp-request' \
		--data-binary "@$W/probe-$1.req" "$2" 2>"$W/probe-$1.err") || p_st=000
	if [ "$p_st" != 200 ]; then
		echo "HTTP $p_st" >"$W/probe-$1.out"
		return 1
	fi
	openssl ocsp -respin "$W/probe-$1.resp" -issuer "$W/issuing.pem" -serial "0x$3" -CAfile "$W/root.pem" \
		-verify_other "$W/issuing.pem" -no_nonce >"$W/probe-$1.out" 2>&1 || return 1
	grep -q "Response verify OK" "$W/probe-$1.out" && grep -q ": $4\$" "$W/probe-$1.out"
}
if ! probe openssl-good "http://127.0.0.1:$OPORT/" "$good" good ||
	! probe openssl-rev "http://127.0.0.1:$OPORT/" "$revoked" revoked; then
	die "openssl ocsp does not answer as expected: $(cat "$W"/probe-openssl-*.out)"
fi
MINTCAD_OCSP=no
if probe mintcad-good "$HBASE/ocsp" "$good" good && probe mintcad-rev "$HBASE/ocsp" "$revoked" revoked; then
	MINTCAD_OCSP=yes
	RESP_FILE=$W/probe-mintcad-good.resp
	echo "  mintcad /ocsp and openssl ocsp: a good and a revoked serial answered, signatures verified"
else
	RESP_FILE=$W/probe-openssl-good.resp
	echo "  mintcad /ocsp: not available ($(head -n 1 "$W/probe-mintcad-good.out" 2>/dev/null || echo "no answer")): only the baselines are measured"
fi
RESP_SIZE=$(wc -c <"$RESP_FILE")
nginx_start "$NPORT" http "$RESP_FILE" application/ocsp-response
echo "  nginx: a static file of $RESP_SIZE bytes (the size of $( [ $MINTCAD_OCSP = yes ] && echo "mintcad's" || echo "openssl's") answer)"

if [ "${BENCH_OCSP_GET:-0}" = 1 ]; then
	MODE="GET /<base64>"
	set -- --get-b64
else
	MODE="POST"
	set -- --content-type application/ocsp-request
fi
# run NAME PORT PATH
run() {
	r_name=$1 r_port=$2 r_path=$3
	shift 3
	loadgen_run "$W/lg-$r_name.out" -p "$r_port" --path "$r_path" --bodies "$W/requests.bin" "$@" -c "$CONNS" \
		-t "$LG_THREADS" -d "$SECS" -w "$WARM" --stall-ms "$STALL_MS" --check-ocsp --label "$r_name"
}
echo "== OCSP load: $SAMPLE request serials, $MODE, $CONNS connections, ${WARM} s warm-up then ${SECS} s each"
if [ $MINTCAD_OCSP = yes ]; then
	rss0=$(rss_kb "$MINTCAD_PID")
	run mintcad "$HPORT" /ocsp "$@"
	echo "  mintcad RSS: $rss0 kB before, $(rss_kb "$MINTCAD_PID") kB after, peak $(rss_kb "$MINTCAD_PID" VmHWM) kB"
fi
run openssl-ocsp "$OPORT" / "$@"
run nginx-static "$NPORT" /ocsp "$@"

echo "== OCSP summary ($ROWS certificates in the store; shared, noisy machine: the ratios count)"
row_head
[ $MINTCAD_OCSP = no ] || row "mintcad /ocsp" "$W/lg-mintcad.out"
row "openssl ocsp -multi 2*" "$W/lg-openssl-ocsp.out"
row "nginx static file" "$W/lg-nginx-static.out"
echo "  * answers HTTP/1.0 and closes every connection: each request there pays a new TCP connection"
if [ $MINTCAD_OCSP = yes ]; then
	m=$(res "$W/lg-mintcad.out" rps)
	ratio "mintcad / openssl ocsp" "$m" "$(res "$W/lg-openssl-ocsp.out" rps)" 2 x
	ratio "mintcad / nginx" "$m" "$(res "$W/lg-nginx-static.out" rps)" 0.5 %
	st=$(res "$W/lg-mintcad.out" stalled)
	er=$(res "$W/lg-mintcad.out" errors)
	if [ "$st" = 0 ] && [ "$er" = 0 ]; then v="goal met"; else v="goal NOT met"; fi
	echo "mintcad stalled requests (> $STALL_MS ms): $st, errors: $er (goal: none): $v"
else
	echo "mintcad / openssl ocsp = n/a (mintcad has no OCSP responder yet)"
	echo "mintcad / nginx = n/a (mintcad has no OCSP responder yet)"
	ratio "for scale: openssl ocsp / nginx" "$(res "$W/lg-openssl-ocsp.out" rps)" \
		"$(res "$W/lg-nginx-static.out" rps)" none %
fi
