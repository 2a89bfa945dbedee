#!/bin/sh
# EST load benchmark (run by tests/bench/run.sh, i.e. `make bench`).
#
# Sets up its own throwaway PostgreSQL cluster, SoftHSM token and config
# (deploy/embedded.sh in a temporary folder: the embedded default, user
# "factory" with its generated password), starts mintcad, and measures with
# loadgen, BENCH_EST_CLIENTS (32) clients each making a new TLS connection
# (full handshake: no session resumption) per request, BENCH_EST_SECONDS (10)
# after BENCH_EST_WARMUP (2) s of warm-up:
#   1. EST simpleenroll (RFC 7030 §4.2.1): POST of a base64 P-256 CSR (8
#      different ones in turn) with HTTP Basic (the password from
#      DATA/secrets/est-factory.password, sent from a 0600 header file, never
#      printed); every answer must be 200 (a certificate issued, signed on the
#      SoftHSM token, committed to PostgreSQL);
#   2. nginx (2 workers) over HTTPS with mintcad's own certificate chain and
#      key, asking for a client certificate as mintcad does, answering the
#      same requests with a static file of the size of an enrollment's answer.
# Prints enrollments/s next to nginx's requests/s, p50/p99, and the ratio
# (goal >= 50%). Then a soak: BENCH_SOAK_SECONDS (600) of enrollments at half
# the measured rate, mintcad's RSS sampled every 10 s (more often for soaks
# under 2 minutes), and whether it stayed flat: the average of the last
# minute within 10% of the average of the second minute (for soaks under
# 3 minutes: the last third against the second third). BENCH_SOAK_SECONDS=0
# skips the soak.
# Nothing is asserted on timing; the exit status is 0 unless the set-up fails.
set -eu

REPO=$(cd "$(dirname "$0")/../.." && pwd -P)
B=${MINTCA_BUILD:-build}
case $B in /*) ;; *) B=$REPO/$B ;; esac
. "$REPO/tests/bench/lib.sh"

CLIENTS=${BENCH_EST_CLIENTS:-32}
SECS=${BENCH_EST_SECONDS:-10}
WARM=${BENCH_EST_WARMUP:-2}
SOAK=${BENCH_SOAK_SECONDS:-600}
LG_THREADS=${BENCH_EST_LOADGEN_THREADS:-2}
STALL_MS=1000
case $SOAK in ''|*[!0-9]*) echo "BENCH_SOAK_SECONDS must be a whole number of seconds" >&2; exit 2 ;; esac

bench_prepare est openssl nginx curl ss pgrep
PORT=$(free_port)
HPORT=$(free_port)
NPORT=$(free_port)

echo "== EST: setting up PostgreSQL, SoftHSM and mintcad in $T"
setup_embedded "$PORT" "$HPORT"
LOG=$W/mintcad.log
start_mintcad "$DIR/mintcad.json" "$LOG"

# The Basic credentials: a header file and a curl config, both 0600; the
# password goes through printf (a shell builtin) and pipes, never argv.
(
	umask 077
	pw=$(cat "$DIR/secrets/est-factory.password")
	printf 'Authorization: Basic %s\n' "$(printf 'factory:%s' "$pw" | openssl base64 -A)" >"$W/auth.hdr"
	printf 'user = "factory:%s"\n' "$pw" >"$W/curl-factory.conf"
)

# Eight P-256 device CSRs, base64 DER as EST sends them.
set --
for i in 1 2 3 4 5 6 7 8; do
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$W/dev-$i.key" \
		-subj "/CN=bench-device-$i" -addext "subjectAltName=DNS:bench-device-$i.example" \
		-outform DER -out "$W/dev-$i.der" 2>/dev/null || die "cannot make CSR $i"
	openssl base64 -in "$W/dev-$i.der" -out "$W/dev-$i.b64"
	set -- "$@" --body "$W/dev-$i.b64"
done

# One enrollment with curl: it must work before anything is measured.
st=$(curl -sS --max-time 30 --cacert "$DIR/tls/server.crt" --resolve "localhost:$PORT:127.0.0.1" \
	-K "$W/curl-factory.conf" -H 'Content-Type: application/pkcs10' --data-binary "@$W/dev-1.b64" \
	-o "$W/probe.b64" -w '%{http_code}' "https://localhost:$PORT/.well-known/est/simpleenroll" 2>"$W/probe.err") ||
	st=000
[ "$st" = 200 ] || die "a probe enrollment answered HTTP $st: $(cat "$W/probe.err" "$W/probe.b64" 2>/dev/null | head -n 3)"
openssl base64 -d -in "$W/probe.b64" | openssl pkcs7 -inform DER -print_certs 2>/dev/null |
	grep -q 'BEGIN CERTIFICATE' || die "the probe enrollment did not return a certificate"
st=$(curl -sS --max-time 30 --cacert "$DIR/tls/server.crt" --resolve "localhost:$PORT:127.0.0.1" \
	-o "$W/cacerts.b64" -w '%{http_code}' "https://localhost:$PORT/.well-known/est/cacerts" 2>"$W/probe.err") ||
	st=000
[ "$st" = 200 ] || die "GET cacerts answered HTTP $st: $(cat "$W/probe.err" 2>/dev/null | head -n 3)"

# nginx does the same TLS work as mintcad: the same certificate chain and
# key (mintcad's own files), and it asks for a client certificate naming the
# same CAs (mintcad asks for one because EST accepts them, RFC 7030 §3.3.2).
# What is left between the two is the enrollment itself.
openssl base64 -d -in "$W/cacerts.b64" 2>/dev/null | openssl pkcs7 -inform DER -print_certs 2>/dev/null \
	>"$W/client-cas.pem"
grep -q 'BEGIN CERTIFICATE' "$W/client-cas.pem" || die "cannot read the EST CA certificates for nginx"
keydesc=$(openssl x509 -in "$DIR/tls/server.crt" -noout -text | sed -n 's/^ *Public Key Algorithm: *//p' | head -n 1)
chain=$(grep -c 'BEGIN CERTIFICATE' "$DIR/tls/server.crt")
NGINX_CLIENT_CAS=$W/client-cas.pem nginx_start "$NPORT" https "$W/probe.b64" application/pkcs7-mime \
	"$DIR/tls/server.crt" "$DIR/tls/server.key"
