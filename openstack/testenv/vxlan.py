"""Tenant overlays for the compute-node tests: real Linux ``vxlan`` (or
``geneve``) devices over `testenv.qos_bed`'s ``ext``-``gw`` veth, so that
``gw`` (the compute node, xdpath on its ``eth0``, the tunnel interface)
receives encapsulated tenant frames from ``ext`` (another hypervisor).

An overlay is one VNI: a device in ``gw`` with the VM's address and one
in ``ext`` with the remote VMs' addresses, each with permanent neighbours
(no ARP: every frame counted is a ping). A device can be moved to a
namespace of its own after it is made (its tunnel stays on the underlay
of the namespace it was made in), so that the same tenant addresses can
live on two VNIs at once, as two Neutron networks' ports do.
"""

from __future__ import annotations

import re
import subprocess

from testenv.qos_bed import EXT_ADDRESS, GW_ADDRESS, QosBed

GW_MAC = "02:c9:72:00:00:01"
EXT_MAC = "02:c9:72:00:00:02"
PINGS = 5


def tunnel(
    bed: QosBed, role: str, name: str, vni: int, *, kind: str = "vxlan", into: str | None = None
) -> str:
    """A ``kind`` device ``name`` for ``vni`` in ``role``'s namespace (to
    the other side's underlay address), moved into ``into``'s if given;
    the role whose namespace holds it."""
    local, remote, mac = (
        (GW_ADDRESS, EXT_ADDRESS, GW_MAC) if role == "gw" else (EXT_ADDRESS, GW_ADDRESS, EXT_MAC)
    )
    argv = ["ip", "link", "add", name, "address", mac, "type", kind, "id", str(vni)]
    if kind == "vxlan":
        argv += ["local", local, "remote", remote, "dstport", "4789", "dev", "eth0"]
    else:
        argv += ["remote", remote, "dstport", "6081"]
    bed.run(role, *argv)
    if into is None:
        return role
    bed.run(role, "ip", "link", "set", name, "netns", bed.ns(into))
    return into


def overlay(
    bed: QosBed, role: str, device: str, addresses: list[str], *, peers: list[str], mac: str
) -> None:
    """Brings ``device`` up with ``addresses`` (/24) and a permanent
    neighbour (at ``mac``) for each of ``peers``."""
    for address in addresses:
        bed.run(role, "ip", "addr", "add", f"{address}/24", "dev", device)
    bed.run(role, "ip", "link", "set", device, "up")
    for peer in peers:
        bed.run(role, "ip", "neigh", "replace", peer, "lladdr", mac, "dev", device,
                "nud", "permanent")  # fmt: skip


def ping(bed: QosBed, role: str, source: str, target: str, count: int = PINGS) -> int:
    """Pings ``target`` from ``source`` in ``role``; the replies."""
    done = subprocess.run(
        bed.argv(role, "ping", "-n", "-q", "-c", str(count), "-i", "0.1", "-W", "1",
                 "-I", source, target),
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    found = re.search(r"(\d+) received", done.stdout)
    if found is None:
        raise RuntimeError(f"ping in {role}: {done.stdout}{done.stderr}")
    return int(found.group(1))
