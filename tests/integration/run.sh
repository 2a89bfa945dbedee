#!/bin/sh
# Integration test: the real mintcad on a throwaway PostgreSQL cluster and
# SoftHSM token (deploy/embedded.sh), driven with stock curl and openssl as
# RFC 7030's examples and README.md do. Every success path has its failure
# twins. Prints "ok - ..." / "not ok - ..." per check, then "N passed, M
# failed"; exits 1 when a check or the set-up failed.
#
#   MINTCA_BUILD=build|build-asan sh tests/integration/run.sh   (make integration)
set -u

REPO=$(cd "$(dirname "$0")/../.." && pwd -P)
B=${MINTCA_BUILD:-build}
case $B in /*) ;; *) B=$REPO/$B ;; esac
. "$REPO/tests/integration/lib.sh"

it_prepare curl openssl ss softhsm2-util pkcs11-tool

# --- set-up: PostgreSQL, SoftHSM token, secrets, then our own config --------

it_setup
curl_users factory wrongpw nobody
FACTORY=$(basic factory)
WRONGPW=$(basic wrongpw)
NOBODY=$(basic nobody)

# Client-certificate CAs made with openssl: a manufacturer CA (a configured
# anchor) with a device bootstrap certificate, and an unknown one.
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
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
make_client_ca() { # make_client_ca NAME CA_SUBJECT LEAF_SUBJECT
	openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-config "$W/openssl.cnf" -extensions v3_ca -days 30 -subj "$2" \
		-keyout "$W/$1-ca.key" -out "$W/$1-ca.pem" &&
		openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
			-subj "$3" -keyout "$W/$1-leaf.key" -out "$W/$1-leaf.csr" &&
		openssl x509 -req -in "$W/$1-leaf.csr" -CA "$W/$1-ca.pem" -CAkey "$W/$1-ca.key" \
			-set_serial "0x$(openssl rand -hex 12)" -days 30 \
			-extfile "$W/openssl.cnf" -extensions v3_client -out "$W/$1-leaf.pem"
} >>"$W/setup.log" 2>&1
make_client_ca mfr "/O=Test Manufacturer/CN=Test Manufacturer Device CA" "/O=Test Manufacturer/CN=boot-0001" ||
	setup_fail "cannot make the manufacturer CA: $(tail -n 5 "$W/setup.log")"
make_client_ca rogue "/O=Nobody/CN=Unknown CA" "/O=Nobody/CN=rogue-0001" ||
	setup_fail "cannot make the unknown CA: $(tail -n 5 "$W/setup.log")"

# The test's config: embedded.sh's DSN, token, PIN file and user; our profiles.
write_config() { # write_config FILE [EXTRA SERVER LINE]
	cat >"$1" <<EOF
{
  "server": { "listen": "127.0.0.1", "port": $PORT, "threads": 2, "max_connections": 64,
              "connection_timeout_s": 10, "max_body_bytes": 65536, "public_name": "localhost"${2:+,
              $2} },
  "tls": { "cert_file": "$DIR/tls/server.crt", "key_file": "$DIR/tls/server.key" },
  "database": { "dsn": "$MINTCA_DSN" },
  "ca": {
    "name": "dev",
    "root_subject": "/O=mintca/CN=mintca test root CA",
    "issuing_subject": "/O=mintca/CN=mintca test issuing CA",
    "root_validity_days": 7300, "issuing_validity_days": 3650,
    "signer": { "type": "pkcs11", "module": "$MINTCA_PKCS11_MODULE", "token_label": "mintca",
                "pin_file": "$DIR/secrets/pkcs11.pin", "root_key_label": "mintca-root",
                "issuing_key_label": "mintca-issuing" }
  },
  "log": { "level": "info" },
  "est": { "default_profile": "device" },
  "users": [ { "name": "factory", "password_hash": "$HASH" } ],
  "client_cert_anchors": [ { "name": "manufacturer", "ca_file": "$W/mfr-ca.pem" } ],
  "profiles": [
    { "name": "device", "key_types": ["ec-p256", "ec-p384", "rsa", "ed25519"],
      "rsa_min_bits": 2048, "rsa_max_bits": 4096, "validity_days": 365, "backdate_seconds": 60,
      "extended_key_usage": ["clientAuth"], "max_sans": 4,
      "auth": { "basic_users": ["factory"], "client_cert_anchors": ["dev", "manufacturer"],
                "reenroll": true } },
    { "name": "p384only", "key_types": ["ec-p384"], "validity_days": 14, "backdate_seconds": 0,
      "extended_key_usage": ["clientAuth"], "auth": { "basic_users": ["factory"] } },
    { "name": "longlife", "key_types": ["ec-p256"], "validity_days": 7300,
      "extended_key_usage": ["clientAuth"], "auth": { "basic_users": ["factory"] } },
    { "name": "cli", "key_types": ["ec-p256"], "validity_days": 30,
      "extended_key_usage": ["clientAuth"], "auth": { "operator": true } }
  ]
}
EOF
}
write_config "$DIR/test.json" || setup_fail "cannot write $DIR/test.json"

# Requests, made before the server starts (key generation takes a moment).
{
	mkcsr p256 p256 "/O=Example Devices/CN=device-p256" "DNS:device-p256.example,IP:192.0.2.10" &&
	mkcsr p384 p384 "/O=Example Devices/CN=device-p384" "DNS:device-p384.example" &&
	mkcsr rsa rsa2048 "/O=Example Devices/CN=device-rsa" "DNS:device-rsa.example,URI:urn:example:rsa" &&
	mkcsr ed ed25519 "/O=Example Devices/CN=device-ed25519" "DNS:device-ed25519.example" &&
	mkcsr p256other p256 "/O=Example Devices/CN=someone-else" "DNS:device-p256.example,IP:192.0.2.10" &&
	mkcsr boot p256 "/O=Example Devices/CN=device-boot-0001" "DNS:device-boot-0001.example" &&
	mkcsr short p384 "/CN=device-short-lived" &&
	mkcsr long p256 "/CN=device-long-lived" &&
	mkcsr k1 secp256k1 "/CN=device-secp256k1" &&
	mkcsr rsa1024 rsa1024 "/CN=device-rsa1024" &&
	mkcsr sans10 p256 "/CN=device-many-names" \
		"DNS:n1.example,DNS:n2.example,DNS:n3.example,DNS:n4.example,DNS:n5.example,DNS:n6.example,DNS:n7.example,DNS:n8.example,DNS:n9.example,DNS:n10.example" &&
	mkcsr dbdown p256 "/CN=device-db-down" &&
	mkcsr cli p256 "/CN=operator-issued" &&
	mkcsr restart p256 "/CN=device-after-restart" &&
	for k in 1 2 3 4 5 6 7 8; do mkcsr par$k p256 "/CN=device-parallel-$k" || break; done &&
	[ -s "$W/par8.b64" ]
} >>"$W/setup.log" 2>&1 || setup_fail "cannot make the test CSRs: $(tail -n 5 "$W/setup.log")"

# Bad bodies: a flipped signature byte, a trailing byte, random bytes, 70 KB.
n=$(wc -c <"$W/p256.der")
head -c $((n - 1)) "$W/p256.der" >"$W/badsig.der"
last=$(tail -c 1 "$W/p256.der" | od -An -tu1 | tr -d ' ')
printf "\\$(printf %03o $((last ^ 1)))" >>"$W/badsig.der"
openssl base64 -in "$W/badsig.der" -out "$W/badsig.b64"
{ cat "$W/p256.der"; printf '\001'; } | openssl base64 -out "$W/trailing.b64"
openssl rand 300 | openssl base64 -out "$W/random.b64"
printf 'this is not a certificate request\n' >"$W/garbage.txt"
: >"$W/empty.txt"
head -c 71680 /dev/zero | tr '\0' 'A' >"$W/big.txt"
openssl req -in "$W/p256.der" -inform DER -out "$W/p256.csr.pem"

# --- start --------------------------------------------------------------------

LOG=$DIR/mintcad.log
start_server "$LOG" >"$W/start.out" 2>&1 || setup_fail "$(cat "$W/start.out")"
http /.well-known/est/cacerts
[ "$ST" = 200 ] || setup_fail "GET cacerts answered $ST: $(head -c 300 "$BODY")"
cp "$BODY" "$W/cacerts.b64"
cp "$HDR" "$W/cacerts.hdr"
openssl base64 -d -in "$W/cacerts.b64" | openssl pkcs7 -inform DER -print_certs -out "$W/cacerts.pem" ||
	setup_fail "cacerts does not decode"
awk '/BEGIN CERTIFICATE/ { n++ } n { print > (dir "/cacert-" n ".pem") }' \
	dir="$W" "$W/cacerts.pem"
cp "$W/cacert-1.pem" "$W/issuing.pem" 2>/dev/null
cp "$W/cacert-2.pem" "$W/root.pem" 2>/dev/null || setup_fail "cacerts holds fewer than 2 certificates"
# From here on the server's TLS certificate must chain to the root.
CURL_CA=$W/root.pem
echo "# data folder $DIR, port $PORT, build $B"

# --- 1. cacerts ---------------------------------------------------------------

ST=200 BODY=$W/cacerts.b64 HDR=$W/cacerts.hdr REQ_DESC="GET /.well-known/est/cacerts"
check "cacerts: 200 with Content-Type application/pkcs7-mime; smime-type=certs-only" \
	header_is Content-Type '^application/pkcs7-mime; *smime-type=certs-only$'
check "cacerts: Content-Transfer-Encoding: base64" header_is Content-Transfer-Encoding '^base64$'
cacerts_two() {
	c_n=$(grep -c 'BEGIN CERTIFICATE' "$W/cacerts.pem")
	[ "$c_n" = 2 ] || { echo "$c_n certificates, expected 2"; return 1; }
	# issuing first, then the self-signed root
	[ "$(openssl x509 -in "$W/root.pem" -noout -subject)" = \
		"subject=$(openssl x509 -in "$W/root.pem" -noout -issuer | sed 's/^issuer=//')" ] ||
		{ echo "second certificate is not self-signed"; return 1; }
	openssl verify -CAfile "$W/root.pem" "$W/issuing.pem" || return 1
	openssl x509 -in "$W/issuing.pem" -noout -subject | grep -q 'mintca test issuing CA' ||
		{ echo "first certificate is not the issuing CA"; return 1; }
}
check "cacerts: decodes into 2 certificates, issuing CA then its root" cacerts_two
same_as_mintctl() {
	"$B/mintctl" ca show -c "$DIR/test.json" >"$W/ca-show.pem" 2>"$W/ca-show.err" || { cat "$W/ca-show.err"; return 1; }
	cat "$W/root.pem" "$W/issuing.pem" | sed -n '/BEGIN/,/END/p' | cmp - "$W/ca-show.pem"
}
check "cacerts: same certificates as 'mintctl ca show'" same_as_mintctl
check "server TLS certificate chains to the root from cacerts" \
	openssl verify -CAfile "$W/root.pem" -untrusted "$W/issuing.pem" "$DIR/tls/server.crt"
http /.well-known/est/p384only/cacerts
check "cacerts under a label: 200, the same answer" cmp "$BODY" "$W/cacerts.b64"

# --- 2. simpleenroll with Basic, four key types ------------------------------

for kt in p256 p384 rsa ed; do
	case $kt in
	p256) what=P-256 ;; p384) what=P-384 ;; rsa) what=RSA-2048 ;; ed) what=Ed25519 ;;
	esac
	before=$(rows)
	enroll /.well-known/est/simpleenroll "$W/$kt.b64" $FACTORY
	check "$what: simpleenroll with Basic returns 200 and one certificate" got_cert "$kt"
	check "$what: the certificate verifies against root + issuing from cacerts" verifies "$kt"
	check "$what: subject and SANs match the CSR" names_match "$kt" "$kt"
	check "$what: one row added, issued|device|est|basic:factory" \
		eval 'rows_are $((before + 1)) && db_row_is "$kt" "issued|device|est|basic:factory"'
	check "$what: stored DER equals the returned certificate" db_der_matches "$kt"
	check "$what: one audit row issue|basic:factory|est" audit_row_is "$kt" "issue|basic:factory|est"
done
# What was issued is never changed or removed, not even by the server's own
# database user: each statement is refused and the rows stay as they were.
append_only() {
	ao_before=$(pg -c "select count(*), md5(string_agg(der::text, '' order by serial)) from certificates")
	ao_audit=$(pg -c "select count(*) from audit")
	for ao_sql in "update certificates set subject = 'CN=forged'" "delete from certificates" \
		"truncate certificates cascade" "update audit set actor = 'nobody'" "delete from audit" \
		"truncate audit cascade"; do
		if pg -c "$ao_sql" >"$W/append-only.out" 2>&1 || ! grep -q "append-only" "$W/append-only.out"; then
			echo "not refused as append-only: $ao_sql"
			cat "$W/append-only.out"
			return 1
		fi
	done
	[ "$(pg -c "select count(*), md5(string_agg(der::text, '' order by serial)) from certificates")" = "$ao_before" ] &&
		[ "$(pg -c "select count(*) from audit")" = "$ao_audit" ]
}
check "certificates and audit are append-only: UPDATE, DELETE, TRUNCATE refused, rows unchanged" append_only
eku_client() { openssl x509 -in "$W/p256.pem" -noout -ext extendedKeyUsage | grep -q 'TLS Web Client Authentication'; }
check "P-256: certificate has the clientAuth EKU of profile device" eku_client
before=$(rows)
enroll /.well-known/est/simpleenroll "$W/p256.csr.pem" $FACTORY
check "simpleenroll with a PEM body (tolerated) returns 200" eval 'got_cert pem && rows_are $((before + 1))'
http /.well-known/est/csrattrs
check "csrattrs for device (several key types): 204" status_is 204
http /.well-known/est/p384only/csrattrs
csrattrs_p384() {
	status_is 200 && header_is Content-Type '^application/csrattrs' &&
		openssl base64 -d -in "$BODY" | openssl asn1parse -inform DER | grep -q secp384r1
}
check "csrattrs for p384only: 200 application/csrattrs asking for secp384r1" csrattrs_p384

# --- 3. simplereenroll ---------------------------------------------------------

before=$(rows)
enroll /.well-known/est/simplereenroll "$W/p256.b64" --cert "$W/p256.pem" --key "$W/p256.key"
check "simplereenroll with the current certificate as TLS client certificate: 200" got_cert p256new
new_serial() { [ "$(serial_of "$W/p256new.pem")" != "$(serial_of "$W/p256.pem")" ]; }
check "simplereenroll: new serial" new_serial
check "simplereenroll: same subject and SANs" names_match p256new p256
renewed_is_old() {
	rn=$(pg -c "select renewed_serial from certificates where serial='$(serial_of "$W/p256new.pem")'")
	[ "$rn" = "$(serial_of "$W/p256.pem")" ] || { echo "renewed_serial '$rn', expected $(serial_of "$W/p256.pem")"; return 1; }
}
check "simplereenroll: row added with renewed_serial = the old serial" \
	eval 'rows_are $((before + 1)) && renewed_is_old'
check "simplereenroll: renewed certificate verifies" verifies p256new

before=$(rows)
enroll /.well-known/est/simplereenroll "$W/p256other.b64" --cert "$W/p256.pem" --key "$W/p256.key"
check "simplereenroll with a different subject: 400 saying why, no row" \
	eval 'status_and_reason 400 subject && rows_are $before'
enroll /.well-known/est/simplereenroll "$W/p256.b64"
check "simplereenroll without a client certificate: 403, no row" \
	eval 'status_and_reason 403 "client certificate" && rows_are $before'
enroll /.well-known/est/simplereenroll "$W/p256.b64" $FACTORY
check "simplereenroll with Basic only (no client certificate): 403, no row" \
	eval 'status_and_reason 403 "client certificate" && rows_are $before'
enroll /.well-known/est/simplereenroll "$W/boot.b64" --cert "$W/mfr-leaf.pem" --key "$W/mfr-leaf.key"
check "simplereenroll with the manufacturer bootstrap certificate: 403, no row" \
	eval 'status_and_reason 403 "not issued by" && rows_are $before'
enroll /.well-known/est/simplereenroll "$W/p256.b64" --cert "$W/rogue-leaf.pem" --key "$W/rogue-leaf.key"
check "simplereenroll with a certificate of an unknown CA: 403, no row" \
	eval 'status_and_reason 403 "client certificate" && rows_are $before'

# --- 4. enrollment with a client certificate instead of Basic ----------------

before=$(rows)
enroll /.well-known/est/simpleenroll "$W/boot.b64" --cert "$W/mfr-leaf.pem" --key "$W/mfr-leaf.key"
check "simpleenroll with the manufacturer bootstrap certificate (no Basic): 200" got_cert boot
check "bootstrap enrollment: verifies, names match the CSR" eval 'verifies boot && names_match boot boot'
check "bootstrap enrollment: row issued|device|est|cert:manufacturer:<bootstrap subject>" \
	eval 'rows_are $((before + 1)) && db_row_is boot "issued|device|est|cert:manufacturer:/O=Test Manufacturer/CN=boot-0001"'
before=$(rows)
enroll /.well-known/est/simpleenroll "$W/boot.b64" --cert "$W/rogue-leaf.pem" --key "$W/rogue-leaf.key"
check "simpleenroll with a client certificate of an unknown CA, no Basic: 401, no row" \
	eval 'status_and_reason 401 . && header_is WWW-Authenticate "^Basic" && rows_are $before'
enroll /.well-known/est/p384only/simpleenroll "$W/short.b64" --cert "$W/mfr-leaf.pem" --key "$W/mfr-leaf.key"
check "manufacturer certificate on a profile that does not allow that anchor: 403, no row" \
	eval 'status_and_reason 403 manufacturer && rows_are $before'

# --- 5. labels ------------------------------------------------------------------

before=$(rows)
enroll /.well-known/est/p384only/simpleenroll "$W/short.b64" $FACTORY
check "label p384only: P-384 CSR returns 200" got_cert short
fourteen_days() {
	d_nb=$(epoch "$(not_before "$W/short.pem")") d_na=$(epoch "$(not_after "$W/short.pem")")
	[ $((d_na - d_nb)) -eq $((14 * 86400)) ] && return 0
	echo "notAfter - notBefore = $((d_na - d_nb)) s, expected $((14 * 86400))"
	return 1
}
check "label p384only: notAfter - notBefore is exactly 14 days" fourteen_days
check "label p384only: row has profile p384only" \
	eval 'rows_are $((before + 1)) && db_row_is short "issued|p384only|est|basic:factory"'
db_validity() {
	dv=$(pg -c "select extract(epoch from not_after - not_before)::bigint from certificates where serial='$(serial_of "$W/short.pem")'")
	[ "$dv" = $((14 * 86400)) ] || { echo "stored validity $dv s, expected $((14 * 86400))"; return 1; }
}
check "label p384only: stored not_before/not_after are the certificate's" db_validity
enroll /.well-known/est/p384only/simplereenroll "$W/short.b64" --cert "$W/short.pem" --key "$W/short.key"
check "simplereenroll on a profile without reenroll: 403, no row" \
	eval 'status_and_reason 403 "re-enrollment" && rows_are $((before + 1))'
enroll /.well-known/est/simplereenroll "$W/short.b64" --cert "$W/short.pem" --key "$W/short.key"
check "a 14-day certificate cannot be renewed under another profile (device): 403, no row" \
	eval 'status_and_reason 403 "issued under profile" && rows_are $((before + 1))'
enroll /.well-known/est/p384only/simpleenroll "$W/p256.b64" $FACTORY
check "label p384only: P-256 CSR is 400 with a reason about the key, no row" \
	eval 'status_and_reason 400 key && rows_are $((before + 1))'
before=$(rows)
enroll /.well-known/est/nosuch/simpleenroll "$W/p256.b64" $FACTORY
check "unknown label nosuch: 404, no row" eval 'status_and_reason 404 nosuch && rows_are $before'
enroll /.well-known/est/server.tls/simpleenroll "$W/p256.b64" $FACTORY
check "the internal profile server.tls is not an EST label: 404, no row" \
	eval 'status_and_reason 404 . && rows_are $before'
enroll /.well-known/est/longlife/simpleenroll "$W/long.b64" $FACTORY
check "label longlife: 200" got_cert long
clamped() {
	[ "$(not_after "$W/long.pem")" = "$(not_after "$W/issuing.pem")" ] && return 0
	echo "notAfter $(not_after "$W/long.pem"), issuing CA notAfter $(not_after "$W/issuing.pem")"
	return 1
}
check "label longlife: 7300 days clamped to the issuing CA's notAfter" clamped
check "label longlife: certificate verifies" verifies long

# --- 6. bad inputs: a clear 4xx saying why, nothing stored -------------------

before=$(rows)
bad() { # bad DESCRIPTION STATUS REASON_REGEX PATH BODYFILE|- [CURL ARGS...]
	b_desc=$1 b_st=$2 b_re=$3 b_path=$4 b_file=$5
	shift 5
	if [ "$b_file" = - ]; then
		http "$b_path" "$@"
	else
		enroll "$b_path" "$b_file" "$@"
	fi
	check "$b_desc: $b_st saying why, no row" eval 'status_and_reason $b_st "$b_re" && rows_are $before'
}
E=/.well-known/est
bad "garbage body" 400 'base64|PKCS#10|request' $E/simpleenroll "$W/garbage.txt" $FACTORY
bad "empty body" 400 'base64|PKCS#10|empty' $E/simpleenroll "$W/empty.txt" $FACTORY
bad "base64 of random bytes" 400 'PKCS#10|DER|request' $E/simpleenroll "$W/random.b64" $FACTORY
bad "CSR with a flipped signature byte" 400 signature $E/simpleenroll "$W/badsig.b64" $FACTORY
bad "valid CSR + 1 trailing byte" 400 trailing $E/simpleenroll "$W/trailing.b64" $FACTORY
bad "wrong Content-Type (text/plain)" 415 Content-Type $E/simpleenroll - \
	-H 'Content-Type: text/plain' --data-binary "@$W/p256.b64" $FACTORY
bad "no Content-Type" 415 Content-Type $E/simpleenroll - \
	-H 'Content-Type:' --data-binary "@$W/p256.b64" $FACTORY
bad "GET on simpleenroll" 405 POST $E/simpleenroll - $FACTORY
bad "POST on cacerts" 405 GET $E/cacerts "$W/p256.b64" $FACTORY
bad "body over server.max_body_bytes (70 KB, Content-Length)" 413 large $E/simpleenroll "$W/big.txt" $FACTORY
bad "body over server.max_body_bytes (70 KB, chunked)" 413 large $E/simpleenroll "$W/big.txt" \
	-H 'Transfer-Encoding: chunked' $FACTORY
bad "wrong password" 401 credentials $E/simpleenroll "$W/p256.b64" $WRONGPW
check "wrong password: WWW-Authenticate: Basic" header_is WWW-Authenticate '^Basic'
bad "no credentials" 401 authentication $E/simpleenroll "$W/p256.b64"
check "no credentials: WWW-Authenticate: Basic" header_is WWW-Authenticate '^Basic'
bad "unknown user" 401 credentials $E/simpleenroll "$W/p256.b64" $NOBODY
bad "malformed Authorization header" 401 credentials $E/simpleenroll "$W/p256.b64" \
	-H 'Authorization: Basic %%%not-base64%%%'
bad "a key the profile forbids (RSA-1024)" 400 'RSA|key' $E/simpleenroll "$W/rsa1024.b64" $FACTORY
bad "a key the profile forbids (secp256k1)" 400 'curve|key' $E/simpleenroll "$W/k1.b64" $FACTORY
bad "CSR with 10 SANs when max_sans is 4" 400 subjectAltName $E/simpleenroll "$W/sans10.b64" $FACTORY
bad "unknown EST operation" 404 operation $E/frobnicate - $FACTORY
bad "unknown EST operation under a label" 404 operation $E/device/frobnicate - $FACTORY
bad "a path below an operation" 404 'no such' $E/device/simpleenroll/x "$W/p256.b64" $FACTORY

# Concurrent enrollments: every worker thread has its own database session.
before=$(rows)
par_pids=
for k in 1 2 3 4 5 6 7 8; do
	curl -sS --max-time 60 --cacert "$CURL_CA" --resolve "localhost:$PORT:127.0.0.1" $FACTORY \
		-H 'Content-Type: application/pkcs10' --data-binary "@$W/par$k.b64" -o "$W/par$k.body" \
		-w '%{http_code}' "$BASE/.well-known/est/simpleenroll" >"$W/par$k.status" 2>"$W/par$k.err" &
	par_pids="$par_pids $!"
done
for p in $par_pids; do wait "$p"; done
parallel_ok() {
	for k in 1 2 3 4 5 6 7 8; do
		[ "$(cat "$W/par$k.status")" = 200 ] || { echo "request $k: HTTP $(cat "$W/par$k.status") $(cat "$W/par$k.err")"; head -c 300 "$W/par$k.body"; return 1; }
		openssl base64 -d -in "$W/par$k.body" | openssl pkcs7 -inform DER -print_certs -out "$W/par$k.pem" || return 1
		serial_of "$W/par$k.pem"
	done >"$W/par.serials" || { cat "$W/par.serials"; return 1; }
	[ "$(sort -u "$W/par.serials" | wc -l)" = 8 ] || { echo "serials not distinct:"; cat "$W/par.serials"; return 1; }
	rows_are $((before + 8))
}
check "8 concurrent simpleenrolls: all 200, 8 distinct serials, 8 rows" parallel_ok

# --- 7. database failure --------------------------------------------------------

before=$(rows)
sh "$REPO/deploy/embedded.sh" stop "$DIR" >"$W/pg-stop.log" 2>&1
enroll /.well-known/est/simpleenroll "$W/dbdown.b64" $FACTORY
db_down_503() {
	status_and_reason 503 'request id' || return 1
	# no internal detail on a 5xx, and the request id finds the log line
	if grep -Eiq 'postgres|socket|connect|/run' "$BODY"; then
		echo "the 503 body shows internal detail"
		show_response
		return 1
	fi
	dd_id=$(tr -d '\r' <"$HDR" | sed -n 's/^X-Request-Id: *//ip')
	[ -n "$dd_id" ] && grep "\"req\":\"$dd_id\"" "$LOG" | grep -q '"level":"error"' ||
		{ echo "no error log line for X-Request-Id '$dd_id'"; return 1; }
}
check "PostgreSQL stopped: simpleenroll is 503 with no certificate and no internal detail" db_down_503
enroll /.well-known/est/simpleenroll "$W/dbdown.b64" $FACTORY
check "PostgreSQL stopped: a second simpleenroll is 503 too" status_and_reason 503 'request id'
sh "$REPO/deploy/embedded.sh" start "$DIR" >"$W/pg-start.log" 2>&1
check "PostgreSQL started again" rows_are "$before"
# While the store is known to be down the server retries it at most every
# 2 s (answering 503 meanwhile): the first enrollment may wait for that.
back_within_5s() {
	for _ in 1 2 3 4 5 6 7 8 9 10; do
		enroll /.well-known/est/simpleenroll "$W/dbdown.b64" $FACTORY
		[ "$ST" = 503 ] || break
		sleep 0.5
	done
	got_cert dbup0 && rows_are $((before + 1))
}
check "PostgreSQL back: an enrollment succeeds within 5 s, without a restart" back_within_5s
before=$((before + 1))
for k in 1 2 3 4; do
	enroll /.well-known/est/simpleenroll "$W/dbdown.b64" $FACTORY
	check "PostgreSQL back: simpleenroll $k/4 is 200 (the server reconnects by itself)" \
		eval 'got_cert dbup$k && rows_are $((before + k))'
