#!/bin/sh
# Integration test of the policy features: several CAs on one token (mintctl
# ca init/create, "issuing_cas", per-CA cacerts), validity strings, subject
# and SAN rules and credential name bindings as the EST client sees them, a
# compact profile, rate limits, `mintctl policy explain` / `profile size`, and
# SIGHUP reloads. Same set-up as run.sh: the real mintcad on a throwaway
# PostgreSQL cluster and SoftHSM token (deploy/embedded.sh), driven with stock
# curl and openssl. Every success path has its failure twin, and every refusal
# leaves the certificates table as it was. Prints "ok - ..." / "not ok - ..."
# per check, then "N passed, M failed"; exits 1 when a check or the set-up
# failed.
#
#   MINTCA_BUILD=build|build-asan sh tests/integration/policy.sh
set -u

REPO=$(cd "$(dirname "$0")/../.." && pwd -P)
B=${MINTCA_BUILD:-build}
case $B in /*) ;; *) B=$REPO/$B ;; esac
. "$REPO/tests/integration/lib.sh"

it_prepare curl openssl ss softhsm2-util pkcs11-tool awk
E=/.well-known/est

# --- set-up: PostgreSQL, SoftHSM token, secrets ------------------------------

it_setup
# The rate limit checks need 4 requests within 4 s, under the sanitizers too.
cheap_hash

# Three Basic users share that password (and hash): factory; line1, bound
# to CNs line1-N; limited, with its own rate limit.
curl_users factory line1 limited
FACTORY=$(basic factory)
LINE1=$(basic line1)
LIMITED=$(basic limited)

# mintctl, its standard output to $W/NAME.out, its error output to $W/NAME.err;
# CTL_RC is its exit status.
ctl() {
	ctl_name=$1
	shift
	CTL_RC=0
	"$B/mintctl" "$@" >"$W/$ctl_name.out" 2>"$W/$ctl_name.err" || CTL_RC=$?
}

# Labels of the objects on the mintca token, sorted (PIN from the environment).
token_labels() {
	MINTCA_PIN=$PIN pkcs11-tool --module "$MINTCA_PKCS11_MODULE" --token-label mintca \
		--login --pin env:MINTCA_PIN --list-objects 2>/dev/null |
		sed -n 's/^ *label: *//p' | sort
}
cas_rows() { pg -c "select name, coalesce(parent, '-'), coalesce(key_label, '-') from cas order by name"; }

# --- 1a. CAs made with mintctl ca init / create (before the first start) -----

BASECONF=$DIR/mintcad.json
ctl ca-init-prod-root ca init -c "$BASECONF" --name prod-root --subject "/O=Example Prod/CN=Example Prod Root CA" \
	--key-label prod-root --generate --validity-days 9000
cp "$W/ca-init-prod-root.out" "$W/prod-root.pem"
check "ca init prod-root: exit 0, a self-signed CA certificate on standard output" eval '
	[ "$CTL_RC" = 0 ] || { cat "$W/ca-init-prod-root.err"; false; } &&
	openssl verify -CAfile "$W/prod-root.pem" "$W/prod-root.pem" &&
	openssl x509 -in "$W/prod-root.pem" -noout -ext basicConstraints | grep -q "CA:TRUE"'
ctl ca-create-prod ca create -c "$BASECONF" --name prod --parent prod-root --subject "/O=Example Prod/CN=Example Prod Issuing CA" \
	--key-label prod-issuing --generate --key-type ec-p384 --validity-days 8000
cp "$W/ca-create-prod.out" "$W/prod.pem"
check "ca create prod (P-384) under prod-root: exit 0, signed by prod-root" eval '
	[ "$CTL_RC" = 0 ] || { cat "$W/ca-create-prod.err"; false; } &&
	openssl verify -CAfile "$W/prod-root.pem" "$W/prod.pem" &&
	openssl x509 -in "$W/prod.pem" -noout -text | grep -q "NIST CURVE: P-384"'
ctl ca-create-tiny ca create -c "$BASECONF" --name tiny --parent prod-root --subject "/CN=Tiny Issuing" \
	--key-label tiny-issuing --generate --validity-days 4000
cp "$W/ca-create-tiny.out" "$W/tiny.pem"
check "ca create tiny (/CN=Tiny Issuing) under prod-root: exit 0, signed by prod-root" eval '
	[ "$CTL_RC" = 0 ] || { cat "$W/ca-create-tiny.err"; false; } &&
	openssl verify -CAfile "$W/prod-root.pem" "$W/tiny.pem"'

# Refusals: a clear message, and neither the store nor the token changes.
token_labels >"$W/token-before.txt"
cas_rows >"$W/cas-before.txt"
unchanged() {
	token_labels >"$W/token-after.txt"
	cas_rows >"$W/cas-after.txt"
	u_rc=0
	cmp -s "$W/cas-before.txt" "$W/cas-after.txt" ||
		{ echo "the cas table changed:"; diff "$W/cas-before.txt" "$W/cas-after.txt"; u_rc=1; }
	cmp -s "$W/token-before.txt" "$W/token-after.txt" ||
		{ echo "the token's objects changed (labels, before -> after):"; diff "$W/token-before.txt" "$W/token-after.txt"; u_rc=1; }
	return $u_rc
}
refused() { # refused NAME REGEX: mintctl NAME failed, saying REGEX, and changed nothing
	r_rc=0
	[ "$CTL_RC" != 0 ] || { echo "exit 0, expected a failure"; r_rc=1; }
	grep -Eiq "$2" "$W/$1.err" || { echo "message does not match /$2/:"; r_rc=1; }
	sed -e 's/^/  stderr: /' "$W/$1.err"
	unchanged || r_rc=1
	return $r_rc
}
ctl ca-init-dup-name ca init -c "$BASECONF" --name prod-root --subject "/CN=Another Root" \
	--key-label another-root --generate --validity-days 9000
