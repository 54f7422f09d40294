#!/bin/bash
# install_tree.sh KEY=VALUE... -- `cmake --install` into a scratch DESTDIR
# puts the binaries, units, sysusers file, man pages and the Python
# package where they belong, the installed units start the installed
# binary, and `man concd` renders from the installed tree.
set -eu

CONCCTL=0
PYTHONDIR=
for kv in "$@"; do
	case $kv in
	CMAKE=* | BUILD=* | SRC=* | BINDIR=* | SBINDIR=* | MANDIR=* | \
	SYSTEMUNITDIR=* | USERUNITDIR=* | SYSUSERSDIR=* | CONCCTL=* | \
	PYTHONDIR=*)
		declare "$kv" ;;
	*) echo "install_tree.sh: unknown argument $kv" >&2; exit 2 ;;
	esac
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
D=$tmp/dest
fail=0
ok() { echo "ok: $*"; }
bad() { echo "FAIL: $*"; fail=1; }

DESTDIR=$D "$CMAKE" --install "$BUILD" >"$tmp/install.log" 2>&1 || {
	cat "$tmp/install.log"
	echo "FAIL: cmake --install"
	exit 1
}

want_exec() {
	if [ -x "$D$1" ]; then ok "$1"; else bad "$1 missing or not executable"; fi
}
want_file() {
	if [ -f "$D$1" ]; then ok "$1"; else bad "$1 missing"; fi
}
want_line() { # file, exact line
	if grep -qxF -- "$2" "$D$1" 2>/dev/null; then
		ok "$1: $2"
	else
		bad "$1 lacks the line: $2"
	fi
}

want_exec "$SBINDIR/concd"
[ "$CONCCTL" != 1 ] || want_exec "$BINDIR/concctl"
if [ -x "$D$SBINDIR/concd" ]; then
	v=$("$D$SBINDIR/concd" -V 2>&1) || true
	case $v in
	concd\ *) ok "concd -V: $v" ;;
	*) bad "concd -V printed: $v" ;;
	esac
fi

want_file "$SYSTEMUNITDIR/concd.service"
want_file "$SYSTEMUNITDIR/concd.socket"
want_file "$USERUNITDIR/concd.service"
want_file "$USERUNITDIR/concd.socket"
want_file "$SYSUSERSDIR/concd.conf"
want_line "$SYSTEMUNITDIR/concd.service" "ExecStart=$SBINDIR/concd -f"
want_line "$USERUNITDIR/concd.service" "ExecStart=$SBINDIR/concd -f"
want_line "$SYSTEMUNITDIR/concd.socket" "ListenStream=/run/concd/concd.sock"
want_line "$USERUNITDIR/concd.socket" "ListenStream=%t/concd/concd.sock"
if grep -q '^User=' "$D$USERUNITDIR/concd.service" 2>/dev/null; then
	bad "the user unit sets User="
fi

# The Python package, where python3 finds it, and importable from there.
if [ -n "$PYTHONDIR" ]; then
	for m in __init__ aio futures task; do
		want_file "$PYTHONDIR/concd/$m.py"
	done
	if /usr/bin/python3 -c 'import msgpack' 2>/dev/null; then
		if PYTHONPATH=$D$PYTHONDIR /usr/bin/python3 -c \
		    'import concd.futures, concd.aio, concd.task' 2>"$tmp/py.err"
		then
			ok "import concd from $PYTHONDIR"
		else
			cat "$tmp/py.err"
			bad "import concd from $PYTHONDIR"
		fi
	fi
fi

# Every page in man/ is installed in its section.
shopt -s nullglob
for page in "$SRC"/man/*.[1-8]; do
	name=${page##*/}
	want_file "$MANDIR/man${name##*.}/$name"
done

# man(1) finds and renders concd(8) from the installed tree.
if command -v man >/dev/null; then
	rc=0
	MANPAGER=cat MANWIDTH=80 LC_ALL=C.UTF-8 man -M "$D$MANDIR" 8 concd \
		>"$tmp/man.out" 2>"$tmp/man.err" || rc=$?
	if [ "$rc" -eq 0 ] && grep -q '^SYNOPSIS' "$tmp/man.out" &&
	    grep -q 'concd \[-dfhV\]' "$tmp/man.out"; then
		ok "man -M $MANDIR 8 concd renders"
	else
		cat "$tmp/man.err"
		head -20 "$tmp/man.out"
		bad "man -M $MANDIR 8 concd (rc $rc)"
	fi
	for page in concctl.1 concd-protocol.7; do
		[ -f "$SRC/man/$page" ] || continue
		if MANPAGER=cat MANWIDTH=80 LC_ALL=C.UTF-8 \
		    man -M "$D$MANDIR" "${page##*.}" "${page%.*}" 2>&1 |
		    grep -q '^NAME'; then
			ok "man ${page##*.} ${page%.*} renders"
		else
			bad "man ${page##*.} ${page%.*} does not render"
		fi
	done
else
	echo "note: man not installed, rendering not checked"
fi
exit $fail