done

# --- 8. mintctl and mintcad command line ---------------------------------------

before=$(rows)
mintctl_cli() {
	"$B/mintctl" issue -c "$DIR/test.json" --profile cli --csr "$W/cli.der" --out "$W/cli.pem" ||
		{ echo "mintctl exited $?"; return 1; }
	verifies cli && names_match cli cli && rows_are $((before + 1)) &&
		db_row_is cli "issued|cli|cli|operator:${USER-mintctl}"
}
check "mintctl issue --profile cli: exit 0, certificate verifies and is recorded" mintctl_cli
before=$(rows)
mintctl_refused() {
	if "$B/mintctl" issue -c "$DIR/test.json" --profile device --csr "$W/cli.der" --out "$W/cli-device.pem"; then
		echo "mintctl issue --profile device exited 0"
		return 1
	fi
	grep -q 'operators may not use' "$W/check-$CHECK_N.out" && rows_are "$before" && [ ! -s "$W/cli-device.pem" ]
}
check "mintctl issue --profile device: refused (operator not allowed), non-zero, no row" mintctl_refused
check "mintcad --check-config on the test config: exit 0" "$B/mintcad" --check-config -c "$DIR/test.json"
write_config "$DIR/test-bad.json" '"frobnicate_timeout": 5'
bad_line=$(grep -n '"frobnicate_timeout"' "$DIR/test-bad.json" | cut -d: -f1)
bad_config() {
	if "$B/mintcad" --check-config -c "$DIR/test-bad.json" >"$W/bad-config.out" 2>&1; then
		echo "mintcad --check-config accepted an unknown key"
		cat "$W/bad-config.out"
		return 1
	fi
	grep -F "test-bad.json:$bad_line:" "$W/bad-config.out" | grep -q frobnicate_timeout && return 0
	echo "expected 'test-bad.json:$bad_line:' and the key in:"
	cat "$W/bad-config.out"
	return 1
}
check "mintcad --check-config with an unknown key: non-zero, names test-bad.json:$bad_line: and the key" bad_config
helps() { "$@" >"$W/help.out" && grep -q usage "$W/help.out"; }
check "mintcad --help: exit 0 and usage" helps "$B/mintcad" --help
check "mintctl --help: exit 0 and usage" helps "$B/mintctl" --help
check "mintctl issue --help: exit 0 and usage" helps "$B/mintctl" issue --help

