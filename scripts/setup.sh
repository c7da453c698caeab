#!/usr/bin/env bash
# Idempotent set-up for building and testing xdpath on a Debian 12 machine,
# as root. Costs a second or two when everything is in place.
#
# - Debian's rustc 1.96 with a prebuilt `core` for bpfel-unknown-none (there
#   is no rust-src for the rustup toolchains, so -Z build-std is out), LLVM 22
#   for bpf-linker, and the tools the tests and benchmarks drive;
# - bpf-linker 0.13.0 built against LLVM 22;
# - bpffs mounted at /sys/fs/bpf;
# - the OpenStack test environment (openstack/setup.sh).
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
  echo "setup: run as root (xdpath loads BPF programs and creates network namespaces)" >&2
  exit 1
fi

packages=(
  rustc-web libstd-rust-web-dev-bpf llvm-22-dev libpolly-22-dev libzstd-dev zlib1g-dev
  xdp-tools bpftool iproute2 iputils-ping tcpdump tshark hping3 python3-scapy
  nginx curl iperf3 ethtool pmacct nfdump prometheus strace
)
# shellcheck source=lib/debian.sh
source "$(dirname "$0")/lib/debian.sh"
ensure_debian_packages setup "${packages[@]}"

export PATH="$HOME/.cargo/bin:$PATH"
if ! bpf-linker --version 2>/dev/null | grep -q "0.13.0"; then
  echo "setup: building bpf-linker 0.13.0 against LLVM 22" >&2
  LLVM_PREFIX=/usr/lib/llvm-22 PATH="/usr/lib/llvm-22/bin:$PATH" \
    cargo install --locked bpf-linker --version 0.13.0 --no-default-features --features llvm-22 >&2
fi

if ! mountpoint -q /sys/fs/bpf; then
  mount -t bpf bpf /sys/fs/bpf
fi

# The OpenStack tests' environment: MariaDB and the OpenStack venv (Octavia,
# Neutron), with octavia-xdpath and neutron-xdpath installed from this
# checkout.
"$(dirname "$0")/../openstack/setup.sh"

# The API checkers (schemathesis, openapi-spec-validator) the daemon's
# contract test runs, in a venv shared by every checkout like the
# OpenStack one: XDPATH_TOOLS_VENV, by default /var/lib/xdpath-tools/venv.
tools_venv="${XDPATH_TOOLS_VENV:-/var/lib/xdpath-tools/venv}"
mkdir -p /var/lib/xdpath-tools
(
  flock 9
  . "$(dirname "$0")/lib/venv.sh"
  make_venv setup "$tools_venv" "$(dirname "$0")/tools/requirements.txt" \
    "$(dirname "$0")/tools/constraints.txt"
) 9>/var/lib/xdpath-tools/setup.lock
