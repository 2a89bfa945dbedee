#!/bin/sh
# Embedded default for development and tests: a throwaway PostgreSQL cluster,
# a SoftHSM2 token with the CA keys, and a config, all under one data folder.
# Usage: see usage() below.
set -eu

REPO=$(cd "$(dirname "$0")/.." && pwd -P)
PKCS11_MODULE=/usr/lib/softhsm/libsofthsm2.so
PG_USER=mintca-pg     # initdb and pg_ctl refuse to run as root

usage() {
	cat <<EOF
usage: sh deploy/embedded.sh COMMAND [DIR] [ARGS...]

  setup [DIR]       create (or complete) the PostgreSQL cluster, SoftHSM token,
                    CA keys, DIR/env and DIR/mintcad.json; safe to run again
  start [DIR]       start the PostgreSQL cluster if it is stopped
  stop [DIR]        stop the PostgreSQL cluster if it is running
  run [DIR]         setup, then run mintcad in the foreground; stops
                    PostgreSQL when mintcad exits
  psql [DIR] ARGS   run psql on the cluster's mintca database
  destroy DIR       stop the cluster and delete it and the data folder

DIR defaults to $REPO/data.
Environment: MINTCA_PORT (8443), MINTCA_HTTP_PORT (8080: OCSP and CRLs), MINTCA_CA_KEY_TYPE (ec-p256, ec-p384,
rsa-2048, rsa-3072, rsa-4096), MINTCTL (build/mintctl), MINTCAD (build/mintcad).
EOF
}

die() { echo "embedded.sh: $*" >&2; exit 1; }

is_root() { [ "$(id -u)" -eq 0 ]; }

# Run a PostgreSQL server program as the cluster's owner. cd / so that the
# PostgreSQL user is not left in a folder it cannot read (e.g. /root).
pg_as_owner() {
	if is_root; then
		(cd / && runuser -u "$PG_USER" -- "$@")
	else
		"$@"
	fi
}

pg_running() {
	[ -f "$CLUSTER/PG_VERSION" ] &&
		pg_as_owner "$PG_BIN/pg_ctl" -D "$CLUSTER" status >/dev/null 2>&1
}

pg_start() {
	pg_running && return 0
	pg_as_owner "$PG_BIN/pg_ctl" -D "$CLUSTER" -w -l "$CLUSTER/log" start >/dev/null || {
		tail -n 20 "$CLUSTER/log" >&2 || :
		die "PostgreSQL did not start (log: $CLUSTER/log)"
	}
}

pg_stop() {
	pg_running || return 0
	pg_as_owner "$PG_BIN/pg_ctl" -D "$CLUSTER" -m fast -w stop >/dev/null
}