# --- 9. graceful shutdown and restart on the same data ------------------------

RES_RUNNING=$(pg -c "select count(*) from reserved_serials")
stop_server
check "SIGTERM: mintcad exits 0 within 10 s" eval '[ "$STOP_RC" = 0 ] || { echo "exit: $STOP_RC"; false; }'
# A block whose every serial has its certificate is deleted; the serials
# reserved ahead and never used are given back.
settled_blocks() {
	full=$(pg -c "select count(*) from serial_blocks b where not exists (select 1 from unnest(b.serials) s where not exists (select 1 from certificates c where c.serial = s))")
	res_now=$(pg -c "select count(*) from reserved_serials")
	[ "$full" = 0 ] && [ "$res_now" -lt "$RES_RUNNING" ] && return 0
	echo "blocks with every serial issued: $full; reserved serials: $RES_RUNNING while running, $res_now after the stop"
	return 1
}
check "SIGTERM: serials reserved ahead are settled (used blocks deleted, unused serials given back)" settled_blocks
check "SIGTERM: log has server.stopped" grep -q '"event":"server.stopped"' "$LOG"
check "first run: no sanitizer report in mintcad.log" no_sanitizer_report "$LOG"

LOG2=$DIR/mintcad-restart.log
check "mintcad starts again on the same data" start_server "$LOG2"
http /.well-known/est/cacerts
check "restart: cacerts answer is byte-identical (CAs come from the database)" \
	eval 'status_is 200 && cmp "$BODY" "$W/cacerts.b64"'
