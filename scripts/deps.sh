#!/bin/bash
# deps.sh -- install the Debian packages that building and testing concd
# need, if any are missing.  Quiet and quick when everything is there.
set -eu

packages=(
	build-essential cmake pkg-config clang
	libevent-dev libmsgpack-dev libsystemd-dev libcmocka-dev libjansson-dev
	libsmartcols-dev
	libsqlite3-dev sqlite3 zlib1g-dev
	mandoc man-db python3 python3-msgpack systemd valgrind
	python3-pyflakes # tests/system/python_lint.sh
	python3-dev # the python task's plugin (plugins/python.c)
	libclang-rt-14-dev
	bash-completion # where cmake --install puts concctl's completion
	zsh # test_completion.py runs zsh's completion too
	procps # /bin/kill for ExecReload=, pgrep for demo.sh
	gdb # the stacks of a concd that does not stop, in a test's failure
	slurm-wlm munge # a private Slurm cluster for test_slurm_*.py
)

missing=()
for p in "${packages[@]}"; do
	status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	[ "$status" = "install ok installed" ] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps.sh: installing ${missing[*]}" >&2
sudo=()
if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null; then
		sudo=(sudo)
	else
		echo "deps.sh: not root and no sudo; install: ${missing[*]}" >&2
		exit 1
	fi
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq >/dev/null
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	--no-install-recommends "${missing[@]}" >/dev/null
echo "deps.sh: done" >&2