# Where the cluster lives. DIR/pg itself when the PostgreSQL user can reach it,
# otherwise (DIR under /root, which is 0700, or a path too long for a unix
# socket) a folder in /var/tmp named after DIR, with DIR/pg a symlink to it.
choose_cluster() {
	if [ -L "$DIR/pg" ]; then
		CLUSTER=$(readlink "$DIR/pg")
		return 0
	elif [ -d "$DIR/pg" ]; then
		CLUSTER=$DIR/pg
		return 0
	fi
	CLUSTER=$DIR/pg
	# The socket path ($CLUSTER/run/.s.PGSQL.5432) must fit in 107 bytes.
	if [ ${#CLUSTER} -le 80 ] &&
		{ ! is_root || runuser -u "$PG_USER" -- test -x "$DIR"; }; then
		return 0
	fi
	hash=$(printf %s "$DIR" | sha256sum | cut -c1-12)
	CLUSTER=/var/tmp/mintca-pg-$hash
	ln -s "$CLUSTER" "$DIR/pg"
}

setup_postgres() {
	if is_root && ! id -u "$PG_USER" >/dev/null 2>&1; then
		# "|| id": another setup running in parallel may have just made it.
		useradd --system --no-create-home --shell /usr/sbin/nologin "$PG_USER" ||
			id -u "$PG_USER" >/dev/null
	fi
	owner=$PG_USER
	is_root || owner=$(id -un)
	choose_cluster

	if [ "$CLUSTER" = "$DIR/pg" ]; then
		[ -d "$CLUSTER" ] || mkdir -m 0700 "$CLUSTER"
		if is_root; then chown "$PG_USER:" "$CLUSTER"; fi
	elif [ ! -e "$CLUSTER" ]; then
		# In /var/tmp, made by its owner: never chown a path there, another
		# user may have swapped it for a link.
		pg_as_owner mkdir -m 0700 "$CLUSTER"
	fi
	# Refuse a folder (or symlink) planted by another user in /var/tmp.
	if [ -L "$CLUSTER" ] || [ ! -d "$CLUSTER" ] ||
		[ "$(stat -c %U "$CLUSTER")" != "$owner" ]; then
		die "$CLUSTER must be a folder owned by $owner"
	fi

	if [ ! -f "$CLUSTER/PG_VERSION" ]; then
		# --no-sync only skips flushing initdb's own files; fsync stays on
		# for the running server, so commits survive a crash.
		pg_as_owner "$PG_BIN/initdb" -D "$CLUSTER" --auth=trust -U mintca \
			--encoding=UTF8 --no-sync >/dev/null
	fi
	if ! grep -q '^# mintca embedded settings' "$CLUSTER/postgresql.conf"; then
		# As the owner, so root never writes through links in a folder
		# another user controls.
		pg_as_owner sh -c 'cat >> "$1"' sh "$CLUSTER/postgresql.conf" <<EOF

# mintca embedded settings
listen_addresses = ''
unix_socket_directories = '$CLUSTER/run'
max_connections = 200
shared_buffers = 256MB
EOF
	fi
	[ -d "$CLUSTER/run" ] || pg_as_owner mkdir -m 0700 "$CLUSTER/run"

	pg_start
	exists=$("$PG_BIN/psql" -X -h "$CLUSTER/run" -U mintca -d postgres -tA \
		-c "SELECT 1 FROM pg_database WHERE datname = 'mintca'")
	[ "$exists" = 1 ] ||
		"$PG_BIN/psql" -X -h "$CLUSTER/run" -U mintca -d postgres -q \
			-c 'CREATE DATABASE mintca OWNER mintca'
}

token_exists() {
	softhsm2-util --show-slots 2>/dev/null | grep -q '^ *Label: *mintca *$'
}

# Write a fresh random secret to $1 unless it exists (0600 via umask 077).
make_secret() {
	[ -s "$1" ] && return 0
	(umask 077 && openssl rand -hex "$2" > "$1.tmp" && mv "$1.tmp" "$1")
}

setup_token() {
	mkdir -p "$DIR/tokens"
	chmod 0700 "$DIR/tokens"
	cat > "$DIR/softhsm2.conf" <<EOF
directories.tokendir = $DIR/tokens
objectstore.backend = file
log.level = ERROR
EOF
	export SOFTHSM2_CONF="$DIR/softhsm2.conf"

	case ${MINTCA_CA_KEY_TYPE:-ec-p256} in
	ec-p256) key_type=EC:prime256v1 ;;
	ec-p384) key_type=EC:secp384r1 ;;
	rsa-2048|rsa-3072|rsa-4096) key_type=rsa:${MINTCA_CA_KEY_TYPE#rsa-} ;;
	*) die "MINTCA_CA_KEY_TYPE must be ec-p256, ec-p384, rsa-2048, rsa-3072 or rsa-4096" ;;
	esac

	# PINs travel in environment variables (pkcs11-tool's "env:NAME"), never
	# on a command line where ps would show them.
	if ! token_exists; then
		make_secret "$DIR/secrets/pkcs11.pin" 16
		make_secret "$DIR/secrets/pkcs11.so-pin" 16
		# SoftHSM always offers one free slot: the one not initialised.
		slot=$(softhsm2-util --show-slots |
			awk '/^Slot /{s=$2} /^ *Initialized: *no/{print s; exit}')
		[ -n "$slot" ] || die "no free SoftHSM slot in $DIR/tokens"
		MINTCA_PIN=$(cat "$DIR/secrets/pkcs11.pin") \
		MINTCA_SO_PIN=$(cat "$DIR/secrets/pkcs11.so-pin") \
		pkcs11-tool --module "$PKCS11_MODULE" --slot "$slot" \
			--init-token --init-pin --label mintca \
			--so-pin env:MINTCA_SO_PIN --pin env:MINTCA_PIN >/dev/null
	fi
	[ -s "$DIR/secrets/pkcs11.pin" ] ||
		die "token mintca exists but $DIR/secrets/pkcs11.pin is missing; remove $DIR/tokens to start over"

	# Each key separately, so a run interrupted between the two completes.
	for key in mintca-root:01 mintca-issuing:02; do
		label=${key%:*}
		if ! p11 --list-objects --type privkey | grep -q "^ *label: *$label\$"; then
			p11 --keypairgen --key-type "$key_type" --label "$label" \
				--id "${key#*:}" >/dev/null
		fi
	done
}