check "restart: no CA created, still 2 CAs stored" \
	eval '! grep -q "\"event\":\"ca.created\"" "$LOG2" && [ "$(pg -c "select count(*) from cas")" = 2 ]'
before=$(rows)
enroll /.well-known/est/simpleenroll "$W/restart.b64" $FACTORY
check "restart: simpleenroll returns 200 and the certificate verifies" \
	eval 'got_cert restart && verifies restart && rows_are $((before + 1))'
enroll /.well-known/est/simplereenroll "$W/p256.b64" --cert "$W/p256new.pem" --key "$W/p256.key"
check "restart: simplereenroll with the renewed certificate: 200" got_cert p256third
stop_server
check "restart: SIGTERM, exit 0 within 10 s" eval '[ "$STOP_RC" = 0 ] || { echo "exit: $STOP_RC"; false; }'
check "restart: log has server.stopped" grep -q '"event":"server.stopped"' "$LOG2"
check "restart: no sanitizer report in mintcad-restart.log" no_sanitizer_report "$LOG2"
check "mintctl and command-line runs: no sanitizer report" \
	no_sanitizer_report "$W/setup.log" "$W/ca-show.err" "$W/bad-config.out" "$W"/check-*.out

# --- 9b. the development-only PEM file signer ---------------------------------

