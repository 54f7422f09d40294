#!/bin/bash
# units_security.sh SERVICE THRESHOLD -- the hardening of concd.service,
# scored offline by systemd-analyze security, stays at or below
# THRESHOLD tenths (e.g. 7 means an exposure level of 0.7).
set -eu

service=$1
threshold=$2
command -v systemd-analyze >/dev/null ||
	{ echo "SKIP: systemd-analyze not installed"; exit 77; }

rc=0
out=$(systemd-analyze security --offline=true --threshold="$threshold" \
	"$service" 2>&1) || rc=$?
level=$(printf '%s\n' "$out" | grep 'Overall exposure level' || true)
if [ -z "$level" ]; then
	printf '%s\n' "$out"
	echo "FAIL: no exposure level reported (rc $rc)"
	exit 1
fi
printf '%s\n' "$level"
if [ "$rc" -ne 0 ]; then
	printf '%s\n' "$out" | grep '✗' || true
	echo "FAIL: exposure above $threshold tenths"
	exit 1
fi
echo "ok: exposure within $threshold tenths"