# pkcs11-tool logged in to the mintca token as the user.
p11() {
	MINTCA_PIN=$(cat "$DIR/secrets/pkcs11.pin") \
	pkcs11-tool --module "$PKCS11_MODULE" --token-label mintca \
		--login --pin env:MINTCA_PIN "$@"
}

write_env() {
	cat > "$DIR/env" <<EOF
# Generated by deploy/embedded.sh setup; source it.
export SOFTHSM2_CONF='$DIR/softhsm2.conf'
export MINTCA_DSN='$DSN'
export MINTCA_PG_BIN='$PG_BIN'
export MINTCA_PG_CLUSTER='$CLUSTER'
export MINTCA_PKCS11_MODULE='$PKCS11_MODULE'
EOF
}

write_config() {
	[ -f "$DIR/mintcad.json" ] && return 0
	make_secret "$DIR/secrets/est-factory.password" 12
	hash=$("$MINTCTL" passwd < "$DIR/secrets/est-factory.password")
	# The hash goes into JSON as is: allow only the characters of its format.
	case $hash in ''|*[!A-Za-z0-9./+=,:_\$-]*)
		die "$MINTCTL passwd did not print a hash" ;;
	esac
	port=${MINTCA_PORT:-8443}
	case $port in ''|*[!0-9]*) die "MINTCA_PORT must be a number" ;; esac
	http_port=${MINTCA_HTTP_PORT:-8080}
	case $http_port in ''|*[!0-9]*) die "MINTCA_HTTP_PORT must be a number" ;; esac

	# Via a temporary file: a failed run never leaves half a config behind.
	cat > "$DIR/mintcad.json.tmp" <<EOF
{
  "server": { "listen": "127.0.0.1", "port": $port, "max_connections": 512,
              "connection_timeout_s": 30, "max_body_bytes": 65536, "public_name": "localhost",
              "http_port": $http_port, "public_base_url": "http://localhost:$http_port" },
  "tls": { "cert_file": "$DIR/tls/server.crt", "key_file": "$DIR/tls/server.key" },
  "database": { "dsn": "$DSN" },
  "ca": {
    "name": "dev",
    "root_subject": "/O=mintca/CN=mintca dev root CA",
    "issuing_subject": "/O=mintca/CN=mintca dev issuing CA",
    "root_validity_days": 7300, "issuing_validity_days": 3650,
    "signer": { "type": "pkcs11", "module": "$PKCS11_MODULE", "token_label": "mintca",
                "pin_file": "$DIR/secrets/pkcs11.pin", "root_key_label": "mintca-root",
                "issuing_key_label": "mintca-issuing" }
  },
  "log": { "level": "info" },
  "revocation": { "crl_period": "1h", "crl_next_update": "1d", "crl_retention": "90d",
                  "ocsp_validity": "1h", "ocsp_responder_validity": "7d" },
  "est": { "default_profile": "device" },
  "users": [ { "name": "factory", "password_hash": "$hash" } ],
  "client_cert_anchors": [],
  "profiles": [
    { "name": "device", "key_types": ["ec-p256", "ec-p384", "rsa", "ed25519"],
      "rsa_min_bits": 2048, "rsa_max_bits": 4096, "validity_days": 365, "backdate_seconds": 60,
      "extended_key_usage": ["clientAuth"], "max_sans": 4, "revocation_urls": true,
      "auth": { "basic_users": ["factory"], "client_cert_anchors": ["dev"], "reenroll": true } }
  ]
}
EOF
	mv "$DIR/mintcad.json.tmp" "$DIR/mintcad.json"
}

