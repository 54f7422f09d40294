#!/bin/bash
# logbench.sh -- the throughput of `concctl log` on a finished job: a job
# writes LINES lines of WIDTH bytes (default 1,000,000 of 100: 100 MB),
# then `concctl log ID` copies its kept output into a pipe whose reader
# throws it away, RUNS times; the median is compared with cat(1) copying
# the job's log files into the same kind of pipe in the same minutes.
# Target (issue 11): at least 500 MB/s.  Run it by hand, on an idle
# machine:
#   tests/bench/logbench.sh build/daemon/concd build/client/concctl
# --check runs it tiny and checks the bytes, never a timing (ctest).
set -eu

check=false
if [ "${1:-}" = --check ]; then
	check=true
	shift
fi
[ $# -eq 2 ] || { echo "usage: logbench.sh [--check] CONCD CONCTL" >&2; exit 2; }
concd=$1 concctl=$2
lines=${LINES_N:-1000000} width=${WIDTH:-100} runs=${RUNS:-5}
$check && { lines=20000; runs=1; }

dir=$(mktemp -d /tmp/concd-logbench.XXXXXX)
pid=
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	rm -rf "$dir"
}
trap cleanup EXIT

"$concd" -f -s "$dir/sock" --state-dir "$dir/state" --log-limit 4G \
	2>"$dir/log" &
pid=$!
for _ in $(seq 300); do
	"$concctl" --socket "$dir/sock" ping >/dev/null 2>&1 && break
	sleep 0.1 # a bounded wait for the socket: this script is no test
done
ctl() { "$concctl" --socket "$dir/sock" "$@"; }

# the same line, LINES times: awk writes it in big blocks
id=$(ctl submit exec -- awk -v n="$lines" -v w="$width" \
	'BEGIN { s = sprintf("%0" (w - 1) "d", 7); for (i = 0; i < n; i++) print s }')
ctl wait "$id" >/dev/null
bytes=$((lines * width))

now() { date +%s%N; }
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# what concctl log gives must be the job's output, byte for byte
got=$(ctl log "$id" | wc -c)
[ "$got" -eq "$bytes" ] || { echo "FAIL: log gave $got bytes, not $bytes" >&2; exit 1; }
if $check; then
	want=$(awk -v n="$lines" -v w="$width" \
		'BEGIN { s = sprintf("%0" (w - 1) "d", 7); for (i = 0; i < n; i++) print s }' |
		sha256sum)
	[ "$(ctl log "$id" | sha256sum)" = "$want" ] ||
		{ echo "FAIL: log's bytes differ from the job's output" >&2; exit 1; }
	echo "ok: concctl log gave the job's $bytes bytes"
	exit 0
fi

logs=("$dir/state/logs/$id".*)
for _ in $(seq "$runs"); do
	t0=$(now)
	ctl log "$id" | cat >/dev/null
	t1=$(now)
	cat "${logs[@]}" | cat >/dev/null
	t2=$(now)
	echo "$(((t1 - t0) / 1000)) $(((t2 - t1) / 1000))"
done >"$dir/times"

log_us=$(cut -d' ' -f1 "$dir/times" | median)
cat_us=$(cut -d' ' -f2 "$dir/times" | median)
awk -v b="$bytes" -v l="$log_us" -v c="$cat_us" -v n="$lines" -v r="$runs" 'BEGIN {
	printf "concctl log, %d lines, %.1f MB, median of %d:\n", n, b / 1e6, r
	printf "  concctl log | cat   %8.1f MB/s  (%.1f ms)  target >= 500\n", b / l, l / 1000
	printf "  cat files | cat     %8.1f MB/s  (%.1f ms)\n", b / c, c / 1000
	printf "  ratio               %8.2f x cat\n", l / c
}'
