#!/bin/sh
# Hostile-input integration test: the real mintcad (same set-up as run.sh)
# gets malformed, oversized, slow and hostile requests on every endpoint from
# one table, twice. Each must get the refusal it deserves in the protocol's
# own form (EST: a 4xx with a text/plain reason, never a 5xx), nothing may be
# written to the store, and the server's memory must be the same after the
# second pass as after the first. Then 500 idle and trickling connections
# must not keep a normal client from enrolling, the connection limits and
# timeout must work, and no log may hold a password or PIN. Prints "ok - ..."
# / "not ok - ..." per check, then "N passed, M failed"; exits 1 on a failure.
#
#   make BUILD=build build/slowtls   (the raw TLS client, tests/integration/slowtls.c)
#   MINTCA_BUILD=build|build-asan sh tests/integration/hostile.sh   (make integration)
#   HOSTILE_ROWS='Basic|chunk' ...   only the table rows whose name matches (debugging)
set -u

REPO=$(cd "$(dirname "$0")/../.." && pwd -P)
B=${MINTCA_BUILD:-build}
case $B in /*) ;; *) B=$REPO/$B ;; esac
. "$REPO/tests/integration/lib.sh"

it_prepare curl openssl ss softhsm2-util pkcs11-tool perl
# The memory check below compares RSS after two passes: ASan's quarantine
# (256 MB by default) must be full after the first, or its filling is what
# the second pass measures.
ASAN_OPTIONS=$ASAN_OPTIONS:quarantine_size_mb=16
[ -x "$B/slowtls" ] || setup_fail "$B/slowtls missing: make $B/slowtls"
SLOW=$B/slowtls

# --- set-up: PostgreSQL, SoftHSM token, secrets, our config (as run.sh) -------

it_setup
curl_users factory wrongpw nobody

# A second free port for the plain-HTTP listener (OCSP and CRLs).
HTTP_PORT=
for p in $((PORT + 1)) $((PORT + 2)) $((PORT + 3)) $((PORT - 1)) $((PORT - 2)); do
	if [ -z "$(ss -Hltn "sport = :$p")" ]; then
		HTTP_PORT=$p
		break
	fi
done
[ -n "$HTTP_PORT" ] || setup_fail "no free port for server.http_port"

# Server limits are left at their defaults (threads 2, max_connections 512)
# except a short idle timeout, so that the timeout rows do not take long.
TIMEOUT_S=5
write_config() { # write_config FILE [EXTRA SERVER KEYS]
	cat >"$1" <<EOF
{
  "server": { "listen": "127.0.0.1", "port": $PORT, "http_port": $HTTP_PORT,
              "connection_timeout_s": $TIMEOUT_S, "max_body_bytes": 65536, "public_name": "localhost"${2:+,
              $2} },
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
  "est": { "default_profile": "device" },
  "users": [ { "name": "factory", "password_hash": "$HASH" } ],
  "profiles": [
    { "name": "device", "key_types": ["ec-p256", "ec-p384", "rsa", "ed25519"],
      "validity_days": 365, "extended_key_usage": ["clientAuth"], "max_sans": 4,
      "auth": { "basic_users": ["factory"], "client_cert_anchors": ["dev"], "reenroll": true } },
    { "name": "p384only", "key_types": ["ec-p384"], "validity_days": 14,
      "extended_key_usage": ["clientAuth"], "auth": { "basic_users": ["factory"] } }
  ]
}
EOF
}
write_config "$DIR/test.json" || setup_fail "cannot write $DIR/test.json"

# --- request bodies -------------------------------------------------------------

G=$W/gen
mkdir -p "$G"
unhex() { perl -e 'local $/; print pack("H*", <STDIN>)'; }
hexof() { od -An -v -tx1 "$1" | tr -d ' \n'; }
# tlv TAG VALUE: one DER element, tag and value in hex.
tlv() {
	tlv_n=$((${#2} / 2))
	if [ $tlv_n -lt 128 ]; then
		printf '%s%02x%s' "$1" $tlv_n "$2"
	elif [ $tlv_n -lt 256 ]; then
		printf '%s81%02x%s' "$1" $tlv_n "$2"
	else
		printf '%s82%04x%s' "$1" $tlv_n "$2"
	fi
}
hexstr() { printf %s "$1" | od -An -v -tx1 | tr -d ' \n'; }
# cn VALUE_TAG VALUE_HEX: a Name with one commonName.
cn() { tlv 30 "$(tlv 31 "$(tlv 30 "0603550403$(tlv "$1" "$2")")")"; }
# signed_csr NAME SUBJECT_HEX [ATTRIBUTES_HEX] [VERSION]: a P-256 CSR whose
# signature is good, built by hand so that it can hold what openssl req refuses.
signed_csr() {
	sc_cri=$(tlv 30 "$(tlv 02 "${4:-00}")$2$(hexof "$G/spki.der")$(tlv a0 "${3:-}")")
	printf %s "$sc_cri" | unhex >"$G/$1.cri"
	openssl dgst -sha256 -sign "$G/k.pem" -out "$G/$1.sig" "$G/$1.cri" || return 1
	tlv 30 "$sc_cri""300a06082a8648ce3d040302$(tlv 03 "00$(hexof "$G/$1.sig")")" | unhex >"$G/$1.der"
	openssl base64 -in "$G/$1.der" -out "$G/$1"
}
# An extensionRequest attribute with one subjectAltName of the given
# GeneralName (tag and value in hex).
san_attr() {
	tlv 30 "06092a864886f70d01090e$(tlv 31 "$(tlv 30 "$(tlv 30 "0603551d11$(tlv 04 "$(tlv 30 "$(tlv "$1" "$2")")")")")")"
}
b64() { openssl base64 -in "$1" -out "$2"; }

make_bodies() {
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$G/k.pem" &&
	openssl pkey -in "$G/k.pem" -pubout -outform DER -out "$G/spki.der" &&
	openssl req -new -key "$G/k.pem" -subj "/CN=hostile-valid" -addext "subjectAltName=DNS:hostile.example" \
		-outform DER -out "$G/csr.der" &&
	b64 "$G/csr.der" "$G/csr" &&
	openssl req -in "$G/csr.der" -inform DER -out "$G/csrpem" &&
	: >"$G/empty" &&
	head -c 71680 /dev/zero | tr '\0' 'A' >"$G/big70k" &&
	openssl rand -base64 -out "$G/big1m" 786432 &&
	printf 'a=b&c=d' >"$G/form" &&
	# base64 cut short, with junk, with NULs, with '=' inside, with text after
	n=$(wc -c <"$G/csr") &&
	head -c $((n / 2)) "$G/csr" >"$G/b64half" &&
	head -c $((n - 6)) "$G/csr" >"$G/b64cut" &&
	{ head -c 40 "$G/csr"; printf '!!@@##$$%%%%^^&&**'; tail -c +41 "$G/csr"; } >"$G/b64junk" &&
	{ cat "$G/csr"; printf 'garbage after the base64 ~~~\n'; } >"$G/b64tail" &&
	{ head -c 40 "$G/csr"; printf '\000\000\000'; tail -c +41 "$G/csr"; } >"$G/b64nul" &&
	{ head -c 40 "$G/csr"; printf '=='; tail -c +41 "$G/csr"; } >"$G/b64pad" &&
	{ head -c 40 "$G/csr"; printf '\377\376\200'; tail -c +41 "$G/csr"; } >"$G/b64bin" &&
	# DER: with trailing bytes, twice, raw (not base64), cut short
	{ cat "$G/csr.der"; printf '\000'; } | openssl base64 -out "$G/dertrail1" &&
	{ cat "$G/csr.der"; openssl rand 1000; } | openssl base64 -out "$G/dertrail1k" &&
	cat "$G/csr.der" "$G/csr.der" | openssl base64 -out "$G/dertwice" &&
	cp "$G/csr.der" "$G/derraw" &&
	head -c $(($(wc -c <"$G/csr.der") - 10)) "$G/csr.der" | openssl base64 -out "$G/dertrunc" &&
	openssl x509 -in "$DIR/tls/server.crt" -outform DER | openssl base64 -out "$G/cert" &&
	openssl rand 300 | openssl base64 -out "$G/random" &&
	# ASN.1 nested 5,000 deep (definite lengths) and 10,000 deep (indefinite),
	# and a length of 2 GB
	perl -e '$s = "\x05\x00"; for (1..5000) { $n = length $s; $s = "\x30" . ($n < 128 ? chr($n) : $n < 256 ? "\x81" . chr($n) : "\x82" . pack("n", $n)) . $s } print $s' |
		openssl base64 -out "$G/nest5k" &&
	perl -e 'print "\x30\x80" x 10000, "\x00\x00" x 10000' | openssl base64 -out "$G/nest10k" &&
	printf '\060\204\177\377\377\377\060\003\002\001\000' | openssl base64 -out "$G/hugelen" &&
	# a flipped signature bit, an unknown signature algorithm
	perl -0777 -pe 'substr($_, -1, 1) = chr(ord(substr($_, -1, 1)) ^ 1)' "$G/csr.der" | openssl base64 -out "$G/badsig" &&
	perl -0777 -pe 's/(.*)\x2a\x86\x48\xce\x3d\x04\x03\x02/$1\x2a\x86\x48\xce\x3d\x04\x03\x7f/s' "$G/csr.der" |
		openssl base64 -out "$G/unkalg" &&
	# 1,000 subjectAltNames (DNS, then URI)
	openssl req -new -key "$G/k.pem" -subj "/CN=hostile-sans" \
		-addext "subjectAltName=$(seq -f 'DNS:h%g.example' 1 1000 | paste -sd, -)" -outform DER -out "$G/sans1000.der" &&
	b64 "$G/sans1000.der" "$G/sans1000" &&
	openssl req -new -key "$G/k.pem" -subj "/CN=hostile-uris" \
		-addext "subjectAltName=$(seq -f 'URI:urn:x:%g' 1 1000 | paste -sd, -)" -outform DER -out "$G/uris1000.der" &&
	b64 "$G/uris1000.der" "$G/uris1000" &&
	# Hand-built CSRs, properly signed: a control one that must verify, then
	# NUL bytes and invalid UTF-8 in the subject, a NUL in a dNSName, an odd
	# BMPString, a 10,000-character CN, an empty subject, version 9.
	signed_csr control "$(cn 0c "$(hexstr hostile-control)")" &&
	signed_csr cnnul "$(cn 0c "$(hexstr device-1)00$(hexstr .evil.example)")" &&
	signed_csr cnnul2 "$(cn 13 "00$(hexstr device)")" &&
	signed_csr cnutf8 "$(cn 0c "$(hexstr device-)fffe80c0af")" &&
	signed_csr cnutf8b "$(cn 0c "$(hexstr dev)eda080$(hexstr ice)")" &&
	signed_csr cnbmp "$(cn 1e 00640065007600)" &&
	signed_csr cnlong "$(cn 0c "$(head -c 10000 /dev/zero | tr '\0' a | od -An -v -tx1 | tr -d ' \n')")" &&
	signed_csr sannul "$(cn 0c "$(hexstr hostile-san)")" "$(san_attr 82 "$(hexstr device-1)00$(hexstr .evil.example)")" &&
	signed_csr sanutf8 "$(cn 0c "$(hexstr hostile-san)")" "$(san_attr 82 "$(hexstr dev)fffe$(hexstr .example)")" &&
	signed_csr emptysubj 3000 &&
	signed_csr version9 "$(cn 0c "$(hexstr hostile-v9)")" "" 09 &&
	openssl req -in "$G/control.der" -inform DER -verify -noout &&
	openssl req -in "$G/cnnul.der" -inform DER -verify -noout &&
	openssl req -in "$G/sannul.der" -inform DER -verify -noout &&
	# a valid CSR the hostile rows never get issued, and one for the flood test
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$G/flood.key" \
		-subj "/CN=device-during-flood" -outform DER -out "$G/flood.der" &&
	b64 "$G/flood.der" "$G/flood"
}
make_bodies >>"$W/setup.log" 2>&1 || setup_fail "cannot make the request bodies: $(tail -n 5 "$W/setup.log")"

# Raw requests, for what curl will not send: made here, sent by slowtls.
CSR_LEN=$(wc -c <"$G/csr")
raw() { # raw NAME: the request (headers and body) into $G/raw-NAME
	rq=$G/raw-$1
	H="Host: localhost"
	P=/.well-known/est/simpleenroll
	case $1 in
	nohost) printf 'GET /.well-known/est/cacerts HTTP/1.1\r\n\r\n' ;;
	http09) printf 'GET /.well-known/est/cacerts\r\n\r\n' ;;
	ver99) printf 'GET /health HTTP/9.9\r\n%s\r\n\r\n' "$H" ;;
	verjunk) printf 'GET /health HTTP/1.x\r\n%s\r\n\r\n' "$H" ;;
	longmethod) printf '%s /health HTTP/1.1\r\n%s\r\n\r\n' "$(head -c 10000 /dev/zero | tr '\0' A)" "$H" ;;
	badmethod) printf 'G(E)T /.well-known/est/cacerts HTTP/1.1\r\n%s\r\n\r\n' "$H" ;;
	spaceurl) printf 'GET /.well-known/est/ cacerts HTTP/1.1\r\n%s\r\n\r\n' "$H" ;;
	absurl) printf 'POST https://evil.example%s HTTP/1.1\r\n%s\r\nContent-Type: application/pkcs10\r\nContent-Length: 3\r\n\r\nabc' "$P" "$H" ;;
	star) printf 'OPTIONS * HTTP/1.1\r\n%s\r\n\r\n' "$H" ;;
	ctlurl) printf 'GET /.well-known/est/\001\002\033[31m/cacerts HTTP/1.1\r\n%s\r\n\r\n' "$H" ;;
	binurl) printf 'GET /.well-known/est/\377\376"}\\/cacerts HTTP/1.1\r\n%s\r\n\r\n' "$H" ;;
	nulhdr) printf 'POST %s HTTP/1.1\r\n%s\r\nContent-Type: application/pkcs10\000junk\r\nContent-Length: 3\r\n\r\nabc' "$P" "$H" ;;
	nocolon) printf 'POST %s HTTP/1.1\r\n%s\r\nNoColonInThisHeader\r\nContent-Length: 3\r\n\r\nabc' "$P" "$H" ;;
	barelf) printf 'POST %s HTTP/1.1\n%s\nContent-Type: text/plain\nContent-Length: 3\n\nabc' "$P" "$H" ;;
	fold) printf 'POST %s HTTP/1.1\r\n%s\r\nContent-Type: application/\r\n pkcs10\r\nContent-Length: 3\r\n\r\nabc' "$P" "$H" ;;
	cl_huge) printf 'POST %s HTTP/1.1\r\n%s\r\nContent-Type: application/pkcs10\r\nContent-Length: 99999999999999999999999\r\n\r\nabc' "$P" "$H" ;;
	cl_neg) printf 'POST %s HTTP/1.1\r\n%s\r\nContent-Type: application/pkcs10\r\nContent-Length: -1\r\n\r\nabc' "$P" "$H" ;;
	cl_junk) printf 'POST %s HTTP/1.1\r\n%s\r\nContent-Type: application/pkcs10\r\nContent-Length: 3x\r\n\r\nabc' "$P" "$H" ;;
	cl_twice) printf 'POST %s HTTP/1.1\r\n%s\r\nContent-Type: application/pkcs10\r\nContent-Length: 3\r\nContent-Length: 5000000\r\n\r\nabc' "$P" "$H" ;;
	cl_te) printf 'POST %s HTTP/1.1\r\n%s\r\nContent-Type: application/pkcs10\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n' "$P" "$H" ;;
	chunk_bad) printf 'POST %s HTTP/1.1\r\n%s\r\nContent-Type: application/pkcs10\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n' "$P" "$H" ;;
	chunk_huge) printf 'POST %s HTTP/1.1\r\n%s\r\nContent-Type: application/pkcs10\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\nabc\r\n0\r\n\r\n' "$P" "$H" ;;
	chunk_ext) printf 'POST %s HTTP/1.1\r\n%s\r\nContent-Type: application/pkcs10\r\nTransfer-Encoding: chunked\r\n\r\n3;%s\r\nabc\r\n0\r\n\r\n' "$P" "$H" "$(head -c 20000 /dev/zero | tr '\0' x)" ;;
	te_gzip) printf 'POST %s HTTP/1.1\r\n%s\r\nContent-Type: application/pkcs10\r\nTransfer-Encoding: gzip\r\n\r\nabc' "$P" "$H" ;;
	nul_in_b64) printf 'POST %s HTTP/1.1\r\n%s\r\nContent-Type: application/pkcs10\r\nContent-Length: %s\r\n\r\n' "$P" "$H" $((CSR_LEN + 2)); head -c 30 "$G/csr"; printf '\000\000'; tail -c +31 "$G/csr" ;;
	trunc_body) printf 'POST %s HTTP/1.1\r\n%s\r\nContent-Type: application/pkcs10\r\nContent-Length: 500\r\n\r\nMIIB' "$P" "$H" ;;
	trunc_head) printf 'GET /health HTTP/1.1\r\n%s\r\nX-Never-Ends: ' "$H" ;;
	slow_health) printf 'GET /health HTTP/1.1\r\n%s\r\nConnection: close\r\n\r\n' "$H" ;;
	slow_junk) printf 'POST %s HTTP/1.1\r\n%s\r\nContent-Type: application/pkcs10\r\nContent-Length: 38\r\nConnection: close\r\n\r\n%s' "$P" "$H" "this is not a CSR, sent byte by byte.." ;;
	plain_to_tls) printf 'GET /health HTTP/1.1\r\n%s\r\n\r\n' "$H" ;;
	tls_junk) openssl rand 2000 ;;
	*) echo "raw: unknown request $1" >&2; return 1 ;;
	esac >"$rq"
}

# --- the table -------------------------------------------------------------------
#
# name | method | path | headers | body | expect | form
#
# method: an HTTP method sent by curl over TLS; "http:METHOD" the same over
#   the plain-HTTP listener; RAW the request raw-NAME (body column) as it is,
#   SLOW the same one byte every 10 ms, PLAIN the same in plain TCP to the TLS
#   port (all three by slowtls).
# path: "@" stands for /.well-known/est/: such a row runs twice, without a
#   label and with the label "device/" (RFC 7030 §3.2.2).
# headers: space-separated: auth:USER (Basic from a curl config), auth:KIND (a
#   malformed Authorization header, see auth_header), ct:KIND (Content-Type,
#   see ct_header), big:N (one N-byte header), many:N (N headers), chunked,
#   expect (Expect: 100-continue), proxy (client-certificate and forwarding
#   headers a proxy would set), "-" none.
# body: a file in $G (see make_bodies) or "-" none.
# expect: the allowed statuses, an ERE on the 3-digit code with "," for
#   "or" (000: no answer, the server closed the connection).
# form: est = our own answer (X-Request-Id, and a text/plain reason on a 4xx);
#   http = libmicrohttpd's own refusal before any handler (status only; it
#   closes the connection on the bytes it did not read, which may reset it
#   before the client reads the 4xx, hence 000 too; too many query
#   parameters for its per-connection memory get no answer at all);
#   none = no answer; ocsp = a 4xx, or 200 with an OCSP responseStatus that is
#   not successful; any = status only.
TABLE=$W/table
cat >"$TABLE" <<'EOF'
# -- methods and paths ------------------------------------------------------------
PUT on cacerts                       | PUT     | @cacerts                       | -                  | -        | 405     | est
DELETE on simpleenroll               | DELETE  | @simpleenroll                  | auth:factory       | -        | 405     | est
PATCH on csrattrs                    | PATCH   | @csrattrs                      | -                  | csr      | 405     | est
OPTIONS on cacerts                   | OPTIONS | @cacerts                       | -                  | -        | 405     | est
TRACE on simplereenroll              | TRACE   | @simplereenroll                | -                  | -        | 405     | est
made-up method FROBNICATE            | FROBNICATE | @simpleenroll               | auth:factory       | csr      | 405     | est
lower-case method get                | get     | @cacerts                       | -                  | -        | 405     | est
HEAD on simpleenroll                 | HEAD    | @simpleenroll                  | -                  | -        | 405     | any
GET on simpleenroll                  | GET     | @simpleenroll                  | auth:factory       | -        | 405     | est
POST on csrattrs                     | POST    | @csrattrs                      | ct:pkcs10          | csr      | 405     | est
POST on cacerts with a CSR           | POST    | @cacerts                       | auth:factory ct:pkcs10 | csr  | 405     | est
serverkeygen (not offered)           | POST    | @serverkeygen                  | auth:factory ct:pkcs10 | csr  | 4..     | est
no operation                         | GET     | /.well-known/est/              | -                  | -        | 404     | est
EST prefix without slash             | GET     | /.well-known/est               | -                  | -        | 404     | est
empty label                          | GET     | /.well-known/est//cacerts      | -                  | -        | 404     | est
unknown label                        | POST    | /.well-known/est/nosuch/simpleenroll | auth:factory ct:pkcs10 | csr | 404 | est
path below an operation              | POST    | @simpleenroll/x                | auth:factory ct:pkcs10 | csr  | 404     | est
path traversal ../../etc/passwd      | GET     | /.well-known/est/../../etc/passwd | -               | -        | 404     | est
path traversal as a label            | GET     | /.well-known/est/../cacerts    | -                  | -        | 404     | est
path traversal %2e%2e%2f             | GET     | /.well-known/est/%2e%2e%2f%2e%2e%2fetc%2fpasswd | - | -        | 404     | est
path traversal into the key files    | GET     | /.well-known/est/..%2f..%2ftls%2fserver.key | -     | -        | 404     | est
label with %00                       | GET     | /.well-known/est/%00/cacerts   | -                  | -        | 404     | est
label with invalid UTF-8             | GET     | /.well-known/est/%ff%fe%80/cacerts | -              | -        | 404     | est
label with CR LF and quotes          | GET     | /.well-known/est/a%0d%0a%22%7d%7b/cacerts | -       | -        | 404     | est
operation with %00 inside            | POST    | /.well-known/est/simple%00enroll | auth:factory ct:pkcs10 | csr | 404   | est
label of 200 characters              | GET     | /.well-known/est/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/cacerts | - | - | 404 | est
EST path of 8 KB                     | GET     | URL8K                          | -                  | -        | 404     | est
URL of 100 KB                        | GET     | URL100K                        | -                  | -        | 414,000 | http
query string of 3,000 parameters     | GET     | QUERY3K                        | -                  | -        | 4..,000 | http
unknown top-level path               | GET     | /etc/passwd                    | -                  | -        | 404     | est
double slash before the EST prefix   | GET     | //.well-known/est/cacerts      | -                  | -        | 404     | est
the internal server.tls profile      | POST    | /.well-known/est/server.tls/simpleenroll | auth:factory ct:pkcs10 | csr | 404 | est
# -- Content-Type -----------------------------------------------------------------
Content-Type text/plain              | POST    | @simpleenroll                  | auth:factory ct:text | csr    | 415     | est
no Content-Type                      | POST    | @simpleenroll                  | auth:factory ct:none | csr    | 415     | est
empty Content-Type                   | POST    | @simpleenroll                  | auth:factory ct:empty | csr   | 415     | est
Content-Type application/pkcs10x     | POST    | @simpleenroll                  | auth:factory ct:pkcs10x | csr | 415     | est
Content-Type application/pkcs        | POST    | @simpleenroll                  | auth:factory ct:pkcs | csr    | 415     | est
form-urlencoded (curl's default)     | POST    | @simpleenroll                  | auth:factory       | form     | 415     | est
multipart/form-data                  | POST    | @simpleenroll                  | auth:factory ct:multipart | csr | 415   | est
Content-Type of 10 KB                | POST    | @simpleenroll                  | auth:factory ct:huge | csr    | 415     | est
two Content-Types, text/plain first  | POST    | @simpleenroll                  | auth:factory ct:twice | csr   | 415     | est
Content-Type with invalid UTF-8      | POST    | @simpleenroll                  | auth:factory ct:binary | csr  | 415     | est
# -- bodies -----------------------------------------------------------------------
empty body                           | POST    | @simpleenroll                  | auth:factory ct:pkcs10 | empty | 400    | est
body of 70 KB (Content-Length)       | POST    | @simpleenroll                  | auth:factory ct:pkcs10 | big70k | 413   | est
body of 1 MB (Content-Length)        | POST    | @simpleenroll                  | auth:factory ct:pkcs10 | big1m | 413    | est
body of 1 MB, chunked                | POST    | @simpleenroll                  | auth:factory ct:pkcs10 chunked | big1m | 413 | est
body of 70 KB with Expect: 100-continue | POST | @simpleenroll                  | auth:factory ct:pkcs10 expect | big70k | 413 | est
body of 70 KB on cacerts (GET)       | GET     | @cacerts                       | -                  | big70k   | 413     | est
body of 70 KB, no credentials        | POST    | @simpleenroll                  | ct:pkcs10          | big70k   | 413     | est
body of 1 MB on /health              | POST    | /health                        | -                  | big1m    | 413     | est
truncated base64 (half)              | POST    | @simpleenroll                  | auth:factory ct:pkcs10 | b64half | 400   | est
truncated base64 (6 characters short) | POST   | @simpleenroll                  | auth:factory ct:pkcs10 | b64cut | 400    | est
base64 with junk inside              | POST    | @simpleenroll                  | auth:factory ct:pkcs10 | b64junk | 400   | est
base64 with text after it            | POST    | @simpleenroll                  | auth:factory ct:pkcs10 | b64tail | 400   | est
base64 with NUL bytes inside         | POST    | @simpleenroll                  | auth:factory ct:pkcs10 | b64nul | 400    | est
base64 with = inside                 | POST    | @simpleenroll                  | auth:factory ct:pkcs10 | b64pad | 400    | est
base64 with 8-bit bytes inside       | POST    | @simpleenroll                  | auth:factory ct:pkcs10 | b64bin | 400    | est
DER with 1 trailing byte             | POST    | @simpleenroll                  | auth:factory ct:pkcs10 | dertrail1 | 400 | est
DER with 1,000 trailing bytes        | POST    | @simpleenroll                  | auth:factory ct:pkcs10 | dertrail1k | 400 | est
two CSRs back to back                | POST    | @simpleenroll                  | auth:factory ct:pkcs10 | dertwice | 400 | est
DER not base64-encoded               | POST    | @simpleenroll                  | auth:factory ct:pkcs10 | derraw | 400    | est
DER cut 10 bytes short               | POST    | @simpleenroll                  | auth:factory ct:pkcs10 | dertrunc | 400  | est
a certificate instead of a CSR       | POST    | @simpleenroll                  | auth:factory ct:pkcs10 | cert | 400      | est
300 random bytes                     | POST    | @simpleenroll                  | auth:factory ct:pkcs10 | random | 400    | est
ASN.1 nested 5,000 deep              | POST    | @simpleenroll                  | auth:factory ct:pkcs10 | nest5k | 400    | est
ASN.1 nested 10,000 deep (indefinite) | POST   | @simpleenroll                  | auth:factory ct:pkcs10 | nest10k | 400   | est
ASN.1 length of 2 GB                 | POST    | @simpleenroll                  | auth:factory ct:pkcs10 | hugelen | 400   | est
flipped signature bit                | POST    | @simpleenroll                  | auth:factory ct:pkcs10 | badsig | 400    | est
unknown signature algorithm          | POST    | @simpleenroll                  | auth:factory ct:pkcs10 | unkalg | 400    | est
CSR with 1,000 DNS SANs              | POST    | @simpleenroll                  | auth:factory ct:pkcs10 | sans1000 | 400  | est
CSR with 1,000 URI SANs              | POST    | @simpleenroll                  | auth:factory ct:pkcs10 | uris1000 | 400  | est
CSR with 1,000 SANs, P-384 profile   | POST    | /.well-known/est/p384only/simpleenroll | auth:factory ct:pkcs10 | sans1000 | 400 | est
NUL byte inside the CN               | POST    | @simpleenroll                  | auth:factory ct:pkcs10 | cnnul | 400     | est
CN PrintableString starting with NUL | POST    | @simpleenroll                  | auth:factory ct:pkcs10 | cnnul2 | 400    | est
invalid UTF-8 in the CN              | POST    | @simpleenroll                  | auth:factory ct:pkcs10 | cnutf8 | 400    | est
UTF-16 surrogate as UTF-8 in the CN  | POST    | @simpleenroll                  | auth:factory ct:pkcs10 | cnutf8b | 400   | est
BMPString of odd length in the CN    | POST    | @simpleenroll                  | auth:factory ct:pkcs10 | cnbmp | 400     | est
CN of 10,000 characters              | POST    | @simpleenroll                  | auth:factory ct:pkcs10 | cnlong | 400    | est
NUL byte inside a dNSName            | POST    | @simpleenroll                  | auth:factory ct:pkcs10 | sannul | 400    | est
invalid UTF-8 in a dNSName           | POST    | @simpleenroll                  | auth:factory ct:pkcs10 | sanutf8 | 400   | est
empty subject and no SAN             | POST    | @simpleenroll                  | auth:factory ct:pkcs10 | emptysubj | 400 | est
CSR version 9                        | POST    | @simpleenroll                  | auth:factory ct:pkcs10 | version9 | 400  | est
# -- HTTP Basic (RFC 7617) ----------------------------------------------------------
no credentials                       | POST    | @simpleenroll                  | ct:pkcs10          | csr      | 401     | est
wrong password                       | POST    | @simpleenroll                  | auth:wrongpw ct:pkcs10 | csr  | 401     | est
unknown user                         | POST    | @simpleenroll                  | auth:nobody ct:pkcs10 | csr   | 401     | est
Basic that is not base64             | POST    | @simpleenroll                  | auth:notb64 ct:pkcs10 | csr   | 401     | est
Basic without a colon                | POST    | @simpleenroll                  | auth:nocolon ct:pkcs10 | csr  | 401     | est
empty Authorization header           | POST    | @simpleenroll                  | auth:empty ct:pkcs10 | csr    | 401     | est
Basic and nothing after it           | POST    | @simpleenroll                  | auth:blank ct:pkcs10 | csr    | 401     | est
Basic of 10 KB                       | POST    | @simpleenroll                  | auth:big10k ct:pkcs10 | csr   | 401     | est
Basic of 40 KB                       | POST    | /.well-known/est/simpleenroll  | auth:big40k ct:pkcs10 | csr   | 4..     | http
Basic of only a colon                | POST    | @simpleenroll                  | auth:colon ct:pkcs10 | csr    | 401     | est
Basic with a NUL in the user         | POST    | @simpleenroll                  | auth:nuluser ct:pkcs10 | csr  | 401     | est
Basic with a NUL in the password     | POST    | @simpleenroll                  | auth:nulpass ct:pkcs10 | csr  | 401     | est
Basic with invalid UTF-8             | POST    | @simpleenroll                  | auth:binary ct:pkcs10 | csr   | 401     | est
Basic with a user of 1,000 bytes     | POST    | @simpleenroll                  | auth:longuser ct:pkcs10 | csr | 401     | est
Basic with a password of 5,000 bytes | POST    | @simpleenroll                  | auth:longpass ct:pkcs10 | csr | 401     | est
basic in lower case, wrong password  | POST    | @simpleenroll                  | auth:lower ct:pkcs10 | csr    | 401     | est
Basic with bad padding               | POST    | @simpleenroll                  | auth:badpad ct:pkcs10 | csr   | 401     | est
Basic with a tab and spaces          | POST    | @simpleenroll                  | auth:spaces ct:pkcs10 | csr   | 401     | est
Bearer token                         | POST    | @simpleenroll                  | auth:bearer ct:pkcs10 | csr   | 401     | est
Digest credentials                   | POST    | @simpleenroll                  | auth:digest ct:pkcs10 | csr   | 401     | est
bad Basic on simplereenroll          | POST    | @simplereenroll                | auth:notb64 ct:pkcs10 | csr   | 401,403 | est
wrong password on simplereenroll     | POST    | @simplereenroll                | auth:wrongpw ct:pkcs10 | csr  | 401,403 | est
bad Basic on cacerts (public)        | GET     | @cacerts                       | auth:notb64        | -        | 200     | est
# -- simplereenroll, csrattrs -----------------------------------------------------------
simplereenroll without a certificate | POST    | @simplereenroll                | ct:pkcs10          | csr      | 403     | est
simplereenroll, Basic only           | POST    | @simplereenroll                | auth:factory ct:pkcs10 | csr  | 403     | est
simplereenroll with junk, no certificate | POST | @simplereenroll               | auth:factory ct:pkcs10 | nest10k | 403  | est
simplereenroll, spoofed proxy headers | POST   | @simplereenroll                | auth:factory ct:pkcs10 proxy | csr | 403 | est
simpleenroll, spoofed proxy headers only | POST | @simpleenroll                 | ct:pkcs10 proxy    | csr      | 401     | est
csrattrs under an unknown label      | GET     | /.well-known/est/nosuch/csrattrs | -                | -        | 404     | est
# -- headers --------------------------------------------------------------------------
one header of 100 KB                 | GET     | @cacerts                       | big:102400         | -        | 4..,000 | http
one header of 20 KB                  | POST    | @simpleenroll                  | big:20480 ct:pkcs10 | csr     | 401     | est
2,000 headers                        | GET     | /.well-known/est/cacerts       | many:2000          | -        | 4..     | http
Host header missing (HTTP/1.1)       | RAW     | -                              | -                  | nohost   | 400,200 | any
HTTP/0.9 request line                | RAW     | -                              | -                  | http09   | 4..,000 | any
HTTP/9.9                             | RAW     | -                              | -                  | ver99    | 4..,505 | http
HTTP/1.x                             | RAW     | -                              | -                  | verjunk  | 4..,505 | http
method of 10,000 bytes               | RAW     | -                              | -                  | longmethod | 4..   | any
method with parentheses              | RAW     | -                              | -                  | badmethod | 4..    | any
space inside the URL                 | RAW     | -                              | -                  | spaceurl | 4..     | any
absolute URL of another host         | RAW     | -                              | -                  | absurl   | 4..     | any
OPTIONS *                            | RAW     | -                              | -                  | star     | 4..     | any
control characters in the URL        | RAW     | -                              | -                  | ctlurl   | 4..     | any
raw 8-bit bytes and quotes in the URL | RAW    | -                              | -                  | binurl   | 404     | est
NUL byte inside a header             | RAW     | -                              | -                  | nulhdr   | 4..     | any
header line without a colon          | RAW     | -                              | -                  | nocolon  | 4..     | any
bare LF line ends                    | RAW     | -                              | -                  | barelf   | 4..     | any
folded header (obs-fold)             | RAW     | -                              | -                  | fold     | 4..     | any
Content-Length of 23 digits          | RAW     | -                              | -                  | cl_huge  | 4..     | any
Content-Length -1                    | RAW     | -                              | -                  | cl_neg   | 4..     | any
Content-Length 3x                    | RAW     | -                              | -                  | cl_junk  | 4..     | any
two Content-Lengths                  | RAW     | -                              | -                  | cl_twice | 4..     | any
Content-Length and chunked           | RAW     | -                              | -                  | cl_te    | 4..     | any
chunk size zz                        | RAW     | -                              | -                  | chunk_bad | 4..    | any
chunk size 2^64-1                    | RAW     | -                              | -                  | chunk_huge | 4..,000 | http
chunk extension of 20 KB             | RAW     | -                              | -                  | chunk_ext | 4..    | any
Transfer-Encoding gzip               | RAW     | -                              | -                  | te_gzip  | 4..,000 | any
NUL bytes in the base64 body         | RAW     | -                              | -                  | nul_in_b64 | 401   | est
body shorter than Content-Length     | RAW     | -                              | -                  | trunc_body | 000   | none
headers that never end               | RAW     | -                              | -                  | trunc_head | 4..,000 | any
# -- slow and not-TLS clients --------------------------------------------------------------
/health, a byte every 10 ms          | SLOW    | -                              | -                  | slow_health | 200  | est
junk CSR, a byte every 10 ms         | SLOW    | -                              | -                  | slow_junk | 401    | est
plain HTTP to the TLS port           | PLAIN   | -                              | -                  | plain_to_tls | 000 | none
2,000 random bytes as a ClientHello  | PLAIN   | -                              | -                  | tls_junk | 000     | none
# -- /health, plain HTTP -------------------------------------------------------------
DELETE on /health                    | DELETE  | /health                        | -                  | -        | 405     | est
POST on /health                      | POST    | /health                        | ct:pkcs10          | csr      | 405     | est
/health with bad Basic               | GET     | /health                        | auth:notb64        | -        | 200     | est
/health/../.well-known/est/cacerts   | GET     | /health/../.well-known/est/cacerts | -              | -        | 404     | est
EST over plain HTTP                  | http:POST | /.well-known/est/simpleenroll | auth:factory ct:pkcs10 | csr  | 404     | est
cacerts over plain HTTP              | http:GET | /.well-known/est/cacerts      | -                  | -        | 404     | est
plain HTTP, header of 100 KB         | http:GET | /health                       | big:102400         | -        | 4..,000 | http
# -- operator API without a client certificate -------------------------------------
API without a client certificate     | POST    | /api/v1/revoke                 | auth:factory       | form     | 4..     | any
API path traversal                   | GET     | /api/v1/../../.well-known/est/cacerts | -           | -        | 4..     | any
API with a body of 1 MB              | POST    | /api/v1/revoke                 | -                  | big1m    | 413     | any
# -- OCSP and CRLs (run once those routes answer; see OCSP_LIVE/CRL_LIVE) -------------
OCSP GET without a request           | GET     | /ocsp                          | -                  | -        | 4..,200 | ocsp
OCSP POST of junk                    | POST    | /ocsp                          | ct:ocsp            | random   | 4..,200 | ocsp
OCSP POST with the wrong type        | POST    | /ocsp                          | ct:text            | random   | 4..,200 | ocsp
OCSP POST of a CSR                   | POST    | /ocsp                          | ct:ocsp            | derraw   | 4..,200 | ocsp
OCSP POST nested 10,000 deep         | POST    | /ocsp                          | ct:ocsp            | nest10k  | 4..,200 | ocsp
OCSP POST of 1 MB                    | POST    | /ocsp                          | ct:ocsp            | big1m    | 413     | ocsp
OCSP GET of bad base64               | GET     | /ocsp/%%%%not-base64           | -                  | -        | 4..,200 | ocsp
OCSP GET of base64 junk              | GET     | /ocsp/MIIBAAAAAAAAAAAAAAAAAAAA      | -             | -        | 4..,200 | ocsp
OCSP GET of 8 KB                     | GET     | OCSP8K                         | -                  | -        | 4..,200 | ocsp
OCSP GET path traversal              | GET     | /ocsp/../../etc/passwd         | -                  | -        | 4..,200 | ocsp
OCSP over plain HTTP, junk           | http:POST | /ocsp                        | ct:ocsp            | random   | 4..,200 | ocsp
CRL of an unknown CA                 | GET     | /crl/nosuch.crl                | -                  | -        | 404     | any
CRL path traversal                   | GET     | /crl/../../etc/passwd          | -                  | -        | 4..     | any
CRL name with %2f                    | GET     | /crl/..%2f..%2fetc%2fpasswd.crl | -                 | -        | 4..     | any
CRL name with %00                    | GET     | /crl/dev%00.crl                | -                  | -        | 4..     | any
CRL name of 5,000 characters         | GET     | CRL5K                          | -                  | -        | 4..     | any
POST on a CRL                        | POST    | /crl/dev.crl                   | ct:pkcs10          | csr      | 405     | any
CRL over plain HTTP, traversal       | http:GET | /crl/..%2fdev.crl             | -                  | -        | 4..     | any
EOF

# Header files per token, under $G (never the real password: auth:factory,
# auth:wrongpw and auth:nobody use the 0600 curl config files).
b64s() { printf %s "$1" | openssl base64 -A; }
long() { head -c "$1" /dev/zero | tr '\0' "$2"; }
auth_header() {
	case $1 in
	notb64) echo 'Authorization: Basic %%%not-base64%%%' ;;
	nocolon) echo "Authorization: Basic $(b64s factorywithoutcolon)" ;;
	empty) echo 'Authorization;' ;;
	blank) echo 'Authorization: Basic ' ;;
	big10k) echo "Authorization: Basic $(long 7500 a | sed 's/^/factory:/' | openssl base64 -A)" ;;
	big40k) echo "Authorization: Basic $(long 30000 a | sed 's/^/factory:/' | openssl base64 -A)" ;;
	colon) echo "Authorization: Basic $(b64s :)" ;;
	nuluser) echo "Authorization: Basic $(printf 'factory\000x:wrong' | openssl base64 -A)" ;;
	nulpass) echo "Authorization: Basic $(printf 'factory:wrong\000junk' | openssl base64 -A)" ;;
	binary) echo "Authorization: Basic $(printf 'fa\377\376ctory:w\300\257rong' | openssl base64 -A)" ;;
	longuser) echo "Authorization: Basic $(long 1000 u | sed 's/$/:wrong/' | openssl base64 -A)" ;;
	longpass) echo "Authorization: Basic $(long 5000 p | sed 's/^/factory:/' | openssl base64 -A)" ;;
	lower) echo "Authorization: basic $(b64s factory:wrong)" ;;
	badpad) echo 'Authorization: Basic ZmFj=dG9yeTp3cm9uZw==' ;;
	spaces) printf 'Authorization: Basic \t  %s\n' "$(b64s factory:wrong)" ;;
	bearer) echo 'Authorization: Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJmYWN0b3J5In0.' ;;
	digest) echo 'Authorization: Digest username="factory", realm="mintca EST", nonce="x", uri="/", response="0"' ;;
	*) return 1 ;;
	esac
}
ct_header() {
	case $1 in
	pkcs10) echo 'Content-Type: application/pkcs10' ;;
	text) echo 'Content-Type: text/plain' ;;
	none) echo 'Content-Type:' ;;
	empty) echo 'Content-Type;' ;;
	pkcs10x) echo 'Content-Type: application/pkcs10x' ;;
	pkcs) echo 'Content-Type: application/pkcs' ;;
	multipart) echo 'Content-Type: multipart/form-data; boundary=xyz' ;;
	huge) echo "Content-Type: application/pkcs10x$(long 10240 x)" ;;
	twice) printf 'Content-Type: text/plain\nContent-Type: application/pkcs10\n' ;;
	binary) printf 'Content-Type: application/\377\376pkcs10\n' ;;
	ocsp) echo 'Content-Type: application/ocsp-request' ;;
	*) return 1 ;;
	esac
}
# row_args HEADERS BODY: curl arguments into ARGS (header file, credentials, body).
row_args() {
	ra_h=$G/hdr-$REQ_N
	: >"$ra_h"
	ARGS="-H @$ra_h"
	for t in $1; do
		case $t in
		-) ;;
		auth:factory | auth:wrongpw | auth:nobody) ARGS="$ARGS $(basic "${t#auth:}")" ;;
		auth:*) auth_header "${t#auth:}" >>"$ra_h" || return 1 ;;
		ct:*) ct_header "${t#ct:}" >>"$ra_h" || return 1 ;;
		big:*) echo "X-Junk: $(long "${t#big:}" j)" >>"$ra_h" ;;
		many:*) seq -f 'X-Many-%g: v' 1 "${t#many:}" >>"$ra_h" ;;
		chunked) echo 'Transfer-Encoding: chunked' >>"$ra_h" ;;
		expect) echo 'Expect: 100-continue' >>"$ra_h" ;;
		proxy)
			printf 'X-SSL-Client-Cert: %s\n' "$(sed -n '/BEGIN/,/END/p' "$DIR/tls/server.crt" | tr -d '\n')" >>"$ra_h"
			printf 'X-Client-Cert: %s\nX-Forwarded-For: 192.0.2.1\nForwarded: for=192.0.2.1\n' \
				"$(openssl x509 -in "$DIR/tls/server.crt" -outform DER | openssl base64 -A)" >>"$ra_h" ;;
		*) echo "unknown header token $t"; return 1 ;;
		esac
	done
	[ "$2" = - ] || ARGS="$ARGS --data-binary @$G/$2"
}
# expand_path PATH: the table's names for paths too long to write in it.
expand_path() {
	case $1 in
	URL8K) printf '/.well-known/est/%s/cacerts' "$(long 8192 a)" ;;
	URL100K) printf '/.well-known/est/%s' "$(long 102400 a)" ;;
	QUERY3K) printf '/.well-known/est/cacerts?%s' "$(seq -f 'a%g=1' 1 3000 | paste -sd'&' -)" ;;
	OCSP8K) printf '/ocsp/%s' "$(long 8192 A)" ;;
	CRL5K) printf '/crl/%s.crl' "$(long 5000 c)" ;;
	*) printf %s "$1" ;;
	esac
}

# Split a raw answer into $HDR and $BODY as http() leaves them.
split_answer() {
	perl -0777 -ne 'my ($h, $b) = split /\r\n\r\n/, $_, 2; print $h, "\r\n" if defined $h' "$1" >"$HDR"
	perl -0777 -ne 'my ($h, $b) = split /\r\n\r\n/, $_, 2; print $b if defined $b' "$1" >"$BODY"
}

# send_row METHOD PATH HEADERS BODY: one request; sets ST, HDR, BODY like http().
send_row() {
	case $1 in
	RAW | SLOW | PLAIN)
		REQ_N=$((REQ_N + 1))
		BODY=$W/resp-$REQ_N.body HDR=$W/resp-$REQ_N.hdr REQ_DESC="$1 raw-$4"
		[ -f "$G/raw-$4" ] || raw "$4" || return 1
		case $1 in
		RAW) sr_opt= ;;
		SLOW) sr_opt="-c 1 -i 10" ;;
		PLAIN) sr_opt=-p ;;
		esac
		# shellcheck disable=SC2086
		ST=$("$SLOW" send "$PORT" $sr_opt -o "$W/resp-$REQ_N.raw" <"$G/raw-$4" 2>"$W/resp-$REQ_N.err") || ST=000
		[ -f "$W/resp-$REQ_N.raw" ] || : >"$W/resp-$REQ_N.raw"
		split_answer "$W/resp-$REQ_N.raw"
		;;
	http:*)
		sr_base=$BASE
		BASE=http://127.0.0.1:$HTTP_PORT
		row_args "$3" "$4" || return 1
		# shellcheck disable=SC2086
		http "$(expand_path "$2")" --path-as-is -X "${1#http:}" $ARGS
		BASE=$sr_base
		;;
	HEAD)
		row_args "$3" "$4" || return 1
		# shellcheck disable=SC2086
		http "$(expand_path "$2")" --path-as-is --head $ARGS
		;;
	*)
		row_args "$3" "$4" || return 1
		# shellcheck disable=SC2086
		http "$(expand_path "$2")" --path-as-is -X "$1" $ARGS
		;;
	esac
	REQ_DESC=$(printf %s "$REQ_DESC" | cut -c1-200)
}

# row_ok EXPECT FORM: the last answer is what the row expects.
row_ok() {
	if ! printf '%s\n' "$ST" | grep -Eq "^($1)\$"; then
		echo "HTTP $ST, expected /$1/"
		show_response
		return 1
	fi
	case $ST in
	5*) printf '%s\n' "$1" | grep -q "$ST" || { echo "a 5xx on hostile input"; show_response; return 1; } ;;
	esac
	kill -0 "$PID" 2>/dev/null || { echo "mintcad is gone"; return 1; }
	case $2 in
	est)
		header_is X-Request-Id '^[0-9a-f]{16}$' || return 1
		tr -d '\r' <"$HDR" | sed -n 's/^X-Request-Id: *//ip' >>"$W/request-ids"
		case $ST in
		4*)
			header_is Content-Type '^text/plain' || return 1
			[ -s "$BODY" ] || { echo "empty body: no reason given"; show_response; return 1; }
			no_cert_in_body || return 1
			;;
		esac
		case $ST in
		401) header_is WWW-Authenticate '^Basic' || return 1 ;;
		405) header_is Allow '^(GET|POST)' || return 1 ;;
		esac
		;;
	ocsp)
		case $ST in
		200)
			header_is Content-Type '^application/ocsp-response' || return 1
			# openssl prints "Responder Error: <status>" for any but successful
			oc_st=$(openssl ocsp -respin "$BODY" -resp_text -noverify 2>&1 |
				sed -n 's/^Responder Error: *//p; s/.*OCSP Response Status: *//p' | head -n 1)
			case $oc_st in
			malformedrequest* | unauthorized* | internalerror* | trylater* | sigrequired*)
				case $oc_st in internalerror* | trylater*)
					echo "OCSP $oc_st: a server-side failure on hostile input"; return 1 ;;
				esac ;;
			"") echo "the 200 is not an OCSP response"; show_response; return 1 ;;
			*) echo "OCSP answered '$oc_st' to a hostile request"; return 1 ;;
			esac
			;;
		esac
		;;
	none | http | any) ;;
	esac
}