echo "  TLS: mintcad and nginx serve the same chain ($chain certificates, $keydesc) and both ask for a client certificate; nginx answers with a file of $(wc -c <"$W/probe.b64") bytes (an enrollment's answer)"

lg() { # lg NAME PORT ARGS...
	lg_name=$1 lg_port=$2
	shift 2
	loadgen_run "$W/lg-$lg_name.out" -p "$lg_port" --tls --new-conn --path /.well-known/est/simpleenroll \
		--content-type application/pkcs10 --header-file "$W/auth.hdr" -c "$CLIENTS" -t "$LG_THREADS" \
		--stall-ms "$STALL_MS" --label "$lg_name" "$@"
}

echo "== EST load: $CLIENTS clients, a new TLS connection per request, ${WARM} s warm-up then ${SECS} s each"
rss0=$(rss_kb "$MINTCAD_PID")
log0=$(wc -l <"$LOG")
lg mintcad-est "$PORT" -d "$SECS" -w "$WARM" "$@"
# mintcad's own time per enrollment (its http.request log lines: from the
# request's arrival to the answer being queued), warm-up included.
tail -n "+$((log0 + 1))" "$LOG" | grep '"event":"http.request"' | grep 'simpleenroll' |
	sed -n 's/.*"ms":"\([0-9.]*\)".*/\1/p' | sort -n | awk '{ v[NR] = $1 } END {
		if (NR == 0) exit
		printf "  mintcad log, time in the server per enrollment: p50 %s ms, p99 %s ms (%d requests)\n",
			v[int(NR * 0.5 + 0.5) < 1 ? 1 : int(NR * 0.5 + 0.5)], v[int(NR * 0.99 + 0.5) < 1 ? 1 : int(NR * 0.99 + 0.5)], NR
	}'
echo "  mintcad RSS: $rss0 kB before, $(rss_kb "$MINTCAD_PID") kB after, peak $(rss_kb "$MINTCAD_PID" VmHWM) kB"
lg nginx-https "$NPORT" -d "$SECS" -w "$WARM" "$@"
nginx_stop

