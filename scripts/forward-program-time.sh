#!/bin/bash
# The kernel-reported program time of one forwarded frame (BPF_PROG_TEST_RUN,
# not live: nothing is sent), for comparing two builds of xdpath when
# `xdpath bench --forward` cannot run its live frames (it fails with EPERM
# in some VMs; see BENCHMARKS.md, issue 18, fourth session).
#
#   scripts/forward-program-time.sh XDPATH_BINARY [CALLS]     (as root)
#
# A router namespace between two host namespaces (made here, removed on
# exit), xdpath attached to both router ports with forwarding on, a static
# neighbour for h2; then CALLS calls of `bpftool prog run` of the entry
# program on a 42-byte IPv4/UDP frame from h1 to h2 arriving on r1, 200
# runs a call (the frame's TTL, 255, is decremented in place by each run:
# 200 keep every run a forwarded one). Prints the actions returned (4:
# XDP_REDIRECT) and the mean and median of the calls' average ns.
set -euo pipefail
xdpath=$1
calls=${2:-100}
prefix="xfpt$$"
work=$(mktemp -d)
cleanup() {
    for node in h1 r h2; do ip netns del "$prefix$node" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
# nsenter, not `ip netns exec`: the latter remounts /sys, hiding bpffs and
# so xdpath's pins.
in_router() { nsenter --net="/run/netns/${prefix}r" "$@"; }
link_field() {
    ip -n "$1" -j link show "$2" | python3 -c "import json,sys; print(json.load(sys.stdin)[0]['$3'])"
}

for node in h1 r h2; do ip netns add "$prefix$node"; done
ip link add a1 netns "${prefix}h1" type veth peer name r1 netns "${prefix}r"
ip link add a2 netns "${prefix}h2" type veth peer name r2 netns "${prefix}r"
ip -n "${prefix}h1" addr add 10.215.1.2/24 dev a1
ip -n "${prefix}h2" addr add 10.215.2.2/24 dev a2
ip -n "${prefix}r" addr add 10.215.1.1/24 dev r1
ip -n "${prefix}r" addr add 10.215.2.1/24 dev r2
ip -n "${prefix}h1" link set a1 up
ip -n "${prefix}h2" link set a2 up
ip -n "${prefix}r" link set r1 up
ip -n "${prefix}r" link set r2 up
in_router sysctl -qw net.ipv4.ip_forward=1
ip -n "${prefix}r" neigh replace 10.215.2.2 lladdr "$(link_field "${prefix}h2" a2 address)" \
    dev r2 nud permanent
for port in r1 r2; do
    in_router "$xdpath" attach "$port" --mode native >/dev/null
    in_router "$xdpath" forward enable "$port" >/dev/null 2>&1
done
program=$(ip -n "${prefix}r" -j link show r1 | python3 -c '
import json, sys
xdp = json.load(sys.stdin)[0]["xdp"]
print(xdp["prog"]["id"] if "prog" in xdp else xdp["attached"][0]["prog"]["id"])')
python3 - "$(link_field "${prefix}r" r1 address)" "$(link_field "${prefix}h1" a1 address)" \
    "$(link_field "${prefix}r" r1 ifindex)" "$work" <<'PY'
import struct, sys
router, host, ifindex, work = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
mac = lambda text: bytes(int(part, 16) for part in text.split(":"))
ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 28, 0, 0x4000, 255, 17, 0,
                           bytes([10, 215, 1, 2]), bytes([10, 215, 2, 2])))
total = sum(struct.unpack("!10H", bytes(ip)))
total = (total & 0xFFFF) + (total >> 16)
total = (total & 0xFFFF) + (total >> 16)
ip[10:12] = struct.pack("!H", ~total & 0xFFFF)
frame = mac(router) + mac(host) + b"\x08\x00" + bytes(ip) + struct.pack("!HHHH", 40000, 9, 8, 0)
open(f"{work}/frame", "wb").write(frame)
# xdp_md: data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex
open(f"{work}/ctx", "wb").write(struct.pack("<6I", 0, len(frame), 0, ifindex, 0, 0))
PY
for _ in $(seq "$calls"); do
    in_router bpftool prog run id "$program" data_in "$work/frame" ctx_in "$work/ctx" repeat 200
done 2>&1 | python3 -c '
import re, statistics, sys
runs = re.findall(r"Return value: (\d+), duration \(average\): (\d+)ns", sys.stdin.read())
actions = sorted({action for action, _ in runs})
times = [int(ns) for _, ns in runs]
print(f"actions {actions}, calls {len(times)}, mean {statistics.mean(times):.1f} ns, "
      f"median {statistics.median(times):.1f} ns")'
