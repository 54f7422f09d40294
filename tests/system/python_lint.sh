#!/bin/bash
# python_lint.sh SRC -- the project's Python (the concd package, the
# integration tests and the benchmarks) is clean under pyflakes, with
# Debian's interpreter: no unused import or variable, no undefined name.
set -eu

src=$1
py=/usr/bin/python3
"$py" -c 'import pyflakes' 2>/dev/null ||
	{ echo "SKIP: python3-pyflakes not installed"; exit 77; }

shopt -s nullglob
files=("$src"/python/concd/*.py "$src"/tests/integration/*.py
	"$src"/tests/bench/*.py)
if [ ${#files[@]} -eq 0 ]; then
	echo "FAIL: no Python files under $src"
	exit 1
fi
rc=0
out=$("$py" -m pyflakes "${files[@]}" 2>&1) || rc=$?
if [ "$rc" -ne 0 ] || [ -n "$out" ]; then
	printf '%s\n' "$out"
	echo "FAIL: pyflakes rc $rc on ${#files[@]} files"
	exit 1
fi
echo "ok: ${#files[@]} files"
