#!/bin/bash
# Where a balanced frame's time goes (issue 18): a software-clock profile of
# xdpath's entry and balancing programs on one established flow's ACK (or
# on FLOWS flows taking turns), by kernel function and by source line.
#
#   scripts/lb-hot-flow-profile.sh XDPATH_BINARY [CALLS] [FLOWS]   (as root)
#
# A namespace of its own (removed on exit) with a veth pair, xdpath attached
# to one end, one IPv4 VIP (10.200.0.1:80/tcp, IPIP) with three backends and
# a fixed next-hop MAC; then CALLS runs of the entry program
# (BPF_PROG_TEST_RUN, one run a call: nothing is sent) on a TCP ACK from
# 10.1.2.3 to the VIP under `perf record -e cpu-clock`. The first run of a
# flow places it (an ACK with no entry is recorded as established); every
# later one is a connection-table hit. Needs perf and bpftool.
set -euo pipefail
xdpath=$(realpath "$1")
calls=${2:-1000000}
flows=${3:-1}
here=$(dirname "$(realpath "$0")")
ns="xlbp$$"
work=$(mktemp -d)
cleanup() {
    ip netns del "$ns" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
in_ns() { nsenter --net="/run/netns/$ns" "$@"; }

ip netns add "$ns"
ip -n "$ns" link add xa type veth peer name xb
ip -n "$ns" link set xa up
ip -n "$ns" link set xb up
in_ns "$xdpath" attach xa >/dev/null
in_ns "$xdpath" lb config --next-hop 02:00:00:00:00:02 --source-v4 10.100.0.0/16 >/dev/null
in_ns "$xdpath" lb vip add 10.200.0.1:80/tcp >/dev/null
for backend in 10.99.0.11 10.99.0.12 10.99.0.13; do
    in_ns "$xdpath" lb backend add 10.200.0.1:80/tcp "$backend" >/dev/null
done

# The programs of this namespace's attach: the entry on xa, and the
# balancer in its tail-call table (`STAGES`).
entry=$(ip -n "$ns" -j link show xa | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["xdp"]["prog"]["id"])')
balance=$(python3 - "$entry" <<'PY'
import json, subprocess, sys
def tool(*args):
    return json.loads(subprocess.run(["bpftool", "-j", *args], check=True, capture_output=True).stdout)
for map_id in tool("prog", "show", "id", sys.argv[1])["map_ids"]:
    if tool("map", "show", "id", str(map_id)).get("name") == "STAGES":
        for entry in tool("map", "dump", "id", str(map_id)):
            value = entry.get("value")
            prog = value if isinstance(value, int) else int.from_bytes(bytes(int(b, 16) for b in value), "little")
            if tool("prog", "show", "id", str(prog)).get("name") == "xdpath_balance":
                print(prog)
                sys.exit(0)
sys.exit("no xdpath_balance in the entry's STAGES")
PY
)

# Ethernet, IPv4 (checksummed), TCP ACK 10.1.2.3:1234 -> 10.200.0.1:80.
frame=$(python3 -c '
import struct
ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, 0, 0x4000, 64, 6, 0,
                           bytes([10, 1, 2, 3]), bytes([10, 200, 0, 1])))
total = sum(struct.unpack("!10H", ip))
total = (total & 0xffff) + (total >> 16)
struct.pack_into("!H", ip, 10, ~(total + (total >> 16)) & 0xffff)
tcp = struct.pack("!HHIIBBHHH", 1234, 80, 1, 1, 5 << 4, 0x10, 65535, 0, 0)
print((bytes.fromhex("020000000001020000000009") + b"\x08\x00" + bytes(ip) + tcp).hex())')

python3 "$here/bpf-line-profile.py" run "$entry" "$frame" 10000 "$flows"
perf record -q -e cpu-clock -F 25000 -o "$work/perf.data" -- \
    python3 "$here/bpf-line-profile.py" run "$entry" "$frame" "$calls" "$flows"
echo
echo "== samples under the test run, by function (the harness's own included) =="
perf report -i "$work/perf.data" -n --no-children --sort sym --stdio 2>/dev/null \
    | grep -E 'bpf_prog_|htab|memcmp|lookup_nulls|adjust_head|bpf_test_run|read_tsc|ktime_get|dispatcher|bh_enable|timer_continue|cgroup_storage' \
    | head -30
echo
echo "== samples in the entry and balancing programs, by source line =="
perf script -i "$work/perf.data" -F ip,sym 2>/dev/null \
    | python3 "$here/bpf-line-profile.py" lines "$entry" "$balance"
