#!/bin/bash
# fuzz.sh [--runs N | --time SECONDS] [--merge] [--build DIR] -- fuzz
# proto/ with libFuzzer (tests/fuzz/fuzz_proto), in two runs, and print
# the runs made.
#
# The main run caps inputs at 4 KiB (-max_len=4096): every message fits,
# and it stays at thousands of runs a second; uncapped, the corpus fills
# with inputs of hundreds of KiB and the rate falls twenty-fold.  A
# second, shorter run (a tenth of the budget) takes inputs up to the
# frame limit and one frame beyond, for the paths only large inputs
# reach.  Both start from tests/fuzz/corpus and keep what they find in
# DIR/fuzz/main and DIR/fuzz/large, so a later session goes on from there.
#
#   --runs N       N runs in all (nine tenths in the main run)
#   --time SECONDS at most about SECONDS in all (the default: 600 when
#                  --runs is not given)
#   --merge        then add to tests/fuzz/corpus the fewest inputs of the
#                  main run that reach what it does not (libFuzzer
#                  -set_cover_merge=1): the committed corpus grows by what
#                  is new, minimised (the large run's inputs, big by
#                  design, stay in DIR)
#   --build DIR    the clang build with -DCONCD_FUZZ=ON (default:
#                  build-fuzz/, configured and built if needed)
#
# One fuzzing process at a time: the machine is shared.  A crash or a
# broken invariant stops the run, leaves the input in DIR/fuzz/artifacts/
# and makes fuzz.sh exit 1; copy it to tests/fuzz/corpus/regress-NAME
# once it is fixed, so that ctest replays it.
set -eu

usage() {
	sed -n '2,/^set -eu/p' "$0" | sed -e '/^set -eu/d' -e 's/^# \{0,1\}//'
	exit "${1:-2}"
}

runs=
seconds=
merge=0
root=$(cd "$(dirname "$0")/.." && pwd)
build=$root/build-fuzz
while [ $# -gt 0 ]; do
	case $1 in
	--runs) runs=${2:?--runs needs a number}; shift ;;
	--time) seconds=${2:?--time needs seconds}; shift ;;
	--merge) merge=1 ;;
	--build) build=${2:?--build needs a directory}; shift ;;
	-h | --help) usage 0 ;;
	*) echo "fuzz.sh: unknown option $1" >&2; usage ;;
	esac
	shift
done
build=$(realpath -m "$build")
[ -n "$runs$seconds" ] || seconds=600
for n in $runs $seconds; do
	case $n in
	*[!0-9]*) echo "fuzz.sh: not a number: $n" >&2; exit 2 ;;
	esac
done

fuzzer=$build/tests/fuzz/fuzz_proto
if [ ! -x "$fuzzer" ]; then
	echo "==> fuzz: configure and build $build (clang, -DCONCD_FUZZ=ON)"
	mkdir -p "$build"
	CC=clang cmake -S "$root" -B "$build" -DCONCD_FUZZ=ON \
		>"$build/configure.log" 2>&1 || {
		cat "$build/configure.log"
		exit 1
	}
fi
cmake --build "$build" --target fuzz_proto -j2 >/dev/null

corpus=$root/tests/fuzz/corpus
work=$build/fuzz
mkdir -p "$work/main" "$work/large" "$work/artifacts"
# PROTO_MAX_FRAME (1 MiB) of payload, its 4-byte length, and a byte more
large_len=$((1024 * 1024 + 5))
export ASAN_OPTIONS=${ASAN_OPTIONS:-allocator_may_return_null=1}

# fuzz NAME BUDGET ARGS...: one libFuzzer run; sets made and took
fuzz() {
	local name=$1 budget=$2 log=$work/$1.log rc=0
	shift 2
	echo "==> fuzz: $name run ($*), log in $log"
	[ -z "$runs" ] || set -- "$@" -runs="${budget% *}"
	[ -z "$seconds" ] || set -- "$@" -max_total_time="${budget#* }"
	start=$(date +%s%N)
	(cd "$work" && "$fuzzer" "$@" -dict="$root/tests/fuzz/fuzz_proto.dict" \
		-rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
		-artifact_prefix="$work/artifacts/" "$work/$name" "$corpus") \
		>"$log" 2>&1 || rc=$?
	took=$((($(date +%s%N) - start) / 1000000)) # ms
	made=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
	made=${made:-0}
	if [ "$rc" -ne 0 ]; then
		grep -E 'ERROR|broken|SUMMARY|artifact' "$log" | head -20 >&2
		echo "fuzz: $name run failed after $made runs (see $log)" >&2
		exit 1
	fi
	report "$name" "$made" "$took" \
		", corpus $(find "$work/$name" -type f | wc -l) inputs"
}

# report NAME RUNS MS [MORE]: one line of figures
report() {
	printf 'fuzz: %s: %d runs in %d.%d s (%d runs/s)%s\n' "$1" "$2" \
		$(($3 / 1000)) $(($3 % 1000 / 100)) \
		$(($2 * 1000 / ($3 > 0 ? $3 : 1))) "${4:-}"
}

# budgets as "RUNS SECONDS": nine tenths for the main run
r=${runs:-0} s=${seconds:-0}
fuzz main "$((r - r / 10)) $((s - s / 10))" -max_len=4096
main_made=$made main_took=$took
fuzz large "$((r / 10)) $((s / 10))" -max_len="$large_len" -len_control=0
report "in all" $((main_made + made)) $((main_took + took))

if [ "$merge" -eq 1 ]; then
	before=$(find "$corpus" -type f | wc -l)
	(cd "$work" && "$fuzzer" -set_cover_merge=1 -max_len=4096 "$corpus" \
		"$work/main") >"$work/merge.log" 2>&1
	after=$(find "$corpus" -type f | wc -l)
	echo "fuzz: merged $((after - before)) new inputs into tests/fuzz/corpus" \
		"($(du -sh "$corpus" | cut -f1) in all)"
fi
