#!/usr/bin/env bash
# The demo: set up, build, and run `xdpath demo` (two namespaces, a veth
# pair, xdpath in native mode, mixed traffic, counters, clean-up).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --quiet
exec target/release/xdpath demo "$@"