# Same database, another CA name, CA keys in files: it must work and say loudly
# that it is unsafe, at every start.
devfile_config() {
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$DIR/secrets/devfile-root.key" &&
		openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$DIR/secrets/devfile-issuing.key" &&
		cp "$DIR/test.json" "$DIR/test-pkcs11.json" &&
		sed -e 's/"name": "dev",/"name": "devfile",/' \
			-e 's|"signer": { "type": "pkcs11".*|"signer": { "type": "file", "root_key_file": "'"$DIR"'/secrets/devfile-root.key",|' \
			-e 's|"pin_file": .*|"issuing_key_file": "'"$DIR"'/secrets/devfile-issuing.key" }|' \
			-e '/"issuing_key_label": "mintca-issuing" }/d' \
			-e 's/"dev", "manufacturer"/"devfile", "manufacturer"/' \
			"$DIR/test-pkcs11.json" >"$DIR/test.json" &&
		rm -f "$DIR/tls/server.crt" "$DIR/tls/server.key"
}
check "file signer: config with CA keys in PEM files is valid" \
	eval 'devfile_config && "$B/mintcad" -c "$DIR/test.json" --check-config >"$W/check-devfile.out" 2>&1'
LOG3=$DIR/mintcad-devfile.log
check "file signer: mintcad starts" start_server "$LOG3"
check "file signer: every start warns that the keys are not in an HSM" \
	eval 'grep -q "\"event\":\"signer.unsafe_file_key\"" "$LOG3" && grep -q "\"event\":\"ca.unsafe\"" "$LOG3"'
