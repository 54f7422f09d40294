#!/bin/bash
# units_verify.sh VERIFYDIR MANDIR -- systemd-analyze verify accepts the
# system and user units without a word on stderr (it returns 0 even for
# unknown keys, so stderr is what counts), and every Documentation=man:
# page they name is one of ours.
set -eu

verify=$1
mandir=$2
command -v systemd-analyze >/dev/null ||
	{ echo "SKIP: systemd-analyze not installed"; exit 77; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0

check() { # label, then the command
	local label=$1 rc=0
	shift
	"$@" >"$tmp/out" 2>"$tmp/err" || rc=$?
	if [ "$rc" -ne 0 ] || [ -s "$tmp/err" ]; then
		echo "FAIL: $label (rc $rc)"
		cat "$tmp/out" "$tmp/err"
		fail=1
	else
		echo "ok: $label"
	fi
}

for f in system/concd.service system/concd.socket user/concd.service \
    user/concd.socket; do
	[ -f "$verify/$f" ] || { echo "FAIL: $verify/$f missing"; exit 1; }
done

check "system units" systemd-analyze verify --man=no \
	"$verify/system/concd.service" "$verify/system/concd.socket"
# A user manager needs a runtime directory; give it a private one.
mkdir -m 0700 "$tmp/run"
check "user units" env XDG_RUNTIME_DIR="$tmp/run" \
	systemd-analyze --user verify --man=no \
	"$verify/user/concd.service" "$verify/user/concd.socket"

# Documentation=man:NAME(N) must be a page in man/.
for page in $(sed -n 's/^Documentation=//p' "$verify"/system/concd.* \
    "$verify"/user/concd.* | tr ' ' '\n' | sed -n 's/^man://p' | sort -u); do
	name=${page%(*}
	sect=${page#*(}
	sect=${sect%)}
	if [ -f "$mandir/$name.$sect" ]; then
		echo "ok: Documentation=man:$page"
	else
		echo "FAIL: Documentation=man:$page but no $mandir/$name.$sect"
		fail=1
	fi
done
exit $fail
