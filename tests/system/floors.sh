#!/bin/bash
# floors.sh OBJECT|ARCHIVE... -- the daemon's floors (DESIGN.md §14) hold:
# no file refers to a function or variable defined in a file above its
# own, and loop.c and tasks/ include no header above theirs (tasks/ see
# the task ABI, task.h, and the built-in ones spawner.h, which is not
# installed: plugins get task.h alone).  Events go
# up only through hooks the upper file registers, which nm cannot see.
#
# Every global symbol an object leaves undefined (nm's U) that another of
# the given objects defines is a reference from one source file to
# another; each source file has a floor below, and a reference may only
# go to the same floor or down.
set -eu

command -v nm >/dev/null || { echo "SKIP: nm not installed"; exit 77; }
[ $# -gt 0 ] || { echo "usage: floors.sh object|archive..." >&2; exit 2; }

# The floors, from the ground up.  A new file gets a line here.
floor_of() {
	case $1 in
	codec.c | frame.c | msg.c | utf8.c) echo 0 ;;    # proto/
	loop.c) echo 1 ;;
	conn.c | log.c | config.c | notify.c | reap.c) echo 2 ;;
	job.c) echo 3 ;;
	sched.c | loop_exec.c | pool_thread.c | pool_process.c | worker.c | \
	task.c | spawn.c | plugin.c | checksum.c | counter.c | exec.c | noop.c | \
	primes.c | sleep.c | table.c) echo 4 ;;           # and tasks/
	# spawn.c: under tasks/exec.c, beside task.c (its account lookup)
	request.c) echo 5 ;;
	server.c) echo 6 ;;
	main.c) echo 7 ;;
	*) echo none ;;
	esac
}

# "source-file symbol-type symbol" for every global symbol, defined or not.
syms=$(nm -A -g "$@" 2>/dev/null | awk '
	NF == 3 {
		n = split($1, p, ":")   # [archive:]member:[address]
		f = p[n - 1]
		sub(/.*\//, "", f); sub(/\.o$/, "", f)
		print f, $2, $3
	}')
[ -n "$syms" ] || { echo "FAIL: no symbols in $*"; exit 1; }

fail=0
declare -A def
while read -r f type sym; do
	[ "$type" = U ] && continue
	def[$sym]=$f
	if [ "$(floor_of "$f")" = none ]; then
		echo "FAIL: $f has no floor in floors.sh"
		fail=1
	fi
done <<<"$syms"

refs=0
while read -r f type sym; do
	[ "$type" = U ] || continue
	to=${def[$sym]:-}
	[ -n "$to" ] && [ "$to" != "$f" ] || continue
	refs=$((refs + 1))
	from_floor=$(floor_of "$f")
	to_floor=$(floor_of "$to")
	[ "$from_floor" = none ] || [ "$to_floor" = none ] && continue
	if [ "$to_floor" -gt "$from_floor" ]; then
		echo "FAIL: $f (floor $from_floor) uses $sym of $to (floor $to_floor)"
		fail=1
	fi
done <<<"$syms"

# Headers: the loop knows nothing above it, tasks know only the task ABI
# and the spawner.
src=$(dirname "$0")/../../daemon
for f in "$src"/loop.c; do
	[ -f "$f" ] || continue
	if grep -n '^#include "' "$f" | grep -v '"loop.h"'; then
		echo "FAIL: loop.c includes a header above its floor"
		fail=1
	fi
done
for f in "$src"/tasks/*.c; do
	if grep -n '^#include "' "$f" |
		grep -v -e '"../task.h"' -e '"../spawner.h"'; then
		echo "FAIL: tasks/${f##*/} includes more than task.h and spawner.h"
		fail=1
	fi
done

[ $fail -eq 0 ] && echo "ok: $refs references between files, none upward"
exit $fail