# Does a route answer yet? /ocsp and /crl/ are being built; until they are,
# a stub answers "not found" to everything and their rows are skipped.
route_live() {
	http "$1"
	! { [ "$ST" = 404 ] && [ "$(cat "$BODY")" = "not found" ]; }
}

SKIPPED=0
# run_table PASS: every row of the table, once.
run_table() {
	rt_pass=$1
	while IFS='|' read -r r_name r_method r_path r_hdrs r_body r_exp r_form; do
		r_name=$(echo "$r_name" | sed 's/^ *//; s/ *$//')
		case $r_name in '#'* | '') continue ;; esac
		# HOSTILE_ROWS=ERE: only the rows whose name matches (while debugging)
		[ -z "${HOSTILE_ROWS:-}" ] || printf '%s\n' "$r_name" | grep -Eq "$HOSTILE_ROWS" || continue
		set -f
		# shellcheck disable=SC2086
		set -- $r_method
		r_method=$1
		# shellcheck disable=SC2086
		set -- $r_path
		r_path=$1
		# shellcheck disable=SC2086
		set -- $r_body
		r_body=$1
		# shellcheck disable=SC2086
		set -- $r_exp
		r_exp=$(echo "$1" | tr , '|')
		# shellcheck disable=SC2086
		set -- $r_form
		r_form=$1
		r_hdrs=$(echo "$r_hdrs" | sed 's/^ *//; s/ *$//')
		set +f
		case $r_path in
		/ocsp* | OCSP*)
			if [ "$OCSP_LIVE" = no ]; then
				[ "$rt_pass" = 1 ] && echo "# skip - $r_name: /ocsp is not built yet (a stub answers 404 not found)"
				[ "$rt_pass" = 1 ] && SKIPPED=$((SKIPPED + 1))
				continue
			fi ;;
		/crl/* | CRL*)
			if [ "$CRL_LIVE" = no ]; then
				[ "$rt_pass" = 1 ] && echo "# skip - $r_name: /crl/ is not built yet (a stub answers 404 not found)"
				[ "$rt_pass" = 1 ] && SKIPPED=$((SKIPPED + 1))
				continue
			fi ;;
		esac
		case $r_path in
		@*) r_paths="/.well-known/est/${r_path#@} /.well-known/est/device/${r_path#@}" ;;
		*) r_paths=$r_path ;;
		esac
		for p in $r_paths; do
			case $p in
			/.well-known/est/device/*) r_desc="$r_name (label device)" ;;
			*) r_desc=$r_name ;;
			esac
			send_row "$r_method" "$p" "$r_hdrs" "$r_body" >"$W/row.out" 2>&1 ||
				{ echo "cannot make the request: $(cat "$W/row.out")"; ST=xxx; }
			check "pass $rt_pass: $r_desc: $r_method -> $ST" row_ok "$r_exp" "$r_form"
			CASES=$((CASES + 1))
		done
	done <"$TABLE"
}

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$PID/status"; }
audit_rows() { pg -c 'select count(*) from audit'; }

# --- start ------------------------------------------------------------------------

LOG=$DIR/mintcad.log
start_server "$LOG" >"$W/start.out" 2>&1 || setup_fail "$(cat "$W/start.out")"
http /.well-known/est/cacerts
[ "$ST" = 200 ] || setup_fail "GET cacerts answered $ST: $(head -c 300 "$BODY")"
openssl base64 -d -in "$BODY" | openssl pkcs7 -inform DER -print_certs -out "$W/cacerts.pem" ||
	setup_fail "cacerts does not decode"
awk '/BEGIN CERTIFICATE/ { n++ } n { print > (dir "/cacert-" n ".pem") }' dir="$W" "$W/cacerts.pem"
cp "$W/cacert-2.pem" "$W/root.pem" 2>/dev/null || setup_fail "cacerts holds fewer than 2 certificates"
CURL_CA=$W/root.pem
echo "# data folder $DIR, port $PORT (plain $HTTP_PORT), build $B"

OCSP_LIVE=yes CRL_LIVE=yes
route_live /ocsp || OCSP_LIVE=no
route_live /crl/dev.crl || CRL_LIVE=no
echo "# /ocsp answers: $OCSP_LIVE; /crl/ answers: $CRL_LIVE"

check "the hand-built CSRs verify (their rows test names, not signatures)" \
	openssl req -in "$G/control.der" -inform DER -verify -noout

# --- 1. the table, twice ----------------------------------------------------------

CASES=0
reserved_rows() { pg -c "select count(*) from reserved_serials"; }
CERTS0=$(rows) AUDIT0=$(audit_rows) RES0=$(reserved_rows)
: >"$W/request-ids"
run_table 1
PASS1_CASES=$CASES
RSS1=$(rss_kb)
run_table 2
RSS2=$(rss_kb)
CERTS1=$(rows) AUDIT1=$(audit_rows) RES1=$(reserved_rows)
echo "# $PASS1_CASES hostile cases per pass ($(grep -c '|' "$TABLE") rows, @ rows run with and without a label), $SKIPPED rows skipped"
# (Reserved rows: the serials reserved ahead by the control enrollment.)
check "store: issued rows $CERTS0 -> $CERTS1, reserved rows $RES0 -> $RES1, audit rows $AUDIT0 -> $AUDIT1 (nothing written)" \
	eval '[ "$CERTS0" = "$CERTS1" ] && [ "$RES0" = "$RES1" ] && [ "$AUDIT0" = "$AUDIT1" ]'

# Memory: the first pass warms caches and pools; the second must not grow.
# Under AddressSanitizer freed memory sits in a quarantine, hence more slack.
SLACK_KB=2048
ldd "$B/mintcad" 2>/dev/null | grep -q libasan && SLACK_KB=65536
echo "# mintcad RSS after pass 1: $RSS1 kB, after pass 2: $RSS2 kB (slack $SLACK_KB kB)"
check "memory: RSS after pass 2 ($RSS2 kB) within $SLACK_KB kB of pass 1 ($RSS1 kB)" \
	eval '[ -n "$RSS1" ] && [ -n "$RSS2" ] && [ "$RSS2" -le $((RSS1 + SLACK_KB)) ]'

# Every answer of ours was logged, with its request id, as one JSON object.
logged_ids() {
	grep -o '"req":"[0-9a-f]*"' "$LOG" | sed 's/"req":"//; s/"$//' | sort -u >"$W/logged-ids"
	sort -u "$W/request-ids" | comm -23 - "$W/logged-ids" >"$W/missing-ids"
	[ -s "$W/request-ids" ] && [ ! -s "$W/missing-ids" ] && return 0
	echo "$(wc -l <"$W/missing-ids") answered requests have no log line, e.g.:"
	head -n 3 "$W/missing-ids"
	return 1
}
check "log: every answered request has its log line (request id)" logged_ids
check "log: every line is one JSON object (nothing a client sent broke a line)" \
	perl -MJSON::PP -ne 'eval { decode_json($_); 1 } or die "line $.: not one JSON object: $_"' "$LOG"

# --- 2. connection limits and timeouts --------------------------------------------

hold() { # hold NAME N MODE SECONDS: slowtls hold in the background, output $W/hold-NAME
	"$SLOW" hold "$PORT" -n "$2" -m "$3" -s "$4" >"$W/hold-$1" 2>&1 &
	eval "HOLD_$1=\$!"
}
held() { # held NAME...: wait until each holder has opened its connections
	for h in "$@"; do
		hd_i=0
		while ! grep -q '^opened' "$W/hold-$h" && [ $hd_i -lt 900 ]; do
			sleep 0.1
			hd_i=$((hd_i + 1))
		done
	done
}
hold_n() { sed -n "s/.*$2 \\([0-9]*\\).*/\\1/p" "$W/hold-$1" | head -n 1; }
# accepted: connections mintcad has taken (not those waiting in the backlog)
accepted() { ss -Htnp state established "( sport = :$PORT )" | grep -c "pid=$PID,"; }