echo "== EST summary (shared, noisy machine: the ratio counts)"
row_head
row "mintcad enrollments" "$W/lg-mintcad-est.out"
row "nginx HTTPS file" "$W/lg-nginx-https.out"
est=$(res "$W/lg-mintcad-est.out" rps)
ratio "mintcad enrollments / nginx requests" "$est" "$(res "$W/lg-nginx-https.out" rps)" 0.5 %
echo "  (both with a full TLS handshake per request; loadgen's own handshakes use the same cores)"

# --- soak ---------------------------------------------------------------------

if [ "$SOAK" = 0 ]; then
	echo "== EST soak: skipped (BENCH_SOAK_SECONDS=0)"
	exit 0
fi
rate=$(awk -v r="$est" 'BEGIN { r = r / 2; printf "%.1f", r < 1 ? 1 : r }')
if [ "$SOAK" -ge 120 ]; then every=10; else every=$((SOAK / 12)); fi
[ "$every" -ge 1 ] || every=1
if [ "$SOAK" -ge 180 ]; then win=60; else win=$((SOAK / 3)); fi
echo "== EST soak: ${SOAK} s at $rate enrollments/s (half the rate above), mintcad RSS every ${every} s"
"$B/loadgen" -p "$PORT" --tls --new-conn --path /.well-known/est/simpleenroll --content-type application/pkcs10 \
	--header-file "$W/auth.hdr" -c "$CLIENTS" -t "$LG_THREADS" --stall-ms "$STALL_MS" --label soak \
	--rate "$rate" -w 0 -d "$SOAK" "$@" >"$W/lg-soak.out" 2>&1 &
LGPID=$!
BENCH_PIDS="$BENCH_PIDS $LGPID"
: >"$W/rss.txt"
t=0
while [ $((t + every)) -le "$SOAK" ] && kill -0 "$LGPID" 2>/dev/null; do
	sleep "$every"
	t=$((t + every))
	kill -0 "$MINTCAD_PID" 2>/dev/null || die "mintcad exited during the soak: $(tail -n 5 "$LOG")"
	echo "$t $(rss_kb "$MINTCAD_PID")" >>"$W/rss.txt"
done
lg_rc=0
wait "$LGPID" || lg_rc=$?
forget_pid "$LGPID"
[ "$lg_rc" = 0 ] || die "loadgen failed in the soak: $(cat "$W/lg-soak.out")"
grep -v '^RESULT ' "$W/lg-soak.out" | sed -e 's/^/  /'
awk '{ printf "%s t=%ss %s kB", (NR % 6 == 1 ? "  RSS" : ""), $1, $2; if (NR % 6 == 0) printf "\n"; else printf ";" }
	END { if (NR % 6 != 0) printf "\n" }' "$W/rss.txt" | sed -e 's/;$//'
awk -v w="$win" -v s="$SOAK" '
	$1 > w && $1 <= 2 * w { b += $2; nb++ }
	$1 > s - w && $1 <= s { l += $2; nl++ }
	END {
		if (nb == 0 || nl == 0) { print "RSS stayed flat: n/a (too few samples; BENCH_SOAK_SECONDS too short)"; exit }
		b /= nb; l /= nl; d = (l - b) / b
		printf "RSS: %.0f kB in (%d s, %d s], %.0f kB in the last %d s: %+.1f%% (goal: within 10%%): %s\n",
			b, w, 2 * w, l, w, d * 100, (d <= 0.10 && d >= -0.10 ? "stayed flat, goal met" : "goal NOT met")
	}' "$W/rss.txt"
r_ok=$(res "$W/lg-soak.out" rps)
awk -v a="$r_ok" -v t="$rate" -v e="$(res "$W/lg-soak.out" errors)" -v s="$(res "$W/lg-soak.out" stalled)" 'BEGIN {
	printf "soak: %.1f of %.1f enrollments/s held, %d errors, %d stalled: %s\n", a, t, e, s,
		(a >= 0.95 * t && e == 0 && s == 0 ? "goal met" : "goal NOT met")
}'