setup() {
	[ -x "$PG_BIN/initdb" ] ||
		die "PostgreSQL server binaries not found (install postgresql)"
	# Checked first so a missing build does not leave a half-made DIR.
	[ -f "$DIR/mintcad.json" ] || [ -x "$MINTCTL" ] ||
		die "$MINTCTL not found: build it first (make all) or set MINTCTL"
	(umask 077 && mkdir -p "$DIR/secrets" "$DIR/tls")
	chmod 0700 "$DIR/secrets" "$DIR/tls"
	setup_postgres
	DSN="host=$CLUSTER/run dbname=mintca user=mintca"
	setup_token
	write_env
	write_config
}

# For start/stop/psql: the cluster as recorded by setup in DIR/env.
load_env() {
	[ -f "$DIR/env" ] || return 1
	. "$DIR/env"
	PG_BIN=$MINTCA_PG_BIN
	CLUSTER=$MINTCA_PG_CLUSTER
}

run() {
	setup
	MINTCAD=${MINTCAD:-$REPO/build/mintcad}
	[ -x "$MINTCAD" ] || die "$MINTCAD not found: build it first (make all) or set MINTCAD"
	# The port from the config: it may predate this run's MINTCA_PORT.
	port=$(sed -n 's/.*"port": *\([0-9]*\).*/\1/p' "$DIR/mintcad.json" | head -n 1)
	cat <<EOF
mintca: https://localhost:$port/.well-known/est/cacerts
config: $DIR/mintcad.json
EST user "factory", password in $DIR/secrets/est-factory.password
EOF
	. "$DIR/env"
	trap pg_stop EXIT
	# mintcad runs in the background only so that a TERM sent to this script
	# reaches it too; the script still waits for it like a foreground job.
	"$MINTCAD" -c "$DIR/mintcad.json" &
	pid=$!
	trap 'kill -TERM "$pid" 2>/dev/null || :' INT TERM
	rc=0
	wait "$pid" || rc=$?
	# A trapped signal interrupts wait: wait again until mintcad has exited.
	while kill -0 "$pid" 2>/dev/null; do
		rc=0
		wait "$pid" || rc=$?
	done
	exit "$rc"
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case $cmd in
-h|--help|help) usage; exit 0 ;;
setup|start|stop|run|psql|destroy) ;;
*) usage >&2; exit 2 ;;
esac

# DIR is the next argument unless it looks like an option (psql -c ...).
DIR=$REPO/data
case ${1:-} in
''|-*) ;;
*) DIR=$1; shift ;;
esac
[ "$cmd" = psql ] || [ $# -eq 0 ] || die "$cmd: unexpected arguments: $*"
case $cmd in setup|run) mkdir -p "$DIR" ;; esac
if [ ! -d "$DIR" ]; then
	case $cmd in stop|destroy) exit 0 ;; esac
	die "$DIR is not set up: run setup first"
fi
DIR=$(cd "$DIR" && pwd -P)
# DIR goes unquoted into JSON, a libpq DSN and sh files: keep it plain.
case $DIR in *[!A-Za-z0-9._/+@:-]*)
	die "data folder path may only contain A-Z a-z 0-9 . _ / + @ : - ($DIR)" ;;
esac

MINTCTL=${MINTCTL:-$REPO/build/mintctl}
PG_BIN=${MINTCA_PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}

case $cmd in
setup) setup ;;
run) run ;;
start)
	load_env || die "$DIR is not set up: run setup first"
	pg_start ;;
stop)
	load_env || exit 0
	pg_stop ;;
destroy)
	# Stop the cluster and remove it with the data folder (tests, start-over).
	if load_env; then
		pg_stop
		case $CLUSTER in /var/tmp/mintca-pg-*) rm -rf "$CLUSTER" ;; esac
	fi
	rm -rf "$DIR" ;;
psql)
	load_env || die "$DIR is not set up: run setup first"
	exec "$PG_BIN/psql" -h "$CLUSTER/run" -U mintca -d mintca "$@" ;;
esac
