#!/bin/sh
# xdpathd API figures (see xdpathd/bench/api.py), as root, in a throw-away
# network namespace with a dummy interface: nothing leaves it.
set -eu
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --quiet
ns="xdpt-bench-api-$$"
ip netns add "$ns"
trap 'inode=$(stat -L -c %i /run/netns/'"$ns"' 2>/dev/null || true); [ -n "$inode" ] && rm -rf /sys/fs/bpf/xdpath/$inode /var/lib/xdpath/$inode; ip netns del '"$ns"'' EXIT
nsenter --net=/run/netns/"$ns" ip link add bench0 type veth peer name bench1
nsenter --net=/run/netns/"$ns" ip link set bench0 up
nsenter --net=/run/netns/"$ns" ip link set bench1 up
nsenter --net=/run/netns/"$ns" /usr/bin/python3 xdpathd/bench/api.py \
    "$PWD/target/release/xdpathd" "$PWD/target/release/xdpath" bench0 "${1:-1000}"
