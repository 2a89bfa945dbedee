#!/bin/sh
# Integration test of revocation, CRLs and OCSP: the real mintcad on a
# throwaway PostgreSQL cluster and SoftHSM token, driven with `mintctl
# revoke`, the operator API (curl with a client certificate), `openssl ocsp`
# (POST and GET, with and without nonce), `openssl crl` and `openssl verify
# -crl_check`. Bad inputs get their correct answer and change nothing. Prints
# "ok - ..." / "not ok - ..." per check, then "N passed, M failed".
#
#   MINTCA_BUILD=build|build-asan sh tests/integration/revoke.sh   (make integration)
set -u

REPO=$(cd "$(dirname "$0")/../.." && pwd -P)
B=${MINTCA_BUILD:-build}
case $B in /*) ;; *) B=$REPO/$B ;; esac
. "$REPO/tests/integration/lib.sh"

it_prepare curl openssl ss softhsm2-util pkcs11-tool

# A second free port, for the plain-HTTP listener (OCSP, CRLs, CA certificates).
HPORT=$((PORT + 1))
[ -z "$(ss -Hltn "sport = :$HPORT")" ] || setup_fail "port $HPORT is in use"
HBASE=http://127.0.0.1:$HPORT

it_setup MINTCA_HTTP_PORT="$HPORT"
curl_users factory
FACTORY=$(basic factory)

# Operator client certificates: one from the operators' CA (an "operators"
# anchor), one from a CA the server does not know.
cat >"$W/openssl.cnf" <<'EOF'
[req]
distinguished_name = dn
[dn]
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[v3_client]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
EOF
make_op() { # make_op NAME CA_SUBJECT LEAF_SUBJECT
	openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -config "$W/openssl.cnf" \
		-extensions v3_ca -days 30 -subj "$2" -keyout "$W/$1-ca.key" -out "$W/$1-ca.pem" &&
		openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "$3" \
			-keyout "$W/$1.key" -out "$W/$1.csr" &&
		openssl x509 -req -in "$W/$1.csr" -CA "$W/$1-ca.pem" -CAkey "$W/$1-ca.key" \
			-set_serial "0x$(openssl rand -hex 12)" -days 30 -extfile "$W/openssl.cnf" \
			-extensions v3_client -out "$W/$1.pem"
} >>"$W/setup.log" 2>&1
make_op ops "/O=Example Ops/CN=Operators CA" "/O=Example Ops/CN=alice" &&
	make_op rogue "/O=Nobody/CN=Rogue CA" "/O=Nobody/CN=mallory" ||
	setup_fail "cannot make the operator certificates: $(tail -n 5 "$W/setup.log")"

cat >"$DIR/test.json" <<EOF
{
  "server": { "listen": "127.0.0.1", "port": $PORT, "http_port": $HPORT, "threads": 2,
              "max_connections": 64, "connection_timeout_s": 10, "max_body_bytes": 65536,
              "public_name": "localhost", "public_base_url": "$HBASE" },
  "tls": { "cert_file": "$DIR/tls/server.crt", "key_file": "$DIR/tls/server.key" },
  "database": { "dsn": "$MINTCA_DSN" },
  "ca": {
    "name": "dev",
    "root_subject": "/O=mintca/CN=mintca test root CA",
    "issuing_subject": "/O=mintca/CN=mintca test issuing CA",
    "signer": { "type": "pkcs11", "module": "$MINTCA_PKCS11_MODULE", "token_label": "mintca",
                "pin_file": "$DIR/secrets/pkcs11.pin", "root_key_label": "mintca-root",
                "issuing_key_label": "mintca-issuing" }
  },
  "log": { "level": "info" },
  "revocation": { "crl_period": "1h", "crl_next_update": "1d", "crl_retention": "90d",
                  "ocsp_validity": "1h", "ocsp_responder_validity": "2d" },
  "est": { "default_profile": "device" },
  "users": [ { "name": "factory", "password_hash": "$HASH" } ],
  "client_cert_anchors": [ { "name": "ops", "ca_file": "$W/ops-ca.pem" } ],
  "operators": { "client_cert_anchors": ["ops"] },
  "profiles": [
    { "name": "device", "key_types": ["ec-p256"], "validity_days": 365,
      "extended_key_usage": ["clientAuth"], "max_sans": 2, "revocation_urls": true,
      "auth": { "basic_users": ["factory"] } }
  ]
}
EOF

for k in a b c d e; do
	mkcsr "$k" p256 "/CN=device-revoke-$k" >>"$W/setup.log" 2>&1 || setup_fail "cannot make CSR $k"
done

LOG=$DIR/mintcad.log
start_server "$LOG" >"$W/start.out" 2>&1 || setup_fail "$(cat "$W/start.out")"
http /.well-known/est/cacerts
[ "$ST" = 200 ] || setup_fail "GET cacerts answered $ST"
openssl base64 -d -in "$BODY" | openssl pkcs7 -inform DER -print_certs -out "$W/cacerts.pem" ||
	setup_fail "cacerts does not decode"
awk '/BEGIN CERTIFICATE/ { n++ } n { print > (dir "/cacert-" n ".pem") }' dir="$W" "$W/cacerts.pem"
cp "$W/cacert-1.pem" "$W/issuing.pem" && cp "$W/cacert-2.pem" "$W/root.pem" ||
	setup_fail "cacerts holds fewer than 2 certificates"
cat "$W/issuing.pem" "$W/root.pem" >"$W/chain.pem"
CURL_CA=$W/root.pem
for k in a b c d e; do
	enroll /.well-known/est/simpleenroll "$W/$k.b64" $FACTORY
	got_cert "$k" >"$W/enroll-$k.out" 2>&1 || setup_fail "enrollment $k: $(cat "$W/enroll-$k.out")"
done
echo "# data folder $DIR, ports $PORT (HTTPS) and $HPORT (HTTP), build $B"

audit_count() { pg -c "select count(*) from audit"; }
rev_count() { pg -c "select count(*) from revocations"; }

# --- 1. certificates point to CRL, OCSP and the CA certificate ---------------

points_home() {
	openssl x509 -in "$W/a.pem" -noout -ext crlDistributionPoints,authorityInfoAccess >"$W/a.ext" || return 1
	cat "$W/a.ext"
	grep -q "URI:$HBASE/crl/dev.crl" "$W/a.ext" && grep -q "OCSP - URI:$HBASE/ocsp" "$W/a.ext" &&
		grep -q "CA Issuers - URI:$HBASE/ca/dev.crt" "$W/a.ext"
}
check "issued certificate: CDP, OCSP and caIssuers URLs under public_base_url" points_home
ca_cert_served() {
	curl -sS -o "$W/ca.der" -w '%{http_code} %{content_type}\n' "$HBASE/ca/dev.crt" | tee "$W/ca.st"
	grep -q '^200 application/pkix-cert' "$W/ca.st" &&
		[ "$(openssl x509 -inform DER -in "$W/ca.der" -outform DER | od -An -tx1)" = \
			"$(openssl x509 -in "$W/issuing.pem" -outform DER | od -An -tx1)" ]
}
check "caIssuers URL serves the issuing CA certificate (DER)" ca_cert_served
plain_no_est() {
	c=$(curl -sS -o /dev/null -w '%{http_code}' "$HBASE/.well-known/est/cacerts")
	[ "$c" = 404 ] || { echo "EST over plain HTTP answered $c"; return 1; }
}
check "plain HTTP serves no EST" plain_no_est

# --- 2. OCSP: good, unknown, unauthorized -------------------------------------

# ocsp NAME ARGS...: openssl ocsp against the server, output in $W/ocsp-NAME.out.
ocsp() {
	o_name=$1
	shift
	openssl ocsp -issuer "$W/issuing.pem" -url "$HBASE/ocsp" -CAfile "$W/root.pem" \
		-verify_other "$W/issuing.pem" "$@" >"$W/ocsp-$o_name.out" 2>&1
	o_rc=$?
	cat "$W/ocsp-$o_name.out"
	return $o_rc
}
ocsp_says() { # ocsp_says NAME STATUS ARGS...
	o_want=$2
	o_n=$1
	shift 2
	ocsp "$o_n" "$@" || return 1
	grep -q "Response verify OK" "$W/ocsp-$o_n.out" || { echo "response does not verify"; return 1; }
	grep -q ": $o_want\$" "$W/ocsp-$o_n.out"
}
check "OCSP POST with nonce: a is good" ocsp_says a-good good -cert "$W/a.pem"
check "OCSP POST without nonce: a is good" ocsp_says a-good-nn good -cert "$W/a.pem" -no_nonce
check "OCSP SHA-256 CertID: a is good" ocsp_says a-good-256 good -sha256 -cert "$W/a.pem"
check "OCSP: a serial this CA never issued is unknown" ocsp_says made-up unknown -serial 0x1234567890abcdef
nonce_echoed() {
	ocsp nonce -cert "$W/b.pem" -resp_text || return 1
	grep -q "OCSP Nonce" "$W/ocsp-nonce.out" || { echo "no nonce in the response"; return 1; }
	! grep -q "WARNING: no nonce in response" "$W/ocsp-nonce.out"
}
check "OCSP: the nonce is echoed" nonce_echoed
delegated() {
	ocsp deleg -cert "$W/b.pem" -resp_text || return 1
	grep -q "OCSP Signing" "$W/ocsp-deleg.out" && grep -q "OCSP No Check" "$W/ocsp-deleg.out" || {
		echo "response not signed by a delegated responder (id-kp-OCSPSigning + ocsp-nocheck)"
		return 1
	}
}
check "OCSP: signed by a delegated responder certificate (OCSPSigning, ocsp-nocheck)" delegated
other_issuer() {
	openssl ocsp -issuer "$W/rogue-ca.pem" -serial 0x01 -url "$HBASE/ocsp" -no_nonce \
		>"$W/ocsp-rogue.out" 2>&1
	cat "$W/ocsp-rogue.out"
	grep -qi "unauthorized" "$W/ocsp-rogue.out"
}
check "OCSP: a request for an issuer this server does not serve gets unauthorized" other_issuer
ocsp_get() {
	openssl ocsp -issuer "$W/issuing.pem" -cert "$W/a.pem" -no_nonce -reqout "$W/get.req" >/dev/null 2>&1 || return 1
	g_b64=$(openssl base64 -A -in "$W/get.req" | sed -e 's/+/%2B/g' -e 's|/|%2F|g' -e 's/=/%3D/g')
	curl -sS -D "$W/get.hdr" -o "$W/get.resp" "$HBASE/ocsp/$g_b64" || return 1
	tr -d '\r' <"$W/get.hdr"
	grep -qi '^content-type: application/ocsp-response' "$W/get.hdr" &&
		grep -qi '^cache-control:.*max-age' "$W/get.hdr" && grep -qi '^last-modified:' "$W/get.hdr" &&
		grep -qi '^expires:' "$W/get.hdr" || { echo "RFC 5019 §6 headers missing"; return 1; }
	openssl ocsp -respin "$W/get.resp" -issuer "$W/issuing.pem" -cert "$W/a.pem" -CAfile "$W/root.pem" \
		-verify_other "$W/issuing.pem" >"$W/get.out" 2>&1
	cat "$W/get.out"
	grep -q ": good$" "$W/get.out"
}
check "OCSP GET (base64 in the path): good, with RFC 5019 caching headers" ocsp_get
malformed() {
	m_before=$(audit_count)
	printf 'not an OCSP request' >"$W/garbage.req"
	m_st=$(curl -sS -o "$W/garbage.resp" -w '%{http_code}' -H 'Content-Type: application/ocsp-request' \
		--data-binary "@$W/garbage.req" "$HBASE/ocsp")
	echo "HTTP $m_st"
	case $m_st in 2??|4??) ;; *) echo "expected a 200 or 4xx"; return 1 ;; esac
	if [ "$m_st" = 200 ]; then
		openssl ocsp -respin "$W/garbage.resp" -resp_text -noverify 2>&1 | tee "$W/garbage.out"
		grep -qi "malformedrequest" "$W/garbage.out" || return 1
	fi
	[ "$(audit_count)" = "$m_before" ]
}
check "OCSP: a malformed request gets malformedRequest, changes nothing" malformed
oversized() {
	head -c 200000 /dev/urandom >"$W/big.req"
	o_st=$(curl -sS -o "$W/big.resp" -w '%{http_code}' -H 'Content-Type: application/ocsp-request' \
		--data-binary "@$W/big.req" "$HBASE/ocsp")
	echo "HTTP $o_st"
	case $o_st in 200|4??) ;; *) return 1 ;; esac
	[ "$o_st" != 200 ] || openssl ocsp -respin "$W/big.resp" -resp_text -noverify 2>&1 | grep -qi malformed
}
check "OCSP: an oversized request is refused (4xx or malformedRequest), never a 5xx" oversized

# --- 3. revoke one certificate: OCSP sees it at once --------------------------

SA=$(serial_of "$W/a.pem")
revoked_within_1s() {
	"$B/mintctl" revoke -c "$DIR/test.json" --serial "$SA" --reason keyCompromise || return 1
	r_t0=$(date +%s%N)
	while :; do
		ocsp a-rev -cert "$W/a.pem" >/dev/null 2>&1
		grep -q ": revoked$" "$W/ocsp-a-rev.out" && break
		[ $(( ($(date +%s%N) - r_t0) / 1000000 )) -lt 1000 ] || { cat "$W/ocsp-a-rev.out"; return 1; }
		sleep 0.05
	done
	echo "revoked seen after $(( ($(date +%s%N) - r_t0) / 1000000 )) ms"
	cat "$W/ocsp-a-rev.out"
	grep -q "Reason: keyCompromise" "$W/ocsp-a-rev.out"
}
check "mintctl revoke: OCSP answers revoked (keyCompromise) within one second" revoked_within_1s
check "OCSP without nonce (pre-signed): a is revoked" ocsp_says a-rev-nn revoked -cert "$W/a.pem" -no_nonce
check "audit: a revoke row for a, by the operator, over the CLI" \
	sh -c "[ \"\$(sh '$REPO/deploy/embedded.sh' psql '$DIR' -XAtq -c \"select count(*) from audit where action='revoke' and serial='$SA' and protocol='cli'\")\" = 1 ]"
refuse_twice() {
	t_before=$(audit_count)
	if "$B/mintctl" revoke -c "$DIR/test.json" --serial "$SA" 2>"$W/twice.err"; then
		echo "revoking twice succeeded"
		return 1
	fi
	cat "$W/twice.err"
	grep -q "already revoked" "$W/twice.err" && [ "$(audit_count)" = "$t_before" ]
}
check "revoking an already-revoked serial: clear error, nothing changed" refuse_twice
refuse_unknown() {
	u_before=$(audit_count)
	u_rev=$(rev_count)
	if "$B/mintctl" revoke -c "$DIR/test.json" --serial 0x0badc0ffee 2>"$W/unknown.err"; then
		echo "revoking an unknown serial succeeded"
		return 1
	fi
	cat "$W/unknown.err"
	grep -q "no certificate with this serial" "$W/unknown.err" && [ "$(audit_count)" = "$u_before" ] &&
		[ "$(rev_count)" = "$u_rev" ]
}
check "revoking an unknown serial: clear error, nothing changed" refuse_unknown
refuse_reason() {
	! "$B/mintctl" revoke -c "$DIR/test.json" --serial "$(serial_of "$W/b.pem")" --reason removeFromCRL \
		2>"$W/reason.err" && cat "$W/reason.err" && grep -q "reason" "$W/reason.err"
}
check "removeFromCRL is not a reason a revocation may give" refuse_reason

# --- 4. hold and release --------------------------------------------------------

SB=$(serial_of "$W/b.pem")
check "certificateHold: b held" "$B/mintctl" revoke -c "$DIR/test.json" --serial "$SB" --reason certificateHold
check "OCSP: b revoked (certificateHold)" ocsp_says b-hold revoked -cert "$W/b.pem"
check "release the hold on b" "$B/mintctl" revoke -c "$DIR/test.json" --release --serial "$SB"
check "OCSP: b good again" ocsp_says b-free good -cert "$W/b.pem"
check "releasing a certificate not on hold is refused" sh -c "! '$B/mintctl' revoke -c '$DIR/test.json' --release --serial '$SB'"

# --- 5. CRLs --------------------------------------------------------------------

crl_fetch() { # crl_fetch NAME: GET /crl/dev.crl into $W/NAME.crl (+ .hdr, .pem)
	curl -sS -D "$W/$1.hdr" -o "$W/$1.crl" "$HBASE/crl/dev.crl" || return 1
	grep -q '^HTTP/1.1 200' "$W/$1.hdr" || { cat "$W/$1.hdr"; return 1; }
	openssl crl -inform DER -in "$W/$1.crl" -out "$W/$1.pem"
}
# The CRL number in decimal ("crlNumber=0x2A" -> 42).
# crl_fetch_newer NAME NUMBER: fetch until the CRL's number is not NUMBER
# (the server revalidates its cached CRL about once a second).
crl_fetch_newer() {
	for _ in 1 2 3 4 5 6 7 8 9 10; do
		crl_fetch "$1" || return 1
		[ "$(crl_number "$1")" = "$2" ] || return 0
		sleep 0.3
	done
	echo "still CRL number $2 after 3 s"
	return 1
}
crl_number() { printf '%d' "$(openssl crl -in "$W/$1.pem" -noout -crlnumber | sed 's/^crlNumber=//; s/^\(0x\)*/0x/')"; }
publish_and_check() {
	"$B/mintctl" crl publish -c "$DIR/test.json" --ca dev || return 1
	crl_fetch crl1 || return 1
	tr -d '\r' <"$W/crl1.hdr"
	grep -qi '^content-type: application/pkix-crl' "$W/crl1.hdr" && grep -qi '^etag:' "$W/crl1.hdr" &&
		grep -qi '^last-modified:' "$W/crl1.hdr" && grep -qi '^cache-control:.*max-age' "$W/crl1.hdr" ||
		{ echo "headers missing"; return 1; }
	openssl crl -in "$W/crl1.pem" -CAfile "$W/chain.pem" -noout -text >"$W/crl1.txt" 2>&1
	grep -q "verify OK" "$W/crl1.txt" || { cat "$W/crl1.txt"; return 1; }
	grep -qi "$SA" "$W/crl1.txt" || { echo "revoked serial $SA is not listed"; return 1; }
	! grep -qi "$SB" "$W/crl1.txt" || { echo "released serial $SB is listed"; return 1; }
}
check "mintctl crl publish: /crl/dev.crl parses, its signature verifies, it lists a and not b" publish_and_check
crl_refuses() {
	cat "$W/chain.pem" "$W/crl1.pem" >"$W/crl-bundle.pem"
	if openssl verify -crl_check -CAfile "$W/crl-bundle.pem" "$W/a.pem" >"$W/v-a.out" 2>&1; then
		cat "$W/v-a.out"
		echo "the revoked certificate verifies"
		return 1
	fi
	cat "$W/v-a.out"
	grep -q "certificate revoked" "$W/v-a.out" || return 1
	openssl verify -crl_check -CAfile "$W/crl-bundle.pem" "$W/c.pem"
}
check "openssl verify -crl_check: refuses revoked a, accepts c" crl_refuses
number_grows() {
	n1=$(crl_number crl1)
	"$B/mintctl" crl publish -c "$DIR/test.json" --ca dev >/dev/null || return 1
	crl_fetch_newer crl2 "$n1" || return 1
	n2=$(crl_number crl2)
	echo "CRL numbers $n1 then $n2"
	[ -n "$n1" ] && [ -n "$n2" ] && [ "$n2" -gt "$n1" ]
}
check "CRL number strictly increases" number_grows
not_modified() {
	etag=$(tr -d '\r' <"$W/crl2.hdr" | sed -n 's/^[Ee][Tt][Aa][Gg]: *//p')
	c=$(curl -sS -o /dev/null -w '%{http_code}' -H "If-None-Match: $etag" "$HBASE/crl/dev.crl")
	echo "If-None-Match $etag: HTTP $c"
	[ "$c" = 304 ]
}
check "CRL: If-None-Match with the current ETag gives 304" not_modified
check "CRL of an unknown CA: 404" sh -c "[ \"\$(curl -sS -o /dev/null -w '%{http_code}' '$HBASE/crl/nope.crl')\" = 404 ]"

