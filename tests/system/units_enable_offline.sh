#!/bin/bash
# units_enable_offline.sh KEY=VALUE... -- the installed units work with
# an offline systemctl: in a scratch root, `systemctl --root enable
# concd.socket` (and `enable concd.service`, through Also=) makes the
# sockets.target.wants link, `--global` does the same for the user units,
# and systemd-sysusers creates the concd group from the
# installed sysusers.d file.
set -eu

for kv in "$@"; do
	case $kv in
	CMAKE=* | BUILD=* | SRC=* | BINDIR=* | SBINDIR=* | MANDIR=* | \
	SYSTEMUNITDIR=* | USERUNITDIR=* | SYSUSERSDIR=* | CONCCTL=* | \
	PYTHONDIR=*)
		declare "$kv" ;;
	*) echo "units_enable_offline.sh: unknown argument $kv" >&2; exit 2 ;;
	esac
done
command -v systemctl >/dev/null ||
	{ echo "SKIP: systemctl not installed"; exit 77; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
D=$tmp/dest
R=$tmp/root
fail=0
ok() { echo "ok: $*"; }
bad() { echo "FAIL: $*"; fail=1; }

DESTDIR=$D "$CMAKE" --install "$BUILD" >"$tmp/install.log" 2>&1 || {
	cat "$tmp/install.log"
	echo "FAIL: cmake --install"
	exit 1
}

# A root holding the installed units where a distribution puts them.
mkdir -p "$R/usr/lib/systemd/system" "$R/usr/lib/systemd/user" \
	"$R/usr/lib/sysusers.d" "$R/etc/systemd/system" "$R/etc/systemd/user"
cp "$D$SYSTEMUNITDIR/concd.service" "$D$SYSTEMUNITDIR/concd.socket" \
	"$R/usr/lib/systemd/system/"
cp "$D$USERUNITDIR/concd.service" "$D$USERUNITDIR/concd.socket" \
	"$R/usr/lib/systemd/user/"
cp "$D$SYSUSERSDIR/concd.conf" "$R/usr/lib/sysusers.d/"

sysl=$R/etc/systemd/system/sockets.target.wants/concd.socket
userl=$R/etc/systemd/user/sockets.target.wants/concd.socket

want_link() { # link, target
	if [ -L "$1" ] && [ "$(readlink "$1")" = "$2" ]; then
		ok "${1#"$R"} -> $2"
	else
		bad "${1#"$R"} is not a link to $2"
	fi
}
want_gone() {
	if [ -e "$1" ] || [ -L "$1" ]; then bad "${1#"$R"} still there"; else
		ok "${1#"$R"} removed"; fi
}
run() {
	if "$@" >"$tmp/out" 2>&1; then :; else
		cat "$tmp/out"
		bad "$*"
	fi
}

run systemctl --root="$R" enable concd.socket
want_link "$sysl" /usr/lib/systemd/system/concd.socket
state=$(systemctl --root="$R" is-enabled concd.socket 2>&1) || true
if [ "$state" = enabled ]; then ok "is-enabled concd.socket: enabled"; else
	bad "is-enabled concd.socket: $state"; fi
run systemctl --root="$R" disable concd.socket
want_gone "$sysl"

# Enabling the service enables its socket (Also=concd.socket).
run systemctl --root="$R" enable concd.service
want_link "$sysl" /usr/lib/systemd/system/concd.socket
run systemctl --root="$R" disable concd.service
want_gone "$sysl"

# The user units, for every user.
run systemctl --root="$R" --global enable concd.socket
want_link "$userl" /usr/lib/systemd/user/concd.socket

# sysusers.d: the concd group (the system instance runs as root).
if command -v systemd-sysusers >/dev/null; then
	run systemd-sysusers --root="$R"
	if grep -q '^concd:' "$R/etc/group" 2>/dev/null; then
		ok "systemd-sysusers made group concd"
	else
		bad "systemd-sysusers did not make group concd"
	fi
else
	echo "note: systemd-sysusers not installed, sysusers.d not checked"
fi
exit $fail
