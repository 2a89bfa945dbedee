#!/bin/sh
# Install the Debian packages mintca needs to build, test and run.
# Does nothing (and never runs apt-get update) when all are present.
set -eu

PACKAGES="build-essential pkg-config libssl-dev openssl libmicrohttpd-dev
libgnutls28-dev libjansson-dev libpq-dev libp11-dev check libsubunit-dev
softhsm2 opensc postgresql postgresql-client curl ca-certificates clang
libclang-rt-14-dev procps nginx"

missing=
for p in $PACKAGES; do
	status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null) || status=
	[ "$status" = "install ok installed" ] || missing="$missing $p"
done
[ -n "$missing" ] || exit 0

if [ "$(id -u)" -eq 0 ]; then
	sudo=
elif command -v sudo >/dev/null 2>&1; then
	sudo=sudo
else
	echo "install-deps: not root and no sudo; please install:$missing" >&2
	exit 1
fi

echo "install-deps: installing$missing"
$sudo apt-get update -q >/dev/null
# $missing is split into words on purpose: one argument per package.
# shellcheck disable=SC2086
$sudo env DEBIAN_FRONTEND=noninteractive \
	apt-get install -y -q --no-install-recommends $missing >/dev/null