# Idle connections: silent before the TLS handshake or after it, the server
# closes them after connection_timeout_s ("answered": it sent its TLS alert
# first). Held for twice the timeout.
hold idle_tcp 100 tcp $((2 * TIMEOUT_S))
hold idle_tls 50 tls $((2 * TIMEOUT_S))
held idle_tcp idle_tls
wait "$HOLD_idle_tcp" "$HOLD_idle_tls"
echo "# after $((2 * TIMEOUT_S)) s: silent before TLS: $(tail -n 1 "$W/hold-idle_tcp"); after TLS: $(tail -n 1 "$W/hold-idle_tls")"
check "connection_timeout_s ($TIMEOUT_S s): the server closed all 100 connections silent before TLS" \
	eval '[ $(($(hold_n idle_tcp closed_by_server) + $(hold_n idle_tcp answered))) = 100 ]'
check "connection_timeout_s ($TIMEOUT_S s): the server closed all 50 connections silent after TLS" \
	eval '[ "$(hold_n idle_tls closed_by_server)" = 50 ]'

# max_connections: of 600 connections at once mintcad takes 512; the rest wait
# in the kernel's backlog (or are closed) until a slot frees. Counted on the
# server's side before any of them times out.
hold over 600 tcp 4
held over
sleep 1
OVER=$(accepted)
echo "# 600 connections at once: $(head -n 1 "$W/hold-over"); mintcad holds $OVER"
check "max_connections 512 (default): of 600 connections mintcad holds 512 ($OVER)" \
	eval '[ "$OVER" -le 512 ] && [ "$OVER" -ge 500 ]'
