#!/bin/bash
# test.sh [--tsan] [--valgrind] -- install what is missing, then build and
# test concd twice: build/ (warnings are errors) and build-asan/
# (AddressSanitizer + UBSan).  Prints one summary line per build, then
# the tests skipped inside the test programs with their reasons, and
# exits non-zero if anything failed.
#
#   --tsan      also build build-tsan/ with ThreadSanitizer and test it
#   --valgrind  also run the tests of build/ under valgrind (ctest -T memcheck)
#
# CI runs it without options (.ci/run).  CONCD_TEST_TIMEOUT sets the
# per-test timeout in seconds (default 300).
set -eu

usage() {
	echo "usage: scripts/test.sh [--tsan] [--valgrind]" >&2
	exit 2
}

tsan=0
valgrind=0
for arg in "$@"; do
	case $arg in
	--tsan) tsan=1 ;;
	--valgrind) valgrind=1 ;;
	-h | --help) usage ;;
	*) echo "test.sh: unknown option $arg" >&2; usage ;;
	esac
done

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
"$root/scripts/deps.sh"

# Debian's python3-msgpack is importable by /usr/bin/python3 only.
PYTHON=/usr/bin/python3
export PYTHON
timeout=${CONCD_TEST_TIMEOUT:-300}
ncpu=$(nproc 2>/dev/null || echo 2)
summaries=()
status=0

# counts JUNIT: sets passed, failed, skipped from ctest's JUnit report
counts() {
	local total
	total=$(sed -n 's/^[[:space:]]*tests="\([0-9]*\)".*/\1/p' "$1" | head -1)
	failed=$(sed -n 's/^[[:space:]]*failures="\([0-9]*\)".*/\1/p' "$1" | head -1)
	skipped=$(sed -n 's/^[[:space:]]*skipped="\([0-9]*\)".*/\1/p' "$1" | head -1)
	total=${total:-0}
	failed=${failed:-0}
	skipped=${skipped:-0}
	passed=$((total - failed - skipped))
}

# skips NAME LOG: adds to summaries the tests skipped inside the test
# programs of ctest's LOG, with their reasons: the integration modules
# print "SKIP: TEST -- REASON" (tests/integration/harness.py), cmocka
# prints "[  SKIPPED ] TEST".  ctest itself counts a program as passed
# when some of its tests skipped, and as skipped only when all did.
skips() {
	local name=$1 log=$2 lines n
	[ -f "$log" ] || return 0
	lines=$(awk '
		/^[0-9]+\/[0-9]+ Test: / { prog = $3; next }
		/^SKIP: / {
			line = substr($0, 7)
			sub(/^__main__\./, "", line)
			key = prog ": " line
			test = line
			sub(/ -- .*/, "", test)
			reasoned[prog ": " test] = 1
		}
		/^\[  SKIPPED \] [A-Za-z_]/ && !((prog ": " $4) in reasoned) {
			key = prog ": " $4 " -- (cmocka gives no reason)"
		}
		key != "" {
			if (!(key in seen))
				print "  " key
			seen[key] = 1
			key = ""
		}' "$log")
	[ -n "$lines" ] || return 0
	n=$(printf '%s\n' "$lines" | wc -l)
	summaries+=("$name: $n tests skipped inside the test programs:")
	while IFS= read -r line; do
		summaries+=("$line")
	done <<<"$lines"
}

# build NAME DIR [CTEST-ARGS --] CMAKE-ARGS...: configure, build, ctest
build() {
	local name=$1 dir=$2 rc=0
	shift 2
	local ctest_pre=()
	while [ $# -gt 0 ] && [ "$1" != -- ]; do
		ctest_pre+=("$1")
		shift
	done
	[ $# -gt 0 ] && shift

	echo "==> $name: configure and build $dir"
	mkdir -p "$dir"
	if ! cmake -S "$root" -B "$dir" -DPython3_EXECUTABLE="$PYTHON" \
	    -DCONCD_WERROR=ON "$@" >"$dir/configure.log" 2>&1; then
		cat "$dir/configure.log"
		summaries+=("$name: configure failed (see $dir/configure.log)")
		status=1
		return
	fi
	if ! cmake --build "$dir" -j"$ncpu" >"$dir/build.log" 2>&1; then
		grep -E 'error|warning' "$dir/build.log" | head -50 || true
		tail -20 "$dir/build.log"
		summaries+=("$name: build failed (see $dir/build.log)")
		status=1
		return
	fi

	echo "==> $name: ctest"
	rm -f "$dir/junit.xml"
	"${ctest_pre[@]}" ctest --test-dir "$dir" --output-on-failure -j2 \
		--timeout "$timeout" --output-junit "$dir/junit.xml" || rc=$?
	if [ -f "$dir/junit.xml" ]; then
		counts "$dir/junit.xml"
	else
		passed=0 failed=0 skipped=0
	fi
	if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
		failed=1 # ctest failed without a report
	fi
	if [ $((passed + failed + skipped)) -eq 0 ]; then
		summaries+=("$name: ran no test")
		status=1
		return
	fi
	[ "$failed" -eq 0 ] || status=1
	summaries+=("$name: $passed passed, $failed failed, $skipped skipped")
	skips "$name" "$dir/Testing/Temporary/LastTest.log"
}

build normal "$root/build" --
build asan "$root/build-asan" env \
	"UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}" \
	-- -DCONCD_ASAN=ON

if [ "$tsan" -eq 1 ]; then
	# Newer kernels randomise mmap beyond what TSan's shadow map expects:
	# run the tests with address randomisation off.
	norand=()
	if setarch "$(uname -m)" -R true 2>/dev/null; then
		norand=(setarch "$(uname -m)" -R)
	fi
	build tsan "$root/build-tsan" "${norand[@]}" env \
		"TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1 second_deadlock_stack=1}" \
		-- -DCONCD_TSAN=ON
fi

if [ "$valgrind" -eq 1 ]; then
	# Every test command runs under valgrind, and so do the programs it
	# starts, except system ones (bash, python3 and the like are not ours).
	echo "==> valgrind: ctest -T memcheck in build/"
	out=$root/build/memcheck.log
	set +e
	CONCD_VALGRIND=1 ctest --test-dir "$root/build" -T memcheck -j2 \
		--timeout $((timeout * 4)) --output-on-failure \
		--overwrite MemoryCheckCommand="$(command -v valgrind)" \
		--overwrite MemoryCheckSuppressionFile="$root/scripts/valgrind.supp" \
		--overwrite "MemoryCheckCommandOptions=--leak-check=full \
--show-leak-kinds=definite --errors-for-leak-kinds=definite \
--trace-children=yes --trace-children-skip=/usr/*,/bin/*,/sbin/* \
--child-silent-after-fork=yes --num-callers=30" 2>&1 | tee "$out"
	rc=${PIPESTATUS[0]}
	set -e
	defects=$(sed -n 's/.*Defects: \([0-9]*\).*/\1/p' "$out" |
		awk '{ n += $1 } END { print n + 0 }')
	if [ "$rc" -ne 0 ] || [ "$defects" -ne 0 ]; then
		status=1
	fi
	summaries+=("valgrind: ctest rc $rc, $defects defects (logs in build/Testing/Temporary/MemoryChecker.*.log)")
	# ctest -T memcheck keeps the tests' output in LastDynamicAnalysis_*
	skips valgrind "$(find "$root/build/Testing/Temporary" \
		-name 'LastDynamicAnalysis_*.log' -printf '%T@ %p\n' |
		sort -n | tail -1 | cut -d' ' -f2-)"
fi

echo
for s in "${summaries[@]}"; do
	echo "$s"
done
exit $status