check "ca init with an existing CA name (prod-root): fails saying so, store and token unchanged" \
	refused ca-init-dup-name "prod-root.*already|already.*prod-root"
# A key the check above left behind must not fail the next ones too.
token_labels >"$W/token-before.txt"
ctl ca-init-dup-label ca init -c "$BASECONF" --name other-root --subject "/CN=Other Root" \
	--key-label prod-root --generate --validity-days 9000
check "ca init with an existing key label (prod-root): fails saying so, store and token unchanged" \
	refused ca-init-dup-label "label.*prod-root.*already|already.*prod-root"
ctl ca-create-orphan ca create -c "$BASECONF" --name orphan --parent no-such-root --subject "/CN=Orphan" \
	--key-label orphan-issuing --generate
check "ca create with an unknown parent: fails saying so, store and token unchanged" \
	refused ca-create-orphan "no such CA|no-such-root"

# --- the test's config: the default CA "dev" and the issuing CAs prod, tiny ---

profiles_base() {
	# POSIX ERE in JSON strings: "\\." is a literal dot.
	cat <<EOF
    { "name": "dev-device", "key_types": ["ec-p256", "ec-p384"], "validity_days": 365,
      "extended_key_usage": ["clientAuth"], "auth": { "basic_users": ["factory"] } },
    { "name": "prod-device", "ca": "prod", "key_types": ["ec-p256", "ec-p384"], "validity_days": 365,
      "extended_key_usage": ["clientAuth"], "auth": { "basic_users": ["factory"] } },
    { "name": "twenty", "ca": "prod", "key_types": ["ec-p256"], "validity": "20y", "backdate_seconds": 0,
      "auth": { "basic_users": ["factory"] } },
    { "name": "fortnight", "ca": "prod", "key_types": ["ec-p256"], "validity_days": 14, "backdate_seconds": 0,
      "auth": { "basic_users": ["factory"] } },
    { "name": "minute", "ca": "prod", "key_types": ["ec-p256"], "validity": "90m", "backdate_seconds": 0,
      "auth": { "basic_users": ["factory"] } },
    { "name": "devsans", "key_types": ["ec-p256"], "validity_days": 30,
      "sans": { "dns": { "max": 1, "pattern": "[a-z0-9]+\\\\.dev\\\\.example" } },
      "auth": { "basic_users": ["factory"] } },
    { "name": "hexcn", "key_types": ["ec-p256"], "validity_days": 30,
      "subject": { "rules": [ { "type": "CN", "rule": "require", "pattern": "[0-9a-f]{16}" } ] },
      "auth": { "basic_users": ["factory"] } },
    { "name": "line", "key_types": ["ec-p256"], "validity_days": 30,
      "auth": { "basic_users": ["line1"] } },
    { "name": "orgfix", "key_types": ["ec-p256"], "validity_days": 30,
      "subject": { "rules": [ { "type": "CN", "rule": "keep" },
                              { "type": "O", "rule": "override", "value": "Example Corp" } ],
                   "others": "drop" },
      "auth": { "basic_users": ["factory"] } },
    { "name": "compact", "ca": "tiny", "key_types": ["ec-p256"], "validity_days": 365,
      "basic_constraints": false, "subject_key_id": false, "serial_bytes": 9,
      "sans": { "dns": { "min": 1, "max": 1 } },
      "subject": { "rules": [ { "type": "CN", "rule": "require", "pattern": "[0-9a-f]{16}" } ], "others": "drop" },
      "auth": { "basic_users": ["factory"] } },
    { "name": "ratelim", "key_types": ["ec-p256"], "validity_days": 30,
      "rate_limit": { "count": 3, "window_seconds": 4 },
      "auth": { "basic_users": ["factory"] } },
    { "name": "edgelim", "key_types": ["ec-p256"], "validity_days": 30,
      "rate_limit": { "count": 2, "window_seconds": 600 },
      "auth": { "basic_users": ["factory"] } },
    { "name": "userlim", "key_types": ["ec-p256"], "validity_days": 30,
      "auth": { "basic_users": ["limited"] } },
EOF
}