# --- 6. operator API (mutual TLS) -------------------------------------------------

SC=$(serial_of "$W/c.pem")
api() { # api OP JSON [CURL ARGS]: POST /api/v1/OP
	a_op=$1 a_json=$2
	shift 2
	http "/api/v1/$a_op" -H 'Content-Type: application/json' --data-binary "$a_json" "$@"
}
api_refuses_anonymous() {
	a_before=$(audit_count)
	api revoke "{\"serial\":\"$SC\"}"
	status_is 401 && header_is Content-Type '^application/problem\+json' && [ "$(audit_count)" = "$a_before" ]
}
check "operator API without a client certificate: 401 problem document, nothing changed" api_refuses_anonymous
api_refuses_rogue() {
	api revoke "{\"serial\":\"$SC\"}" --cert "$W/rogue.pem" --key "$W/rogue.key"
	status_is 401
}
check "operator API with a certificate from an unknown CA: 401" api_refuses_rogue
api_revokes() {
	api revoke "{\"serial\":\"$SC\",\"reason\":\"superseded\"}" --cert "$W/ops.pem" --key "$W/ops.key"
	status_is 200 || return 1
	cat "$BODY"
	grep -q '"revoked":1' "$BODY" || return 1
	a_row=$(pg -c "select actor, protocol from audit where action='revoke' and serial='$SC'")
	echo "audit: $a_row"
	[ "$a_row" = "api:/O=Example Ops/CN=alice|api" ]
}
check "operator API revokes c, audited with the operator's subject" api_revokes
check "OCSP: c revoked (superseded) after the API call" ocsp_says c-rev revoked -cert "$W/c.pem"
api_bad() {
	api revoke '{"serial":"zz"}' --cert "$W/ops.pem" --key "$W/ops.key"
	status_is 400 || return 1
	api revoke '{"serial":"0badc0ffee"}' --cert "$W/ops.pem" --key "$W/ops.key"
	status_is 404 || return 1
	api revoke 'not json' --cert "$W/ops.pem" --key "$W/ops.key"
	status_is 400
}
check "operator API: malformed serial 400, unknown 404, not JSON 400" api_bad
api_publish() {
	api crl/publish '{"ca":"dev"}' --cert "$W/ops.pem" --key "$W/ops.key"
	status_is 200 && cat "$BODY" && grep -q '"crl_number"' "$BODY"
}
check "operator API publishes a CRL" api_publish