wait "$HOLD_over"
http /health
check "after 600 connections: /health is 200" status_is 200

# --- 3. 500 slow connections and a normal client ---------------------------------
#
# With the default timeout (30 s; here 60) and threads (2): 200 connections
# silent before the TLS handshake, 150 silent after it, 150 trickling headers
# a byte a second. Restarted so that none times out while the others open
# (handshakes are slow under a sanitizer). A normal client enrolls meanwhile.

stop_server
check "SIGTERM: mintcad exits 0" eval '[ "$STOP_RC" = 0 ] || { echo "exit: $STOP_RC"; false; }'
check "no sanitizer report in mintcad.log" no_sanitizer_report "$LOG"
TIMEOUT_S=60
write_config "$DIR/test.json"
LOG_FLOOD=$DIR/mintcad-flood.log
if start_server "$LOG_FLOOD" >"$W/start-flood.out" 2>&1; then
	before=$(rows)
	hold tcp 200 tcp 12
	hold tls 150 tls 12
	hold trickle 150 headers 12
	held tcp tls trickle
	sleep 1
	FLOOD=$(accepted)
	echo "# holding: tcp: $(head -n 1 "$W/hold-tcp"); tls: $(head -n 1 "$W/hold-tls"); trickle: $(head -n 1 "$W/hold-trickle"); mintcad holds $FLOOD"
	check "500 slow connections open, all held by mintcad ($FLOOD)" \
		eval '[ "$(($(hold_n tcp opened) + $(hold_n tls opened) + $(hold_n trickle opened)))" = 500 ] && [ "$FLOOD" -ge 500 ]'
	t0=$(date +%s%N)
	enroll /.well-known/est/simpleenroll "$G/flood" $(basic factory)
	t1=$(date +%s%N)
	FLOOD_MS=$(((t1 - t0) / 1000000))
	check "with 500 slow connections open, a normal simpleenroll gets 200 in ${FLOOD_MS} ms (< 5000)" \
		eval 'got_cert flood && [ $FLOOD_MS -lt 5000 ] && rows_are $((before + 1))'
	t0=$(date +%s%N)
	http /health
	t1=$(date +%s%N)
	check "with 500 slow connections open, /health answers in $(((t1 - t0) / 1000000)) ms (< 2000)" \
		eval 'status_is 200 && [ $(((t1 - t0) / 1000000)) -lt 2000 ]'
	wait "$HOLD_tcp" "$HOLD_tls" "$HOLD_trickle"
	echo "# after 12 s: tcp: $(tail -n 1 "$W/hold-tcp"); tls: $(tail -n 1 "$W/hold-tls"); trickle: $(tail -n 1 "$W/hold-trickle")"
	check "mintctl ca show beside the running server: exit 0" \
		eval '"$B/mintctl" ca show -c "$DIR/test.json" >"$W/ca-show.out" 2>"$W/ca-show.err"'
	stop_server
	check "flood run: SIGTERM, exit 0" eval '[ "$STOP_RC" = 0 ] || { echo "exit: $STOP_RC"; false; }'
	check "flood run: no sanitizer report" no_sanitizer_report "$LOG_FLOOD"
