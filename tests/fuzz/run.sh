#!/bin/sh
# Run each libFuzzer target for the given seconds on a copy of its seed
# corpus (new inputs stay out of the repository). Usage: run.sh SECONDS T...
set -eu
secs=$1
shift
top=$(cd "$(dirname "$0")/../.." && pwd -P)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export TMPDIR="$work"
fail=0
for t in "$@"; do
	mkdir -p "$work/$t"
	[ -d "$top/tests/fuzz/corpus/$t" ] && cp -r "$top/tests/fuzz/corpus/$t/." "$work/$t/"
	echo "fuzz $t: ${secs}s"
	if ! "$top/build-fuzz/fuzz_$t" -max_total_time="$secs" -max_len=65536 -rss_limit_mb=2048 \
		-artifact_prefix="$work/crash-$t-" -print_final_stats=1 "$work/$t" >"$work/$t.log" 2>&1; then
		fail=1
		echo "fuzz $t: FAILED"
		tail -n 60 "$work/$t.log"
		mkdir -p "$top/build-fuzz/crashes"
		cp "$work"/crash-"$t"-* "$top/build-fuzz/crashes/" 2>/dev/null || :
	else
		grep -E 'stat::number_of_executed_units|stat::peak_rss_mb' "$work/$t.log" | sed "s/^/fuzz $t: /"
	fi
done
exit $fail