write_config() { # write_config FILE LAST_PROFILE_NAME
	{
		cat <<EOF
{
  "server": { "listen": "127.0.0.1", "port": $PORT, "threads": 2, "max_connections": 64,
              "connection_timeout_s": 10, "max_body_bytes": 65536, "public_name": "localhost" },
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
  "issuing_cas": [
    { "name": "prod", "signer": { "type": "pkcs11", "module": "$MINTCA_PKCS11_MODULE", "token_label": "mintca",
                                  "pin_file": "$DIR/secrets/pkcs11.pin", "key_label": "prod-issuing" } },
    { "name": "tiny", "signer": { "type": "pkcs11", "module": "$MINTCA_PKCS11_MODULE", "token_label": "mintca",
                                  "pin_file": "$DIR/secrets/pkcs11.pin", "key_label": "tiny-issuing" } }
  ],
  "log": { "level": "info" },
  "est": { "default_profile": "dev-device" },
  "users": [
    { "name": "factory", "password_hash": "$HASH" },
    { "name": "line1", "password_hash": "$HASH", "allowed_names": { "cn": "line1-[0-9]+" } },
    { "name": "limited", "password_hash": "$HASH", "rate_limit": { "count": 3, "window_seconds": 4 } }
  ],
  "client_cert_anchors": [],
  "profiles": [
EOF
		profiles_base
		cat <<EOF
    { "name": "$2", "ca": "prod", "key_types": ["ec-p256"], "validity_days": 30,
      "auth": { "basic_users": ["factory"] } }
  ]
}
EOF
	} >"$1"
}
CONF=$DIR/test.json
write_config "$CONF" doomed || setup_fail "cannot write $CONF"
grep -qF '"[a-z0-9]+\\.dev\\.example"' "$CONF" || setup_fail "the devsans pattern is not escaped as intended in $CONF"
"$B/mintcad" -c "$CONF" --check-config >"$W/check-config.out" 2>&1 ||
	setup_fail "$CONF is refused: $(cat "$W/check-config.out")"

# --- CSRs (key generation takes a moment: all before the server starts) ------

