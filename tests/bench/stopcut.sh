#!/bin/bash
# stopcut.sh CONCD_BENCH CONCD CONCTL -- concd-bench stops a concd that a
# job keeps from stopping (at SIGTERM a non-daemon job is drained first)
# with a second SIGTERM, which cuts the job off: its command does not
# outlive the run, and the bench does not have to SIGKILL concd, which
# would leave the command and its cgroup behind.
set -eu

bench=$1 concd=$2 conctl=$3
here=$(cd "$(dirname "$0")" && pwd)
dir=$(mktemp -d /tmp/concd-stopcut.XXXXXX)
tag="3600.$$" # the command's argument: this run's, to find it by

# what a killed concd left: its command, by pid, and the cgroups of its
# instance (named in the command's /proc/PID/cgroup), which the tests'
# harness removes as it does after its own daemons
cleanup() {
	local pids pid names=()
	pids=$(pgrep -f "^sleep $tag\$" || true)
	for pid in $pids; do
		mapfile -t -O "${#names[@]}" names < <(grep -o 'concd-[0-9a-f]*' \
			"/proc/$pid/cgroup" 2>/dev/null | sort -u)
		kill -9 "$pid" 2>/dev/null || true
	done
	for pid in $pids; do # gone from its cgroup, even as a zombie
		for _ in $(seq 500); do
			grep -q . "/proc/$pid/cgroup" 2>/dev/null || break
			[ "$(cut -d' ' -f3 "/proc/$pid/stat" 2>/dev/null)" != Z ] ||
				break
			sleep 0.01
		done
	done
	if [ ${#names[@]} -gt 0 ]; then
		/usr/bin/python3 -c 'import sys; sys.path.insert(0, sys.argv[1])
import harness; harness.remove_cgroups(sys.argv[2:])' \
			"$here/../integration" "${names[@]}" || true
	fi
	rm -rf "$dir"
}
trap cleanup EXIT

# concd, with a command submitted as soon as it listens: the bench's
# own run goes on meanwhile, and its stop meets the command running
cat >"$dir/concd" <<EOF
#!/bin/bash
sock= prev=
for a in "\$@"; do [ "\$prev" = -s ] && sock=\$a; prev=\$a; done
(
	for i in \$(seq 2000); do
		if "$conctl" -s "\$sock" submit exec -- sleep $tag \\
			>"$dir/job" 2>/dev/null; then
			exit 0
		fi
		sleep 0.005
	done
) &
exec "$concd" "\$@"
EOF
chmod +x "$dir/concd"

rc=0
"$bench" --spawn "$dir/concd" --suite noop --exec loop --runs 1 \
	--rt 2000 --pipelined 0 --check >"$dir/out" 2>"$dir/err" || rc=$?
fail=0
if [ "$rc" -ne 0 ]; then
	echo "FAIL: concd-bench exited $rc"
	fail=1
fi
if [ ! -s "$dir/job" ]; then
	echo "FAIL: the command was never submitted"
	fail=1
fi
if ! grep -q "a second SIGTERM cuts its jobs off" "$dir/err"; then
	echo "FAIL: concd-bench did not send a second SIGTERM"
	fail=1
fi
if grep -q "killed" "$dir/err"; then
	echo "FAIL: concd-bench had to SIGKILL concd"
	fail=1
fi
if pgrep -f "^sleep $tag\$" >/dev/null; then
	echo "FAIL: the job's command outlived concd"
	fail=1
fi
if [ "$fail" -ne 0 ]; then
	sed 's/^/  stderr: /' "$dir/err"
	exit 1
fi
echo "ok: job $(cat "$dir/job") cut off at the second SIGTERM"
