#!/bin/bash
# demo.sh -- concd in two minutes: start a throwaway daemon on a private
# socket, run jobs on the event loop and on the warm thread pool with
# progress, show the pool serving many jobs, and stop the daemon.
# Installs what is missing and builds build/ first if needed.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
build=$root/build
"$root/scripts/deps.sh"

if [ ! -f "$build/CMakeCache.txt" ]; then
	echo "==> configuring $build"
	cmake -S "$root" -B "$build" -DPython3_EXECUTABLE=/usr/bin/python3 \
		>/dev/null
fi
echo "==> building $build"
cmake --build "$build" -j"$(nproc 2>/dev/null || echo 2)" >/dev/null

CONCD=$build/daemon/concd
CONCCTL=$build/client/concctl
for f in "$CONCD" "$CONCCTL"; do
	[ -x "$f" ] || { echo "demo.sh: $f was not built" >&2; exit 1; }
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/concd-demo.XXXXXX")
export CONCD_SOCKET=$tmp/concd.sock
pid=

cleanup() {
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		kill "$pid" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT

concd() { "$CONCD" "$@"; }
concctl() { "$CONCCTL" "$@"; }
step() {
	echo
	echo "+ $*"
	"$@"
}

echo "==> a throwaway concd on $CONCD_SOCKET (concctl finds it through"
echo "    \$CONCD_SOCKET); without -f it returns once it is listening"
step concd -s "$CONCD_SOCKET" --threads 4 --processes 2 2>"$tmp/concd.log"

out=$(concctl ping)
echo
echo "+ concctl ping"
echo "$out"
pid=$(printf '%s\n' "$out" | sed -n 's/.* pid \([0-9][0-9]*\).*/\1/p')
if [ -z "$pid" ]; then
	pid=$(pgrep -n -f "concd -s $CONCD_SOCKET" || true)
fi

step concctl tasks

echo
echo "==> waiting, on the event loop (auto picks loop for sleep)"
step concctl run sleep ms=2000 steps=20

echo
echo "==> CPU work on a warm thread: pi(5,000,000) = 348513"
step concctl run primes n=5000000 -x thread

echo
echo "==> a wait on the loop, asked for by name"
step concctl run sleep ms=1000 -x loop

echo
echo "==> submit returns at once; status, ps and wait follow the job"
echo
echo "+ concctl submit sleep ms=3000"
id=$(concctl submit sleep ms=3000)
echo "$id"
step concctl status "$id"
step concctl ps
step concctl wait "$id"

echo
echo "==> the same in JSON, for scripts"
step concctl --json run primes n=100000

echo
echo "==> 8 primes jobs at once on 4 warm threads"
ids=()
for _ in 1 2 3 4 5 6 7 8; do
	ids+=("$(concctl submit primes n=3000000 -x thread)")
done
echo "+ concctl submit primes n=3000000 -x thread   (8 times): ${ids[*]}"
step concctl wait "${ids[@]}"

echo
echo "==> every job so far, and the worker that served it: 4 threads"
echo "    served all the thread jobs, each several times (pool reuse)"
step concctl ps --all

echo
echo "==> CPU work in a pre-forked worker process, progress streamed back"
step concctl run primes n=20000000 -x process

echo
echo "==> warm workers vs a fresh one: table builds a lookup table once per"
echo "    worker; a --fresh job pays for it every time (see init_ms)"
step concctl run table n=1000000 -x process
step concctl run table n=1000000 -x process --fresh

echo
echo "==> the pools: every worker, its pid or tid, the jobs it has served"
step concctl pool

echo
echo "==> a race: 8 threads bump one counter without a lock (updates are"
echo "    lost), then with one (exact)"
step concctl run counter threads=8 iters=1000000 lock=false
step concctl run counter threads=8 iters=1000000 lock=true

echo
echo "==> a real command, its output streamed as it runs"
step concctl run exec -- sh -c 'for i in 1 2 3; do echo "line $i"; done'

echo
echo "==> many jobs in one request, results in input order"
printf 'primes n=100\nprimes n=1000 -x thread\nsleep ms=200\n' >"$tmp/jobs"
echo "+ concctl gather < jobs  # $(tr '\n' ';' <"$tmp/jobs")"
concctl gather <"$tmp/jobs"

echo
echo "==> a --daemon job is killed when concd stops; a plain one is drained"
echo
echo "+ concctl submit --daemon sleep ms=60000"
daemon_id=$(concctl submit --daemon sleep ms=60000)
echo "$daemon_id"
echo "+ concctl submit sleep ms=1500"
plain_id=$(concctl submit sleep ms=1500)
echo "$plain_id"

echo
echo "==> stopping the daemon"
if ! step concctl shutdown; then
	echo "concctl shutdown failed; sending SIGTERM to $pid"
	[ -z "$pid" ] || kill "$pid" 2>/dev/null || true
fi
if [ -n "$pid" ]; then
	for _ in $(seq 1 100); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		echo "concd $pid still running after 10 s; killing it" >&2
		kill -KILL "$pid" 2>/dev/null || true
		exit 1
	fi
	echo "concd $pid has exited"
fi

echo
echo "==> the daemon's log: what it drained and what it killed"
cat "$tmp/concd.log"