# A new CA: its chain comes over an unauthenticated bootstrap (RFC 7030 §4.1.1).
http /.well-known/est/cacerts -k
openssl base64 -d -in "$BODY" | openssl pkcs7 -inform DER -print_certs >"$W/devfile-chain.pem" 2>>"$W/setup.log"
check "file signer: cacerts is a new chain, not the token CA's" \
	eval 'status_is 200 && ! cmp -s "$BODY" "$W/cacerts.b64"'
PKCS11_CA=$CURL_CA
CURL_CA=$W/devfile-chain.pem
before=$(rows)
enroll /.well-known/est/simpleenroll "$W/restart.b64" $FACTORY
check "file signer: enrolls, and the certificate chains to the file CA's root" \
	eval 'got_cert devfile && openssl verify -CAfile "$W/devfile-chain.pem" "$W/devfile.pem" >/dev/null && rows_are $((before + 1))'
check "file signer: the row names the file CA" \
	eval '[ "$(pg -c "select ca from certificates where serial='"'"'$(serial_of "$W/devfile.pem")'"'"'")" = devfile ]'
stop_server
check "file signer: SIGTERM, exit 0" eval '[ "$STOP_RC" = 0 ] || { echo "exit: $STOP_RC"; false; }'
check "file signer: no sanitizer report" no_sanitizer_report "$LOG3"
CURL_CA=$PKCS11_CA

# --- 10. secrets ---------------------------------------------------------------

no_secret() { # no_secret NAME VALUE
	if grep -rlF -- "$2" "$W" "$DIR"/mintcad*.log; then
		echo "the $1 appears in the files above"
		return 1
	fi
}
check "the EST password appears in no log and no captured output" no_secret password "$PASSWORD"
check "the PKCS#11 PIN appears in no log and no captured output" no_secret PIN "$PIN"
check "the SO PIN appears in no log and no captured output" no_secret "SO PIN" "$SO_PIN"

echo "# $(($(date +%s) - START)) s"
echo "$PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