else
	check "mintcad starts again for the flood" eval 'cat "$W/start-flood.out"; false'
fi

# --- 4. restart with a per-IP limit -----------------------------------------------

write_config "$DIR/test.json" '"max_connections_per_ip": 20'
check "mintcad --check-config accepts server.max_connections_per_ip" \
	eval '"$B/mintcad" --check-config -c "$DIR/test.json" >"$W/check-perip.out" 2>&1'
write_config "$DIR/test-bad.json" '"max_connections_per_ip": 1000000'
check "mintcad --check-config refuses server.max_connections_per_ip 1000000" \
	eval '! "$B/mintcad" --check-config -c "$DIR/test-bad.json" >"$W/check-perip-bad.out" 2>&1 && grep -q max_connections_per_ip "$W/check-perip-bad.out"'
LOG2=$DIR/mintcad-perip.log
if start_server "$LOG2" >"$W/start2.out" 2>&1; then
	hold perip 40 tls 3
	held perip
	echo "# 40 from one address with max_connections_per_ip 20: $(head -n 1 "$W/hold-perip")"
	check "max_connections_per_ip 20: of 40 connections from 127.0.0.1, 20 get in" \
		eval '[ "$(hold_n perip opened)" = 20 ]'
	wait "$HOLD_perip"
	http /health
	check "per-IP limit: once they are gone, /health is 200" status_is 200
	stop_server
	check "per-IP run: no sanitizer report" no_sanitizer_report "$LOG2"
else
	check "mintcad starts with max_connections_per_ip" eval 'cat "$W/start2.out"; false'
fi

# --- 5. secrets -------------------------------------------------------------------------

check "no sanitizer report in mintctl and set-up output" no_sanitizer_report "$W/setup.log" "$W/ca-show.err"
check "the EST password appears in no log and no captured output" no_secret_in password "$PASSWORD" "$W" "$DIR"/mintcad*.log
check "the PKCS#11 PIN appears in no log and no captured output" no_secret_in PIN "$PIN" "$W" "$DIR"/mintcad*.log
check "the SO PIN appears in no log and no captured output" no_secret_in "SO PIN" "$SO_PIN" "$W" "$DIR"/mintcad*.log

echo "# $CASES hostile cases in all, $(($(date +%s) - START)) s"
echo "$PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
