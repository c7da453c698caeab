#!/usr/bin/env bash
# The tests: set up, then every test of the workspace (unit, property,
# fixture tables through BPF_PROG_TEST_RUN, the tcpdump corpus through both
# builds, end-to-end in network namespaces, CLI errors), then the OpenStack
# tests (a real Octavia with the xdpath provider driver, end to end through
# two xdpath balancers; a real Neutron with the xdpath drivers and agent, end
# to end with a flood to a floating IP: openstack/run-tests.sh). Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
# A test that needs root fails rather than skips (xdpath_lab::needs_root!).
export XDPATH_REQUIRE_ROOT=1
cargo build --release --quiet
# Every test binary of the workspace, two at a time, then the doc tests.
scripts/rust-tests.sh
openstack/run-tests.sh