# --- 7. revoke by query ----------------------------------------------------------

query_dry() {
	q_before=$(rev_count)
	"$B/mintctl" revoke -c "$DIR/test.json" --profile device --issued-after 2000-01-01 \
		--issued-before 2100-01-01 >"$W/q.out" 2>&1
	cat "$W/q.out"
	grep -q "^3 unrevoked" "$W/q.out" && [ "$(rev_count)" = "$q_before" ]
}
check "revoke by query without --yes: counts 3 (b, d, e), revokes nothing" query_dry

# --- 8. a batch of 10,000 serials, killed half-way and run again -----------------

# 10,000 issued rows of profile 'batch' (the DER is a stand-in: revocation
# only reads the rows).
pg -c "insert into certificates (serial, ca, status, der, not_before, not_after, profile, issued_at)
       select lpad(to_hex(4096 + g), 16, '7'), 'dev', 'issued', '\\x00', now(), now() + interval '1 year',
              'batch', now() from generate_series(1, 10000) g" >/dev/null ||
	setup_fail "cannot insert the batch rows"
pg -c "select serial from certificates where profile = 'batch'" >"$W/batch.txt"
batch_resume() {
	[ "$(wc -l <"$W/batch.txt")" = 10000 ] || { echo "batch file: $(wc -l <"$W/batch.txt") lines"; return 1; }
	a0=$(pg -c "select count(*) from audit where action='revoke'")
	"$B/mintctl" revoke -c "$DIR/test.json" --file "$W/batch.txt" --chunk 100 --reason cessationOfOperation \
		>"$W/batch1.out" 2>&1 &
	b_pid=$!
	b_i=0
	# Kill it once some chunks, but not all, are committed.
	while [ $b_i -lt 400 ]; do
		b_n=$(pg -c "select count(*) from revocations r join certificates c using (serial) where c.profile='batch'")
		[ "$b_n" -ge 1000 ] && break
		sleep 0.05
		b_i=$((b_i + 1))
	done
	kill -KILL $b_pid 2>/dev/null
	wait $b_pid 2>/dev/null
	b_n=$(pg -c "select count(*) from revocations r join certificates c using (serial) where c.profile='batch'")
	echo "killed with $b_n of 10000 revoked"
	[ "$b_n" -lt 10000 ] || { echo "the first run finished before it was killed"; return 1; }
	"$B/mintctl" revoke -c "$DIR/test.json" --file "$W/batch.txt" --chunk 1000 --reason cessationOfOperation \
		>"$W/batch2.out" 2>&1 || { cat "$W/batch2.out"; return 1; }
	cat "$W/batch2.out"
	grep -q "^revoked $((10000 - b_n)), already revoked $b_n (skipped), of 10000" "$W/batch2.out" || return 1
	b_all=$(pg -c "select count(*) from revocations r join certificates c using (serial) where c.profile='batch'")
	b_aud=$(pg -c "select count(*) from audit where action='revoke'")
	echo "revoked $b_all, audit rows $((b_aud - a0))"
	[ "$b_all" = 10000 ] && [ $((b_aud - a0)) = 10000 ]
}
check "bulk revoke of 10,000 serials killed half-way, run again: finishes, counts nothing twice" batch_resume
batch_bad_line() {
	cp "$W/batch.txt" "$W/batch-bad.txt"
	echo "not-a-serial" >>"$W/batch-bad.txt"
	bb_before=$(audit_count)
	! "$B/mintctl" revoke -c "$DIR/test.json" --file "$W/batch-bad.txt" 2>"$W/batch-bad.err" &&
		cat "$W/batch-bad.err" && grep -q "serial 10001" "$W/batch-bad.err" && [ "$(audit_count)" = "$bb_before" ]
}
check "a file with one malformed line refuses the whole batch, nothing changed" batch_bad_line
crl_big() {
	crl_fetch crl3 || return 1
	n0=$(crl_number crl3)
	"$B/mintctl" crl publish -c "$DIR/test.json" --ca dev || return 1
	crl_fetch_newer crl3 "$n0" || return 1
	n=$(openssl crl -in "$W/crl3.pem" -noout -text | grep -c "Serial Number:")
	echo "$n entries"
	[ "$n" = 10002 ]
}
check "the next CRL lists the 10,000 batch serials, a and c" crl_big

# --- done -------------------------------------------------------------------------

stop_server
check "mintcad stopped cleanly on SIGTERM" test "$STOP_RC" = 0
check "no sanitizer report in the server log" no_sanitizer_report "$LOG"
secrets_absent() {
	for s in "$PASSWORD" "$(cat "$DIR/secrets/pkcs11.pin")"; do
		! grep -rqF -- "$s" "$LOG" "$W"/*.out "$W"/*.err 2>/dev/null || { echo "a secret is in a log"; return 1; }
	done
}
check "no password or PIN in any log" secrets_absent
echo "# $(($(date +%s) - START)) s"
echo "$PASS passed, $FAIL failed"
[ "$FAIL" = 0 ]