HEXCN=$(openssl rand -hex 8)
{
	mkcsr devd p256 "/O=Example Devices/CN=dev-0001" "DNS:dev-0001.example" &&
	mkcsr prodd p256 "/O=Example Devices/CN=prod-0001" "DNS:prod-0001.example" &&
	mkcsr plain p256 "/CN=plain-device" &&
	mkcsr sanprod p256 "/CN=x" "DNS:x.prod.example" &&
	mkcsr sandev p256 "/CN=x" "DNS:x.dev.example" &&
	mkcsr hello p256 "/CN=hello" &&
	mkcsr hex p256 "/CN=$HEXCN" &&
	mkcsr line17 p256 "/CN=line1-7" &&
	mkcsr line27 p256 "/CN=line2-7" &&
	mkcsr org p256 "/O=Evil Corp/OU=Sales/CN=org-0001" &&
	mkcsr compact p256 "/O=Dropped Inc/CN=$HEXCN" "DNS:$HEXCN.dev.example.com" &&
	mkcsr compact2 p256 "/CN=$HEXCN" "DNS:$HEXCN.dev.example.com,DNS:b$HEXCN.dev.example.com" &&
	mkcsr compact0 p256 "/CN=$HEXCN" &&
	mkcsr compacthello p256 "/CN=hello" "DNS:$HEXCN.dev.example.com"
} >>"$W/setup.log" 2>&1 || setup_fail "cannot make the test CSRs: $(tail -n 5 "$W/setup.log")"
[ ${#HEXCN} = 16 ] && [ "$(printf %s "$HEXCN.dev.example.com" | wc -c)" = 32 ] ||
	setup_fail "the compact CSR's names are not 16 and 32 characters"

# --- start: the first start creates the dev CA ---------------------------------

LOG=$DIR/mintcad.log
start_server "$LOG" >"$W/start.out" 2>&1 || setup_fail "$(cat "$W/start.out")"
SERVER_PID=$PID
split_chain() { # split_chain B64_FILE PREFIX: PREFIX-1.pem, PREFIX-2.pem ...; prints the count
	openssl base64 -d -in "$1" | openssl pkcs7 -inform DER -print_certs -out "$W/$2-all.pem" || return 1
	awk '/BEGIN CERTIFICATE/ { n++ } n { print > (dir "/" p "-" n ".pem") }' dir="$W" p="$2" "$W/$2-all.pem"
	grep -c 'BEGIN CERTIFICATE' "$W/$2-all.pem"
}
http $E/cacerts -k
[ "$ST" = 200 ] || setup_fail "GET cacerts answered $ST: $(head -c 300 "$BODY")"
cp "$BODY" "$W/cacerts.b64"
n=$(split_chain "$W/cacerts.b64" devchain) || setup_fail "cacerts does not decode"
[ "$n" = 2 ] || setup_fail "the default cacerts holds $n certificates, expected 2"
cp "$W/devchain-1.pem" "$W/issuing.pem"
cp "$W/devchain-2.pem" "$W/root.pem"
CURL_CA=$W/root.pem
openssl verify -CAfile "$W/root.pem" -untrusted "$W/issuing.pem" "$DIR/tls/server.crt" >/dev/null 2>&1 ||
	setup_fail "the server's TLS certificate does not chain to the dev root"
echo "# data folder $DIR, port $PORT, build $B"

# --- 1b. separate CAs -----------------------------------------------------------

fp() { openssl x509 -in "$1" -noout -fingerprint -sha256; }
same_cert() { [ "$(fp "$1")" = "$(fp "$2")" ] || { echo "$1 and $2 differ"; return 1; }; }

dev_chain() {
	openssl x509 -in "$W/issuing.pem" -noout -subject | grep -q 'mintca test issuing CA' &&
		openssl verify -CAfile "$W/root.pem" "$W/issuing.pem" &&
		! openssl verify -CAfile "$W/prod-root.pem" "$W/issuing.pem" >/dev/null 2>&1
}
check "default cacerts: the dev chain (dev issuing, dev root), not prod's" dev_chain
http $E/prod/cacerts
prod_chain() {
	status_is 200 || return 1
	header_is Content-Type '^application/pkcs7-mime; *smime-type=certs-only$' || return 1
	pc_n=$(split_chain "$BODY" prodchain) || return 1
	[ "$pc_n" = 2 ] || { echo "$pc_n certificates, expected 2 (prod, prod-root)"; return 1; }
	same_cert "$W/prodchain-1.pem" "$W/prod.pem" && same_cert "$W/prodchain-2.pem" "$W/prod-root.pem"
}
check "/.well-known/est/prod/cacerts: prod's chain (prod issuing, then prod-root)" prod_chain
http $E/prod-device/cacerts
check "cacerts under the label prod-device: prod's chain too" eval 'status_is 200 && [ "$(split_chain "$BODY" pdchain)" = 2 ] && same_cert "$W/pdchain-1.pem" "$W/prod.pem"'
http $E/dev-device/cacerts
check "cacerts under the label dev-device: the dev chain" eval 'status_is 200 && cmp "$BODY" "$W/cacerts.b64"'
http $E/no-such-ca/cacerts
check "cacerts under an unknown label: 404" eval 'status_and_reason 404 no-such-ca'

cat "$W/prod.pem" "$W/issuing.pem" >"$W/both-issuing.pem"
ca_of() { pg -c "select ca from certificates where serial='$(serial_of "$W/$1.pem")'"; }
verifies_with() { # verifies_with CERT ROOT INTERMEDIATES
	openssl verify -CAfile "$W/$2.pem" -untrusted "$W/$3.pem" "$W/$1.pem"
}
fails_with() {
	if openssl verify -CAfile "$W/$2.pem" -untrusted "$W/$3.pem" "$W/$1.pem" >"$W/verify.out" 2>&1; then
		echo "$1 verifies against $2:"
		cat "$W/verify.out"
		return 1
	fi
}

before=$(rows)
enroll $E/prod-device/simpleenroll "$W/prodd.b64" $FACTORY
check "prod-device: simpleenroll 200, one certificate, one row" eval 'got_cert prodd && rows_are $((before + 1))'
check "prod-device: verifies against prod-root (-untrusted prod.pem)" verifies_with prodd prod-root prod
check "prod-device: does NOT verify against the dev root (whatever intermediates)" fails_with prodd root both-issuing
check "prod-device: the row names CA prod, profile prod-device" \
	eval '[ "$(ca_of prodd)" = prod ] && db_row_is prodd "issued|prod-device|est|basic:factory" && db_der_matches prodd'
before=$(rows)
enroll $E/dev-device/simpleenroll "$W/devd.b64" $FACTORY
check "dev-device: simpleenroll 200, one row" eval 'got_cert devd && rows_are $((before + 1))'
check "dev-device: verifies against the dev root" verifies_with devd root issuing
check "dev-device: does NOT verify against prod-root (whatever intermediates)" fails_with devd prod-root both-issuing
check "dev-device: the row names CA dev" eval '[ "$(ca_of devd)" = dev ] && db_row_is devd "issued|dev-device|est|basic:factory"'
before=$(rows)
enroll $E/simpleenroll "$W/plain.b64" $FACTORY
check "no label: the default profile dev-device, issued by dev" \
	eval 'got_cert plain && rows_are $((before + 1)) && verifies_with plain root issuing && [ "$(ca_of plain)" = dev ]'

ca_show() {
	"$B/mintctl" ca show -c "$CONF" >"$W/ca-show.pem" 2>"$W/ca-show.err" || { cat "$W/ca-show.err"; return 1; }
	cs_rc=0
	for c in root issuing prod-root prod tiny; do
		grep -q "$(openssl x509 -in "$W/$c.pem" -outform DER | openssl base64 | head -n 1)" "$W/ca-show.pem" ||
			{ echo "the $c certificate is missing from 'mintctl ca show'"; cs_rc=1; }
	done
	if [ $cs_rc != 0 ]; then
		echo "what it printed:"
		awk '/^#/ { print; next } /BEGIN CERTIFICATE/ { f = dir "/ca-show-" ++n ".pem" } f { print > f }
			/END CERTIFICATE/ { print "cert " n; f = "" }' dir="$W" "$W/ca-show.pem" |
			while read -r cs_a cs_b; do
				if [ "$cs_a" = cert ]; then
					echo "  $(openssl x509 -in "$W/ca-show-$cs_b.pem" -noout -subject -nameopt RFC2253)"
				else
					echo "$cs_a $cs_b"
				fi
			done
	fi
	return $cs_rc
}
check "mintctl ca show: prints both chains (dev root + issuing, prod-root + prod, and tiny)" ca_show

# --- 2. validity ------------------------------------------------------------------

span_is() { # span_is CERT SECONDS: notAfter - notBefore, in the certificate and its row
	s_nb=$(epoch "$(not_before "$W/$1.pem")") s_na=$(epoch "$(not_after "$W/$1.pem")")
	s_db=$(pg -c "select extract(epoch from not_after - not_before)::bigint from certificates where serial='$(serial_of "$W/$1.pem")'")
	[ $((s_na - s_nb)) -eq "$2" ] && [ "$s_db" = "$2" ] && return 0
	echo "notAfter - notBefore = $((s_na - s_nb)) s (stored: $s_db s), expected $2 s"
	return 1
}
before=$(rows)
enroll $E/twenty/simpleenroll "$W/plain.b64" $FACTORY
check "validity \"20y\" on prod: 200, notAfter - notBefore exactly 20*365 days" \
	eval 'got_cert twenty && span_is twenty $((20 * 365 * 86400)) && [ "$(ca_of twenty)" = prod ] && rows_are $((before + 1))'
check "validity \"20y\": notBefore is now (backdate_seconds 0)" \
	eval 'nb=$(epoch "$(not_before "$W/twenty.pem")"); now=$(date +%s); [ $((now - nb)) -ge 0 ] && [ $((now - nb)) -le 30 ]'
enroll $E/fortnight/simpleenroll "$W/plain.b64" $FACTORY
check "validity_days 14: 200, notAfter - notBefore exactly 14 days" \
	eval 'got_cert fortnight && span_is fortnight $((14 * 86400))'
enroll $E/minute/simpleenroll "$W/plain.b64" $FACTORY
check "validity \"90m\": 200, notAfter - notBefore exactly 5400 s" \
	eval 'got_cert minute && span_is minute 5400'
# Failure twins: a bad duration and two lifetimes at once are refused at load.
bad_validity() { # bad_validity NAME 'JSON pair' REGEX
	sed -e 's/"validity": "90m"/'"$2"'/' "$CONF" >"$W/$1.json"
	bv_rc=0
	"$B/mintcad" -c "$W/$1.json" --check-config >"$W/$1.out" 2>&1 && { echo "accepted"; bv_rc=1; }
	grep -Eq "$1.json:[0-9]+: .*$3" "$W/$1.out" || { echo "no file:line and reason /$3/"; bv_rc=1; }
	cat "$W/$1.out"
	return $bv_rc
}
check "validity \"90x\" is refused at load, with file:line and the reason" \
	bad_validity badunit '"validity": "90x"' 'duration'
check "validity and validity_days together are refused at load" \
	bad_validity twovalidity '"validity": "90m", "validity_days": 1' 'exactly one'

# --- 3. policy decisions as the EST client sees them --------------------------------

before=$(rows)
enroll $E/devsans/simpleenroll "$W/sanprod.b64" $FACTORY
check "devsans: DNS:x.prod.example is 400, the body cites the pattern, no row" \
	eval 'status_and_reason 400 "x\\.prod\\.example" && grep -qF "[a-z0-9]+\\.dev\\.example" "$BODY" && rows_are $before'
enroll $E/dev-device/simpleenroll "$W/sanprod.b64" $FACTORY
check "the same CSR under dev-device (no SAN rules): 200 with DNS:x.prod.example" \
	eval 'got_cert sanprod && [ "$(cert_san "$W/sanprod.pem")" = "DNS:x.prod.example" ] && rows_are $((before + 1))'
before=$(rows)
enroll $E/devsans/simpleenroll "$W/sandev.b64" $FACTORY
check "devsans: DNS:x.dev.example matches the pattern: 200" \
	eval 'got_cert sandev && names_match sandev sandev && rows_are $((before + 1))'

before=$(rows)
enroll $E/hexcn/simpleenroll "$W/hello.b64" $FACTORY
check "hexcn: CN=hello is 400, the body cites CN and the pattern, no row" \
	eval 'status_and_reason 400 "CN" && grep -qF "[0-9a-f]{16}" "$BODY" && rows_are $before'
enroll $E/hexcn/simpleenroll "$W/hex.b64" $FACTORY
check "hexcn: CN of 16 hex characters: 200" \
	eval 'got_cert hex && [ "$(cert_subject "$W/hex.pem")" = "CN=$HEXCN" ] && rows_are $((before + 1))'
before=$(rows)
enroll $E/dev-device/simpleenroll "$W/hello.b64" $FACTORY
check "the same CN=hello under dev-device: 200" eval 'got_cert hellodev && rows_are $((before + 1))'

before=$(rows)
enroll $E/line/simpleenroll "$W/line17.b64" $LINE1
check "user line1 (allowed_names cn line1-[0-9]+): CN=line1-7 is 200" \
	eval 'got_cert line17 && db_row_is line17 "issued|line|est|basic:line1" && rows_are $((before + 1))'
before=$(rows)
enroll $E/line/simpleenroll "$W/line27.b64" $LINE1
check "user line1: CN=line2-7 is 400/403, the body names the credential, no row" \
	eval 'case $ST in 400|403) ;; *) status_is 403; false ;; esac && status_and_reason $ST "basic:line1|user .?line1" && rows_are $before'
enroll $E/line/simpleenroll "$W/line17.b64" $FACTORY
check "profile line with user factory (not listed): 403, no row" \
	eval 'status_and_reason 403 factory && rows_are $before'

before=$(rows)
enroll $E/orgfix/simpleenroll "$W/org.b64" $FACTORY
check "orgfix: 200; O is the profile's (Example Corp), not the CSR's (Evil Corp)" \
	eval 'got_cert org && s=$(cert_subject "$W/org.pem") && echo "subject: $s" &&
		printf "%s\n" "$s" | grep -q "O=Example Corp" && ! printf "%s\n" "$s" | grep -q Evil && rows_are $((before + 1))'
check "orgfix: \"others\": \"drop\" removed the OU the CSR asked for; CN kept" \
	eval 's=$(cert_subject "$W/org.pem") && echo "subject: $s" && ! printf "%s\n" "$s" | grep -q "OU=" &&
		printf "%s\n" "$s" | grep -q "CN=org-0001"'
enroll $E/dev-device/simpleenroll "$W/org.b64" $FACTORY
check "the same CSR under dev-device (no subject rules) keeps O=Evil Corp and OU=Sales" \
	eval 'got_cert orgdev && s=$(cert_subject "$W/orgdev.pem") && echo "subject: $s" &&
		printf "%s\n" "$s" | grep -q "O=Evil Corp" && printf "%s\n" "$s" | grep -q "OU=Sales"'

# --- 4. compact profile -------------------------------------------------------------

before=$(rows)
enroll $E/compact/simpleenroll "$W/compact.b64" $FACTORY
got_cert compact >"$W/compact-got.out" 2>&1
SIZE=$(openssl x509 -in "$W/compact.pem" -outform DER 2>/dev/null | wc -c)
check "compact: 200, one row; the certificate is $SIZE bytes of DER (at most 420)" \
	eval 'got_cert compact && rows_are $((before + 1)) && [ "$SIZE" -gt 0 ] && [ "$SIZE" -le 420 ]'
check "compact: openssl verify accepts it with tiny + prod-root" verifies_with compact prod-root tiny
compact_shape() {
	openssl x509 -in "$W/compact.pem" -noout -text >"$W/compact.txt" || return 1
	cs_rc=0
	for no in 'X509v3 Basic Constraints' 'X509v3 Subject Key Identifier' 'X509v3 Extended Key Usage'; do
		grep -q "$no" "$W/compact.txt" && { echo "has $no"; cs_rc=1; }
	done
	[ "$(cert_subject "$W/compact.pem")" = "CN=$HEXCN" ] || { echo "subject $(cert_subject "$W/compact.pem")"; cs_rc=1; }
	[ "$(cert_san "$W/compact.pem")" = "DNS:$HEXCN.dev.example.com" ] || { echo "SAN $(cert_san "$W/compact.pem")"; cs_rc=1; }
	[ ${#HEXCN} = 16 ] || cs_rc=1
	s_len=$(serial_of "$W/compact.pem" | wc -c) # hex digits + newline
	[ "$s_len" -le 19 ] || { echo "serial $(serial_of "$W/compact.pem") is longer than 9 bytes"; cs_rc=1; }
	openssl x509 -in "$W/compact.pem" -noout -issuer | grep -q 'Tiny Issuing' || { echo "issuer is not tiny"; cs_rc=1; }
	[ $cs_rc = 0 ] || cat "$W/compact.txt"
	return $cs_rc
}
check "compact: x509 -text parses it; no basicConstraints, SKID or EKU; 9-byte serial; O dropped" compact_shape
check "compact: the row names CA tiny" eval '[ "$(ca_of compact)" = tiny ]'
before=$(rows)
enroll $E/compact/simpleenroll "$W/compact2.b64" $FACTORY
check "compact: two dNSNames (max 1): 400 saying why, no row" eval 'status_and_reason 400 "subjectAltName|dns" && rows_are $before'
enroll $E/compact/simpleenroll "$W/compact0.b64" $FACTORY
check "compact: no dNSName (min 1): 400 saying why, no row" eval 'status_and_reason 400 "at least 1|dns" && rows_are $before'
enroll $E/compact/simpleenroll "$W/compacthello.b64" $FACTORY
check "compact: CN=hello: 400 citing the pattern, no row" eval 'status_and_reason 400 "CN" && rows_are $before'
ctl size-compact profile size -c "$CONF" --profile compact
NSIZE=$(sed -n 's/.*compact: \([0-9][0-9]*\) bytes.*/\1/p' "$W/size-compact.out" | tail -n 1)
check "mintctl profile size --profile compact: exit 0, prints \"compact: ${NSIZE:-?} bytes\" (at most 420)" \
	eval '{ [ "$CTL_RC" = 0 ] && [ -n "$NSIZE" ] && [ "$NSIZE" -le 420 ]; } ||
		{ echo "exit $CTL_RC"; tail -n 5 "$W/size-compact.out" "$W/size-compact.err"; false; }'
# The size is meant to be the real one: same issuer name and key type as
# tiny. ECDSA signatures vary by a byte or two.
check "mintctl profile size: its ${NSIZE:-?} bytes are the real certificate's $SIZE (within 3)" \
	eval 'd=$((NSIZE - SIZE)); [ ${d#-} -le 3 ] || { echo "size says $NSIZE, the issued certificate has $SIZE";
		grep -i "issuing CA\|Issuer" "$W/size-compact.out"; false; }'
ctl size-nosuch profile size -c "$CONF" --profile no-such-profile
check "mintctl profile size --profile no-such-profile: fails saying so" \
	eval '[ "$CTL_RC" != 0 ] && grep -q "no-such-profile" "$W/size-nosuch.err"'

# --- 5. rate limits -------------------------------------------------------------------

# Windows are fixed (aligned on multiples of window_seconds): start a burst
# just after a boundary, and redo it when it did not fit in one window.
now_ms() { date +%s%3N; }
align() { # align WINDOW_S: sleep until 50 ms after the next window boundary
	a_now=$(now_ms)
	a_left=$(($1 * 1000 - a_now % ($1 * 1000) + 50))
	sleep "$(awk -v ms=$a_left 'BEGIN { printf "%.3f", ms / 1000 }')"
}
# burst NAME PATH CREDS: 4 enrollments of $W/plain.b64 in one 4-second window;
# ST1..ST4, HDR4, BODY4; ROWS_BEFORE, ROWS_AFTER3, ROWS_AFTER4.
burst() {
	b_try=0
	while :; do
		align 4
		b_t0=$(now_ms)
		ROWS_BEFORE=$(rows)
		for b_k in 1 2 3 4; do
			enroll "$2" "$W/plain.b64" $3
			eval "ST$b_k=\$ST"
			[ $b_k = 3 ] && ROWS_AFTER3=$(rows)
		done
		ROWS_AFTER4=$(rows)
		HDR4=$HDR BODY4=$BODY
		b_t1=$(now_ms)
		[ $((b_t0 / 4000)) = $((b_t1 / 4000)) ] && return 0
		b_try=$((b_try + 1))
		echo "# $1: the burst took $((b_t1 - b_t0)) ms and crossed a window boundary; again"
		[ $b_try -lt 3 ] || { BURST_SLOW=1; return 0; }
	done
}
rate_checks() { # rate_checks WHAT LIMIT_KEY PATH CREDS
	BURST_SLOW=0 RL_KEY=$2 RL_NAME=rl$RL_N
	RL_N=$((RL_N + 1))
	burst "$1" "$3" "$4"
	check "$1: 3 enrollments in the window are 200, 3 rows" \
		eval '[ $BURST_SLOW = 0 ] || { echo "could not fit 4 enrollments in 4 s"; false; } &&
			[ "$ST1 $ST2 $ST3" = "200 200 200" ] && [ $ROWS_AFTER3 = $((ROWS_BEFORE + 3)) ] ||
			{ echo "statuses $ST1 $ST2 $ST3, rows $ROWS_BEFORE -> $ROWS_AFTER3"; false; }'
	ST=$ST4 HDR=$HDR4 BODY=$BODY4
	check "$1: the 4th is 429 with Retry-After (1-4 s), the body names the limit, no row" \
		eval 'status_and_reason 429 "$RL_KEY.*3 certificates per 4 s" && header_is Retry-After "^[1-4]$" && [ $ROWS_AFTER4 = $ROWS_AFTER3 ]'
	RETRY=$(tr -d '\r' <"$HDR4" | sed -n 's/^[Rr]etry-[Aa]fter: *//p')
	sleep "${RETRY:-4}"
	sleep 0.2
	before=$(rows)
	enroll "$3" "$W/plain.b64" $4
	check "$1: after Retry-After, 200 again" eval 'got_cert "$RL_NAME" && rows_are $((before + 1))'
}
RL_N=1
rate_checks "profile rate_limit 3 per 4 s" "profile:ratelim" $E/ratelim/simpleenroll "$FACTORY"
rate_checks "user rate_limit 3 per 4 s (user limited)" "credential:basic:limited" $E/userlim/simpleenroll "$LIMITED"
# Failure twin: the profile's limit is its own; another profile is not counted.
before=$(rows)
enroll $E/ratelim/simpleenroll "$W/plain.b64" $FACTORY
enroll $E/ratelim/simpleenroll "$W/plain.b64" $FACTORY
enroll $E/dev-device/simpleenroll "$W/plain.b64" $FACTORY
check "profile limit: another profile, same user, is not limited" eval 'got_cert rl-other && rows_are $((before + 3))'

# --- 6. mintctl policy explain --------------------------------------------------------

decision() { grep -E '^(ALLOW|DENY)' "$W/$1.out" | tail -n 1; }
explain() { # explain NAME PROFILE CREDENTIAL CSR
	ctl "$1" policy explain -c "$CONF" --profile "$2" --credential "$3" --csr "$W/$4.der"
}
rate_state() { pg -c "select key, window_start, count from rate_windows order by key, window_start"; }
before=$(rows)
rate_state >"$W/rate-before.txt"
explain explain-hex hexcn basic:factory hex
check "policy explain, a good CSR: exit 0, last decision line ALLOW" \
	eval '[ "$CTL_RC" = 0 ] && decision explain-hex | grep -q "^ALLOW" || { echo "exit $CTL_RC"; cat "$W/explain-hex.out" "$W/explain-hex.err"; false; }'
explain explain-hello hexcn basic:factory hello
check "policy explain, CN=hello under hexcn: exit 1, last decision DENY with the pattern" \
	eval '[ "$CTL_RC" = 1 ] && decision explain-hello | grep -q "^DENY.*CN.*\[0-9a-f\]{16}" || { echo "exit $CTL_RC"; cat "$W/explain-hello.out" "$W/explain-hello.err"; false; }'
explain explain-line27 line basic:line1 line27
check "policy explain, CN=line2-7 as basic:line1: exit 1, DENY naming the credential" \
	eval '[ "$CTL_RC" = 1 ] && decision explain-line27 | grep -q "^DENY.*basic:line1" || { echo "exit $CTL_RC"; cat "$W/explain-line27.out" "$W/explain-line27.err"; false; }'
explain explain-line-factory line basic:factory line17
check "policy explain, profile line as basic:factory: exit 1, DENY" \
	eval '[ "$CTL_RC" = 1 ] && decision explain-line-factory | grep -q "^DENY.*factory" || { echo "exit $CTL_RC"; cat "$W/explain-line-factory.out"; false; }'
# At the limit edge: profile edgelim allows 2 per 600 s. One enrollment, two
# explains (which take seconds under the sanitizers, hence the long window),
# then the second enrollment must still be 200 and the third 429. Not across
# a window boundary: wait for the next window when this one ends within 40 s.
left=$((600 - $(date +%s) % 600))
[ $left -ge 40 ] || sleep $((left + 1))
enroll $E/edgelim/simpleenroll "$W/plain.b64" $FACTORY
EDGE1=$ST
rate_state >"$W/rate-mid.txt"
rows_mid=$(rows)
explain explain-rl1 edgelim basic:factory plain
RL1_RC=$CTL_RC
explain explain-rl2 edgelim basic:factory plain
rate_state >"$W/rate-mid2.txt"
rows_mid2=$(rows)
enroll $E/edgelim/simpleenroll "$W/plain.b64" $FACTORY
got_cert edge2 >"$W/edge2.out" 2>&1
EDGE2=$ST
enroll $E/edgelim/simpleenroll "$W/plain.b64" $FACTORY
check "policy explain at the limit edge: ALLOW twice, rate_windows and certificates unchanged" \
	eval '[ "$RL1_RC $CTL_RC" = "0 0" ] && decision explain-rl1 | grep -q "^ALLOW" && decision explain-rl2 | grep -q "^ALLOW" &&
		cmp "$W/rate-mid.txt" "$W/rate-mid2.txt" && [ "$rows_mid" = "$rows_mid2" ] ||
		{ echo "exits $RL1_RC $CTL_RC"; cat "$W/explain-rl2.out" "$W/rate-mid.txt" "$W/rate-mid2.txt"; false; }'
check "policy explain at the limit edge (2 per 600 s): 1st 200, explains, 2nd still 200, 3rd 429" \
	eval '[ "$EDGE1 $EDGE2" = "200 200" ] && status_and_reason 429 "profile:edgelim" ||
		{ echo "statuses $EDGE1 $EDGE2 $ST"; false; }'
check "policy explain wrote no certificate row" eval 'rows_are $((before + 2))'
ctl explain-badcred policy explain -c "$CONF" --profile hexcn --credential bogus --csr "$W/hex.der"
check "policy explain with a malformed credential: exit 2" eval '[ "$CTL_RC" = 2 ]'

# --- 7. SIGHUP ---------------------------------------------------------------------------

hup_wait() { # hup_wait EVENT N: until the log has N lines with EVENT (10 s)
	h_i=0
	while [ "$(grep -c "\"event\":\"$1\"" "$LOG")" -lt "$2" ] && [ $h_i -lt 50 ]; do
		sleep 0.2
		h_i=$((h_i + 1))
	done
	[ "$(grep -c "\"event\":\"$1\"" "$LOG")" -ge "$2" ]
}
cp "$CONF" "$W/test-good.json"
# A syntax error on line 4 of an otherwise good file.
awk 'NR == 4 { print "  this is not JSON," } { print }' "$W/test-good.json" >"$CONF.tmp" && mv "$CONF.tmp" "$CONF"
kill -HUP "$SERVER_PID"
check "SIGHUP with a syntax error: config.reload_refused with the file and line 4" \
	eval 'hup_wait config.reload_refused 1 && grep "\"event\":\"config.reload_refused\"" "$LOG" | grep -qF "$CONF:4" ||
		{ grep "config\\." "$LOG"; false; }'
check "SIGHUP with a syntax error: no config.reloaded" eval '! grep -q "\"event\":\"config.reloaded\"" "$LOG"'
before=$(rows)
enroll $E/doomed/simpleenroll "$W/plain.b64" $FACTORY
check "after the refused reload: enrollment under doomed still 200" eval 'got_cert doomed1 && rows_are $((before + 1))'
enroll $E/prod-device/simpleenroll "$W/plain.b64" $FACTORY
check "after the refused reload: prod-device still 200, verifies against prod-root" \
	eval 'got_cert prod2 && verifies_with prod2 prod-root prod'
write_config "$CONF.tmp" newcomer && mv "$CONF.tmp" "$CONF"
kill -HUP "$SERVER_PID"
check "SIGHUP with doomed removed and newcomer added: config.reloaded" hup_wait config.reloaded 1
before=$(rows)
enroll $E/doomed/simpleenroll "$W/plain.b64" $FACTORY
check "after the reload: the removed label doomed is 404, no row" eval 'status_and_reason 404 doomed && rows_are $before'
enroll $E/newcomer/simpleenroll "$W/plain.b64" $FACTORY
check "after the reload: the new label newcomer is 200, issued by prod" \
	eval 'got_cert newcomer && rows_are $((before + 1)) && verifies_with newcomer prod-root prod && [ "$(ca_of newcomer)" = prod ]'
enroll $E/dev-device/simpleenroll "$W/plain.b64" $FACTORY
check "after the reload: dev-device still 200" eval 'got_cert devafter && verifies_with devafter root issuing'
check "no restart: same PID, one server.ready in the log" \
	eval 'kill -0 "$SERVER_PID" && [ "$(grep -c "\"event\":\"server.ready\"" "$LOG")" = 1 ]'

# --- 8. stop, sanitizers, secrets ---------------------------------------------------------

stop_server
check "SIGTERM: mintcad exits 0" eval '[ "$STOP_RC" = 0 ] || { echo "exit: $STOP_RC"; tail -n 20 "$LOG"; false; }'
check "no sanitizer report in mintcad's log or mintctl's output" \
	no_sanitizer_report "$LOG" "$W"/*.err "$W"/*.out "$W/setup.log"
no_secret() { # no_secret NAME VALUE
	if grep -rlF -- "$2" "$W" "$DIR"/*.log "$MINTCA_PG_CLUSTER/log"; then
		echo "the $1 appears in the files above"
		return 1
	fi
}
check "the PKCS#11 PIN appears in no log and no captured output" no_secret PIN "$PIN"
check "the SO PIN appears in no log and no captured output" no_secret "SO PIN" "$SO_PIN"
check "the EST password appears in no log and no captured output" no_secret password "$PASSWORD"

echo "# $(($(date +%s) - START)) s"
echo "$PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
