#!/bin/bash
# man_lint.sh MANDIR -- every page in MANDIR is clean under
# `mandoc -Tlint -Wwarning`: exit status 0 and no output at all; and its
# rendered text has no English word turned into a flag (a stray `Fl`
# renders "-c, or the default" as "-c, -or -the -default").
set -eu

mandir=$1
command -v mandoc >/dev/null || { echo "SKIP: mandoc not installed"; exit 77; }

shopt -s nullglob
pages=("$mandir"/*.[1-8])
if [ ${#pages[@]} -eq 0 ]; then
	echo "FAIL: no man pages in $mandir"
	exit 1
fi

fail=0
for page in "${pages[@]}"; do
	rc=0
	out=$(mandoc -Tlint -Wwarning "$page" 2>&1) || rc=$?
	if [ "$rc" -ne 0 ] || [ -n "$out" ]; then
		echo "FAIL: ${page##*/} (mandoc rc $rc)"
		[ -z "$out" ] || printf '%s\n' "$out"
		fail=1
		continue
	fi
	words=$(mandoc -Tascii "$page" | col -b |
		grep -nE '(^|[[:space:](])-(or|and|the|of|to|an|in|is|it|with|for|on|by|as|default)([^[:alnum:]-]|$)' ||
		true)
	if [ -n "$words" ]; then
		echo "FAIL: ${page##*/}: words rendered as flags"
		printf '%s\n' "$words"
		fail=1
	else
		echo "ok: ${page##*/}"
	fi
done
exit $fail
