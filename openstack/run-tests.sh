#!/usr/bin/env bash
# The OpenStack tests: set up (openstack/setup.sh), then the tests against a
# real Octavia (pytest), then ruff and mypy over the test environment, its
# tests and octavia-xdpath. Needs root (set-up installs Debian packages).
# Extra arguments go to pytest (e.g. -k, -x, -v).
set -uo pipefail
cd "$(dirname "$0")"
now() { date +%s%N; }
span() { local ms=$((($2 - $1) / 1000000)); printf '%d.%01d s' $((ms / 1000)) $((ms % 1000 / 100)); }
start=$(now)

./setup.sh || exit 1
# The end-to-end test runs the xdpath and xdpathd of this checkout
# (XDPATH_BIN_DIR to use others): built here when missing.
if [ -z "${XDPATH_BIN_DIR:-}" ] && { [ ! -x ../target/release/xdpath ] || [ ! -x ../target/release/xdpathd ]; }; then
  echo "openstack/run-tests.sh: building xdpath and xdpathd (cargo build --release)" >&2
  (cd .. && PATH="$HOME/.cargo/bin:$PATH" cargo build --release --quiet -p xdpath-cli -p xdpathd) || exit 1
fi
setup_done=$(now)
venv="${XDPATH_OPENSTACK_VENV:-/var/lib/xdpath-openstack/venv}"

failed=()
"$venv/bin/pytest" "$@" || failed+=(pytest)
pytest_done=$(now)
"$venv/bin/ruff" check . || failed+=("ruff check")
"$venv/bin/ruff" format --check . || failed+=("ruff format")
"$venv/bin/mypy" || failed+=(mypy)
end=$(now)

echo "openstack/run-tests.sh: took $(span "$start" "$end") (set-up $(span "$start" "$setup_done"), pytest $(span "$setup_done" "$pytest_done"), ruff and mypy $(span "$pytest_done" "$end"))"
if ((${#failed[@]})); then
  echo "openstack/run-tests.sh: FAILED: ${failed[*]}" >&2
  exit 1
fi
