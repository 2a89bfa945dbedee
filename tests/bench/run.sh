#!/bin/sh
# Issuance benchmark (`make bench` builds first, then runs this).
#  1. baseline: `openssl speed` ECDSA P-256 sign/verify on this machine;
#  2. bench_issue with the CA key in memory: on one thread without a store,
#     then from BENCH_THREADS threads (default 8) with and without the
#     PostgreSQL store, on a throwaway cluster (deploy/embedded.sh setup in a
#     temporary folder, destroyed on exit);
#  3. bench_issue with the CA key on a throwaway SoftHSM token;
#  4. tests/bench/ocsp.sh: OCSP responses/s with 1,000,000 certificates
#     against `openssl ocsp` and nginx; 5. tests/bench/est_load.sh: EST
#     enrollments/s against nginx over HTTPS, then a soak (each sets up and
#     removes its own server; their BENCH_* settings are in their headers).
# Binaries come from ${MINTCA_BUILD:-build}; nothing is built here.
# BENCH_N sets the certificates per figure (default 2000).
set -eu

REPO=$(cd "$(dirname "$0")/../.." && pwd -P)
BUILD=${MINTCA_BUILD:-build}
BENCH=$BUILD/bench_issue
MODULE=${SOFTHSM2_MODULE:-/usr/lib/softhsm/libsofthsm2.so}
N=${BENCH_N:-2000}
THREADS=${BENCH_THREADS:-8}

for tool in openssl softhsm2-util pkcs11-tool od; do
	command -v "$tool" >/dev/null 2>&1 || { echo "run.sh: $tool not found (make deps)" >&2; exit 1; }
done
[ -x "$BENCH" ] || { echo "run.sh: $BENCH missing: run 'make bench'" >&2; exit 1; }
[ -x "$BUILD/mintctl" ] || { echo "run.sh: $BUILD/mintctl missing: run 'make bench'" >&2; exit 1; }
MINTCTL=$(cd "$BUILD" && pwd -P)/mintctl
[ -f "$MODULE" ] || { echo "run.sh: PKCS#11 module $MODULE missing" >&2; exit 1; }

echo "== baseline: openssl speed -seconds 3 ecdsap256"
speed=$(openssl speed -seconds 3 ecdsap256 2>/dev/null)
printf '%s\n' "$speed" | grep -E '^ +sign +verify' || true
printf '%s\n' "$speed" | grep -E 'ecdsa \(nistp256\)' || {
	echo "run.sh: no P-256 line in openssl speed output" >&2
	exit 1
}

# A throwaway token and PostgreSQL cluster: own folder, random PINs, all
# removed on exit (the cluster may live in /var/tmp: embedded.sh destroy).
tmp=$(mktemp -d "${TMPDIR:-/tmp}/mintca-bench.XXXXXX")
cleanup() {
	if [ -f "$tmp/pgdata/env" ]; then
		sh "$REPO/deploy/embedded.sh" destroy "$tmp/pgdata" >/dev/null 2>&1 || :
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
chmod 700 "$tmp"
mkdir "$tmp/tokens"
cat > "$tmp/softhsm2.conf" <<EOF
directories.tokendir = $tmp/tokens
objectstore.backend = file
log.level = ERROR
slots.removable = false
EOF
SOFTHSM2_CONF=$tmp/softhsm2.conf
export SOFTHSM2_CONF

random_pin() {
	od -An -N12 -tx1 /dev/urandom | tr -d ' \n'
}
BENCH_PIN=$(random_pin)
so_pin=$(random_pin)
(umask 077 && printf '%s\n' "$BENCH_PIN" > "$tmp/pin")

echo "== setting up a throwaway SoftHSM token in $tmp"
softhsm2-util --init-token --free --label bench --pin "$BENCH_PIN" --so-pin "$so_pin" >/dev/null
# pkcs11-tool reads the PIN from the environment, not from its command line.
export BENCH_PIN
pkcs11-tool --module "$MODULE" --token-label bench --login --pin env:BENCH_PIN \
	--keypairgen --key-type EC:prime256v1 --label bench-issuing --id 01 >/dev/null
unset BENCH_PIN so_pin

echo "== setting up a throwaway PostgreSQL cluster (deploy/embedded.sh setup $tmp/pgdata)"
# Its own SoftHSM token and config come along; only the DSN is used here.
MINTCTL=$MINTCTL sh "$REPO/deploy/embedded.sh" setup "$tmp/pgdata" >/dev/null
DSN=$(. "$tmp/pgdata/env" && printf '%s' "$MINTCA_DSN")

echo "== bench_issue: CA key in memory (N=$N; the store figure with $THREADS threads)"
"$BENCH" -n "$N" --dsn "$DSN" --threads "$THREADS"

echo "== bench_issue: CA key on the SoftHSM token (N=$N)"
"$BENCH" --p11 "$MODULE" bench "$tmp/pin" bench-issuing -n "$N"

echo "== bench_crl: CRL publish for 100,000 and 1,000,000 revoked certificates (CA key on the SoftHSM token)"
"$BUILD/bench_crl" --dsn "$DSN" --p11 "$MODULE" bench "$tmp/pin" bench-issuing

# The load benchmarks (loadgen): both run, whichever fails.
rc=0
sh "$REPO/tests/bench/ocsp.sh" || rc=1
sh "$REPO/tests/bench/est_load.sh" || rc=1
exit $rc
