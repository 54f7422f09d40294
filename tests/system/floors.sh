#!/bin/bash
# floors.sh OBJECT|ARCHIVE... -- the daemon's floors (DESIGN.md §14) hold:
# no file refers to a function or variable defined in a file above its
# own, and no file includes a header of a floor above its own (tasks/
# see the task ABI, task.h, and the built-in ones spawner.h, which is not
# installed: plugins get task.h alone).  Events go up only through hooks
# the upper file registers, which neither check can see.
#
# Every global symbol an object leaves undefined (nm's U) that another of
# the given objects defines is a reference from one source file to
# another; each source file has a floor below, and a reference may only
# go to the same floor or down.  Every daemon/*.c, daemon/*.h and
# daemon/tasks/*.c has a floor too, a header its file's, and its
# #include "..." lines may only name headers of the same floor or below.
set -eu

command -v nm >/dev/null || { echo "SKIP: nm not installed"; exit 77; }
[ $# -gt 0 ] || { echo "usage: floors.sh object|archive..." >&2; exit 2; }

# The floors, from the ground up.  A new file gets a line here; a header
# named after its file (conn.h, conn.c) has that file's floor.
floor_of() {
	case $1 in
	proto.h) echo 0 ;;                                # proto/
	codec.c | frame.c | msg.c | utf8.c | size.c) echo 0 ;;
	loop.c) echo 1 ;;
	conn.c | log.c | config.c | notify.c | reap.c | store.c | journal.c | joblog.c | \
	cgroup.c | slurm.c | systemd.c) echo 2 ;;
	# task.h, the task ABI: the job record points to a struct task; its
	# functions are task.c's, and the symbols place their callers
	job.c | input.c | task.h) echo 3 ;;
	sched.c | executor.h | queue.c | deps.c | loop_exec.c | pool_thread.c | pool_process.c | pool_remote.c | \
	worker.c | worker_msg.c | task.c | task_int.h | plugin.c | checksum.c | counter.c | \
	exec.c | noop.c | primes.c | sleep.c | table.c) echo 4 ;; # and tasks/
	# spawn.c: under tasks/exec.c, beside task.c (its account lookup)
	spawn.c | spawner.h) echo 4 ;;
	# hook.c: on-end, started by spawn.c for the jobs sched.c sees end
	hook.c) echo 4 ;;
	request.c | recover.c | logread.c) echo 5 ;;
	server.c) echo 6 ;;
	main.c) echo 7 ;;
	*.h) floor_of "${1%.h}.c" ;;
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

# Headers: a file includes only headers of its own floor or below.
src=$(dirname "$0")/../../daemon
incs=0
for f in "$src"/*.c "$src"/*.h "$src"/tasks/*.c; do
	[ -f "$f" ] || continue
	name=${f##*/}
	from_floor=$(floor_of "$name")
	if [ "$from_floor" = none ]; then
		echo "FAIL: ${f#"$src"/} has no floor in floors.sh"
		fail=1
		continue
	fi
	while IFS=: read -r line h; do
		h=${h#*\"}
		h=${h%%\"*}
		incs=$((incs + 1))
		to_floor=$(floor_of "${h##*/}")
		if [ "$to_floor" = none ]; then
			echo "FAIL: ${f#"$src"/}:$line includes $h, which has no floor"
			fail=1
		elif [ "$to_floor" -gt "$from_floor" ]; then
			echo "FAIL: ${f#"$src"/}:$line (floor $from_floor) includes $h (floor $to_floor)"
			fail=1
		fi
	done < <(grep -n '^#include "' "$f")
done
# The task ABI and the spawner are all that tasks see.
for f in "$src"/tasks/*.c; do
	if grep -n '^#include "' "$f" |
		grep -v -e '"../task.h"' -e '"../spawner.h"'; then
		echo "FAIL: tasks/${f##*/} includes more than task.h and spawner.h"
		fail=1
	fi
done

[ $fail -eq 0 ] && echo "ok: $refs references between files and $incs includes, none upward"
exit $fail
